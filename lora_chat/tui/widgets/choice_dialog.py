"""A modal question with more than two answers."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from lora_chat.tui.widgets.dialogs import DialogScreen


class ChoiceDialog(DialogScreen["str | None"]):
    """Ask a question with several buttons; dismisses with the chosen id, or None on Escape."""

    BINDINGS = [Binding("escape", "choose(None)", "Cancel")]

    def __init__(self, question: str, title: str, choices: list[tuple[str, str, str]], focus: str | None = None) -> None:
        """``choices`` are (id, label, button variant) triples; ``focus`` names the button focused first."""
        super().__init__()
        self.question = question
        self.title_text = title
        self.choices = choices
        self.focus_id = focus or choices[0][0]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.question, id="question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                for choice_id, label, variant in self.choices:
                    yield Button(label, variant=variant, id=f"choice-{choice_id}")  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.focus_id}", Button).focus()

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        assert event.button.id is not None
        self.dismiss(event.button.id.removeprefix("choice-"))
