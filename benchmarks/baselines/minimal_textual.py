"""The smallest Textual app: one line of text, exiting right after its first screen is drawn.

``benchmarks/run.py`` times it from process start to exit as the floor for lora-chat's start-up.
"""

from textual.app import App, ComposeResult
from textual.widgets import Static


class MinimalApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("minimal textual app")

    def on_mount(self) -> None:
        self.call_after_refresh(self.exit)


if __name__ == "__main__":
    MinimalApp().run()
