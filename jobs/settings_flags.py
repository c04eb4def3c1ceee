"""The settings flags of the ``streamdrift`` commands, and the settings they give.

Every command that reads settings (``run``, ``submit``, ``demo``, ``ui``, ``settings``, the store
commands, and the job's own entry point under ``flink run``) takes the same flags: ``--config``
(a YAML file), ``--data-dir`` (the folder of the embedded defaults) and one flag per setting of
:data:`streamdrift.connectors.settings.SPECS` (``--stream-path``, ``--tsdb-connection``, ...).
A flag wins over the ``STREAMDRIFT_*`` variable, which wins over the file, which wins over the
defaults (:func:`streamdrift.connectors.settings.load_settings`).
"""

from __future__ import annotations

import argparse

from streamdrift.connectors.settings import SPECS, Settings, load_settings

__all__ = ["add_settings_flags", "settings_from_args"]


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--config``, ``--data-dir`` and one flag per setting to ``parser`` (none has a default:
    an absent flag leaves the setting to the environment, the file and the defaults)."""
    parser.add_argument("--config", help="YAML settings file (also STREAMDRIFT_CONFIG)")
    parser.add_argument("--data-dir", help="folder of the embedded defaults (default .streamdrift)")
    for name, spec in SPECS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, help=spec.help)


def settings_from_args(args: argparse.Namespace, defaults: dict | None = None) -> Settings:
    """The settings of parsed flags (:func:`add_settings_flags`), then the environment, the
    ``--config`` file and ``defaults`` (a command's own, e.g. the demo's data dir). Raises
    :class:`streamdrift.connectors.settings.SettingsError` naming the setting that is wrong."""
    cli = {name: getattr(args, name, None) for name in list(SPECS) + ["data_dir"]}
    return load_settings(cli, config_file=getattr(args, "config", None), defaults=defaults)
