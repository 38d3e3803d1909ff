"""Sweeps: planning the runs, and training and ranking them from the command line."""

import json

import pytest

from lora_chat.cli import main
from lora_chat.core.errors import InputError
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import TrainSettings
from lora_chat.core.sweep import plan_sweep


def test_plan_names_by_rank():
    runs = plan_sweep("demo", TrainSettings(), {"rank": [4, 8, 16]})
    assert [run.name for run in runs] == ["demo-r4", "demo-r8", "demo-r16"]
    assert [run.settings.rank for run in runs] == [4, 8, 16]
    assert all(run.settings.seed == 42 for run in runs)


def test_plan_skips_settings_a_method_ignores():
    runs = plan_sweep("demo", TrainSettings(), {"method": ["lora", "prompt-tuning"], "rank": [4, 8]})
    assert [run.name for run in runs] == ["demo-lora-r4", "demo-lora-r8", "demo-prompt-tuning"]
    assert runs[2].changes == {"method": "prompt-tuning"}


def test_plan_learning_rate_labels():
    runs = plan_sweep("demo", TrainSettings(), {"learning_rate": [0.001, 0.03]})
    assert [run.name for run in runs] == ["demo-lr0.001", "demo-lr0.03"]


def test_plan_needs_values():
    with pytest.raises(InputError, match="a sweep needs at least one setting"):
        plan_sweep("demo", TrainSettings(), {})


def test_sweep_rejects_taken_names(capsys, sample, tiny_model):
    AdapterLibrary().ensure_root()
    (AdapterLibrary().root / "greet-r8").mkdir()
    code = main(["sweep", str(sample / "greetings.jsonl"), "--name", "greet", "--rank", "4,8", "--base-model", str(tiny_model)])
    assert code == 2
    assert "adapters named greet-r8 already exist" in capsys.readouterr().err


def test_sweep_rank_list_checked(capsys, sample):
    with pytest.raises(SystemExit):
        main(["sweep", str(sample / "greetings.jsonl"), "--rank", "4,x"])
    assert "rank: expected a whole number" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_trains_and_ranks(capsys, sample, tiny_model):
    args = ["sweep", str(sample / "greetings.jsonl"), "--name", "greet", "--rank", "2,8", "--method", "lora,ia3"]
    assert main([*args, "--epochs", "2", "--eval-fraction", "0.2", "--json", "--base-model", str(tiny_model)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ranked_by"] == "eval loss"
    runs = result["runs"]
    assert sorted(run["name"] for run in runs) == ["greet-ia3", "greet-lora-r2", "greet-lora-r8"]
    losses = [run["eval_loss"] for run in runs]
    assert losses == sorted(losses)
    assert all(run["error"] is None and run["duration_s"] > 0 for run in runs)
    assert {run["name"]: run["trainable_parameters"] for run in runs}["greet-lora-r8"] == 4 * {r["name"]: r["trainable_parameters"] for r in runs}["greet-lora-r2"]

    library = AdapterLibrary()
    metas = [library.get(run["name"]).meta for run in runs]
    assert len({tuple(meta["dataset"]["eval_rows"]) for meta in metas}) == 1
    assert {meta["settings"]["seed"] for meta in metas} == {42}
    for run, meta in zip(runs, metas):
        assert meta["final_eval_loss"] == pytest.approx(run["eval_loss"])
