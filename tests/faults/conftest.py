"""Fixtures for the fault tests: the collection of bad files and a tiny adapter trained once."""

from __future__ import annotations

from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parent / "files"


@pytest.fixture
def bad_file(tmp_path):
    """Copy a file of the collection into ``tmp_path``, so a test can check that it stays unchanged."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        target.write_bytes((FILES / name).read_bytes())
        return target

    return copy


SMALL_ROWS = [
    {"input": "Hello!", "output": "Hi there! How can I help?"},
    {"input": "Good morning", "output": "Good morning to you!"},
    {"input": "Thanks", "output": "You are welcome."},
    {"input": "Bye", "output": "Goodbye, take care!"},
]


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    """Four rows: one training step at batch size 8, and no rows held out."""
    import json

    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SMALL_ROWS), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory, tiny_model) -> Path:
    """An adapter trained once on the tiny stand-in, kept outside every test's library; copy it before use."""
    import json

    from lora_chat.core.library import AdapterLibrary
    from lora_chat.core.settings import TrainSettings
    from lora_chat.core.training import train

    root = tmp_path_factory.mktemp("trained")
    data = root / "small.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in SMALL_ROWS), encoding="utf-8")
    settings = TrainSettings(epochs=2, learning_rate=0.05, eval_fraction=0.0)
    result = train(data, "trained", settings, str(tiny_model), library=AdapterLibrary(root / "adapters"))
    return result.adapter.path


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory) -> Path:
    """A second tiny stand-in of the same shape as ``tiny_model`` but other weights (seed 1)."""
    import subprocess
    import sys

    from tests.conftest import STANDIN_SCRIPT

    out = tmp_path_factory.mktemp("models") / "tiny-seed1"
    subprocess.run([sys.executable, str(STANDIN_SCRIPT), str(out), "--shape", "tiny", "--seed", "1"], check=True, capture_output=True)
    return out


@pytest.fixture
def library_adapter(trained_adapter):
    """Copy the trained adapter into this test's library under ``name``; return its folder."""
    import shutil

    from lora_chat.core import paths

    def copy(name: str) -> Path:
        target = paths.adapters_dir() / name
        shutil.copytree(trained_adapter, target)
        return target

    return copy
