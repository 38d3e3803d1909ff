"""Training runs in a child process: events, cancel, re-attach, a child that dies."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from lora_chat.core.library import AdapterLibrary
from lora_chat.core.runs import RunManager, RunProgress, TrainingRun, progress_of, train_command
from lora_chat.core.settings import TrainSettings


def wait_for_event(run: TrainingRun, kind: str, timeout: float) -> float:
    """Poll ``run`` until an event of ``kind`` appears; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        run.poll()
        if any(e["event"] == kind for e in run.events):
            return time.monotonic() - started
        if run.finished:
            break
        time.sleep(0.02)
    raise AssertionError(f"no {kind!r} event within {timeout} s; events: {[e['event'] for e in run.events]}")


def test_train_command_lists_changed_settings():
    settings = TrainSettings(epochs=3, learning_rate=0.0005, target_modules=["q", "k", "v"])
    args = train_command("data.jsonl", "pirate", settings, "google/flan-t5-small", defaults=TrainSettings())
    assert args == [
        "train", "data.jsonl", "--name", "pirate",
        "--target-modules", "q,k,v", "--learning-rate", "0.0005", "--epochs", "3",
        "--base-model", "google/flan-t5-small",
    ]


def test_train_command_keeps_float_precision():
    args = train_command("d.jsonl", "a", TrainSettings(learning_rate=0.000123456789), "base")
    assert args[args.index("--learning-rate") + 1] == "0.000123456789"


def test_progress_folds_events():
    progress = RunProgress()
    events = [
        {"event": "start", "name": "a", "time": 1.0, "elapsed": 0.0, "settings": {"epochs": 2}},
        {"event": "ready", "total_steps": 4, "epochs": 2, "device": "cpu", "trainable_parameters": 100, "elapsed": 1.0},
        {"event": "step", "step": 1, "total_steps": 4, "epoch": 0.5, "loss": 3.0, "samples_per_second": 5.0, "eta": 3.0, "elapsed": 2.0},
        {"event": "step", "step": 2, "total_steps": 4, "epoch": 1.0, "loss": 2.0, "samples_per_second": 6.0, "eta": 2.0, "elapsed": 3.0},
        {"event": "eval", "step": 2, "epoch": 1, "eval_loss": 2.5, "elapsed": 3.1},
        {"event": "step", "step": 3, "total_steps": 4, "epoch": 1.5, "loss": 1.0, "samples_per_second": 6.0, "eta": 1.0, "elapsed": 4.0},
        {"event": "step", "step": 4, "total_steps": 4, "epoch": 2.0, "loss": 1.5, "samples_per_second": 6.0, "eta": 0.0, "elapsed": 5.0},
        {"event": "eval", "step": 4, "epoch": 2, "eval_loss": 2.7, "elapsed": 5.1},
        {"event": "warning", "kind": "overfitting", "step": 4, "message": "eval loss has risen", "elapsed": 5.1},
    ]
    for event in events:
        progress.apply(event)
    assert progress.step == 4
    assert progress.fraction == 1.0
    assert progress.losses == [3.0, 2.0, 1.0, 1.5]
    assert progress.best_loss == 1.0
    assert progress.eval_losses == [2.5, 2.7]
    assert progress.best_eval_loss == 2.5
    assert progress.device == "cpu"
    assert progress.elapsed == 5.1
    assert progress.overfitting is True
    assert progress.overfit_warning == "eval loss has risen"

    progress.apply({"event": "done", "adapter": "a", "elapsed": 6.0})
    assert progress.outcome == "done"
    assert "'a'" in progress.message


def test_progress_warning_cleared_by_new_best():
    progress = RunProgress()
    progress.apply({"event": "eval", "eval_loss": 2.0})
    progress.apply({"event": "warning", "kind": "overfitting", "message": "rising"})
    assert progress.overfitting is True
    progress.apply({"event": "eval", "eval_loss": 1.5})
    assert progress.overfitting is False


def test_train_command_bool_options():
    args = train_command("d.jsonl", "a", TrainSettings(dora=True), "base", defaults=TrainSettings(rslora=True))
    assert "--dora" in args
    assert "--no-rslora" in args


@pytest.mark.slow
def test_run_finishes_and_adapter_listed(sample, tiny_model):
    manager = RunManager()
    run = manager.start(sample / "greetings.jsonl", "greet", TrainSettings(epochs=2), str(tiny_model))
    first = wait_for_event(run, "start", timeout=10)
    assert first < 2.0  # the CLI writes 'start' before importing torch
    assert run.wait(timeout=120) == "done", run.events[-1]

    kinds = [e["event"] for e in run.events]
    assert kinds[0] == "start"
    assert kinds.count("step") == 8
    assert kinds[-1] == "done"
    assert AdapterLibrary().names() == ["greet"]
    assert run.info.output_path.read_text().count("step") >= 1  # output went to the file

    recorded = json.loads((run.info.folder / "run.json").read_text())
    assert recorded["adapter"] == "greet"
    assert recorded["pid"] == run.info.pid
    assert recorded["command"][1:4] == ["-m", "lora_chat", "train"]

    assert manager.running() is None
    latest = manager.latest()
    assert latest is not None and latest.id == run.id
    assert latest.outcome == "done"
    assert progress_of(latest).step == 8


@pytest.mark.slow
def test_cancel_reattached_run(sample, tiny_model):
    run = RunManager().start(sample / "greetings.jsonl", "long", TrainSettings(epochs=1000), str(tiny_model))
    wait_for_event(run, "step", timeout=120)

    # A second manager (the app started again) finds the run still going.
    again = RunManager().running()
    assert again is not None
    assert again.id == run.id
    assert again.process is None
    assert any(e["event"] == "step" for e in again.events)

    again.cancel()
    assert again.wait(timeout=60) == "cancelled"
    steps = [e["step"] for e in again.events if e["event"] == "step"]
    assert steps[-1] < 4000
    assert run.wait(timeout=10) == "cancelled"
    assert run.process.wait(timeout=10) == 130
    assert AdapterLibrary().names() == []
    assert not any(p.name.startswith(".") and p.is_dir() for p in AdapterLibrary().root.iterdir() if p.name != ".lock")


@pytest.mark.slow
def test_killed_child_reported(sample, tiny_model):
    run = RunManager().start(sample / "greetings.jsonl", "killed", TrainSettings(epochs=2), str(tiny_model))
    wait_for_event(run, "start", timeout=10)
    os.kill(run.info.pid, signal.SIGKILL)
    assert run.wait(timeout=10) == "error"
    final = run.events[-1]
    assert "ended without reporting a result" in final["message"]
    assert "-9" in final["message"]

    # The synthesized event is in the log, so a later app start reads the same ending.
    latest = RunManager().latest()
    assert latest is not None
    assert latest.outcome == "error"
    assert AdapterLibrary().names() == []


def test_cli_parses_built_commands():
    from lora_chat.cli import build_parser

    args = train_command("d.jsonl", "a", TrainSettings(dora=True, rslora=False, epochs=3), "base", defaults=TrainSettings(rslora=True))
    parsed = build_parser().parse_args(args)
    assert parsed.dora is True
    assert parsed.rslora is False
    assert parsed.epochs == 3
    assert parsed.name == "a"
