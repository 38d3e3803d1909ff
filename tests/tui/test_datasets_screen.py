"""The Datasets screen, driven by key presses through Textual's Pilot."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable, Input, Label, Static, TextArea

from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.screens.datasets import DatasetsScreen
from lora_chat.tui.widgets.dialogs import ConfirmDialog, ErrorDialog, PromptDialog
from lora_chat.tui.widgets.row_editor import RowEditor
from tests.tui.conftest import settle, write_jsonl

ROWS = [("hello there", "ahoy matey"), ("good morning", "top o the mornin"), ("thank you", "much obliged")]


async def open_file(pilot, path: Path) -> DatasetsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, DatasetsScreen)
    screen.open_dataset(path)
    await settle(pilot)
    return screen


def cell(screen: DatasetsScreen, row: int, column: str) -> str:
    table = screen.query_one("#rows", DataTable)
    return str(table.get_cell_at((row, table.get_column_index(column))))


def totals(screen: DatasetsScreen) -> str:
    return str(screen.query_one("#dataset-totals", Static).render())


async def type_in_editor(pilot, input: str | None = None, output: str | None = None) -> None:
    editor = pilot.app.screen
    assert isinstance(editor, RowEditor)
    if input is not None:
        editor.query_one("#input-text", TextArea).text = input
    if output is not None:
        editor.query_one("#output-text", TextArea).text = output
    await pilot.press("ctrl+s")
    await pilot.pause()


async def test_library_dataset_opens_from_list(settings, datasets_folder, fake_tokenizer):
    write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        screen.query_one("#dataset-list").focus()
        await pilot.press("enter")
        await settle(pilot)

        assert screen.document is not None
        assert screen.document.name == "pirate.jsonl"
        assert screen.query_one("#rows", DataTable).row_count == 3
        assert cell(screen, 0, "input") == "hello there"
        assert cell(screen, 0, "in_tokens") == "3"
        assert "3 rows · 3 valid" in totals(screen)
        assert "input tokens 3–3 (median 3)" in totals(screen)


async def test_add_edit_duplicate_delete_undo(settings, datasets_folder, fake_tokenizer):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, path)
        table = screen.query_one("#rows", DataTable)
        marker = screen.query_one("#unsaved-marker", Label)
        assert not marker.display

        # Add a row after the first one.
        await pilot.press("a")
        await pilot.pause()
        await type_in_editor(pilot, "where is the ship", "yonder, arr")
        assert table.row_count == 4
        assert cell(screen, 1, "input") == "where is the ship"
        assert cell(screen, 1, "number") == "2"
        assert cell(screen, 2, "number") == "3"
        assert marker.display

        # Edit it with Enter: only its output changes.
        await pilot.press("enter")
        await pilot.pause()
        await type_in_editor(pilot, output="over there")
        assert cell(screen, 1, "output") == "over there"
        assert table.row_count == 4

        # Duplicate it: the copy follows it and is reported as a duplicate.
        await pilot.press("d")
        await pilot.pause()
        assert table.row_count == 5
        assert table.cursor_row == 2
        assert cell(screen, 2, "problems") == "duplicate of row 2"
        assert "5 rows · 4 valid" in totals(screen)

        # Delete it, then undo the delete and the duplicate.
        await pilot.press("delete")
        await pilot.pause()
        assert table.row_count == 4
        assert "duplicate" not in cell(screen, 2, "problems")
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert table.row_count == 5
        await pilot.press("ctrl+z", "ctrl+z", "ctrl+z")
        await pilot.pause()
        assert table.row_count == 3
        assert [cell(screen, i, "input") for i in range(3)] == [r[0] for r in ROWS]
        assert not marker.display


async def test_cancelled_editor_leaves_rows(settings, datasets_folder):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, path)
        await pilot.press("enter")
        await pilot.pause()
        app.screen.query_one("#input-text", TextArea).text = "changed"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await pilot.pause()

        assert app.screen is screen
        assert cell(screen, 0, "input") == "hello there"
        assert not screen.document.dirty


async def test_search_filters_rows(settings, datasets_folder):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, path)
        table = screen.query_one("#rows", DataTable)
        await pilot.press("slash", *"MORNIN")
        await pilot.pause(0.4)
        assert table.row_count == 1
        assert cell(screen, 0, "input") == "good morning"
        assert cell(screen, 0, "number") == "2"
        assert "1 shown" in totals(screen)

        await pilot.press("escape")
        await pilot.pause(0.4)
        assert screen.query_one("#search", Input).value == ""
        assert table.row_count == 3


async def test_problems_column_and_limits(settings, datasets_folder, fake_tokenizer):
    long_input = " ".join(["word"] * 12)
    path = write_jsonl(datasets_folder / "bad.jsonl", [("fine", "ok"), ("", "no input"), (long_input, "ok")])
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, path)
        assert cell(screen, 1, "problems") == "input is empty"
        assert cell(screen, 2, "problems") == "input is 13 tokens, over the limit of 8"
        assert "3 rows · 1 valid" in totals(screen)

        await pilot.press("p")
        await pilot.pause()
        assert screen.query_one("#rows", DataTable).row_count == 2


async def test_missing_tokenizer_is_stated(settings, datasets_folder):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, path)
        assert "no token counts" in totals(screen)
        assert cell(screen, 0, "in_tokens") == ""
        assert "not found" in screen.tokenizer_state
        assert not isinstance(app.screen, ErrorDialog)


async def test_save_writes_file_atomically(settings, datasets_folder):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, path)
        await pilot.press("delete", "ctrl+s")
        await pilot.pause()

        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records == [{"input": i, "output": o} for i, o in ROWS[1:]]
        assert not screen.query_one("#unsaved-marker", Label).display
        assert [p.name for p in datasets_folder.iterdir()] == ["pirate.jsonl"]


async def test_csv_file_saves_as_csv(settings, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("input,output\nhi,ahoy\n", encoding="utf-8")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_file(pilot, path)
        await pilot.press("d", "ctrl+s")
        await pilot.pause()
        assert path.read_text() == "input,output\nhi,ahoy\nhi,ahoy\n"


async def test_unsaved_changes_block_quit(settings, datasets_folder):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_file(pilot, path)
        await pilot.press("delete", "ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert "pirate.jsonl has unsaved changes" in app.screen.question

        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
        assert isinstance(app.screen, DatasetsScreen)

        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert not app.is_running
    assert path.read_text().count("\n") == 3


async def test_opening_another_file_asks_first(settings, datasets_folder):
    first = write_jsonl(datasets_folder / "a.jsonl", ROWS)
    second = write_jsonl(datasets_folder / "b.jsonl", ROWS[:1])
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, first)
        await pilot.press("delete")
        screen.open_dataset(second)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")
        await settle(pilot)
        assert screen.document.name == "a.jsonl"

        screen.open_dataset(second)
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert screen.document.name == "b.jsonl"


async def test_new_dataset_then_save(settings, datasets_folder):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        await pilot.press(*"greetings", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RowEditor)
        await type_in_editor(pilot, "hi", "hello")
        await pilot.press("ctrl+s")
        await pilot.pause()

        saved = datasets_folder / "greetings.jsonl"
        assert saved.read_text() == '{"input": "hi", "output": "hello"}\n'
        assert screen.query_one("#dataset-list").option_count == 1


async def test_import_csv_and_export_json(settings, datasets_folder, tmp_path):
    source = tmp_path / "pirate.csv"
    source.write_text("prompt,completion\nhi,ahoy\nbye,fair winds\n", encoding="utf-8")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await pilot.press("i")
        await pilot.pause()
        app.screen.query_one(Input).value = str(source)
        await pilot.press("enter")
        await settle(pilot)

        imported = datasets_folder / "pirate.jsonl"
        assert imported.read_text().splitlines()[1] == '{"input": "bye", "output": "fair winds"}'
        assert screen.document.path == imported

        target = tmp_path / "out.json"
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert json.loads(target.read_text()) == [{"input": "hi", "output": "ahoy"}, {"input": "bye", "output": "fair winds"}]


async def test_export_rejects_csv_name(settings, datasets_folder, tmp_path):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_file(pilot, path)
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one(Input).value = str(tmp_path / "out.csv")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert "writes .json or .jsonl" in app.screen.message
        assert not (tmp_path / "out.csv").exists()


async def test_broken_file_shows_error_dialog(settings, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"input": "a", "output": "b"},]', encoding="utf-8")
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_file(pilot, path)
        assert isinstance(app.screen, ErrorDialog)
        assert "remove the trailing comma" in app.screen.message
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DatasetsScreen)
        assert app.screen.document is None


async def test_open_row_from_another_screen(settings, datasets_folder):
    path = write_jsonl(datasets_folder / "pirate.jsonl", ROWS)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await app.edit_dataset_row(path, 3)
        await settle(pilot)

        editor = app.screen
        assert isinstance(editor, RowEditor)
        assert editor.query_one("#input-text", TextArea).text == "thank you"
        assert app.current_mode == "datasets"


async def test_thousands_of_rows_load_and_edit(settings, datasets_folder, fake_tokenizer):
    rows = [(f"question {i}", f"answer {i}") for i in range(3000)]
    path = write_jsonl(datasets_folder / "big.jsonl", rows)
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_file(pilot, path)
        table = screen.query_one("#rows", DataTable)
        assert table.row_count == 3000
        assert "3000 rows · 3000 valid" in totals(screen)

        table.move_cursor(row=1500)
        await pilot.press("delete")
        await pilot.pause()
        assert table.row_count == 2999
        assert cell(screen, 1500, "input") == "question 1501"
        assert cell(screen, 1500, "number") == "1501"
        assert cell(screen, 2998, "number") == "2999"

        await pilot.press("ctrl+z")
        await pilot.pause()
        assert cell(screen, 1500, "input") == "question 1500"
        assert cell(screen, 2999, "number") == "3000"
