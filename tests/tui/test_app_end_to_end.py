"""The whole loop in the app on the tiny stand-in: train from the Train screen, chat with the adapter, delete it."""

from __future__ import annotations

import shutil

import pytest
from textual.widgets import Input, Select

from lora_chat.core import paths
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import Settings
from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.screens.adapters import AdaptersScreen
from lora_chat.tui.screens.chat import ChatScreen
from lora_chat.tui.screens.train import TrainScreen
from lora_chat.tui.widgets.chat_turn import AnswerBox
from lora_chat.tui.widgets.dialogs import ConfirmDialog
from tests.tui.conftest import wait_until

pytestmark = pytest.mark.slow


async def test_train_chat_delete(sample, tiny_model):
    dataset = paths.datasets_dir() / "greetings.jsonl"
    dataset.parent.mkdir(parents=True)
    shutil.copy(sample / "greetings.jsonl", dataset)
    app = LoraChatApp(settings=Settings(base_model=str(tiny_model)))

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.base_config is not None, 30, interval=0.2)
        train = app.screen
        train.query_one("#dataset", Select).value = str(dataset)
        await pilot.pause()
        train.query_one("#adapter-name", Input).value = "greet"
        # The settings the command-line test uses, which change the answers of the tiny model.
        train.query_one("#field-epochs", Input).value = "15"
        train.query_one("#field-learning_rate", Input).value = "0.01"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.training_run is not None, 10, interval=0.2)
        await wait_until(pilot, lambda: app.training_progress.outcome != "running", 600, interval=0.2)
        assert app.training_progress.outcome == "done", app.training_progress.message
        assert app.training_progress.step == 60
        assert AdapterLibrary().names() == ["greet"]

        await pilot.press("ctrl+t")  # chat with it
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen), 10, interval=0.2)
        chat = app.screen
        await wait_until(pilot, lambda: chat.settled["adapter"] == "greet", 120, interval=0.2)
        await pilot.press("ctrl+b")  # compare with the base model
        chat.query_one("#generation-form #field-max_new_tokens", Input).value = "12"
        chat.query_one("#prompt", Input).focus()
        await pilot.press(*"Hello!", "enter")
        await pilot.pause()
        await wait_until(pilot, lambda: not chat.answering, 120, interval=0.2)
        tuned, base = chat.query(AnswerBox)
        assert tuned.border_title == "greet"
        assert base.border_title == "none (base model)"
        assert tuned.text.strip()
        assert tuned.text != base.text
        assert "greet" in app.engine.loaded

        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, AdaptersScreen), 10, interval=0.2)
        await pilot.pause(0.5)
        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, interval=0.2)
        await pilot.press("y")
        await wait_until(pilot, lambda: AdapterLibrary().names() == [], 30, interval=0.2)
        assert "greet" not in app.engine.loaded
        assert app.current_adapter is None
