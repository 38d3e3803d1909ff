"""The Evaluate view, with the core's evaluate_adapter replaced by fakes returning fixed reports."""

from __future__ import annotations

import threading
import time

import pytest
from textual.widgets import DataTable, Input, Static, TextArea

from lora_chat.core import evaluate, paths
from lora_chat.core.errors import InputError, TrainingCancelled
from lora_chat.core.evaluate import EvalReport, RowResult, SystemSummary
from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.screens.datasets import DatasetsScreen
from lora_chat.tui.screens.evaluate import EvaluateScreen, parse_few_shot
from lora_chat.tui.widgets.dialogs import ErrorDialog
from lora_chat.tui.widgets.row_editor import RowEditor
from tests.tui.conftest import make_adapter, settle, write_jsonl

ROWS = [
    ("hello there", "ahoy matey"),
    ("good morning", "top o the mornin to ye"),
    ("thank you", "much obliged"),
    ("goodbye", "fair winds"),
    ("where is the ship", "in the harbour"),
]


def fixed_report(few_shot: int = 2) -> EvalReport:
    """A report over rows 2 and 4 of ROWS: the adapter gets both right, the base model neither."""
    rows = [
        RowResult(
            2, "good morning", "top o the mornin to ye",
            answers={"base": "good morning", "few-shot": "top o the morning", "adapter": "top o the mornin to ye"},
            exact={"base": False, "few-shot": False, "adapter": True},
            f1={"base": 0.0, "few-shot": 0.6, "adapter": 1.0},
            loss={"base": 4.1, "few-shot": 2.2, "adapter": 0.3},
        ),
        RowResult(
            4, "goodbye", "fair winds",
            answers={"base": "goodbye", "few-shot": "fair winds", "adapter": "fair winds"},
            exact={"base": False, "few-shot": True, "adapter": True},
            f1={"base": 0.0, "few-shot": 1.0, "adapter": 1.0},
            loss={"base": 3.9, "few-shot": 1.1, "adapter": 0.2},
        ),
    ]
    summaries = [
        SystemSummary("base", "base model", 0.0, 0.0, 4.0, 1.5),
        SystemSummary("few-shot", f"base model + {few_shot}-shot prompt", 0.5, 0.8, 1.65, 2.5),
        SystemSummary("adapter", "adapter pirate", 1.0, 1.0, 0.25, 1.25),
    ]
    return EvalReport("pirate", "lora", "2 held-out rows of pirate.jsonl", few_shot, summaries, rows)


@pytest.fixture
def pirate(datasets_folder):
    """A dataset in the library and an adapter whose metadata points at it, rows 2 and 4 held out."""
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    make_adapter(paths.adapters_dir(), "pirate", {"dataset": {"name": "pirate", "path": str(path), "rows": 5, "eval_rows": [2, 4]}})
    return path


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """Replace evaluate_adapter with a fake that records its arguments and returns fixed_report()."""
    seen: list[dict] = []

    def fake(name, base_model, **kwargs):
        seen.append({"name": name, "base_model": base_model, **kwargs})
        kwargs["report"]({"event": "progress", "done": 1, "total": 6})
        return fixed_report(kwargs["few_shot"])

    monkeypatch.setattr(evaluate, "evaluate_adapter", fake)
    return seen


async def open_evaluate(pilot) -> EvaluateScreen:
    await pilot.press("f3")
    await pilot.pause()
    await pilot.press("e")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, EvaluateScreen)
    return screen


def cells(table: DataTable, row: int) -> list[str]:
    return [str(cell) for cell in table.get_row_at(row)]


async def test_evaluate_shows_summary_and_rows(settings, pirate, calls):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_evaluate(pilot)

        assert calls[0]["name"] == "pirate"
        assert calls[0]["few_shot"] == 3
        assert calls[0]["dataset"] is None
        summary = screen.query_one("#eval-summary", DataTable)
        assert cells(summary, 0) == ["base model", "0%", "0.00", "4.0000", "1.5 s"]
        assert cells(summary, 2) == ["adapter pirate", "100%", "1.00", "0.2500", "1.2 s"]

        rows = screen.query_one("#eval-rows", DataTable)
        assert rows.row_count == 2
        first = cells(rows, 0)
        # At 120 columns each text column is 20 wide; longer text is cut with an ellipsis.
        assert first[:3] == ["2", "good morning", "top o the mornin to…"]
        assert first[3] == "✗ good morning"
        assert first[4] == "✗ top o the morning"
        assert first[5] == "✓ top o the mornin…"
        assert "2 held-out rows of pirate.jsonl" in str(screen.query_one("#eval-status", Static).render())
        detail = str(screen.query_one("#eval-row-detail", Static).render())
        assert "expected: top o the mornin to ye" in detail
        assert "✗ base model: good morning" in detail


