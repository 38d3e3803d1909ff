"""The Adapters screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class AdaptersScreen(Screen):
    # TODO: build this screen (placeholder so the app shell runs)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Adapters")
        yield Footer()
