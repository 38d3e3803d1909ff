"""Fixtures for the app tests: fake adapters, a fake tokenizer and datasets on disk."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import struct
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from lora_chat.core import paths
from lora_chat.core.settings import Settings


def write_safetensors(path: Path) -> None:
    """Write a valid safetensors file with one small float32 tensor."""
    data = b"\x00" * 16
    header = json.dumps({"lora_A": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, len(data)]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def make_adapter(root: Path, name: str, meta: dict[str, Any] | None = None, weights: bool = True) -> Path:
    """Write an adapter folder as the library stores it; without ``weights`` it is broken."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "google/flan-t5-small", "peft_type": "LORA"}))
    if weights:
        write_safetensors(folder / "adapter_model.safetensors")
    full_meta = {
        "name": name,
        "method": "lora",
        "base_model": {"name": "google/flan-t5-small"},
        "created": "2025-01-02T03:04:05+0000",
        "dataset": {"name": "pirate", "rows": 20, "valid_rows": 20, "content_hash": "0123456789abcdef"},
        "settings": {"rank": 8, "alpha": 32.0, "dropout": 0.05, "target_modules": ["q", "v"], "learning_rate": 0.001, "epochs": 10, "batch_size": 8},
        "trainable_parameters": 86016,
        "loss_history": [{"step": i, "loss": round(3.0 / (1 + i * 0.3), 5)} for i in range(30)],
        "eval_history": [{"step": i * 3, "epoch": i + 1, "eval_loss": round(3.2 / (1 + i * 0.8), 5)} for i in range(10)],
        "final_loss": 0.31,
        "final_eval_loss": 0.4,
        "duration_s": 12.5,
        "samples_per_second": 16.0,
        "device": "cpu",
        **(meta or {}),
    }
    (folder / "lora_chat.json").write_text(json.dumps(full_meta))
    return folder


class FakeTokenizer:
    """Counts one token per word plus the end-of-sequence token, as the core's counter expects."""

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict[str, list[list[int]]]:
        return {"input_ids": [[0] * (len(text.split()) + 1) for text in texts]}


@pytest.fixture
def fake_tokenizer(monkeypatch) -> FakeTokenizer:
    tokenizer = FakeTokenizer()
    monkeypatch.setattr("lora_chat.core.model.load_tokenizer", lambda base_model: tokenizer)
    return tokenizer


@pytest.fixture
def datasets_folder() -> Path:
    folder = paths.datasets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def settings() -> Settings:
    """Default settings with limits small enough that the tests can go over them."""
    result = Settings(base_model="/no/such/model")
    result.train.max_input_tokens = 8
    result.train.max_output_tokens = 8
    return result


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows), encoding="utf-8")
    return path


async def settle(pilot) -> None:
    """Wait until the workers have finished and the screen has caught up.

    A failed worker is not re-raised here: the app shows it in an error dialog, which
    is what the tests check.
    """
    from textual.worker import WorkerFailed

    for _ in range(2):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerFailed:
            pass
        await pilot.pause()


@contextlib.contextmanager
def fixed_home(folder: Path) -> Iterator[Path]:
    """Hold ``folder`` empty for one snapshot test, waiting while another test run uses it.

    Snapshots show the data folder's path, so it is the same for every run. A lock file
    beside it makes two test runs on one machine take turns with it.
    """
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


async def wait_until(pilot, condition, timeout: float = 5.0, interval: float = 0.05) -> None:
    """Let the app run until ``condition()`` is true, and fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(interval)
