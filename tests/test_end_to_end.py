"""The whole loop on the tiny stand-in: train, list, chat, delete."""

import json

import pytest

from lora_chat.cli import main

pytestmark = pytest.mark.slow


def test_train_list_chat_delete(capsys, sample, tiny_model, tmp_path):
    base = ["--base-model", str(tiny_model)]
    events = tmp_path / "events.jsonl"
    code = main(["train", str(sample / "greetings.jsonl"), "--name", "greet", "--epochs", "15", "--learning-rate", "0.01", "--events", str(events), *base])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "saved adapter 'greet'" in out

    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert logged[0]["event"] == "start"
    assert logged[-1]["event"] == "done"
    losses = [e["loss"] for e in logged if e["event"] == "step"]
    assert len(losses) == 60
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5

    assert main(["adapters", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in listed] == ["greet"]
    meta = listed[0]["metadata"]
    assert meta["dataset"]["rows"] == 32
    assert meta["settings"]["epochs"] == 15
    assert meta["final_loss"] < meta["loss_history"][0]["loss"]
    assert set(meta["versions"]) >= {"torch", "transformers", "peft"}

    assert main(["chat", "--prompt", "Hello!", "--no-adapter", "--max-new-tokens", "12", *base]) == 0
    base_answer = capsys.readouterr().out
    assert main(["chat", "--prompt", "Hello!", "--adapter", "greet", "--max-new-tokens", "12", *base]) == 0
    tuned_answer = capsys.readouterr().out
    assert base_answer.strip()
    assert tuned_answer != base_answer

    assert main(["adapters", "delete", "greet", "--yes"]) == 0
    capsys.readouterr()
    assert main(["adapters", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
