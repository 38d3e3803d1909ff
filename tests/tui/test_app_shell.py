"""The app shell: screen keys, the error dialog, the log view, settings warnings and start-up cost."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import textwrap

from textual import work
from textual.widgets import RichLog
from textual.widgets._toast import Toast

from lora_chat.core import paths
from lora_chat.core.errors import DatasetError
from lora_chat.core.settings import load_settings
from lora_chat.tui.app import LoraChatApp, _collect_after_start
from lora_chat.tui.screens.adapters import AdaptersScreen
from lora_chat.tui.screens.chat import ChatScreen
from lora_chat.tui.screens.datasets import DatasetsScreen
from lora_chat.tui.screens.log import LogScreen
from lora_chat.tui.screens.train import TrainScreen
from lora_chat.tui.widgets.dialogs import ErrorDialog
from lora_chat.tui.widgets.key_bar import KeyBar
from tests.tui.conftest import settle


async def test_function_keys_switch_screens(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, DatasetsScreen)
        # The fake base model cannot load, so the Chat screen may push an error dialog: look
        # at the bottom screen of each mode.
        for key, mode, screen_type in (("f2", "train", TrainScreen), ("f3", "adapters", AdaptersScreen), ("f4", "chat", ChatScreen), ("f1", "datasets", DatasetsScreen)):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
            assert isinstance(app.get_screen_stack(mode)[0], screen_type), key


async def test_footer_and_palette_list_screens(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        descriptions = {binding.description for (_, binding, _, _) in app.screen.active_bindings.values() if binding.show}
        assert {"Datasets", "Train", "Adapters", "Chat"} <= descriptions
        assert app.screen.query(KeyBar)

        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in ("Go to Datasets", "Go to Train", "Go to Adapters", "Go to Chat", "Show log", "Dataset: new"):
            assert title in titles


async def test_subtitle_names_base_and_adapter(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)):
        assert app.sub_title == "base /no/such/model · adapter none"
        app.current_adapter = "pirate"
        app.update_subtitle()
        assert app.sub_title == "base /no/such/model · adapter pirate"


async def test_failed_worker_shows_dialog(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen

        @work(name="check rows", exit_on_error=False)
        async def failing(self) -> None:
            raise DatasetError("rows.jsonl: line 3 is invalid; fix it there")

        failing(screen)
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.title_text == "check rows failed"
        assert app.screen.message == "rows.jsonl: line 3 is invalid; fix it there"

        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert app.is_running


async def test_unexpected_error_names_log_file(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        app.show_error(KeyError("missing"), title="Oops")
        await pilot.pause()
        assert isinstance(app.screen, ErrorDialog)
        assert "Unexpected KeyError" in app.screen.message
        assert str(paths.log_file()) in app.screen.message


async def test_errors_shown_keeps_app_running(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        with app.errors_shown("Save failed"):
            raise DatasetError("cannot save")
        await pilot.pause()
        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.title_text == "Save failed"


async def test_log_view_shows_records(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        logging.getLogger("lora_chat.test").warning("before the view opened")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        logging.getLogger("lora_chat.test").warning("while the view is open")
        await pilot.pause()
        lines = "\n".join(line.text for line in app.screen.query_one(RichLog).lines)
        assert "before the view opened" in lines
        assert "while the view is open" in lines

        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DatasetsScreen)
    assert app.log_handler not in logging.getLogger().handlers


async def test_settings_warnings_become_notifications(settings):
    paths.settings_file().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file().write_text("[train]\nrank = 'big'\n", encoding="utf-8")
    app = LoraChatApp(settings=load_settings())
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        toasts = [str(toast.render()) for toast in app.screen.query(Toast)]
        assert any("rank" in text and "using the default" in text for text in toasts)


async def test_quit_without_changes_exits(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


def test_start_up_imports_no_heavy_library(tmp_path):
    code = textwrap.dedent(
        """
        import asyncio, sys
        from lora_chat.tui.app import LoraChatApp, _collect_after_start

        async def main():
            app = LoraChatApp(base_model="/no/such/model")
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                print(type(app.screen).__name__)
            print(",".join(m for m in ("torch", "transformers", "peft") if m in sys.modules) or "none")

        asyncio.run(main())
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.split() == ["DatasetsScreen", "none"]


def test_app_import_defers_later_parts():
    code = textwrap.dedent(
        """
        import sys
        import lora_chat.cli, lora_chat.tui.app
        parts = ("lora_chat.core.runs", "lora_chat.core.training", "lora_chat.tui.widgets.row_editor", "tomllib")
        print(",".join(m for m in parts if m in sys.modules) or "none")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.split() == ["none"]


def test_collector_restarted_and_frozen():
    frozen_before = gc.get_freeze_count()
    gc.disable()
    try:
        _collect_after_start()
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
        gc.enable()


def test_running_collector_left_alone():
    frozen_before = gc.get_freeze_count()
    _collect_after_start()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before


async def test_screens_start_with_breakpoint_classes(settings):
    for size, expected in (((80, 24), {"-narrow", "-short"}), ((120, 40), {"-wide", "-tall"})):
        app = LoraChatApp(settings=settings)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            screen = app.screen
            assert set(screen.breakpoint_classes(*size)) == expected
            assert expected <= set(screen.classes)
            await pilot.press("f3")
            await pilot.pause()
            assert expected <= set(app.screen.classes)


async def test_breakpoint_classes_follow_resize(settings):
    app = LoraChatApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert {"-narrow", "-short"} <= set(app.screen.classes)
        assert not {"-wide", "-tall"} & set(app.screen.classes)
