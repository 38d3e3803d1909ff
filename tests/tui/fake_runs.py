"""A run manager whose runs are event logs that the test writes, with no child process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lora_chat.core.runs import RunInfo, RunManager, TrainingRun
from lora_chat.core.settings import TrainSettings


class FakeRun(TrainingRun):
    """A run whose 'process' ends when the test sets ``ended``; cancel() writes a ``cancelled`` event."""

    def __init__(self, info: RunInfo) -> None:
        super().__init__(info)
        self.ended = False
        self.cancel_calls = 0

    def _child_ended(self) -> bool:
        return self.ended

    def write(self, *events: dict[str, Any]) -> None:
        with self.info.events_path.open("a", encoding="utf-8") as fh:
            for event in events:
                fh.write(json.dumps(event) + "\n")

    def cancel(self) -> None:
        self.cancel_calls += 1
        self.info.cancel_requested = True
        self.write({"event": "cancelled", "message": "training cancelled at step 3 of 40; nothing was added to the library"})
        self.ended = True


class FakeRunManager(RunManager):
    """Starts FakeRuns; ``previous`` is what latest() returns (the run of an earlier app session)."""

    def __init__(self, root: Path, previous: TrainingRun | None = None) -> None:
        super().__init__(root)
        self.started: list[FakeRun] = []
        self.previous = previous

    def start(self, dataset: str | Path, name: str, settings: TrainSettings, base_model: str, device: str | None = None) -> FakeRun:
        folder = self.root / f"run-{len(self.started) + 1}"
        folder.mkdir(parents=True)
        info = RunInfo(folder.name, folder, 0, name, str(dataset), base_model, ["lora-chat", "train"], time.time())
        info.save()
        run = FakeRun(info)
        run.settings = settings
        self.started.append(run)
        return run

    def latest(self) -> TrainingRun | None:
        return self.previous


def step_events(first: int, last: int, total: int, epochs: int = 10) -> list[dict[str, Any]]:
    """Step events with a falling loss and fixed timings, so screenshots do not change."""
    per_epoch = total // epochs
    return [
        {
            "event": "step",
            "step": step,
            "total_steps": total,
            "epoch": round(step / per_epoch, 3),
            "loss": round(3.0 / (1 + step * 0.1), 5),
            "samples_per_second": 12.5,
            "eta": round((total - step) * 0.5, 1),
            "elapsed": round(step * 0.5, 1),
        }
        for step in range(first, last + 1)
    ]


def ready_events(name: str, total: int = 40, epochs: int = 10) -> list[dict[str, Any]]:
    return [
        {"event": "start", "name": name, "base_model": "fake/base", "settings": {"epochs": epochs}, "elapsed": 0.0},
        {"event": "status", "message": "loading the tokenizer", "elapsed": 0.1},
        {"event": "ready", "total_steps": total, "epochs": epochs, "steps_per_epoch": total // epochs, "train_rows": 29, "eval_rows": 3,
         "trainable_parameters": 4608, "device": "cpu", "processes": 1, "elapsed": 1.0},
    ]
