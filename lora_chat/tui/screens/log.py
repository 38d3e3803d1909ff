"""The log view: recent log records of this session, newest at the bottom."""

from __future__ import annotations

import logging
from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Label, RichLog

from lora_chat.core import paths
from lora_chat.tui.widgets.key_bar import KeyBar


class LogScreen(ModalScreen[None]):
    """Show the log records kept by the app's log handler; Escape goes back."""

    DEFAULT_CSS = """
    LogScreen {
        background: $background;
    }
    LogScreen #log-title {
        width: 100%;
        padding: 0 1;
        background: $panel;
        text-style: bold;
    }
    LogScreen #log-view {
        height: 1fr;
    }
    """
    BINDINGS = [Binding("escape,ctrl+l", "dismiss", "Back")]

    def __init__(self, lines: Iterable[tuple[str, int]]) -> None:
        super().__init__()
        self.initial_lines = list(lines)

    def compose(self) -> ComposeResult:
        yield Label(f"Log (also written to {paths.log_file()})", id="log-title", markup=False)
        yield RichLog(id="log-view", wrap=True, highlight=False, markup=False, max_lines=5000)
        yield KeyBar()

    def on_mount(self) -> None:
        view = self.query_one(RichLog)
        if not self.initial_lines:
            view.write(Text("No log records yet in this session.", style="italic"))
        for line, levelno in self.initial_lines:
            self.add_line(line, levelno)

    def add_line(self, line: str, levelno: int) -> None:
        style = ""
        if levelno >= logging.ERROR:
            style = self.app.theme_variables.get("text-error", "")
        elif levelno >= logging.WARNING:
            style = self.app.theme_variables.get("text-warning", "")
        self.query_one(RichLog).write(Text(line, style=style))