async def test_evaluate_reruns_with_new_k(settings, pirate, calls):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_evaluate(pilot)
        screen.query_one("#eval-few-shot", Input).value = "1"
        screen.query_one("#eval-few-shot", Input).focus()
        await pilot.press("enter")
        await settle(pilot)

        assert [call["few_shot"] for call in calls] == [3, 1]
        assert str(screen.query_one("#eval-summary", DataTable).get_row_at(1)[0]) == "base model + 1-shot prompt"


async def test_edit_expected_opens_row_editor(settings, pirate, calls, fake_tokenizer):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_evaluate(pilot)
        await pilot.press("down", "e")  # the second evaluated row: row 4 of the file
        await settle(pilot)

        editor = app.screen
        assert isinstance(editor, RowEditor)
        assert editor.title_text == "Row 4 of pirate.jsonl"
        output = editor.query_one("#output-text", TextArea)
        assert output.text == "fair winds"
        assert output.has_focus
        assert isinstance(app.get_screen_stack("datasets")[0], DatasetsScreen)


async def test_core_error_reaches_dialog(settings, pirate, monkeypatch):
    def fails(name, base_model, **kwargs):
        raise InputError("adapter 'pirate' has no held-out rows (it was trained with eval-fraction 0 or on fewer than 5 rows)")

    monkeypatch.setattr(evaluate, "evaluate_adapter", fails)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("e")
        await settle(pilot)

        assert isinstance(app.screen, ErrorDialog)
        assert "has no held-out rows" in app.screen.message
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EvaluateScreen)
        assert not screen.running
        assert str(screen.query_one("#eval-status", Static).render()) == "evaluation failed"


async def test_stop_ends_evaluation(settings, pirate, monkeypatch):
    started = threading.Event()

    def waits_for_stop(name, base_model, **kwargs):
        started.set()
        deadline = time.monotonic() + 10
        while not kwargs["should_stop"]():
            if time.monotonic() > deadline:
                raise AssertionError("the view never asked the evaluation to stop")
            time.sleep(0.01)
        raise TrainingCancelled("evaluation cancelled")

    monkeypatch.setattr(evaluate, "evaluate_adapter", waits_for_stop)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("e")
        assert started.wait(5)
        screen = app.screen
        assert screen.running
        await pilot.press("s")
        await settle(pilot)

        assert not screen.running
        assert str(screen.query_one("#eval-status", Static).render()) == "stopped; r runs it again"
        assert not isinstance(app.screen, ErrorDialog)


async def test_bad_k_shows_error(settings, pirate, calls):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_evaluate(pilot)
        screen.query_one("#eval-few-shot", Input).value = "50"
        screen.query_one("#eval-few-shot", Input).focus()
        await pilot.press("enter")
        await settle(pilot)

        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.message == "few-shot K: 50 is out of range; allowed 0 to 20 (0 skips few-shot prompting)"
        assert len(calls) == 1


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("3", 3), (" 20 ", 20), ("", 0)])
def test_parse_few_shot_accepts(text, expected):
    assert parse_few_shot(text) == expected


@pytest.mark.parametrize("text", ["-1", "21", "two"])
def test_parse_few_shot_rejects(text):
    with pytest.raises(InputError, match="few-shot K"):
        parse_few_shot(text)


def test_evaluate_view_snapshot(snap_compare, settings, monkeypatch):
    # The view shows no path of the data folder, so the test's own home folder keeps the picture fixed.
    path = write_jsonl(paths.datasets_dir() / "pirate.jsonl", ROWS)
    make_adapter(paths.adapters_dir(), "pirate", {"dataset": {"name": "pirate", "path": str(path), "rows": 5, "eval_rows": [2, 4]}})
    monkeypatch.setattr(evaluate, "evaluate_adapter", lambda name, base_model, **kwargs: fixed_report(kwargs["few_shot"]))

    async def run_before(pilot) -> None:
        pilot.app.theme = "textual-dark"
        await pilot.press("f3")  # the Adapters screen
        await pilot.pause()
        await pilot.press("e")  # evaluate the one adapter
        await settle(pilot)

    assert snap_compare(LoraChatApp(settings=settings), terminal_size=(120, 40), run_before=run_before)
