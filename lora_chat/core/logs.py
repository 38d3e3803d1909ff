"""Logging: everything goes to the log file; libraries never draw on the terminal.

Library progress bars (tqdm) and warnings would tear the TUI apart and clutter the CLI,
so they are turned off or routed into the ``lora_chat`` log file.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from lora_chat.core import paths

_configured = False

# Set before the Hugging Face libraries are imported: they read these once at import.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Bound every hub request so a machine without network fails fast instead of hanging.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")


def setup_logging(level: int = logging.INFO, extra_handler: logging.Handler | None = None) -> Path | None:
    """Send log records and Python warnings to the log file (and ``extra_handler``)."""
    global _configured
    root = logging.getLogger()
    if extra_handler is not None:
        root.addHandler(extra_handler)
    if _configured:
        return paths.log_file()
    _configured = True
    root.setLevel(level)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    log_path: Path | None = paths.log_file()
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    except OSError:
        log_path = None
    # Drop the handlers that some libraries install on the terminal: their records reach
    # the file through the root logger instead.
    for name in ("transformers", "datasets", "peft", "accelerate", "huggingface_hub", "httpx", "torch"):
        logging.getLogger(name).propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return log_path


def quiet_libraries() -> None:
    """Turn off the Hugging Face libraries' own terminal output; call after importing them."""
    try:
        import transformers

        transformers.utils.logging.disable_default_handler()
        transformers.utils.logging.enable_propagation()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.utils.logging.disable_default_handler() if hasattr(datasets.utils.logging, "disable_default_handler") else None
        datasets.utils.logging.enable_propagation() if hasattr(datasets.utils.logging, "enable_propagation") else None
    except ImportError:  # pragma: no cover
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass
