"""Settings: precedence, good and bad forms, and passwords that never show."""

import pytest

from streamdrift.connectors.settings import SPECS, SettingsError, kafka_bootstrap, load_settings, mask_password

SECRET = "s3cr3t-Pa55"


def load(cli=None, env=None, config_file=None):
    return load_settings(cli or {}, env=env or {}, config_file=config_file)


def test_embedded_defaults_need_no_server(tmp_path):
    settings = load(cli={"data_dir": str(tmp_path)})
    assert settings.stream_path == (tmp_path / "stream").as_uri()
    assert settings.tsdb_connection == f"sqlite:///{tmp_path / 'tsdb.sqlite'}"
    assert settings.endpoint_store_connection == f"sqlite:///{tmp_path / 'store.sqlite'}"
    assert settings.parquet_path == str(tmp_path / "parquet")
    assert settings.base_period == 10
    assert settings.base_period_ms == 600_000


def test_cli_beats_environment_beats_yaml(tmp_path):
    config = tmp_path / "streamdrift.yaml"
    config.write_text("base_period: 5\nstream_path: kafka://yaml-host:9092\nparquet_path: /yaml/parquet\n")
    env = {"STREAMDRIFT_BASE_PERIOD": "7", "STREAMDRIFT_STREAM_PATH": "kafka://env-host:9092"}
    settings = load(cli={"base_period": "3"}, env=env, config_file=config)
    assert settings.base_period == 3
    assert settings.stream_path == "kafka://env-host:9092"
    assert settings.parquet_path == "/yaml/parquet"


def test_config_file_from_environment(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text("tsdb_connection: taosws://root:taosdata@10.1.2.3:6041\n")
    settings = load(env={"STREAMDRIFT_CONFIG": str(config)})
    assert settings.tsdb_connection == "taosws://root:taosdata@10.1.2.3:6041"


@pytest.mark.parametrize("name,value", [
    ("stream_path", "kafka://127.0.0.1:9092"),
    ("stream_path", "kafka://k1:9092,k2:9093"),
    ("stream_path", "file:///var/lib/stream"),
    ("tsdb_connection", "taosws://root:taosdata@127.0.0.1:6041"),
    ("tsdb_connection", "taos://root:taosdata@tdengine:6030"),
    ("tsdb_connection", "sqlite:///tmp/tsdb.sqlite"),
    ("endpoint_store_connection", "mysql+pymysql://u:p@127.0.0.1:3307/streamdrift"),
    ("endpoint_store_connection", "sqlite:///tmp/store.sqlite"),
    ("parquet_path", "/data/parquet"),
    ("base_period", "1"),
    ("base_period", 60),
    ("project", "fraud-detection"),
])
def test_good_values_are_accepted(name, value):
    settings = load(cli={name: value})
    assert str(getattr(settings, name)) == str(value)


@pytest.mark.parametrize("name,value,words", [
    ("stream_path", "http://127.0.0.1:9092", "kafka:// or file://"),
    ("stream_path", "kafka://127.0.0.1", "no port"),
    ("stream_path", "kafka://127.0.0.1:notaport", "port"),
    ("stream_path", "file://", "directory path"),
    ("tsdb_connection", "influxdb://127.0.0.1:8086", "taosws://"),
    ("tsdb_connection", "taosws://root:pw@:6041", "no host"),
    ("tsdb_connection", "sqlite://", "file path"),
    ("endpoint_store_connection", "postgresql://u:p@h:5432/db", "mysql+pymysql://"),
    ("endpoint_store_connection", "mysql+pymysql://u:p@h:3306", "database name"),
    ("parquet_path", "  ", "empty path"),
    ("base_period", "ten", "number of minutes"),
    ("base_period", "0", "from 1 to 1440"),
    ("base_period", "2.5", "whole number"),
    ("project", "Bad Project!", "lowercase"),
])
def test_bad_values_name_the_setting_and_show_an_example(name, value, words):
    with pytest.raises(SettingsError) as err:
        load(cli={name: value})
    message = str(err.value)
    assert repr(name) in message
    assert words in message
    assert "a valid value looks like" in message


@pytest.mark.parametrize("name,value", [
    ("tsdb_connection", f"taosws://root:{SECRET}@127.0.0.1"),
    ("tsdb_connection", f"influx://root:{SECRET}@127.0.0.1:1"),
    ("endpoint_store_connection", f"mysql+pymysql://user:{SECRET}@db.example:3306"),
    ("endpoint_store_connection", f"mysql+pymysql://user:{SECRET}@db.example:port/db"),
    ("endpoint_store_connection", f"postgresql://h/db?password={SECRET}"),
])
def test_password_never_in_error(name, value):
    with pytest.raises(SettingsError) as err:
        load(cli={name: value})
    assert SECRET not in str(err.value)
    assert "***" in str(err.value)


def test_password_never_in_repr_or_masked_dict():
    settings = load(cli={"endpoint_store_connection": f"mysql+pymysql://u:{SECRET}@127.0.0.1:3307/sd"})
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.masked())
    assert settings.endpoint_store_connection.endswith(f"{SECRET}@127.0.0.1:3307/sd")  # the real value is kept


def test_environment_values_are_validated_too():
    with pytest.raises(SettingsError, match="STREAMDRIFT_BASE_PERIOD"):
        load(env={"STREAMDRIFT_BASE_PERIOD": "-1"})


def test_yaml_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_period: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load(config_file=bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("stream_pth: kafka://h:1\n")
    with pytest.raises(SettingsError, match="unknown keys.*stream_pth"):
        load(config_file=unknown)
    with pytest.raises(SettingsError, match="cannot be read"):
        load(config_file=tmp_path / "missing.yaml")


def test_every_setting_has_a_flag_and_a_variable():
    from streamdrift.jobs.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["settings", *[f"--{n.replace('_', '-')}=x" for n in SPECS]])
    assert all(getattr(args, name) == "x" for name in SPECS)


def test_mask_and_bootstrap_helpers():
    assert mask_password("mysql+pymysql://u:pw@h:1/db") == "mysql+pymysql://u:***@h:1/db"
    assert mask_password("file:///no/password") == "file:///no/password"
    assert kafka_bootstrap("kafka://a:1,b:2") == "a:1,b:2"


def test_tsdb_keep_days_default_and_forms(tmp_path):
    assert load(cli={"data_dir": str(tmp_path)}).tsdb_keep_days == 36_500  # 100 years: a 2015 replay fits
    assert load(env={"STREAMDRIFT_TSDB_KEEP_DAYS": "3650"}).tsdb_keep_days == 3650
    config = tmp_path / "s.yaml"
    config.write_text("tsdb_keep_days: 365000\n")
    assert load(config_file=config).tsdb_keep_days == 365_000
    for bad in ("29", "365001", "ten years", "100.5", "-1"):
        with pytest.raises(SettingsError, match="tsdb_keep_days.*30 to 365000|tsdb_keep_days.*number of days"):
            load(cli={"tsdb_keep_days": bad})


@pytest.mark.parametrize("database", ["order", "VALUES", "select", "1db", "my-db"])
def test_a_tsdb_database_name_tdengine_cannot_take_stops_the_start(database):
    url = f"taosws://root:{SECRET}@tdengine:6041/{database}"
    with pytest.raises(SettingsError) as info:
        load(cli={"tsdb_connection": url})
    assert "tsdb_connection" in str(info.value) and database in str(info.value)
    assert SECRET not in str(info.value)
