"""The local MariaDB: SQLAlchemy over pymysql, in transactions."""

import uuid

import pytest
import sqlalchemy as sa


@pytest.fixture()
def engine(mysql):
    engine = sa.create_engine(mysql.url)
    yield engine
    engine.dispose()


def test_create_write_read_in_a_transaction(engine):
    table = f"it_rows_{uuid.uuid4().hex[:8]}"
    meta = sa.MetaData()
    rows = sa.Table(table, meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("name", sa.String(64)), sa.Column("value", sa.Float))
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(rows.insert(), [{"id": i, "name": f"feature_{i}", "value": i / 4} for i in range(100)])
        with engine.connect() as conn:
            got = conn.execute(sa.select(rows).order_by(rows.c.id)).all()
        assert [(r.id, r.name, r.value) for r in got] == [(i, f"feature_{i}", i / 4) for i in range(100)]
    finally:
        meta.drop_all(engine)


def test_failed_transaction_leaves_nothing(engine):
    table = f"it_tx_{uuid.uuid4().hex[:8]}"
    meta = sa.MetaData()
    rows = sa.Table(table, meta, sa.Column("id", sa.Integer, primary_key=True))
    meta.create_all(engine)
    try:
        with pytest.raises(sa.exc.IntegrityError):
            with engine.begin() as conn:
                conn.execute(rows.insert(), [{"id": 1}, {"id": 2}])
                conn.execute(rows.insert(), [{"id": 1}])  # duplicate key: the whole transaction rolls back
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(rows)).scalar() == 0
    finally:
        meta.drop_all(engine)


def test_server_is_mariadb_on_loopback(engine, mysql):
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT VERSION()")).scalar()
        bind = conn.execute(sa.text("SELECT @@bind_address")).scalar()
    assert "MariaDB" in version
    assert bind == "127.0.0.1"
