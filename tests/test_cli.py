import json

import pytest

from lora_chat.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dataset_check_ok(capsys, sample, tiny_model):
    code, out, err = run(capsys, "dataset", "check", str(sample / "greetings.jsonl"), "--base-model", str(tiny_model))
    assert code == 0
    assert "32 rows, 32 valid" in out
    assert "input tokens: min" in out


def test_dataset_check_no_valid_rows_exits_2(capsys, tmp_path, tiny_model):
    path = tmp_path / "d.jsonl"
    path.write_text('{"input": "", "output": "x"}\n')
    code, out, err = run(capsys, "dataset", "check", str(path), "--base-model", str(tiny_model))
    assert code == 2
    assert "row 1 (line 1): input is empty" in out


def test_broken_dataset_one_line_error(capsys, tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[{")
    code, out, err = run(capsys, "dataset", "check", str(path))
    assert code == 2
    assert err.startswith(f"error: {path}: invalid JSON at line 1")
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_missing_model_is_one_sentence(capsys, sample):
    code, out, err = run(capsys, "chat", "--prompt", "hi", "--base-model", "google/flan-t5-small")
    assert code == 1
    assert "error: base model google/flan-t5-small is not in the Hugging Face cache" in err
    assert "--base-model" in err
    assert "Traceback" not in err


def test_train_rejects_bad_option_with_exit_2(capsys, sample):
    with pytest.raises(SystemExit) as info:
        main(["train", str(sample / "greetings.jsonl"), "--name", "x", "--rank", "0"])
    assert info.value.code == 2
    assert "rank: 0 is out of range" in capsys.readouterr().err


def test_train_rejects_bad_name_before_loading(capsys, sample):
    code, out, err = run(capsys, "train", str(sample / "greetings.jsonl"), "--name", "../evil", "--base-model", "/nonexistent")
    assert code == 2
    assert "path separator" in err


def test_train_unknown_target_module_lists_names(capsys, sample, tiny_model):
    code, out, err = run(capsys, "train", str(sample / "greetings.jsonl"), "--name", "x", "--target-modules", "q_proj", "--base-model", str(tiny_model))
    assert code == 2
    assert "target-modules: q_proj match no layer" in err
    assert "q, v, wi_0, wi_1, wo" in err


def test_adapters_list_empty(capsys):
    code, out, err = run(capsys, "adapters", "list")
    assert code == 0
    assert "no adapters yet" in out
    code, out, err = run(capsys, "adapters", "list", "--json")
    assert json.loads(out) == []


def test_unknown_adapter_exit_2(capsys):
    code, out, err = run(capsys, "adapters", "show", "nope")
    assert code == 2
    assert "no adapter named 'nope'" in err


def test_delete_without_yes_off_terminal(capsys, monkeypatch, tmp_path):
    from tests.test_library import make_adapter
    from lora_chat.core import paths

    make_adapter(paths.adapters_dir() / "a")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, out, err = run(capsys, "adapters", "delete", "a")
    assert code == 2
    assert "--yes" in err
    assert (paths.adapters_dir() / "a").exists()


def test_closed_pipe_exits_quietly(tmp_path):
    import os
    import subprocess
    import sys

    from tests.test_library import make_adapter

    home = tmp_path / "home"
    for i in range(200):
        make_adapter(home / "data" / "adapters" / f"a{i:03d}", meta={"name": f"a{i:03d}"})
    env = {**os.environ, "LORA_CHAT_HOME": str(home)}
    result = subprocess.run(
        f"{sys.executable} -m lora_chat adapters list --json | head -c 10",
        shell=True, env=env, capture_output=True, text=True, check=True,
    )
    assert len(result.stdout) == 10
    assert "error" not in result.stderr
    assert "Traceback" not in result.stderr


class FakeTerminal:
    """A stream that says it is a terminal and records what was written."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_on_terminal_keeps_eval_lines():
    from lora_chat.cli import _ProgressPrinter

    terminal = FakeTerminal()
    printer = _ProgressPrinter(terminal)
    printer({"event": "ready", "total_steps": 2, "train_rows": 1, "eval_rows": 1, "epochs": 1, "trainable_parameters": 10, "device": "cpu"})
    printer({"event": "step", "step": 1, "epoch": 0.5, "loss": 2.0, "samples_per_second": 1.0, "eta": 1})
    printer({"event": "step", "step": 2, "epoch": 1.0, "loss": 1.5, "samples_per_second": 1.0, "eta": 0})
    printer({"event": "eval", "step": 2, "epoch": 1, "eval_loss": 1.25})
    printer({"event": "done"})
    lines = [line.strip() for line in terminal.text.replace("\r", "\n").split("\n") if line.strip()]
    assert lines[0] == "training 1 row (1 held out), 1 epoch, 2 steps, 10 trainable parameters, on cpu"
    assert "step 2 (epoch 1): eval loss 1.2500" in lines
    assert lines[-1].startswith("step 2/2 [####################] epoch 1.00 loss 1.5000 eval 1.2500")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (None, False)),
        (["--debug"], (None, True)),
        (["--base-model", "/models/x"], ("/models/x", False)),
        (["--base-model=/models/x", "--debug"], ("/models/x", True)),
    ],
)
def test_app_options_parsed_alone(argv, expected):
    from lora_chat.cli import _app_only_args

    args = _app_only_args(argv)
    assert (args.base_model, args.debug) == expected


@pytest.mark.parametrize("argv", [["--base-model"], ["train", "rows.jsonl"], ["adapters", "list"], ["app"], ["--help"], ["--version"], ["--bogus"]])
def test_other_arguments_use_full_parser(argv):
    from lora_chat.cli import _app_only_args

    assert _app_only_args(argv) is None


def test_missing_value_reported_once(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--base-model"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("expected one argument") == 1
