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
