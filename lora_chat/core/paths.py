"""Locations of lora-chat's data, settings and logs.

``LORA_CHAT_HOME`` puts all three under one folder (tests, portable installs);
otherwise platformdirs picks the usual places for this operating system.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "lora-chat"
HOME_ENV = "LORA_CHAT_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Return the root of the adapter library, datasets, runs and history."""
    home = _home()
    if home is not None:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """Return the folder that holds ``settings.toml``."""
    home = _home()
    if home is not None:
        return home / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    """Return the folder that holds ``lora-chat.log``."""
    home = _home()
    if home is not None:
        return home / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def adapters_dir() -> Path:
    return data_dir() / "adapters"


def datasets_dir() -> Path:
    return data_dir() / "datasets"


def runs_dir() -> Path:
    return data_dir() / "runs"


def settings_file() -> Path:
    return config_dir() / "settings.toml"


def log_file() -> Path:
    return log_dir() / "lora-chat.log"
