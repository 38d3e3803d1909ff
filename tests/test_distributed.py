"""Training under accelerate launch with two CPU processes saves the adapter one process would save."""

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from lora_chat.cli import main
from lora_chat.core.library import AdapterLibrary

pytestmark = pytest.mark.slow

TRAIN_OPTIONS = ["--epochs", "3", "--dropout", "0", "--eval-fraction", "0.2", "--learning-rate", "0.01"]


def test_two_processes_match_one(capsys, sample, tiny_model, tmp_path, lora_home):
    dataset = str(sample / "greetings.jsonl")
    events = tmp_path / "events.jsonl"
    # accelerate 1.x starts several CPU processes through torchrun, which --multi_gpu selects;
    # with --cpu alone it starts one process unless MPI is set up. On a machine without a
    # GPU each process then trains on the CPU.
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "lora_chat", "train", dataset, "--name", "two", "--base-model", str(tiny_model), "--events", str(events), *TRAIN_OPTIONS,
    ]
    env = dict(os.environ, LORA_CHAT_HOME=str(lora_home), CUDA_VISIBLE_DEVICES="")
    run = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("saved adapter 'two'") == 1

    assert main(["train", dataset, "--name", "one", "--base-model", str(tiny_model), *TRAIN_OPTIONS]) == 0
    capsys.readouterr()

    library = AdapterLibrary()
    two, one = library.get("two").meta, library.get("one").meta
    assert two["processes"] == 2
    assert one["processes"] == 1
    assert two["dataset"]["eval_rows"] == one["dataset"]["eval_rows"]
    assert two["final_loss"] == pytest.approx(one["final_loss"], abs=1e-4)
    assert two["final_eval_loss"] == pytest.approx(one["final_eval_loss"], abs=1e-4)
    for a, b in zip(two["loss_history"], one["loss_history"]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)

    weights_two = load_file(str(library.get("two").path / "adapter_model.safetensors"))
    weights_one = load_file(str(library.get("one").path / "adapter_model.safetensors"))
    assert weights_two.keys() == weights_one.keys()
    for key in weights_one:
        assert (weights_two[key] - weights_one[key]).abs().max() < 1e-5, key

    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in logged].count("start") == 1
    assert [e["event"] for e in logged].count("done") == 1
    assert len([e for e in logged if e["event"] == "step"]) == len(one["loss_history"])
