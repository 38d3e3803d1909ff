"""The list of saved conversations: search, rename, delete, export, and open one to continue it."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

from lora_chat.core.errors import LoraChatError
from lora_chat.core.history import ConversationSummary, HistoryStore, local_time
from lora_chat.tui.widgets.dialogs import ConfirmDialog, ErrorDialog, PromptDialog

CELL_WIDTH = 40


def _clip(text: str, width: int = CELL_WIDTH) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


class HistoryScreen(ModalScreen["int | None"]):
    """Saved conversations, newest first. Dismisses with the id to open, or None."""

    DEFAULT_CSS = """
    HistoryScreen {
        align: center middle;
    }
    HistoryScreen > #history-box {
        width: 90%;
        height: 85%;
        padding: 1 2;
        background: $panel;
        border: thick $primary;
    }
    HistoryScreen #history-title {
        text-style: bold;
        margin-bottom: 1;
    }
    HistoryScreen #history-table {
        height: 1fr;
    }
    HistoryScreen #history-empty, HistoryScreen #history-keys {
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("r", "rename", "Rename"),
        Binding("d,delete", "delete", "Delete"),
        Binding("e", "export", "Export"),
        Binding("slash", "focus_search", "Search"),
        Binding("down", "focus_table", "Table", show=False),
    ]

    def __init__(self, store: HistoryStore) -> None:
        super().__init__()
        self.store = store
        self.conversations: list[ConversationSummary] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="history-box"):
            yield Label("Saved conversations", id="history-title")
            yield Input(placeholder="Search titles, prompts and answers", id="history-search")
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="history-empty", markup=False)
            yield Static(
                "Enter open · r rename · d delete · e export · / search · Escape close",
                id="history-keys",
                markup=False,
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("ID", "Updated", "Adapter", "Turns", "Title", "First prompt")
        self.refresh_list()
        table.focus()

    # Listing ------------------------------------------------------------------------

    def refresh_list(self, keep: int | None = None) -> None:
        """Reload the list for the current search; keep the cursor on conversation ``keep`` when it is still listed."""
        search = self.query_one("#history-search", Input).value
        try:
            self.conversations = self.store.list_conversations(search)
        except LoraChatError as exc:
            self.conversations = []
            self.app.push_screen(ErrorDialog(str(exc), title="Saved conversations"))

        table = self.query_one(DataTable)
        table.clear()
        for c in self.conversations:
            table.add_row(
                str(c.id),
                local_time(c.updated),
                c.adapter_label,
                str(c.turn_count),
                _clip(c.title),
                _clip(c.first_prompt),
                key=str(c.id),
            )
        ids = [c.id for c in self.conversations]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))

        empty = self.query_one("#history-empty", Static)
        if self.conversations:
            empty.update("")
        elif search.strip():
            empty.update(f"No conversation contains {search.strip()!r}.")
        else:
            empty.update("No saved conversations yet. Chat on the Chat screen and each turn is saved here.")

    def selected(self) -> ConversationSummary | None:
        table = self.query_one(DataTable)
        if not self.conversations or table.cursor_row < 0 or table.cursor_row >= len(self.conversations):
            return None
        return self.conversations[table.cursor_row]

    @on(Input.Changed, "#history-search")
    def search_changed(self) -> None:
        self.refresh_list()

    # Actions ------------------------------------------------------------------------

    @on(DataTable.RowSelected)
    @on(Input.Submitted, "#history-search")
    def open_selected(self) -> None:
        conversation = self.selected()
        if conversation is not None:
            self.dismiss(conversation.id)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_focus_search(self) -> None:
        self.query_one("#history-search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(DataTable).focus()

    def action_rename(self) -> None:
        conversation = self.selected()
        if conversation is None:
            return

        def check(title: str) -> None:
            self.store.rename(conversation.id, title)

        def done(title: str | None) -> None:
            if title is not None:
                self.refresh_list(keep=conversation.id)

        dialog = PromptDialog(
            f"New title for conversation {conversation.id}:",
            title="Rename conversation",
            value=conversation.title,
            check=check,
            ok_label="Rename",
        )
        self.app.push_screen(dialog, done)

    def action_delete(self) -> None:
        conversation = self.selected()
        if conversation is None:
            return

        def done(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                self.store.delete(conversation.id)
            except LoraChatError as exc:
                self.app.push_screen(ErrorDialog(str(exc), title="Cannot delete the conversation"))
                return
            self.notify(f"Deleted conversation {conversation.id}.")
            self.refresh_list()

        question = (
            f"Delete conversation {conversation.id} ({conversation.title!r}, {conversation.turn_count} turns)? "
            "This cannot be undone."
        )
        self.app.push_screen(ConfirmDialog(question, title="Delete conversation", confirm_label="Delete", danger=True), done)

    def action_export(self) -> None:
        conversation = self.selected()
        if conversation is None:
            return

        def check(text: str) -> None:
            # Writing in the check keeps the dialog open with the error when the path is wrong.
            self.store.export(conversation.id, Path(text))

        def done(text: str | None) -> None:
            if text is not None:
                self.notify(f"Exported conversation {conversation.id} to {Path(text).expanduser()}.")

        dialog = PromptDialog(
            "Write to this file; the suffix picks the format: .md for Markdown, .json for JSON.",
            title=f"Export conversation {conversation.id}",
            value=str(Path.cwd() / f"conversation-{conversation.id}.md"),
            check=check,
            ok_label="Export",
        )
        self.app.push_screen(dialog, done)
