"""The saved-conversations list, driven by key presses in a tiny host app."""

from __future__ import annotations

import json

import pytest
from textual.app import App
from textual.widgets import DataTable, Input, Static

from lora_chat.core.history import HistoryStore
from lora_chat.tui.screens.history import HistoryScreen
from lora_chat.tui.widgets.dialogs import ConfirmDialog, PromptDialog


class Host(App[None]):
    """Opens the history screen on start and keeps what it was dismissed with."""

    def __init__(self, store: HistoryStore) -> None:
        super().__init__()
        self.store = store
        self.results: list[int | None] = []

    def on_mount(self) -> None:
        self.push_screen(HistoryScreen(self.store), self.results.append)


def answer(text: str, adapter: str | None = "pirate") -> dict:
    return {"adapter": adapter, "text": text, "cut": False, "settings": {}}


@pytest.fixture
def store():
    with HistoryStore() as opened:
        old = opened.new_conversation("base", "pirate")
        opened.add_turn(old, "where is the treasure", [answer("under the palm")])
        new = opened.new_conversation("base", None)
        opened.add_turn(new, "capital of France", [answer("Paris", adapter=None)])
        # Fix the order: the first conversation was updated earlier.
        opened._db.execute("UPDATE conversations SET updated = '2024-05-01T09:00:00+00:00' WHERE id = ?", (old,))
        yield opened


def rows(screen: HistoryScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_lists_newest_first(store):
    app = Host(store)
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        listed = rows(screen)
        assert [r[0] for r in listed] == ["2", "1"]
        assert listed[0][2] == "none"
        assert listed[0][5] == "capital of France"
        assert listed[1][2] == "pirate"
        assert listed[1][5] == "where is the treasure"
        assert listed[1][1].startswith("2024-05-01")


async def test_enter_opens_selected(store):
    app = Host(store)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("down")  # second row: conversation 1
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [1]
        assert not isinstance(app.screen, HistoryScreen)


async def test_escape_returns_none(store):
    app = Host(store)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None]


async def test_search_filters_prompts_and_answers(store):
    app = Host(store)
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("slash")  # focus the search field
        assert screen.query_one("#history-search", Input).has_focus
        await pilot.press(*"palm")  # matches an answer, not a prompt
        await pilot.pause()
        assert [r[0] for r in rows(screen)] == ["1"]

        await pilot.press(*"zzz")
        await pilot.pause()
        assert rows(screen) == []
        assert "No conversation contains 'palmzzz'" in str(screen.query_one("#history-empty", Static).render())

        for _ in range(3):
            await pilot.press("backspace")
        await pilot.press("enter")  # Enter in the search field opens the highlighted match
        await pilot.pause()
        assert app.results == [1]


async def test_rename(store):
    app = Host(store)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("r")  # rename conversation 2, the highlighted row
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        field = app.screen.query_one(Input)
        assert field.value == "capital of France"
        field.value = ""
        await pilot.press(*"Geography quiz")
        await pilot.press("enter")
        await pilot.pause()

        assert isinstance(app.screen, HistoryScreen)
        assert store.get(2).title == "Geography quiz"
        assert rows(app.screen)[0][4] == "Geography quiz"


async def test_delete_asks_first(store):
    app = Host(store)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")  # cancel keeps it
        await pilot.pause()
        assert len(store.list_conversations()) == 2

        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [c.id for c in store.list_conversations()] == [1]
        assert [r[0] for r in rows(app.screen)] == ["1"]


async def test_export_to_typed_path(store, tmp_path):
    app = Host(store)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, PromptDialog)

        dialog.query_one(Input).value = str(tmp_path / "chat.txt")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog  # the wrong suffix keeps the dialog open with the reason
        assert "must end in .md (Markdown) or .json" in str(dialog.query_one("#prompt-problem", Static).render())

        dialog.query_one(Input).value = str(tmp_path / "chat.json")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)
        data = json.loads((tmp_path / "chat.json").read_text())
        assert data["turns"][0]["prompt"] == "capital of France"


async def test_empty_history_hint():
    with HistoryStore() as empty:
        app = Host(empty)
        async with app.run_test() as pilot:
            await pilot.pause()
            assert rows(app.screen) == []
            assert "No saved conversations yet" in str(app.screen.query_one("#history-empty", Static).render())
            await pilot.press("enter", "r", "d", "e")  # nothing selected: no dialog opens
            await pilot.pause()
            assert isinstance(app.screen, HistoryScreen)
            assert app.results == []
