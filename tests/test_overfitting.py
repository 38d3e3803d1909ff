"""Eval loss during training, the overfitting warning and early stopping."""

import json

import pytest

from lora_chat.core.dataset import Dataset, Row
from lora_chat.core.errors import SettingsError
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import TrainSettings
from lora_chat.core.training import EvalTracker, eval_interval, train


@pytest.mark.parametrize(
    ("steps_per_epoch", "eval_every", "expected"),
    [(3, 0, 3), (25, 0, 25), (26, 0, 7), (250, 0, 63), (250, 10, 10), (3, 1, 1)],
)
def test_eval_interval(steps_per_epoch, eval_every, expected):
    assert eval_interval(steps_per_epoch, eval_every) == expected


def feed(tracker, pairs):
    """Record (eval loss, training loss) pairs at steps 10, 20, ...; return the warnings."""
    return [tracker.add(10 * (i + 1), i + 1, eval_loss, train_loss) for i, (eval_loss, train_loss) in enumerate(pairs)]


def test_warning_after_rises_while_training_falls():
    tracker = EvalTracker(overfit_after=2, patience=0)
    warnings = feed(tracker, [(2.0, 3.0), (1.5, 2.5), (1.6, 2.0), (1.7, 1.5), (1.8, 1.2)])
    assert warnings[:3] == [None, None, None]
    assert "eval loss has risen for 2 evaluations in a row (1.5000 at step 20 to 1.7000 at step 40)" in warnings[3]
    assert warnings[4] is None  # one warning per rise
    assert tracker.warnings[0]["step"] == 40


def test_no_warning_when_training_loss_rises_too():
    tracker = EvalTracker(overfit_after=2, patience=0)
    assert feed(tracker, [(1.5, 1.0), (1.6, 1.2), (1.7, 1.4)]) == [None, None, None]


def test_no_warning_when_turned_off():
    tracker = EvalTracker(overfit_after=0, patience=0)
    assert feed(tracker, [(1.5, 3.0), (1.6, 2.0), (1.7, 1.0), (1.8, 0.5)]) == [None] * 4


def test_warning_again_after_a_new_rise():
    tracker = EvalTracker(overfit_after=1, patience=0)
    warnings = feed(tracker, [(1.5, 3.0), (1.6, 2.0), (1.4, 1.5), (1.5, 1.0)])
    assert [w is not None for w in warnings] == [False, True, False, True]


def test_early_stop_after_patience():
    tracker = EvalTracker(overfit_after=0, patience=2)
    feed(tracker, [(2.0, 3.0), (1.5, 2.0), (1.6, 1.5)])
    assert not tracker.should_stop_early()
    feed(tracker, [(1.55, 1.0)])
    assert tracker.should_stop_early()
    assert tracker.best_step == 20
    assert tracker.best_loss == 1.5


def test_early_stopping_needs_held_out_rows(sample, tiny_model):
    settings = TrainSettings(early_stopping=2, eval_fraction=0.0, epochs=1)
    with pytest.raises(SettingsError, match="early-stopping needs held-out rows"):
        train(sample / "greetings.jsonl", "es", settings, str(tiny_model))


@pytest.mark.slow
def test_small_run_evaluates_each_epoch(sample, tiny_model, tmp_path):
    events = tmp_path / "events.jsonl"
    settings = TrainSettings(epochs=3, eval_fraction=0.2)
    train(sample / "greetings.jsonl", "curve", settings, str(tiny_model), event_log=events)
    evals = [json.loads(line) for line in events.read_text().splitlines() if '"eval"' in line]
    assert [e["step"] for e in evals] == [4, 8, 12]
    assert [e["epoch"] for e in evals] == [1.0, 2.0, 3.0]
    meta = AdapterLibrary().get("curve").meta
    assert [h["step"] for h in meta["eval_history"]] == [4, 8, 12]
    assert meta["final_eval_loss"] == pytest.approx(meta["eval_history"][-1]["eval_loss"], abs=1e-5)


@pytest.mark.slow
def test_bigger_run_evaluates_within_epochs(tiny_model):
    rows = [Row(f"What is {i} plus one?", f"It is {i + 1}.", number=i + 1) for i in range(240)]
    settings = TrainSettings(epochs=1, eval_fraction=0.1, batch_size=8)
    result = train(Dataset(rows), "bigger", settings, str(tiny_model))
    history = result.adapter.meta["eval_history"]
    # 216 training rows make 27 steps; a quarter epoch is 7 steps.
    assert [h["step"] for h in history] == [7, 14, 21, 27]


@pytest.mark.slow
def test_early_stopping_keeps_best_adapter(sample, tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from lora_chat.core.training import evaluate_loss

    events = tmp_path / "events.jsonl"
    settings = TrainSettings(epochs=30, learning_rate=0.05, early_stopping=3, eval_fraction=0.2, overfit_warning=1)
    train(sample / "greetings.jsonl", "es", settings, str(tiny_model), event_log=events)
    meta = AdapterLibrary().get("es").meta
    stopping = meta["early_stopping"]
    assert stopping["stopped_early"] is True
    assert stopping["restored_step"] == stopping["best_step"]
    assert meta["last_eval_loss"] > stopping["best_eval_loss"]
    assert meta["final_eval_loss"] == stopping["best_eval_loss"]
    assert meta["loss_history"][-1]["step"] < 120

    logged = [json.loads(line) for line in events.read_text().splitlines()]
    warnings = [e for e in logged if e["event"] == "warning"]
    assert warnings and warnings[0]["category"] == "overfitting"

    # The saved weights are the best ones: their eval loss is the best eval loss.
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(str(tiny_model)), str(AdapterLibrary().get("es").path))
    rows = [json.loads(line) for line in (sample / "greetings.jsonl").read_text().splitlines() if line.strip()]
    held = [rows[n - 1] for n in meta["dataset"]["eval_rows"]]
    features = [
        {"input_ids": tokenizer(r["input"])["input_ids"], "labels": tokenizer(text_target=r["output"])["input_ids"]} for r in held
    ]
    loss = evaluate_loss(model, features, settings.batch_size, tokenizer.pad_token_id, torch.device("cpu"))
    assert loss == pytest.approx(stopping["best_eval_loss"], abs=1e-4)
