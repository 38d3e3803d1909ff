"""The row editor: a modal form with a multi-line field for the input and for the output."""

from __future__ import annotations

from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static, TextArea

from lora_chat.tui.widgets.dialogs import ConfirmDialog, DialogScreen

TokenCounter = Callable[[list[str]], list[int]]


class RowEditor(DialogScreen["tuple[str, str] | None"]):
    """Edit one row; returns (input, output), or None when cancelled."""

    DEFAULT_CSS = """
    RowEditor .row-editor {
        width: 90%;
        max-width: 140;
        height: 90%;
    }
    RowEditor .row-editor TextArea {
        height: 1fr;
        min-height: 4;
    }
    RowEditor .row-editor .dialog-title {
        margin-bottom: 0;
    }
    RowEditor .row-editor .field-label {
        margin-top: 0;
    }
    RowEditor .row-editor .dialog-buttons {
        margin-top: 0;
    }
    RowEditor.-short .row-editor {
        padding: 0 1;
    }
    RowEditor.-short .row-editor .dialog-hint {
        display: none;
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save row", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        title: str,
        input: str = "",
        output: str = "",
        count_tokens: TokenCounter | None = None,
        max_input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        focus_field: str = "input",
    ) -> None:
        super().__init__()
        self.focus_field = focus_field
        self.title_text = title
        self.original = (input, output)
        self.count_tokens = count_tokens
        self.limits = {"input": max_input_tokens, "output": max_output_tokens}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog row-editor"):
            yield Label(self.title_text, classes="dialog-title")
            for field, text in zip(("input", "output"), self.original):
                yield Label(field, id=f"{field}-label", classes="field-label")
                yield TextArea(text, id=f"{field}-text", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
            yield Static("", id="row-problems", classes="field-problem", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save row", variant="primary", id="save")
                yield Button("Cancel", id="cancel")
            yield Static("ctrl+s saves the row · Tab moves to the next field · Escape cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(f"#{self.focus_field}-text", TextArea).focus()
        self.refresh_labels()

    def values(self) -> tuple[str, str]:
        return self.query_one("#input-text", TextArea).text, self.query_one("#output-text", TextArea).text

    @on(TextArea.Changed)
    def refresh_labels(self) -> None:
        values = dict(zip(("input", "output"), self.values()))
        problems = [f"{field} is empty" for field, text in values.items() if not text.strip()]
        counts = self.count_tokens(list(values.values())) if self.count_tokens else None
        for i, (field, text) in enumerate(values.items()):
            label = field
            limit = self.limits[field]
            if counts is not None:
                label = f"{field} · {counts[i]} tokens" + (f" (limit {limit})" if limit else "")
                if limit and counts[i] > limit:
                    problems.append(f"{field} is {counts[i]} tokens, over the limit of {limit}")
            self.query_one(f"#{field}-label", Label).update(label)
        self.query_one("#row-problems", Static).update("; ".join(problems))

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        self.dismiss(self.values())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.values() == self.original:
            self.dismiss(None)
            return

        def discard(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(None)

        self.app.push_screen(ConfirmDialog("Discard the changes to this row?", confirm_label="Discard", danger=True), discard)
