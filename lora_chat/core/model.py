"""Loading the base model and its tokenizer, with errors a user can act on."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_chat.core import logs
from lora_chat.core.errors import ModelNotFoundError

log = logging.getLogger(__name__)

# Fields of the model config that decide whether an adapter's weights fit a base model.
SHAPE_KEYS = ("model_type", "d_model", "d_ff", "d_kv", "num_heads", "num_layers", "num_decoder_layers", "vocab_size", "feed_forward_proj")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _not_found(base_model: str, cause: BaseException) -> ModelNotFoundError:
    log.info("loading %s failed: %r", base_model, cause)
    if Path(base_model).expanduser().exists():
        return ModelNotFoundError(
            f"{base_model} is not a model folder that transformers can load ({cause}); "
            "it needs config.json, the weights and the tokenizer files"
        )
    if base_model.startswith((".", "/", "~")) or os.sep in base_model.strip("/").replace("/", "", 1):
        return ModelNotFoundError(f"base model folder {base_model} not found; check the path given to --base-model")
    reason = "the hub is turned off (HF_HUB_OFFLINE)" if _offline() else "the Hugging Face hub cannot be reached"
    return ModelNotFoundError(
        f"base model {base_model} is not in the Hugging Face cache and {reason}; "
        f"run lora-chat once with network access to download it, or point --base-model at a local model folder"
    )


def _from_pretrained(loader: Any, base_model: str, **kwargs: Any) -> Any:
    """Load from a folder or the cache first; go to the hub only when that fails and it is allowed."""
    logs.quiet_libraries()
    local = Path(base_model).expanduser()
    if local.is_dir():
        try:
            return loader.from_pretrained(str(local), **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise _not_found(base_model, exc) from exc
    try:
        return loader.from_pretrained(base_model, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        first_error: BaseException = exc
    if _offline() or not hub_reachable():
        raise _not_found(base_model, first_error) from first_error
    try:
        return loader.from_pretrained(base_model, **kwargs)
    except Exception as exc:  # network errors come in many types (httpx, OSError, hub errors)
        raise _not_found(base_model, exc) from exc


def hub_reachable(timeout: float = 5.0) -> bool:
    """Return whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds.

    huggingface_hub retries a failed request five times with back-off (about 25 s per file
    in version 2.x), so without this check a machine with no network waits minutes.
    """
    import socket
    import threading
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    reached: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((url.hostname, port), timeout=timeout):
                reached.append(True)
        except OSError as exc:
            log.info("hub %s not reachable: %s", constants.ENDPOINT, exc)

    # The connect timeout does not cover the name lookup, which can hang far longer on a
    # broken network, so the probe runs in a thread that is given up on after ``timeout``.
    thread = threading.Thread(target=probe, name="lora-chat-hub-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.info("hub %s not reachable: no answer within %.1f s", constants.ENDPOINT, timeout)
        return False
    return bool(reached)


def load_tokenizer(base_model: str) -> Any:
    """Load the base model's tokenizer."""
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, base_model)


def pick_device(requested: str | None = None) -> str:
    """Return "cuda" when a GPU is there (or requested), else "cpu"."""
    import torch

    if requested and requested != "auto":
        if requested == "cuda" and not torch.cuda.is_available():
            from lora_chat.core.errors import InputError

            raise InputError("--device cuda was requested but no CUDA GPU is available; use --device cpu")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def use_all_cores() -> None:
    """Give torch one thread per core; its default can leave cores idle on small machines."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)


def load_base_model(base_model: str, device: str = "cpu") -> Any:
    """Load the seq2seq base model in fp32 (T5 overflows in fp16) onto ``device``."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    use_all_cores()
    model = _from_pretrained(AutoModelForSeq2SeqLM, base_model, dtype=torch.float32)
    return model.to(device)


@dataclass
class BaseModelInfo:
    """The identity of a base model: its id, its config shape and a fingerprint of its weights."""

    name: str
    shape: dict[str, Any]
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape, "fingerprint": self.fingerprint}


def describe_base_model(base_model: str, model: Any) -> BaseModelInfo:
    """Fingerprint a loaded base model by its config shape and a sample of its embedding weights."""
    import torch

    config = model.config.to_dict()
    shape = {key: config.get(key) for key in SHAPE_KEYS if key in config}
    embeddings = model.get_input_embeddings().weight
    with torch.no_grad():
        sample = embeddings[: min(8, embeddings.shape[0]), : min(64, embeddings.shape[1])].detach().float().cpu()
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode() + sample.numpy().round(5).tobytes())
    return BaseModelInfo(name=base_model, shape=shape, fingerprint=digest.hexdigest()[:16])


def token_counter(tokenizer: Any):
    """Return a function that counts tokens per text, end-of-sequence token included."""

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer([t or "" for t in texts], add_special_tokens=True)["input_ids"]
        return [len(ids) for ids in encoded]

    return count
