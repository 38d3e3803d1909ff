"""Sweeps: one adapter per combination of settings, on the same split and seed, ranked by eval loss."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lora_chat.core.dataset import Dataset
from lora_chat.core.errors import InputError, LoraChatError, TrainingCancelled
from lora_chat.core.library import AdapterLibrary, validate_name
from lora_chat.core.settings import TrainSettings

# Settings that only some methods use; a sweep does not repeat a method over values it ignores.
METHOD_SETTINGS = {
    "rank": ("lora",),
    "alpha": ("lora",),
    "dropout": ("lora",),
    "virtual_tokens": ("prompt-tuning", "prefix-tuning"),
}
# Short labels for adapter names: rank 4 gives "-r4", learning rate 0.001 gives "-lr0.001".
NAME_LABELS = {"rank": "r", "alpha": "a", "learning_rate": "lr", "dropout": "d", "epochs": "e", "batch_size": "b", "virtual_tokens": "vt"}


@dataclass
class SweepRun:
    """One adapter of a sweep: the settings that vary, and how its training went."""

    name: str
    changes: dict[str, Any]
    settings: TrainSettings
    eval_loss: float | None = None
    final_loss: float | None = None
    duration_s: float | None = None
    trainable_parameters: int | None = None
    error: str | None = None


@dataclass
class SweepResult:
    """The runs, best first; failed runs come last."""

    runs: list[SweepRun]
    ranked_by: str  # "eval loss", or "training loss" when no rows were held out


def _label(key: str, value: Any) -> str:
    if key == "method":
        return str(value)
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return NAME_LABELS.get(key, key.replace("_", "-")) + text


def plan_sweep(name: str, base: TrainSettings, grid: dict[str, list[Any]]) -> list[SweepRun]:
    """Return one run per combination of ``grid`` values over ``base``, named ``<name>-r4`` and so on.

    Combinations that differ only in a setting their method ignores (the rank of a
    prompt-tuning run) are trained once.
    """
    keys = [key for key, values in grid.items() if values]
    if not keys:
        raise InputError("a sweep needs at least one setting with several values, for example --rank 4,8,16")
    runs: list[SweepRun] = []
    seen: set[tuple[Any, ...]] = set()
    for values in itertools.product(*(grid[key] for key in keys)):
        changes = dict(zip(keys, values))
        method = changes.get("method", base.method)
        changes = {k: v for k, v in changes.items() if k not in METHOD_SETTINGS or method in METHOD_SETTINGS[k]}
        identity = tuple(sorted(changes.items()))
        if identity in seen:
            continue
        seen.add(identity)
        suffix = "-".join(_label(k, v) for k, v in changes.items() if len(grid[k]) > 1)
        run_name = f"{name}-{suffix}" if suffix else name
        validate_name(run_name)
        runs.append(SweepRun(run_name, changes, dataclasses.replace(base, **changes)))
    return runs


def run_sweep(
    dataset: str | Path | Dataset,
    name: str,
    base: TrainSettings,
    grid: dict[str, list[Any]],
    base_model: str,
    *,
    report: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    library: AdapterLibrary | None = None,
    device: str | None = None,
) -> SweepResult:
    """Train each planned run and return them ranked by eval loss (training loss when nothing is held out).

    Every run uses ``base.seed`` and ``base.eval_fraction``, so all see the same split.
    A run that fails is recorded with its error and the sweep goes on; a cancel stops it.
    ``report`` gets the training events of each run with ``sweep_run`` and ``sweep_index`` added.
    """
    from lora_chat.core.training import train

    library = library or AdapterLibrary()
    runs = plan_sweep(name, base, grid)
    taken = [run.name for run in runs if (library.root / run.name).exists()]
    if taken:
        raise InputError(f"adapters named {', '.join(taken)} already exist; choose another --name or delete them first")

    for index, run in enumerate(runs):
        if should_stop and should_stop():
            raise TrainingCancelled(f"sweep cancelled before {run.name}; {index} of {len(runs)} adapters were trained")

        def forward(event: dict[str, Any], run: SweepRun = run, index: int = index) -> None:
            if event.get("event") == "ready":
                run.trainable_parameters = event.get("trainable_parameters")
            if report:
                report({**event, "sweep_run": run.name, "sweep_index": index, "sweep_total": len(runs)})

        try:
            result = train(dataset, run.name, run.settings, base_model, report=forward, should_stop=should_stop, library=library, device=device)
        except TrainingCancelled:
            raise
        except LoraChatError as exc:
            run.error = str(exc)
            continue
        run.eval_loss, run.final_loss, run.duration_s = result.final_eval_loss, result.final_loss, result.duration_s

    ranked_by = "eval loss" if any(run.eval_loss is not None for run in runs) else "training loss"

    def sort_key(run: SweepRun) -> tuple[int, float]:
        value = run.eval_loss if ranked_by == "eval loss" else run.final_loss
        return (1, 0.0) if run.error or value is None else (0, value)

    return SweepResult(sorted(runs, key=sort_key), ranked_by)
