"""Modal dialogs: an error report, a yes/no question and a one-line prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, ScreenResultType
from textual.widgets import Button, Input, Label, Static

from lora_chat.core.errors import InputError, LoraChatError


class DialogScreen(ModalScreen[ScreenResultType]):
    """The base of every dialog: a framed box in the middle of the screen."""

    DEFAULT_CSS = """
    DialogScreen {
        align: center middle;
    }
    DialogScreen .dialog {
        width: 72;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        padding: 1 2;
        background: $panel;
        border: thick $primary;
    }
    DialogScreen .error-dialog {
        border: thick $error;
    }
    DialogScreen .dialog-title {
        text-style: bold;
        width: 100%;
        margin-bottom: 1;
    }
    DialogScreen .dialog-body {
        height: auto;
        max-height: 16;
    }
    DialogScreen .dialog-prompt {
        margin-bottom: 1;
    }
    DialogScreen .dialog-buttons {
        height: auto;
        align-horizontal: right;
        margin-top: 1;
    }
    DialogScreen .dialog-buttons Button {
        margin-left: 2;
    }
    DialogScreen .dialog-hint {
        color: $text-muted;
    }
    DialogScreen .field-problem {
        color: $text-error;
        height: auto;
    }
    DialogScreen .field-label {
        color: $text-primary;
        margin-top: 1;
    }
    """


class ErrorDialog(DialogScreen[None]):
    """Say what went wrong and what to do; Enter or Escape closes it."""

    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, message: str, title: str = "Error") -> None:
        super().__init__()
        self.message = message
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.message, id="error-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="error", id="ok")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    @on(Button.Pressed, "#ok")
    def close(self) -> None:
        self.dismiss(None)


class ConfirmDialog(DialogScreen[bool]):
    """Ask a yes/no question; returns True only when the user confirms."""

    BINDINGS = [
        Binding("escape", "answer(False)", "Cancel"),
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, title: str = "Please confirm", confirm_label: str = "Yes", danger: bool = False) -> None:
        super().__init__()
        self.question = question
        self.title_text = title
        self.confirm_label = confirm_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.question, id="question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, variant="error" if self.danger else "primary", id="yes")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        # The safe answer has the focus, so a stray Enter never confirms a delete.
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PromptDialog(DialogScreen["str | None"]):
    """Ask for one line of text (a name or a path); returns None when cancelled.

    ``check`` may raise LoraChatError: its message is shown under the field and the
    dialog stays open, so the user can fix what they typed.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        prompt: str,
        title: str = "",
        value: str = "",
        placeholder: str = "",
        check: Callable[[str], object] | None = None,
        ok_label: str = "OK",
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.title_text = title or prompt
        self.value = value
        self.placeholder = placeholder
        self.check = check
        self.ok_label = ok_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.title_text != self.prompt:
                yield Static(self.prompt, classes="dialog-prompt", markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static("", id="prompt-problem", classes="field-problem", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.ok_label, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        text = self.query_one(Input).value.strip()
        problem = self.query_one("#prompt-problem", Static)
        if not text:
            problem.update("Type a value, or press Escape to cancel.")
            return
        if self.check is not None:
            try:
                self.check(text)
            except LoraChatError as exc:
                problem.update(str(exc))
                return
        self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def dataset_file_dialog(use: Callable[[Path], None]) -> tuple[PromptDialog, Callable[[str | None], None]]:
    """Return a prompt for a dataset file's path, and the callback that passes a chosen path to ``use``.

    Push both with ``app.push_screen(*dataset_file_dialog(use))``.
    """

    def check(text: str) -> None:
        if not Path(text).expanduser().is_file():
            raise InputError(f"{text}: file not found; give the path of a .json, .jsonl or .csv file")

    def opened(text: str | None) -> None:
        if text:
            use(Path(text))

    dialog = PromptDialog("Path of a .json, .jsonl or .csv dataset file", title="Open dataset file", check=check, ok_label="Open")
    return dialog, opened
