"""lora-chat adapters merge: a full model folder that answers like the adapter, loaded without peft."""

import json
import subprocess
import sys

import pytest

from lora_chat.cli import main
from lora_chat.core.inference import ChatEngine
from lora_chat.core.settings import GenerationSettings

PROMPTS = ["Hello!", "What's the weather like?", "Tell me a joke"]

# Loads the merged folder with peft made unimportable, and prints greedy answers as JSON.
LOAD_WITHOUT_PEFT = """
import json, sys
sys.modules["peft"] = None
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
answers = []
for prompt in json.loads(sys.argv[2]):
    with torch.inference_mode():
        ids = model.generate(**tokenizer(prompt, return_tensors="pt"), max_new_tokens=10, do_sample=False)
    answers.append(tokenizer.decode(ids[0][1:], skip_special_tokens=True).strip())
print(json.dumps({"answers": answers, "peft_loaded": "peft" in sys.modules and sys.modules["peft"] is not None}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("method_args", [["--method", "lora", "--dora"], ["--method", "ia3"]], ids=["lora-dora", "ia3"])
def test_merged_model_answers_like_adapter(capsys, sample, tiny_model, tmp_path, method_args):
    base = ["--base-model", str(tiny_model)]
    train = ["train", str(sample / "greetings.jsonl"), "--name", "greet", "--epochs", "3", "--learning-rate", "0.05"]
    assert main([*train, *method_args, *base]) == 0
    dest = tmp_path / "merged"
    assert main(["adapters", "merge", "greet", str(dest), *base]) == 0
    assert f"wrote {dest}: the base model" in capsys.readouterr().out
    assert (dest / "model.safetensors").is_file()
    assert (dest / "tokenizer.json").is_file()
    assert not (dest / "adapter_config.json").exists()
    assert json.loads((dest / "lora_chat_merge.json").read_text())["adapter"] == "greet"

    engine = ChatEngine(str(tiny_model))
    settings = GenerationSettings(max_new_tokens=10)
    expected = [engine.answer(prompt, "greet", settings).text for prompt in PROMPTS]
    base_answers = [engine.answer(prompt, None, settings).text for prompt in PROMPTS]

    loaded = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PEFT, str(dest), json.dumps(PROMPTS)], capture_output=True, text=True, check=True)
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["peft_loaded"] is False
    assert result["answers"] == expected
    if method_args[1] == "lora":
        assert result["answers"] != base_answers


def test_merge_rejects_prompt_tuning(capsys, sample, tiny_model, tmp_path):
    base = ["--base-model", str(tiny_model)]
    assert main(["train", str(sample / "greetings.jsonl"), "--name", "pt", "--method", "prompt-tuning", "--epochs", "1", *base]) == 0
    capsys.readouterr()
    assert main(["adapters", "merge", "pt", str(tmp_path / "out"), *base]) == 2
    assert "uses prompt-tuning, which learns virtual tokens" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_merge_rejects_used_folder(capsys, sample, tiny_model, tmp_path):
    base = ["--base-model", str(tiny_model)]
    assert main(["train", str(sample / "greetings.jsonl"), "--name", "g", "--epochs", "1", *base]) == 0
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["adapters", "merge", "g", str(tmp_path / "out"), *base]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
