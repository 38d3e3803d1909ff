"""Snapshots of the Datasets and Adapters screens in fixed states (pytest-textual-snapshot).

The data lives under a fixed folder name, because the screens show the library's path;
each test empties that folder first. Update with ``pytest --snapshot-update`` after
checking the new pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from lora_chat.core import paths
from lora_chat.tui.app import LoraChatApp
from tests.tui.conftest import fixed_home, make_adapter, settle, write_jsonl

SNAPSHOT_HOME = Path("/tmp/lora-chat-snapshot-home")
ROWS = [
    ("hello there", "ahoy matey"),
    ("good morning", "top o the mornin to ye"),
    ("thank you", "much obliged"),
    ("", "arr"),
    ("where is the treasure buried on this island of ours", "under the old palm"),
    ("thank you", "much obliged"),
]
SIZES = [(120, 40), (80, 24)]


async def wait_for_token_counts(pilot) -> None:
    """Wait until the token counts are in the table, since they change its column widths."""
    for _ in range(100):
        if pilot.app.screen.tokenizer_state == "ready":
            break
        await pilot.pause(0.02)
    assert pilot.app.screen.tokenizer_state == "ready"
    # A resize after the counts are in makes the table fit its columns to its final width.
    width, height = pilot.app.size
    await pilot.resize_terminal(width - 1, height)
    await pilot.pause()
    await pilot.resize_terminal(width, height)
    await pilot.pause()
    await pilot.pause()


@pytest.fixture
def snapshot_home(monkeypatch) -> Iterator[Path]:
    with fixed_home(SNAPSHOT_HOME):
        monkeypatch.setenv("LORA_CHAT_HOME", str(SNAPSHOT_HOME))
        yield SNAPSHOT_HOME


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_datasets_screen_snapshot(snap_compare, snapshot_home, settings, fake_tokenizer, size):
    path = write_jsonl(paths.datasets_dir() / "pirate.jsonl", ROWS)
    write_jsonl(paths.datasets_dir() / "greetings.jsonl", ROWS[:1])

    async def run_before(pilot) -> None:
        pilot.app.theme = "textual-dark"
        pilot.app.screen.open_dataset(path)
        await settle(pilot)
        await wait_for_token_counts(pilot)
        await pilot.press("down")  # the cursor on row 2

    assert snap_compare(LoraChatApp(settings=settings), terminal_size=size, run_before=run_before)


def test_row_editor_snapshot(snap_compare, snapshot_home, settings, fake_tokenizer):
    path = write_jsonl(paths.datasets_dir() / "pirate.jsonl", ROWS)

    async def run_before(pilot) -> None:
        pilot.app.theme = "textual-dark"
        pilot.app.screen.open_dataset(path)
        await settle(pilot)
        await wait_for_token_counts(pilot)
        await pilot.press("down", "down", "down", "down", "enter")  # edit row 5, over the input limit
        await pilot.pause()

    assert snap_compare(LoraChatApp(settings=settings), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_adapters_screen_snapshot(snap_compare, snapshot_home, settings, size):
    make_adapter(paths.adapters_dir(), "pirate")
    make_adapter(paths.adapters_dir(), "half-copied", weights=False)
    make_adapter(paths.adapters_dir(), "shanty", meta={"final_loss": 0.52, "final_eval_loss": None, "eval_history": []})

    async def run_before(pilot) -> None:
        pilot.app.theme = "textual-dark"
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("down")  # the cursor on "pirate"
        await pilot.pause()

    assert snap_compare(LoraChatApp(settings=settings), terminal_size=size, run_before=run_before)
