"""Shared fixtures: every test gets its own data and config dirs and never uses the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"
STANDIN_SCRIPT = ROOT / "scripts" / "make_standin_model.py"

# No test may reach the model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("LORA_CHAT_BASE_MODEL", None)


@pytest.fixture(autouse=True)
def lora_home(tmp_path_factory, monkeypatch) -> Path:
    """Point data, settings and logs at a fresh folder for each test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LORA_CHAT_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LORA_CHAT_BASE_MODEL", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny stand-in model, written once per test session by the project's own script."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    subprocess.run([sys.executable, str(STANDIN_SCRIPT), str(out), "--shape", "tiny", "--seed", "0"], check=True, capture_output=True)
    return out


@pytest.fixture
def sample(request) -> Path:
    return SAMPLE_DATA
