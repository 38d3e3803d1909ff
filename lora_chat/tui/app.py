"""The lora-chat Textual app: Datasets, Train, Adapters and Chat screens over the core."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import weakref
from pathlib import Path
from typing import Callable, Iterable, Iterator

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from lora_chat.core import paths
from lora_chat.core.errors import LoraChatError
from lora_chat.core.settings import Settings, load_settings
from lora_chat.tui.chat_host import ChatHost
from lora_chat.tui.log_handler import AppLogHandler, LogLineAdded
from lora_chat.tui.screens.datasets import DatasetsScreen
from lora_chat.tui.training_host import TrainingHost
from lora_chat.tui.widgets.dialogs import ConfirmDialog, ErrorDialog
from lora_chat.tui.widgets.key_bar import ALL_KEYS_KEY

log = logging.getLogger(__name__)

# When set (to any non-empty value), the app exits right after drawing its first screen.
EXIT_AFTER_FIRST_SCREEN_ENV = "LORA_CHAT_EXIT_AFTER_FIRST_SCREEN"

# Mode name, screen title and key, in the order of the footer.
SCREENS = (("datasets", "Datasets", "f1"), ("train", "Train", "f2"), ("adapters", "Adapters", "f3"), ("chat", "Chat", "f4"))
# On a narrow terminal the key bar folds the screen keys into one item, "f1-f4 Screens".
SCREEN_KEYS = Binding.Group("Screens")


def _screen_on_first_use(module: str, name: str) -> Callable[[], Screen]:
    """Return a factory for a screen whose module is imported only when the screen is first opened.

    The app starts on the Datasets screen, so importing the others up front only delays the first draw.
    """

    def make() -> Screen:
        return getattr(importlib.import_module(f"lora_chat.tui.screens.{module}"), name)()

    return make


def _collect_after_start() -> None:
    """Turn the garbage collector back on after the first frame, if start-up turned it off.

    ``lora-chat`` (``cli.cmd_app``) turns it off before importing the app. One collection
    clears what start-up left behind. Freezing then moves the objects that live for the
    whole session out of later collections, so those stay short while people type and
    the chat streams.
    """
    if gc.isenabled():
        return
    gc.collect()
    gc.freeze()
    gc.enable()


def _log_screen_class() -> type[Screen]:
    from lora_chat.tui.screens.log import LogScreen

    return LogScreen


class LoraChatApp(TrainingHost, ChatHost, App[int]):
    """The app. It owns the chat engine and the training run, so leaving a screen stops neither."""

    TITLE = "lora-chat"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    DEFAULT_MODE = "datasets"
    MODES = {
        "datasets": DatasetsScreen,
        "train": _screen_on_first_use("train", "TrainScreen"),
        "adapters": _screen_on_first_use("adapters", "AdaptersScreen"),
        "chat": _screen_on_first_use("chat", "ChatScreen"),
    }
    BINDINGS = [
        *(Binding(key, f"switch_mode('{mode}')", title, priority=True, group=SCREEN_KEYS) for mode, title, key in SCREENS),
        Binding("ctrl+l", "show_log", "Log", show=False),
        Binding(ALL_KEYS_KEY, "toggle_keys", "Keys", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, base_model: str | None = None, settings: Settings | None = None, debug: bool = False) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        if base_model:
            self.settings.base_model = base_model
        self.base_model = self.settings.base_model
        self.current_adapter: str | None = None
        self.debug_mode = debug
        self.log_handler = AppLogHandler(self)
        self._reported_workers: weakref.WeakSet[Worker] = weakref.WeakSet()

    # Start and stop -----------------------------------------------------------------

    async def on_mount(self) -> None:
        logging.getLogger().addHandler(self.log_handler)
        self.update_subtitle()
        self.call_after_refresh(_collect_after_start)
        for warning in self.settings.warnings:
            self.notify(warning, title="Settings", severity="warning", timeout=10)
        # benchmarks/run.py times process start to first drawn screen with this variable set.
        if os.environ.get(EXIT_AFTER_FIRST_SCREEN_ENV):
            self.call_after_refresh(self.exit)

    def on_unmount(self) -> None:
        logging.getLogger().removeHandler(self.log_handler)

    def update_subtitle(self) -> None:
        self.sub_title = f"base {self.base_model} · adapter {self.current_adapter or 'none'}"

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title, key in SCREENS:
            yield SystemCommand(f"Go to {title}", f"Open the {title} screen ({key.upper()})", lambda m=mode: self.switch_mode(m))
        yield SystemCommand("Show log", "Show this session's log records (ctrl+l)", self.action_show_log)
        # A screen offers its own commands through palette_commands().
        palette_commands = getattr(screen, "palette_commands", None)
        if palette_commands is not None:
            yield from palette_commands()

    async def edit_dataset_row(self, path: Path, row_number: int) -> None:
        """Switch to the Datasets screen and open row ``row_number`` (from 1) of ``path`` in the editor."""
        await self.switch_mode("datasets")
        self.get_screen_stack("datasets")[0].open_row(path, row_number)

    # Quitting -----------------------------------------------------------------------

    async def action_quit(self) -> None:
        self.quit_after_confirm()

    @work(name="quit", group="quit", exclusive=True, exit_on_error=False)
    async def quit_after_confirm(self) -> None:
        if await self.confirm_quit():
            self.exit(0)

    def quit_blockers(self) -> list[str]:
        """Collect ``quit_blockers()`` from every screen that has been opened."""
        blockers: list[str] = []
        for mode in self.MODES:
            try:
                stack = self.get_screen_stack(mode)
            except KeyError:
                continue
            for screen in stack:
                method = getattr(screen, "quit_blockers", None)
                if method is not None:
                    blockers.extend(method())
        return blockers

    async def confirm_quit(self) -> bool:
        """Return whether to quit, asking first when a screen has something to lose.

        It waits on a dialog, so call it from a worker.
        """
        blockers = self.quit_blockers()
        if blockers:
            question = "\n".join(f"• {line}" for line in blockers) + "\n\nQuit anyway?"
            if not await self.push_screen_wait(ConfirmDialog(question, title="Quit lora-chat?", confirm_label="Quit", danger=True)):
                return False
        # Asked last, so a run is never stopped for a quit that another question then calls off.
        return await self.confirm_quit_training()

    # Errors -------------------------------------------------------------------------

    def show_error(self, error: BaseException | str, title: str = "Error") -> None:
        """Show an error in a dialog; an unexpected exception is logged with its traceback."""
        if isinstance(error, str):
            message = error
        elif isinstance(error, LoraChatError):
            message = str(error)
            log.info("%s: %s", title, error)
        else:
            log.error("%s: unexpected %s", title, type(error).__name__, exc_info=error)
            message = (
                f"Unexpected {type(error).__name__}: {error}\n\n"
                f"The log file {paths.log_file()} has the details (ctrl+l shows the recent log)."
            )
        self.push_screen(ErrorDialog(message, title=title))

    @contextlib.contextmanager
    def errors_shown(self, title: str = "Error") -> Iterator[None]:
        """Show a LoraChatError raised in the block in a dialog instead of letting it stop the app."""
        try:
            yield
        except LoraChatError as exc:
            self.show_error(exc, title=title)

    def report_worker_state(self, worker: Worker, state: WorkerState | None = None) -> None:
        """Turn a failed worker into an error dialog; the one place that does so.

        ``state`` is the state the message reported: by the time a RUNNING message is
        handled the worker may have failed already, and only the ERROR message counts.
        Each failed worker is reported once, however many handlers pass it on.
        """
        if (state or worker.state) is not WorkerState.ERROR or worker.error is None:
            return
        if worker in self._reported_workers:
            return
        self._reported_workers.add(worker)
        if self.debug_mode and not isinstance(worker.error, LoraChatError):
            raise worker.error
        self.show_error(worker.error, title=f"{worker.name} failed" if worker.name else "Error")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_state(event.worker, event.state)

    def action_toggle_keys(self) -> None:
        """Show or hide Textual's panel listing every key of the focused widget and the screen."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    # Log view -----------------------------------------------------------------------

    def action_show_log(self) -> None:
        log_screen = _log_screen_class()
        if isinstance(self.screen, log_screen):
            self.screen.dismiss(None)
            return
        self.push_screen(log_screen(self.log_handler.lines))

    def on_log_line_added(self, message: LogLineAdded) -> None:
        if isinstance(self.screen, _log_screen_class()):
            self.screen.add_line(message.line, message.levelno)


def run_app(base_model: str | None = None, debug: bool = False) -> int:
    """Run the app in the terminal; return the exit code."""
    from lora_chat.core.logs import setup_logging

    setup_logging(logging.DEBUG if debug else logging.INFO)
    app = LoraChatApp(base_model=base_model, debug=debug)
    try:
        result = app.run()
    finally:
        gc.enable()
    return result or 0
