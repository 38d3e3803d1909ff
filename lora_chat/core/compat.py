"""Loading adapters written by other peft versions without touching the user's files."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from lora_chat.core.errors import AdapterError
from lora_chat.core.library import CONFIG_FILE, WEIGHT_FILES


def unknown_config_keys(config: dict) -> list[str]:
    """Return the keys of an adapter_config.json that this peft version's config class lacks."""
    from peft import PeftConfig
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    peft_type = config.get("peft_type")
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type) if peft_type else PeftConfig
    if config_cls is None:
        import peft

        raise AdapterError(
            f"adapter method {peft_type!r} is not supported by peft {peft.__version__}; "
            "upgrade peft (pip install -U peft) to use this adapter"
        )
    known = {f.name for f in dataclasses.fields(config_cls)}
    return sorted(k for k in config if k not in known)


@contextlib.contextmanager
def adapter_load_dir(folder: Path) -> Iterator[tuple[Path, list[str]]]:
    """Yield a folder peft can load, and the config keys dropped to make it loadable.

    When the config has keys this peft does not know (written by a newer peft), the
    adapter is loaded from a cleaned copy in a temporary folder; the original is left as it is.
    """
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{folder / CONFIG_FILE} cannot be read ({exc})") from None
    dropped = unknown_config_keys(config)
    if not dropped:
        yield folder, []
        return
    with tempfile.TemporaryDirectory(prefix="lora-chat-adapter-") as tmp:
        copy = Path(tmp)
        cleaned = {k: v for k, v in config.items() if k not in dropped}
        (copy / CONFIG_FILE).write_text(json.dumps(cleaned, indent=2), encoding="utf-8")
        for name in WEIGHT_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, copy / name)
        yield copy, dropped
