"""Evaluating an adapter on held-out rows: base model, few-shot prompting and the adapter side by side.

Each row is answered three ways (the base model, the base model with K training rows
as a few-shot prompt, and the adapter) and scored by exact match, token-level F1 and
the mean loss on the expected output. The results are plain dataclasses, so the CLI
prints them and the app shows them.
"""

from __future__ import annotations

import dataclasses
import re
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lora_chat.core.dataset import Dataset, Row, check_dataset, read_dataset
from lora_chat.core.errors import InputError, TrainingCancelled
from lora_chat.core.library import AdapterEntry, AdapterLibrary
from lora_chat.core.settings import GenerationSettings

BASE = "base"
FEW_SHOT = "few-shot"
ADAPTER = "adapter"

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation and collapse whitespace, as SQuAD scoring does (articles are kept)."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def exact_match(answer: str, expected: str) -> bool:
    return normalize_answer(answer) == normalize_answer(expected)


def token_f1(answer: str, expected: str) -> float:
    """Return the F1 of the words shared by ``answer`` and ``expected`` after normalising both."""
    got, want = normalize_answer(answer).split(), normalize_answer(expected).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


@dataclass
class RowResult:
    """One evaluated row: the expected output and, per system, the answer, its scores and its loss."""

    number: int
    input: str
    expected: str
    answers: dict[str, str] = field(default_factory=dict)
    exact: dict[str, bool] = field(default_factory=dict)
    f1: dict[str, float] = field(default_factory=dict)
    loss: dict[str, float] = field(default_factory=dict)


@dataclass
class SystemSummary:
    """The scores of one way of answering (base, few-shot or adapter) over all rows."""

    system: str
    label: str
    exact_match: float
    f1: float
    mean_loss: float
    seconds: float


@dataclass
class EvalReport:
    """The report of ``lora-chat eval``: where the rows came from, a summary per system, and the rows."""

    adapter: str
    method: str
    source: str
    few_shot: int
    summaries: list[SystemSummary]
    rows: list[RowResult]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pick_few_shot_rows(rows: list[Row], k: int, held_out: set[int] | None = None) -> list[Row]:
    """Return the first ``k`` rows (in file order) that are not held out."""
    held_out = held_out or set()
    return [r for r in rows if r.number not in held_out][:k]


def valid_rows(dataset: Dataset) -> list[Row]:
    return check_dataset(dataset, None, 10**9, 10**9).valid_rows


def training_dataset(entry: AdapterEntry) -> Dataset:
    """Read the dataset the adapter was trained on, checking that it has not changed since."""
    info = entry.meta.get("dataset") or {}
    path = info.get("path")
    if not path:
        raise InputError(f"adapter {entry.name!r} does not record its training dataset; give the rows with --dataset FILE")
    if not Path(path).is_file():
        raise InputError(f"the training dataset of {entry.name!r} is not at {path} any more; give the rows with --dataset FILE")
    dataset = read_dataset(path)
    if info.get("content_hash") and dataset.content_hash() != info["content_hash"]:
        raise InputError(
            f"{path} has changed since {entry.name!r} was trained, so its held-out row numbers may point at other rows; "
            "give the rows with --dataset FILE"
        )
    return dataset


def held_out_rows(entry: AdapterEntry) -> tuple[list[Row], list[Row], str]:
    """Return the adapter's held-out rows, its training rows, and a description of where they came from."""
    dataset = training_dataset(entry)
    numbers = set((entry.meta.get("dataset") or {}).get("eval_rows") or [])
    if not numbers:
        raise InputError(
            f"adapter {entry.name!r} has no held-out rows (it was trained with eval-fraction 0 or on fewer than 5 rows); "
            "give rows to evaluate on with --dataset FILE"
        )
    rows = valid_rows(dataset)
    held = [r for r in rows if r.number in numbers]
    train_rows = [r for r in rows if r.number not in numbers]
    return held, train_rows, f"{len(held)} held-out rows of {dataset.path}"


def evaluate_adapter(
    name: str,
    base_model: str,
    *,
    dataset: str | Path | None = None,
    few_shot: int = 0,
    library: AdapterLibrary | None = None,
    engine: Any = None,
    generation: GenerationSettings | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EvalReport:
    """Answer rows with the base model, few-shot prompting (when ``few_shot`` > 0) and the adapter, and score them.

    The rows are the adapter's held-out rows, or every valid row of ``dataset``. The
    few-shot examples are the first ``few_shot`` training rows of the adapter's dataset.
    ``report`` gets {"event": "progress", "done": n, "total": m} after each answer.
    Raises TrainingCancelled when ``should_stop()`` turns true.
    """
    from lora_chat.core.inference import ChatEngine

    library = library or AdapterLibrary()
    entry = library.get(name)
    if dataset is not None:
        data = read_dataset(dataset)
        rows = valid_rows(data)
        if not rows:
            raise InputError(f"{dataset} has no valid rows to evaluate on; check it with 'lora-chat dataset check'")
        source = f"{len(rows)} rows of {data.path}"
        train_rows = valid_rows(training_dataset(entry)) if few_shot else []
        held = set((entry.meta.get("dataset") or {}).get("eval_rows") or [])
        train_rows = [r for r in train_rows if r.number not in held]
    else:
        rows, train_rows, source = held_out_rows(entry)
    examples = [(r.input, r.output) for r in pick_few_shot_rows(train_rows, few_shot)] if few_shot else []

    engine = engine or ChatEngine(base_model, library)
    engine.attach(name)
    generation = generation or GenerationSettings(max_new_tokens=64)
    systems = [(BASE, "base model", None, None)]
    if examples:
        systems.append((FEW_SHOT, f"base model + {len(examples)}-shot prompt", None, examples))
    systems.append((ADAPTER, f"adapter {name}", name, None))

    results = [RowResult(r.number, r.input, r.output) for r in rows]
    seconds = {system: 0.0 for system, *_ in systems}
    total, done = len(rows) * len(systems), 0
    for system, _label, adapter, shots in systems:
        started = time.perf_counter()
        losses = engine.score([(r.input, r.output) for r in rows], adapter, shots)
        for result, row, loss in zip(results, rows, losses):
            if should_stop and should_stop():
                raise TrainingCancelled("evaluation cancelled")
            answer = engine.answer(row.input, adapter, generation, few_shot=shots)
            result.answers[system] = answer.text
            result.exact[system] = exact_match(answer.text, row.output)
            result.f1[system] = token_f1(answer.text, row.output)
            result.loss[system] = loss
            done += 1
            if report:
                report({"event": "progress", "done": done, "total": total})
        seconds[system] = time.perf_counter() - started

    summaries = []
    for system, label, _adapter, _shots in systems:
        count = max(len(results), 1)
        summaries.append(
            SystemSummary(
                system=system,
                label=label,
                exact_match=sum(r.exact[system] for r in results) / count,
                f1=sum(r.f1[system] for r in results) / count,
                mean_loss=sum(r.loss[system] for r in results) / count,
                seconds=seconds[system],
            )
        )
    return EvalReport(name, entry.method, source, len(examples), summaries, results)
