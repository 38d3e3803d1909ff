"""The base class of the four main screens."""

from __future__ import annotations

from textual.screen import Screen
from textual.worker import Worker


class LoraScreen(Screen):
    """A main screen: its failed workers reach the app's error dialog, and it can hold up quitting."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble, so each screen hands it to the app's one handler.
        report = getattr(self.app, "report_worker_state", None)
        if report is not None:
            report(event.worker)

    def quit_blockers(self) -> list[str]:
        """Return what would be lost by quitting now, one line each; empty when nothing."""
        return []
