"""The lora-chat Textual app: Datasets, Train, Adapters and Chat screens over the core."""

from __future__ import annotations

import logging
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from lora_chat.core.settings import Settings, load_settings
from lora_chat.tui.screens.adapters import AdaptersScreen
from lora_chat.tui.screens.chat import ChatScreen
from lora_chat.tui.screens.datasets import DatasetsScreen
from lora_chat.tui.screens.train import TrainScreen

log = logging.getLogger(__name__)


class LoraChatApp(App[int]):
    """The app. It owns the chat engine and the training run, so leaving a screen stops neither."""

    CSS_PATH = "app.tcss"
    TITLE = "lora-chat"
    MODES = {"datasets": DatasetsScreen, "train": TrainScreen, "adapters": AdaptersScreen, "chat": ChatScreen}
    BINDINGS = [
        Binding("f1", "switch_mode('datasets')", "Datasets"),
        Binding("f2", "switch_mode('train')", "Train"),
        Binding("f3", "switch_mode('adapters')", "Adapters"),
        Binding("f4", "switch_mode('chat')", "Chat"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, base_model: str | None = None, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        if base_model:
            self.settings.base_model = base_model
        self.base_model = self.settings.base_model
        self.current_adapter: str | None = None

    def on_mount(self) -> None:
        self.update_subtitle()
        self.switch_mode("datasets")

    def update_subtitle(self) -> None:
        self.sub_title = f"base {self.base_model} · adapter {self.current_adapter or 'none'}"

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in (("datasets", "Datasets"), ("train", "Train"), ("adapters", "Adapters"), ("chat", "Chat")):
            yield SystemCommand(f"Go to {title}", f"Open the {title} screen", lambda m=mode: self.switch_mode(m))


def run_app(base_model: str | None = None, debug: bool = False) -> int:
    """Run the app in the terminal; return the exit code."""
    app = LoraChatApp(base_model=base_model)
    result = app.run()
    return result or 0
