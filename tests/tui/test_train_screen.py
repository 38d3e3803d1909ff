"""The Train screen with a fake run manager: the form, the run view, cancel, quit and re-attach."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import Input, ProgressBar, Select, Static

from lora_chat.core import paths
from lora_chat.core.runs import RunInfo
from lora_chat.core.settings import Settings
from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.screens.chat import ChatScreen
from lora_chat.tui.screens.train import TrainScreen, suggest_name
from lora_chat.tui.widgets.choice_dialog import ChoiceDialog
from lora_chat.tui.widgets.dialogs import ConfirmDialog, ErrorDialog
from tests.tui.conftest import make_adapter, wait_until, write_jsonl
from tests.tui.fake_engine import FakeEngine
from tests.tui.fake_runs import FakeRun, FakeRunManager, ready_events, step_events

# A T5 config small enough to count by hand: rank 8 on q and v adds 8 * (64 + 64) weights per
# layer, over 2 encoder + 2 * 2 decoder attention blocks, for two targets: 12,288.
TINY_CONFIG = {"d_model": 64, "num_heads": 4, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "feed_forward_proj": "relu"}


@pytest.fixture
def base_model(tmp_path) -> Path:
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    return folder


@pytest.fixture
def dataset() -> Path:
    return write_jsonl(paths.datasets_dir() / "greetings.jsonl", [("Hello", "Hi there"), ("Bye", "See you")])


def make_app(base_model: Path, runs: FakeRunManager | None = None, engine: FakeEngine | None = None) -> LoraChatApp:
    app = LoraChatApp(settings=Settings(base_model=str(base_model)))
    app.runs = runs or FakeRunManager(paths.runs_dir())
    fake = engine or FakeEngine()
    app.make_engine = lambda: fake  # type: ignore[method-assign]
    return app


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def open_train(pilot) -> TrainScreen:
    await pilot.press("f2")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TrainScreen))
    screen = pilot.app.screen
    await wait_until(pilot, lambda: screen.base_config is not None)
    return screen


async def start_run(pilot, dataset: Path) -> FakeRun:
    screen = await open_train(pilot)
    screen.query_one("#dataset", Select).value = str(dataset)
    await pilot.pause()
    await pilot.press("ctrl+s")
    runs = pilot.app.runs
    await wait_until(pilot, lambda: len(runs.started) == 1)
    return runs.started[0]


def test_suggest_name_skips_taken():
    assert suggest_name(Path("/x/greetings.jsonl"), set()) == "greetings"
    assert suggest_name(Path("/x/greetings.jsonl"), {"greetings", "greetings-2"}) == "greetings-3"
    assert suggest_name(Path("/x/my data!.csv"), set()) == "my-data"


async def test_form_checks_each_field(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot)
        rank = screen.query_one("#field-rank", Input)
        rank.value = "abc"
        await pilot.pause()
        assert text_of(screen, "#problem-rank") == "rank: expected a whole number, got 'abc'"
        assert "fix the settings" in text_of(screen, "#train-params")

        screen.query_one("#dataset", Select).value = str(dataset)
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ErrorDialog)
        assert "rank: expected a whole number" in text_of(app.screen, "#error-message")
        assert app.runs.started == []
        await pilot.press("escape")

        rank.value = "4"
        await pilot.pause()
        assert text_of(screen, "#problem-rank") == ""
        assert text_of(screen, "#train-params") == "Trainable parameters: 6,144 (LoRA r=4)"


async def test_command_line_and_parameters(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot)
        assert text_of(screen, "#train-params") == "Trainable parameters: 12,288 (LoRA r=8)"
        screen.query_one("#dataset", Select).value = str(dataset)
        await pilot.pause()
        assert screen.query_one("#adapter-name", Input).value == "greetings"
        screen.query_one("#field-epochs", Input).value = "3"
        await pilot.pause()
        command = text_of(screen, "#train-command")
        assert command == f"$ lora-chat train {dataset} --name greetings --epochs 3 --base-model {base_model}"


async def test_name_taken_is_reported(base_model, dataset):
    make_adapter(paths.adapters_dir(), "taken")
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot)
        screen.query_one("#adapter-name", Input).value = "taken"
        await pilot.pause()
        assert "already exists" in text_of(screen, "#name-problem")
        screen.query_one("#dataset", Select).value = str(dataset)
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.runs.started == []


async def test_start_without_dataset_says_so(base_model):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert text_of(screen, "#dataset-problem").startswith("dataset: choose a dataset")
        assert app.runs.started == []


async def test_run_view_follows_events(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await start_run(pilot, dataset)
        screen = app.screen
        assert run.info.adapter == "greetings"
        assert run.settings.epochs == 10

        run.write(*ready_events("greetings"), *step_events(1, 20, 40))
        run.write({"event": "eval", "step": 20, "epoch": 5, "eval_loss": 1.5})
        await wait_until(pilot, lambda: app.training_progress.step == 20)
        await pilot.pause()
        assert screen.query_one(ProgressBar).progress == 20
        assert screen.query_one(ProgressBar).total == 40
        assert text_of(screen, "#run-steps") == "step 20 of 40"
        assert text_of(screen, "#stat-loss") == "loss 1.0000 (best 1.0000)"
        assert text_of(screen, "#stat-eval") == "eval loss 1.5000 (best 1.5000)"
        assert text_of(screen, "#stat-epoch") == "epoch 5.00 of 10"
        assert text_of(screen, "#stat-speed") == "samples/s 12.5"
        assert text_of(screen, "#stat-time") == "elapsed 0:10  ETA 0:10"
        assert text_of(screen, "#stat-device") == "device cpu"
        assert screen.query_one("#cancel-run").display is True
        assert screen.query_one("#chat-with-adapter").display is False

        make_adapter(paths.adapters_dir(), "greetings")
        run.write(*step_events(21, 40, 40), {"event": "done", "adapter": "greetings"})
        run.ended = True
        await wait_until(pilot, lambda: app.training_progress.outcome == "done")
        await pilot.pause()
        assert "Adapter 'greetings' is in the library" in text_of(screen, "#run-message")
        assert screen.query_one("#chat-with-adapter").display is True
        assert screen.query_one("#cancel-run").display is False

        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        await wait_until(pilot, lambda: chat.settled["adapter"] == "greetings")
        await pilot.pause(0.2)
        assert app.current_adapter == "greetings"
        assert chat.query_one("#adapter", Select).value == "greetings"


async def test_overfitting_hint_shown(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await start_run(pilot, dataset)
        run.write(*ready_events("greetings"), *step_events(1, 4, 40))
        run.write({"event": "warning", "kind": "overfitting", "step": 4, "message": "eval loss has risen for 2 evaluations in a row"})
        await wait_until(pilot, lambda: app.training_progress.overfitting)
        await pilot.pause()
        hint = app.screen.query_one("#overfit-hint", Static)
        assert hint.display is True
        assert str(hint.render()) == "Warning: eval loss has risen for 2 evaluations in a row"


async def test_cancel_asks_once(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await start_run(pilot, dataset)
        run.write(*ready_events("greetings"), *step_events(1, 3, 40))
        await wait_until(pilot, lambda: app.training_progress.step == 3)

        await pilot.press("ctrl+x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause()
        assert run.cancel_calls == 0

        await pilot.press("ctrl+x")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: app.training_progress.outcome == "cancelled")
        await pilot.pause()
        assert run.cancel_calls == 1
        assert "nothing was added to the library" in text_of(app.screen, "#run-message")
        assert app.screen.query_one("#new-run").display is True

        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.query_one("#train-switcher").current == "train-setup"


async def test_leaving_screen_keeps_run(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await start_run(pilot, dataset)
        await pilot.press("f1")
        await pilot.pause()
        run.write(*ready_events("greetings"), *step_events(1, 7, 40))
        await wait_until(pilot, lambda: app.training_progress.step == 7)
        assert app.training_active
        await pilot.press("f2")
        await pilot.pause()
        assert text_of(app.screen, "#run-steps") == "step 7 of 40"


async def test_keys_handled_while_progress_posts(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await start_run(pilot, dataset)
        run.write(*ready_events("greetings"))

        def post_progress() -> None:
            for event in step_events(1, 40, 40):
                run.write(event)
                time.sleep(0.01)

        writer = threading.Thread(target=post_progress)
        writer.start()
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press(*"hello")
        typed = app.screen.query_one("#prompt", Input).value
        await pilot.press("f2")
        writer.join()
        await wait_until(pilot, lambda: app.training_progress.step == 40)
        await pilot.pause()
        assert typed == "hello"
        assert isinstance(app.screen, TrainScreen)
        assert text_of(app.screen, "#run-steps") == "step 40 of 40"


@pytest.mark.parametrize(("choice", "exits", "cancels"), [("stay", False, 0), ("stop", True, 1), ("finish", True, 0)])
async def test_quit_while_training_asks(base_model, dataset, choice, exits, cancels):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await start_run(pilot, dataset)
        run.write(*ready_events("greetings"), *step_events(1, 2, 40))
        await wait_until(pilot, lambda: app.training_progress.step == 2)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        assert "still training (step 2 of 40)" in str(app.screen.query_one("#question", Static).render())
        await pilot.click(f"#choice-{choice}")
        await pilot.pause(0.2)
        assert run.cancel_calls == cancels
        assert (app.return_code is not None) == exits


async def test_reattach_to_running_run(base_model, tmp_path):
    folder = paths.runs_dir() / "earlier"
    folder.mkdir(parents=True)
    info = RunInfo("earlier", folder, 0, "pirate", "/data/pirate.csv", str(base_model), ["lora-chat"], time.time())
    info.save()
    previous = FakeRun(info)
    previous.write(*ready_events("pirate"), *step_events(1, 5, 40))
    app = make_app(base_model, runs=FakeRunManager(paths.runs_dir(), previous=previous))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.training_run is previous)
        assert app.training_active
        screen = await open_train(pilot)
        await pilot.pause()
        assert text_of(screen, "#run-title") == "Training 'pirate' on pirate.csv"
        assert text_of(screen, "#run-steps") == "step 5 of 40"
        previous.write(*step_events(6, 8, 40))
        await wait_until(pilot, lambda: app.training_progress.step == 8)


async def test_unseen_ending_shown_once(base_model):
    folder = paths.runs_dir() / "earlier"
    folder.mkdir(parents=True)
    info = RunInfo("earlier", folder, 0, "pirate", "/data/pirate.csv", str(base_model), ["lora-chat"], time.time())
    info.save()
    previous = FakeRun(info)
    previous.write(*ready_events("pirate"), {"event": "error", "message": "the loss became nan at step 3"})
    previous.poll()
    app = make_app(base_model, runs=FakeRunManager(paths.runs_dir(), previous=previous))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "Training of 'pirate' failed: the loss became nan at step 3" in text_of(app.screen, "#error-message")
    assert RunInfo.load(folder).reported is True

    reopened = FakeRun(RunInfo.load(folder))
    reopened.poll()
    again = make_app(base_model, runs=FakeRunManager(paths.runs_dir(), previous=reopened))
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        assert not isinstance(again.screen, ErrorDialog)
        assert again.training_run is None


async def test_second_run_refused_while_first_goes(base_model, dataset):
    app = make_app(base_model)
    async with app.run_test(size=(120, 40)) as pilot:
        await start_run(pilot, dataset)
        with pytest.raises(Exception, match="still training"):
            app.start_training(dataset, "other", app.settings.train)
