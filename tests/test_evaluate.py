"""lora-chat eval: scores, held-out rows, few-shot prompting, and the command line."""

import json
import shutil

import pytest

from lora_chat.cli import main
from lora_chat.core.dataset import Row
from lora_chat.core.evaluate import exact_match, normalize_answer, pick_few_shot_rows, token_f1
from lora_chat.core.inference import FEW_SHOT_MAX_TOKENS, ChatEngine, few_shot_prompt


@pytest.mark.parametrize(
    ("answer", "expected", "exact", "f1"),
    [
        ("Paris.", "paris", True, 1.0),
        ("The capital is Paris", "Paris", False, 0.4),
        ("Arr, matey!", "arr matey", True, 1.0),
        ("London", "Paris", False, 0.0),
        ("", "Paris", False, 0.0),
        ("", "", True, 1.0),
        ("ho ho ho", "ho", False, 0.5),
    ],
)
def test_scores(answer, expected, exact, f1):
    assert exact_match(answer, expected) is exact
    assert token_f1(answer, expected) == pytest.approx(f1)


def test_normalize_answer():
    assert normalize_answer("  Hello,   WORLD! ") == "hello world"


def test_few_shot_rows_skip_held_out():
    rows = [Row(f"in {i}", f"out {i}", number=i) for i in range(1, 8)]
    assert [r.number for r in pick_few_shot_rows(rows, 3, {1, 3})] == [2, 4, 5]
    assert pick_few_shot_rows(rows, 0) == []


def test_few_shot_prompt_layout():
    text = few_shot_prompt([("Hi", "Hello!"), ("Bye", "Goodbye!")], "Hey")
    assert text == "Input: Hi\nOutput: Hello!\n\nInput: Bye\nOutput: Goodbye!\n\nInput: Hey\nOutput:"


def test_few_shot_prompt_drops_long_examples(tiny_model):
    engine = ChatEngine(str(tiny_model))
    long_example = ("word " * 300, "answer " * 200)
    text, used = engine.build_few_shot_prompt([("Hi", "Hello!"), long_example, long_example], "Hey")
    assert used == 1
    assert text.startswith("Input: Hi\nOutput: Hello!")
    assert len(engine.tokenizer(text)["input_ids"]) <= FEW_SHOT_MAX_TOKENS
    answer = engine.answer("Hey", None, few_shot=[("Hi", "Hello!")])
    assert answer.few_shot == 1
    assert answer.label == "none (base model) + 1-shot prompt"


@pytest.mark.slow
def test_eval_command(capsys, sample, tiny_model, tmp_path):
    base = ["--base-model", str(tiny_model)]
    data = tmp_path / "greetings.jsonl"
    shutil.copy(sample / "greetings.jsonl", data)
    assert main(["train", str(data), "--name", "greet", "--epochs", "3", "--eval-fraction", "0.2", *base]) == 0
    capsys.readouterr()

    assert main(["eval", "greet", "--few-shot", "2", "--json", "--max-new-tokens", "6", *base]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["adapters", "show", "greet", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]

    assert [r["number"] for r in report["rows"]] == meta["dataset"]["eval_rows"]
    assert len(report["rows"]) == 6
    assert report["few_shot"] == 2
    assert [s["system"] for s in report["summaries"]] == ["base", "few-shot", "adapter"]
    assert report["summaries"][1]["label"] == "base model + 2-shot prompt"
    for row in report["rows"]:
        assert set(row["answers"]) == {"base", "few-shot", "adapter"}
        for system, text in row["answers"].items():
            assert row["exact"][system] == exact_match(text, row["expected"])
            assert row["loss"][system] > 0
    adapter = report["summaries"][2]
    assert adapter["mean_loss"] == pytest.approx(sum(r["loss"]["adapter"] for r in report["rows"]) / 6)
    assert adapter["mean_loss"] != report["summaries"][0]["mean_loss"]

    assert main(["eval", "greet", "--few-shot", "0", "--max-new-tokens", "4", *base]) == 0
    text = capsys.readouterr().out
    assert "adapter greet (lora) on 6 held-out rows of" in text
    assert "few-shot" not in text
    assert "expected" in text

    data.write_text(data.read_text().replace("Hello!", "Hello there!"))
    assert main(["eval", "greet", *base]) == 2
    assert "has changed since 'greet' was trained" in capsys.readouterr().err
    assert main(["eval", "greet", "--dataset", str(sample / "pirate.csv"), "--few-shot", "0", "--json", "--max-new-tokens", "4", *base]) == 0
    assert len(json.loads(capsys.readouterr().out)["rows"]) > 6


def test_eval_without_held_out_rows(capsys, sample, tiny_model):
    base = ["--base-model", str(tiny_model)]
    assert main(["train", str(sample / "greetings.jsonl"), "--name", "all", "--epochs", "1", "--eval-fraction", "0", *base]) == 0
    capsys.readouterr()
    assert main(["eval", "all", *base]) == 2
    assert "has no held-out rows" in capsys.readouterr().err


def test_chat_few_shot_needs_rows(capsys, tiny_model):
    assert main(["chat", "--no-adapter", "--few-shot", "2", "--prompt", "Hi", "--base-model", str(tiny_model)]) == 2
    assert "--few-shot needs rows" in capsys.readouterr().err
