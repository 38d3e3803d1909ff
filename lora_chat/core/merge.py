"""Merging an adapter into its base model and saving the result as an ordinary model folder."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from lora_chat.core.errors import InputError, LoraChatError
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.methods import MERGEABLE_METHODS

MERGE_INFO_FILE = "lora_chat_merge.json"


def merge_adapter(name: str, dest: str | Path, base_model: str, library: AdapterLibrary | None = None) -> Path:
    """Write the base model with adapter ``name`` merged in, plus the tokenizer, to the folder ``dest``.

    The folder loads with ``AutoModelForSeq2SeqLM.from_pretrained(dest)`` and needs no peft.
    It is written to a temporary folder beside ``dest`` and renamed into place, so a
    failed merge leaves no half-written model. Raises InputError for prompt and prefix
    tuning adapters, which have no weights to merge, and when ``dest`` is a non-empty folder.
    """
    from lora_chat.core.inference import ChatEngine

    library = library or AdapterLibrary()
    entry = library.get(name)
    if entry.method not in MERGEABLE_METHODS:
        raise InputError(
            f"adapter {name!r} uses {entry.method}, which learns virtual tokens put in front of the input rather than "
            f"weights of the model, so it cannot be merged; only {' and '.join(MERGEABLE_METHODS)} adapters can. "
            f"Use it as it is: lora-chat chat --adapter {name}"
        )
    dest = Path(dest).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest} already exists and is not an empty folder; choose a new folder for the merged model")

    engine = ChatEngine(base_model, library, "cpu")
    merged = engine.adapter_model(name).merge_and_unload()

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.merge-{uuid.uuid4().hex[:8]}"
    try:
        merged.save_pretrained(str(staging), safe_serialization=True)
        engine.tokenizer.save_pretrained(str(staging))
        info = {
            "adapter": name,
            "method": entry.method,
            "base_model": entry.base_model,
            "merged": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "adapter_metadata": entry.meta,
        }
        (staging / MERGE_INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if dest.exists():
            dest.rmdir()
        os.rename(staging, dest)
    except OSError as exc:
        raise LoraChatError(f"writing the merged model to {dest} failed ({exc.strerror or exc}); nothing was written there") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
