"""The base class of the four main screens."""

from __future__ import annotations

from textual.screen import ActiveBinding, Screen
from textual.worker import Worker


class LoraScreen(Screen):
    """A main screen: its failed workers reach the app's error dialog, and it can hold up quitting."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble, so each screen hands it to the app's one handler.
        report = getattr(self.app, "report_worker_state", None)
        if report is not None:
            report(event.worker, event.state)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """Return the active bindings with the app's own first.

        The footer lists bindings in this order and cuts off what does not fit, and the
        keys that switch screens must stay visible on every screen, even at 80 columns.
        """
        bindings = super().active_bindings
        app_first = {key: active for key, active in bindings.items() if active.node is self.app}
        app_first.update((key, active) for key, active in bindings.items() if key not in app_first)
        return app_first

    def quit_blockers(self) -> list[str]:
        """Return what would be lost by quitting now, one line each; empty when nothing."""
        return []
