"""The Sweep view, with the core's run_sweep replaced by fakes returning fixed rankings."""

from __future__ import annotations

import threading
import time

import pytest
from textual.widgets import DataTable, Input, Select, Static

from lora_chat.core import sweep
from lora_chat.core.errors import SettingsError, TrainingCancelled
from lora_chat.core.settings import TrainSettings
from lora_chat.core.sweep import SweepResult, SweepRun
from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.screens.sweep import SweepScreen, build_grid
from lora_chat.tui.widgets.dialogs import ErrorDialog
from tests.tui.conftest import settle, write_jsonl

ROWS = [("hello", "ahoy"), ("bye", "fair winds"), ("thanks", "much obliged")]


def fixed_result(name: str, base: TrainSettings, grid: dict) -> SweepResult:
    """The ranking of a rank 4,8,16 sweep: rank 8 best, rank 16 failed."""
    runs = [
        SweepRun(f"{name}-r8", {"rank": 8}, base, eval_loss=0.41, final_loss=0.3, duration_s=12.0, trainable_parameters=86016),
        SweepRun(f"{name}-r4", {"rank": 4}, base, eval_loss=0.52, final_loss=0.35, duration_s=11.5, trainable_parameters=43008),
        SweepRun(f"{name}-r16", {"rank": 16}, base, error="training loss became NaN at step 3"),
    ]
    return SweepResult(runs, "eval loss")


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """Replace run_sweep with a fake that posts two events, records its arguments and returns fixed_result()."""
    seen: list[dict] = []

    def fake(dataset, name, base, grid, base_model, **kwargs):
        seen.append({"dataset": dataset, "name": name, "base": base, "grid": grid, "base_model": base_model})
        kwargs["report"]({"event": "status", "message": "loading the tokenizer", "sweep_run": f"{name}-r4", "sweep_index": 0, "sweep_total": 3})
        kwargs["report"]({"event": "done", "sweep_run": f"{name}-r4", "sweep_index": 0, "sweep_total": 3})
        return fixed_result(name, base, grid)

    monkeypatch.setattr(sweep, "run_sweep", fake)
    return seen


@pytest.fixture
def pirate(datasets_folder):
    return write_jsonl(datasets_folder / "pirate.jsonl", ROWS)


async def open_sweep(pilot) -> SweepScreen:
    await pilot.press("f3")
    await pilot.pause()
    await pilot.press("w")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, SweepScreen)
    return screen


async def test_sweep_shows_ranking(settings, pirate, calls):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep(pilot)
        screen.query_one("#sweep-dataset", Select).value = str(pirate)
        await pilot.pause()
        assert screen.query_one("#sweep-name", Input).value == "pirate"
        await pilot.press("ctrl+s")
        await settle(pilot)

        assert calls[0]["name"] == "pirate"
        assert calls[0]["grid"] == {"rank": [4, 8, 16]}
        assert calls[0]["dataset"] == pirate
        assert calls[0]["base"].epochs == settings.train.epochs
        table = screen.query_one("#sweep-ranking", DataTable)
        first = [str(cell) for cell in table.get_row_at(0)]
        assert first == ["1", "pirate-r8", "rank 8", "0.4100", "0.3000", "12.0 s", "86,016", ""]
        last = [str(cell) for cell in table.get_row_at(2)]
        assert last[1] == "pirate-r16"
        assert last[3] == "failed"
        assert last[7] == "training loss became NaN at step 3"
        assert str(screen.query_one("#sweep-ranked-by", Static).render()) == "Ranked by eval loss, lowest first"
        assert "2 of 3 adapters trained" in str(screen.query_one("#sweep-status", Static).render())


async def test_best_adapter_opens_in_chat(settings, pirate, calls, monkeypatch):
    app = LoraChatApp(settings=settings)
    opened: list[str | None] = []
    monkeypatch.setattr(app, "open_in_chat", opened.append)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep(pilot)
        screen.query_one("#sweep-dataset", Select).value = str(pirate)
        await pilot.pause()  # the name follows the dataset
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()

        assert opened == ["pirate-r8"]


async def test_failed_run_not_opened(settings, pirate, calls, monkeypatch):
    app = LoraChatApp(settings=settings)
    opened: list[str | None] = []
    monkeypatch.setattr(app, "open_in_chat", opened.append)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep(pilot)
        screen.query_one("#sweep-dataset", Select).value = str(pirate)
        await pilot.pause()  # the name follows the dataset
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("down", "down", "c")
        await pilot.pause()

        assert opened == []
        assert isinstance(app.screen, ErrorDialog)
        assert "pirate-r16 was not trained" in app.screen.message


async def test_bad_list_names_field(settings, pirate, calls):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep(pilot)
        screen.query_one("#sweep-dataset", Select).value = str(pirate)
        screen.query_one("#sweep-rank", Input).value = "4,eight"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(pilot)

        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.message == "rank: expected a whole number, got 'eight'"
        assert calls == []


async def test_no_dataset_shows_error(settings, calls):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_sweep(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)

        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.message == "pick a dataset first, or open a file with ctrl+o"
        assert calls == []


async def test_stop_ends_sweep(settings, pirate, monkeypatch):
    started = threading.Event()

    def waits_for_stop(dataset, name, base, grid, base_model, **kwargs):
        started.set()
        deadline = time.monotonic() + 10
        while not kwargs["should_stop"]():
            if time.monotonic() > deadline:
                raise AssertionError("the view never asked the sweep to stop")
            time.sleep(0.01)
        raise TrainingCancelled("sweep cancelled before pirate-r8; 1 of 3 adapters were trained")

    monkeypatch.setattr(sweep, "run_sweep", waits_for_stop)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep(pilot)
        screen.query_one("#sweep-dataset", Select).value = str(pirate)
        await pilot.pause()  # the name follows the dataset
        await pilot.press("ctrl+s")
        assert started.wait(5)
        assert screen.running
        await pilot.press("ctrl+x")
        await settle(pilot)

        assert not screen.running
        status = str(screen.query_one("#sweep-status", Static).render())
        assert status == "stopped: sweep cancelled before pirate-r8; 1 of 3 adapters were trained"


def test_build_grid_splits_lists():
    base = TrainSettings()
    settings, grid = build_grid(base, {"rank": "4, 8,16", "method": "lora", "learning_rate": "0.001,0.003", "epochs": "5"})
    assert grid == {"rank": [4, 8, 16], "learning_rate": [0.001, 0.003]}
    assert settings.epochs == 5
    assert settings.method == "lora"


def test_build_grid_needs_several_values():
    with pytest.raises(SettingsError, match="at least one setting with several values"):
        build_grid(TrainSettings(), {"rank": "8", "method": "lora"})


def test_build_grid_rejects_unknown_method():
    with pytest.raises(SettingsError, match="method: 'qlora' is not one of"):
        build_grid(TrainSettings(), {"method": "lora,qlora"})
