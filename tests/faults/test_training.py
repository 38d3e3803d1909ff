"""Stopped, killed and failing training runs: a message, an exit code, and no half adapter in the library."""

from __future__ import annotations

import collections
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lora_chat.cli import main
from lora_chat.core import paths
from lora_chat.core.library import STAGING_PREFIX, AdapterLibrary
from tests.conftest import ROOT, SAMPLE_DATA

pytestmark = pytest.mark.slow

DiskUsage = collections.namedtuple("DiskUsage", "total used free")


def library_folders():
    """Return every folder under the adapter library, hidden ones included."""
    root = paths.adapters_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def read_events(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def start_training(tiny_model, events, *extra):
    """Start ``lora-chat train`` on the sample greetings in a child process with many steps to go."""
    command = [
        sys.executable, "-m", "lora_chat", "train", str(SAMPLE_DATA / "greetings.jsonl"), "--name", "run",
        "--epochs", "200", "--base-model", str(tiny_model), "--events", str(events), *extra,
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(process, events, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["event"] == "step" for e in read_events(events)):
            return
        if process.poll() is not None:
            pytest.fail(f"training ended before its first step: {process.stderr.read()}")
        time.sleep(0.2)
    process.kill()
    pytest.fail("no step event within the time limit")


def test_ctrl_c_cancels_with_exit_130(tiny_model, tmp_path):
    events = tmp_path / "events.jsonl"
    process = start_training(tiny_model, events)
    wait_for_step(process, events)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 130
    assert "stopping after this step (Ctrl+C again to quit at once)" in err
    assert "error: training cancelled at step " in err
    assert "nothing was added to the library" in err
    assert "Traceback" not in err
    assert read_events(events)[-1]["event"] == "cancelled"
    assert AdapterLibrary().list() == []
    assert library_folders() == []


def test_killed_during_training_leaves_nothing(capsys, tiny_model, tmp_path):
    events = tmp_path / "events.jsonl"
    process = start_training(tiny_model, events)
    wait_for_step(process, events)
    process.kill()
    process.communicate(timeout=60)

    assert process.returncode == -signal.SIGKILL
    assert library_folders() == []
    assert main(["adapters", "list"]) == 0
    out, err = capsys.readouterr()
    assert "no adapters yet" in out
    assert err == ""


KILL_DURING_SAVE = """
import os, signal, sys
from lora_chat.core import library

original = library.AdapterLibrary.write_metadata

def write_then_die(self, folder, meta):
    # The weights are saved by now; the process dies before the metadata and the rename.
    if folder.name.startswith(library.STAGING_PREFIX):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, folder, meta)

library.AdapterLibrary.write_metadata = write_then_die
from lora_chat.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_during_save_cleaned_next_start(capsys, tiny_model, small_dataset, tmp_path):
    script = tmp_path / "kill_during_save.py"
    script.write_text(KILL_DURING_SAVE)
    command = [sys.executable, str(script), "train", str(small_dataset), "--name", "half", "--epochs", "1", "--base-model", str(tiny_model)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == -signal.SIGKILL, result.stderr
    leftovers = [name for name in library_folders() if name.startswith(STAGING_PREFIX)]
    assert len(leftovers) == 1
    assert (paths.adapters_dir() / leftovers[0] / "adapter_model.safetensors").is_file()
    assert AdapterLibrary().list() == []

    assert main(["adapters", "list"]) == 0
    out, err = capsys.readouterr()
    assert "warning: removed 1 unfinished adapter folder(s)" in err
    assert "stopped while saving; nothing from that run is in the library" in err
    assert "no adapters yet" in out
    assert library_folders() == []


def test_disk_full_during_save(monkeypatch, capsys, tiny_model, small_dataset):
    import peft

    def fill_disk(self, folder, **kwargs):
        with open(os.path.join(folder, "adapter_model.safetensors"), "wb") as fh:
            fh.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(peft.PeftModel, "save_pretrained", fill_disk)
    code = main(["train", str(small_dataset), "--name", "full", "--epochs", "1", "--base-model", str(tiny_model)])
    out, err = capsys.readouterr()

    assert code == 1
    assert f"error: the disk filled up while saving the adapter in {paths.adapters_dir()} (No space left on device); " in err
    assert "nothing was added to the library; free at least 2.0 MB and train again" in err
    assert "Traceback" not in err
    assert library_folders() == []


def test_too_little_space_refused_before_training(monkeypatch, capsys, tiny_model, small_dataset, tmp_path):
    monkeypatch.setattr("shutil.disk_usage", lambda path: DiskUsage(10**9, 10**9 - 500_000, 500_000))
    events = tmp_path / "events.jsonl"
    code = main(["train", str(small_dataset), "--name", "nospace", "--epochs", "1", "--base-model", str(tiny_model), "--events", str(events)])
    out, err = capsys.readouterr()

    assert code == 1
    assert f"error: not enough free disk space to save the adapter in {paths.adapters_dir()}: 2.0 MB needed, 0.5 MB free" in err
    assert "free some space and train again" in err
    assert [e for e in read_events(events) if e["event"] == "step"] == []
    assert library_folders() == []


def test_space_gone_by_save_time(monkeypatch, capsys, tiny_model, small_dataset, tmp_path):
    calls = []

    def shrinking_disk(path):
        calls.append(path)
        return DiskUsage(10**10, 0, 10**10) if len(calls) == 1 else DiskUsage(10**10, 10**10 - 1000, 1000)

    monkeypatch.setattr("shutil.disk_usage", shrinking_disk)
    events = tmp_path / "events.jsonl"
    code = main(["train", str(small_dataset), "--name", "late", "--epochs", "1", "--base-model", str(tiny_model), "--events", str(events)])
    out, err = capsys.readouterr()

    assert code == 1
    assert "error: not enough free disk space to save the adapter" in err
    assert "2.0 MB needed, 0.0 MB free" in err
    assert len([e for e in read_events(events) if e["event"] == "step"]) == 1
    assert len(calls) == 2
    assert library_folders() == []


def test_nan_loss_stops_run(monkeypatch, capsys, tiny_model, small_dataset):
    import peft

    real_get_peft_model = peft.get_peft_model

    def poisoned(model, config, *args, **kwargs):
        # Every logit becomes NaN, as after a learning rate that blew the weights up.
        model.lm_head.register_forward_hook(lambda module, inputs, output: output * float("nan"))
        return real_get_peft_model(model, config, *args, **kwargs)

    monkeypatch.setattr(peft, "get_peft_model", poisoned)
    code = main(["train", str(small_dataset), "--name", "nan", "--epochs", "3", "--base-model", str(tiny_model)])
    out, err = capsys.readouterr()

    assert code == 1
    assert "error: the loss became nan at step 1; training stopped and nothing was added to the library; try a lower learning rate (now 0.001)" in err
    assert "Traceback" not in err
    assert library_folders() == []
