"""The Chat screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class ChatScreen(Screen):
    # TODO: build this screen (placeholder so the app shell runs)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Chat")
        yield Footer()
