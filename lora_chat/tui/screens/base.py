"""The base class of the four main screens."""

from __future__ import annotations

from textual.screen import ActiveBinding, Screen
from textual.worker import Worker


class LoraScreen(Screen):
    """A main screen: its failed workers reach the app's error dialog, and it can hold up quitting."""

    DEFAULT_CSS = """
    LoraScreen .pane-title {
        text-style: bold;
        color: $text-primary;
        padding: 0 1;
        width: 100%;
    }
    LoraScreen .hint {
        color: $text-muted;
    }
    """

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        # Textual adds the breakpoint classes (-narrow, -wide, -short, -tall) when the first
        # Resize arrives, after the screen's widgets are styled, and so styles them all a
        # second time. Added now from the terminal's size, that Resize changes nothing.
        self.add_class(*self.breakpoint_classes(self.app.size.width, self.app.size.height), update=False)

    def breakpoint_classes(self, width: int, height: int) -> list[str]:
        """Return the breakpoint classes Textual gives a screen of this size."""
        classes = []
        for dimension, breakpoints in (
            (width, self.app.HORIZONTAL_BREAKPOINTS if self.HORIZONTAL_BREAKPOINTS is None else self.HORIZONTAL_BREAKPOINTS),
            (height, self.app.VERTICAL_BREAKPOINTS if self.VERTICAL_BREAKPOINTS is None else self.VERTICAL_BREAKPOINTS),
        ):
            for threshold, name in sorted(breakpoints or [], reverse=True):
                if dimension >= threshold:
                    classes.append(name)
                    break
        return classes

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble, so each screen hands it to the app's one handler.
        report = getattr(self.app, "report_worker_state", None)
        if report is not None:
            report(event.worker, event.state)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """Return the active bindings with the app's own first.

        The key bar lists bindings in this order and leaves off what does not fit, and the
        keys that switch screens must stay visible on every screen, even at 80 columns.
        """
        bindings = super().active_bindings
        app_first = {key: active for key, active in bindings.items() if active.node is self.app}
        app_first.update((key, active) for key, active in bindings.items() if key not in app_first)
        return app_first

    def quit_blockers(self) -> list[str]:
        """Return what would be lost by quitting now, one line each; empty when nothing."""
        return []
