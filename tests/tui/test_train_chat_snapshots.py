"""Snapshots of the Train screen (form, 0%, mid-run, done) and of the Chat screen with a fixed conversation.

Runs and answers come from fakes with fixed timings, and the data lives under a fixed
folder because the screens show paths. Update with ``pytest --snapshot-update`` after
checking the new pictures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from textual.widgets import Select

from lora_chat.core import paths
from tests.tui.conftest import fixed_home, make_adapter, wait_until, write_jsonl
from tests.tui.fake_runs import ready_events, step_events
from tests.tui.test_train_screen import TINY_CONFIG, make_app

SNAPSHOT_HOME = Path("/tmp/lora-chat-snapshot-home-train-chat")
SIZES = [(120, 40), (80, 24)]


@pytest.fixture
def snapshot_home(monkeypatch) -> Iterator[Path]:
    with fixed_home(SNAPSHOT_HOME):
        monkeypatch.setenv("LORA_CHAT_HOME", str(SNAPSHOT_HOME))
        base = SNAPSHOT_HOME / "base"
        base.mkdir(parents=True)
        (base / "config.json").write_text(json.dumps(TINY_CONFIG))
        write_jsonl(paths.datasets_dir() / "greetings.jsonl", [("Hello", "Hi there"), ("Bye", "See you")])
        yield SNAPSHOT_HOME


async def start_fake_run(pilot, *events) -> None:
    """Open the Train screen, start a run on greetings.jsonl and feed it ``events``."""
    app = pilot.app
    app.theme = "textual-dark"
    await pilot.press("f2")
    await wait_until(pilot, lambda: getattr(app.screen, "base_config", None) is not None)
    app.screen.query_one("#dataset", Select).value = str(paths.datasets_dir() / "greetings.jsonl")
    await pilot.pause()
    await pilot.press("ctrl+s")  # start training
    await wait_until(pilot, lambda: app.runs.started)
    run = app.runs.started[0]
    run.write(*events)
    last = events[-1]["event"]
    await wait_until(pilot, lambda: app.training_progress is not None and app.training_progress.elapsed == events[-1].get("elapsed", app.training_progress.elapsed) and (last != "done" or app.training_progress.outcome == "done"))
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_train_form_snapshot(snap_compare, snapshot_home, fake_tokenizer, size):
    async def run_before(pilot) -> None:
        pilot.app.theme = "textual-dark"
        await pilot.press("f2")
        await wait_until(pilot, lambda: getattr(pilot.app.screen, "base_config", None) is not None)
        pilot.app.screen.query_one("#dataset", Select).value = str(paths.datasets_dir() / "greetings.jsonl")
        await pilot.pause()
        pilot.app.screen.query_one("#field-rank").value = "0"  # out of range: the problem shows under the field
        await pilot.pause()

    assert snap_compare(make_app(SNAPSHOT_HOME / "base"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_train_start_snapshot(snap_compare, snapshot_home, fake_tokenizer, size):
    async def run_before(pilot) -> None:
        await start_fake_run(pilot, *ready_events("greetings"))

    assert snap_compare(make_app(SNAPSHOT_HOME / "base"), terminal_size=size, run_before=run_before)


def test_train_mid_run_snapshot(snap_compare, snapshot_home, fake_tokenizer):
    events = [*ready_events("greetings"), *step_events(1, 8, 40)]
    events.append({"event": "eval", "step": 8, "epoch": 2, "eval_loss": 1.9, "elapsed": 4.1})
    events += step_events(9, 16, 40)
    events.append({"event": "eval", "step": 16, "epoch": 4, "eval_loss": 2.1, "elapsed": 8.1})
    events.append({"event": "warning", "kind": "overfitting", "step": 16, "message": "eval loss has risen (1.9000 to 2.1000) while the training loss fell", "elapsed": 8.1})
    events += step_events(17, 20, 40)

    async def run_before(pilot) -> None:
        await start_fake_run(pilot, *events)

    assert snap_compare(make_app(SNAPSHOT_HOME / "base"), terminal_size=(120, 40), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_train_done_snapshot(snap_compare, snapshot_home, fake_tokenizer, size):
    events = [*ready_events("greetings"), *step_events(1, 40, 40)]
    events.append({"event": "eval", "step": 40, "epoch": 10, "eval_loss": 0.8, "elapsed": 20.0})
    events.append({"event": "done", "adapter": "greetings", "final_loss": 0.6, "final_eval_loss": 0.8, "elapsed": 20.5})

    async def run_before(pilot) -> None:
        await start_fake_run(pilot, *events)

    assert snap_compare(make_app(SNAPSHOT_HOME / "base"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_chat_conversation_snapshot(snap_compare, snapshot_home, fake_tokenizer, size):
    make_adapter(paths.adapters_dir(), "pirate")

    async def run_before(pilot) -> None:
        app = pilot.app
        app.theme = "textual-dark"
        await pilot.press("f4")
        await wait_until(pilot, lambda: app.engine_state == "ready")
        screen = app.screen
        await pilot.press(*"hello there", "enter")
        await wait_until(pilot, lambda: not screen.answering)
        screen.query_one("#adapter", Select).value = "pirate"
        await wait_until(pilot, lambda: screen.settled["adapter"] == "pirate")
        await pilot.press("ctrl+b")  # compare with the base model
        screen.query_one("#prompt").focus()
        await pilot.press(*"where is the treasure", "enter")
        await wait_until(pilot, lambda: not screen.answering)
        # A blinking cursor would make the picture depend on the moment it is taken.
        screen.query_one("#prompt").cursor_blink = False
        await pilot.pause(0.2)

    assert snap_compare(make_app(SNAPSHOT_HOME / "base"), terminal_size=size, run_before=run_before)
