"""One turn of the conversation: the prompt and one answer box per adapter (two in compare mode)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from lora_chat.core.inference import BASE_LABEL


def adapter_label(adapter: str | None) -> str:
    return adapter or BASE_LABEL


class AnswerBox(Static):
    """An answer as it streams in; the border title names the adapter that gave it."""

    DEFAULT_CSS = """
    AnswerBox {
        width: 1fr;
        height: auto;
        border: round $primary 60%;
        border-title-color: $text-primary;
        border-subtitle-color: $text-muted;
        padding: 0 1;
    }
    AnswerBox.-cut, AnswerBox.-stopped {
        border-subtitle-color: $text-warning;
    }
    AnswerBox.-failed {
        border: round $error;
        border-subtitle-color: $text-error;
    }
    """

    def __init__(self, adapter: str | None, text: str = "") -> None:
        super().__init__(text, markup=False)
        self.adapter = adapter
        self.text = text
        self.border_title = adapter_label(adapter)
        self.border_subtitle = "" if text else "waiting"

    def add_piece(self, piece: str) -> None:
        self.text += piece
        self.update(self.text)
        self.border_subtitle = "answering"

    def finish(self, text: str, tokens: int, seconds: float, cut: bool, stopped: bool) -> None:
        self.text = text
        self.update(text or "(empty answer)")
        if cut:
            note = f"cut at {tokens} tokens; ctrl+g raises it"
        elif stopped:
            note = f"stopped after {tokens} tokens"
        else:
            note = f"{tokens} tokens, {seconds:.1f} s"
        self.border_subtitle = note
        self.set_class(cut, "-cut")
        self.set_class(stopped, "-stopped")

    def mark_stored(self, cut: bool, stopped: bool) -> None:
        """Mark an answer loaded from history."""
        self.border_subtitle = "cut by the token limit" if cut else "stopped" if stopped else ""
        self.set_class(cut, "-cut")
        self.set_class(stopped, "-stopped")

    def fail(self, note: str) -> None:
        self.border_subtitle = note
        self.add_class("-failed")
        if not self.text:
            self.update("(no answer)")


class ChatTurn(Vertical):
    """A prompt and its answers, side by side in compare mode."""

    DEFAULT_CSS = """
    ChatTurn {
        height: auto;
        margin-bottom: 1;
    }
    ChatTurn .turn-prompt {
        color: $text-accent;
        text-style: bold;
        padding: 0 1;
    }
    ChatTurn .turn-answers {
        height: auto;
    }
    """

    def __init__(self, prompt: str, adapters: list[str | None], texts: list[str] | None = None) -> None:
        super().__init__()
        self.prompt = prompt
        self.adapters = adapters
        self.texts = texts or [""] * len(adapters)
        self.boxes = [AnswerBox(adapter, text) for adapter, text in zip(adapters, self.texts)]

    def compose(self) -> ComposeResult:
        yield Static(f"> {self.prompt}", classes="turn-prompt", markup=False)
        with Horizontal(classes="turn-answers"):
            yield from self.boxes
