"""Broken, foreign and contested adapters: clear messages, the user's files untouched, the library consistent."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil

import pytest

from lora_chat.cli import main
from lora_chat.core import paths
from lora_chat.core.errors import (
    AdapterError,
    AdapterNameError,
    AdapterNotFoundError,
    BaseModelMismatchError,
    InputError,
    LibraryBusyError,
)
from lora_chat.core.inference import ChatEngine
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import GenerationSettings

SHORT = GenerationSettings(max_new_tokens=6)


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def refuse_loading(monkeypatch):
    def must_not_load(self, folder, name):
        raise AssertionError("the adapter weights were loaded")

    monkeypatch.setattr(ChatEngine, "_load_adapter", must_not_load)


# Missing or corrupt files ---------------------------------------------------------------


def _cut_weights(folder):
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


def _corrupt_header(folder):
    weights = folder / "adapter_model.safetensors"
    data = weights.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    key = next(k for k in header if k != "__metadata__")
    # A smaller shape keeps the header no longer than before, so it can be padded in place.
    header[key]["shape"] = [1 for _ in header[key]["shape"]]
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= header_len
    weights.write_bytes(data[:8] + text.ljust(header_len) + data[8 + header_len :])


BREAKAGES = [
    ("missing weights", lambda f: (f / "adapter_model.safetensors").unlink(), "missing adapter weights (adapter_model.safetensors)"),
    ("cut weights", _cut_weights, "adapter_model.safetensors is cut off"),
    ("corrupt header", _corrupt_header, "adapter_model.safetensors is corrupt: tensor"),
    ("missing config", lambda f: (f / "adapter_config.json").unlink(), "missing adapter_config.json"),
    ("config not JSON", lambda f: (f / "adapter_config.json").write_text("{\"peft_type\": "), "adapter_config.json is not valid JSON"),
    ("config a list", lambda f: (f / "adapter_config.json").write_text("[]"), "adapter_config.json is not a JSON object"),
]


@pytest.mark.parametrize("label, damage, problem", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_broken_adapter_listed_and_refused(monkeypatch, library_adapter, tiny_model, label, damage, problem):
    folder = library_adapter("broken")
    damage(folder)
    before = digests(folder)
    entry = {e.name: e for e in AdapterLibrary().list()}["broken"]
    assert entry.broken
    assert problem in entry.problem

    refuse_loading(monkeypatch)
    engine = ChatEngine(str(tiny_model))
    with pytest.raises(AdapterError) as info:
        engine.attach("broken")
    assert f"adapter 'broken' is broken ({entry.problem}); delete it or import it again" == str(info.value)
    assert digests(folder) == before


def test_broken_adapter_cli_messages(capsys, library_adapter, tiny_model):
    _cut_weights(library_adapter("broken"))
    library_adapter("fine")
    assert main(["adapters", "list"]) == 0
    out = capsys.readouterr().out
    assert "broken  BROKEN: adapter_model.safetensors is cut off" in out
    assert "\nfine " in out

    code = main(["chat", "--adapter", "broken", "--prompt", "hi", "--base-model", str(tiny_model)])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: adapter 'broken' is broken (adapter_model.safetensors is cut off" in err
    assert "Traceback" not in err


def test_import_rejects_broken_folder(library_adapter, tmp_path):
    source = tmp_path / "outside"
    shutil.copytree(library_adapter("src"), source)
    _corrupt_header(source)
    with pytest.raises(AdapterError, match="cannot be imported: adapter_model.safetensors is corrupt"):
        AdapterLibrary().import_folder(source, "copy")
    assert "copy" not in AdapterLibrary().names()


# Adapters from other peft versions -------------------------------------------------------


def test_newer_peft_keys_load_from_clean_copy(library_adapter, tiny_model):
    folder = library_adapter("future")
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config.update(lora_future_option=True, zeta_scaling={"mode": "new"})
    config_path.write_text(json.dumps(config, indent=2))
    before = digests(folder)

    engine = ChatEngine(str(tiny_model))
    engine.attach("future")
    answer = engine.answer("Hello!", "future", SHORT)
    assert answer.adapter == "future"
    assert engine.notes == [
        "adapter 'future': ignored settings this peft version does not know: lora_future_option, zeta_scaling"
    ]
    assert digests(folder) == before


def test_newer_peft_keys_cli_warns(capsys, library_adapter, tiny_model):
    folder = library_adapter("future")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["lora_future_option"] = 3
    (folder / "adapter_config.json").write_text(json.dumps(config))
    code = main(["chat", "--adapter", "future", "--prompt", "Hello!", "--max-new-tokens", "4", "--base-model", str(tiny_model)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "warning: adapter 'future': ignored settings this peft version does not know: lora_future_option" in err


def test_unknown_method_asks_for_newer_peft(monkeypatch, library_adapter, tiny_model):
    folder = library_adapter("alien")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["peft_type"] = "FUTURE_METHOD"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    refuse_loading(monkeypatch)
    with pytest.raises(AdapterError, match=r"adapter method 'FUTURE_METHOD' is not supported by peft .*; upgrade peft"):
        ChatEngine(str(tiny_model)).attach("alien")


# Trainer checkpoints -------------------------------------------------------------------------


def _trainer_run(trained_adapter, parent):
    for step in (5, 45, 10):
        shutil.copytree(trained_adapter, parent / f"checkpoint-{step}")
    (parent / "checkpoint-99").mkdir()  # a checkpoint with no adapter in it is not offered
    return parent


def test_checkpoint_parent_import_offers_last(capsys, trained_adapter, tmp_path):
    run = _trainer_run(trained_adapter, tmp_path / "run")
    code = main(["adapters", "import", str(run), "--name", "mine"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"contains Trainer checkpoints but no adapter_config.json; import the last one with: lora-chat adapters import {run / 'checkpoint-45'} --name mine" in err

    assert main(["adapters", "import", str(run / "checkpoint-45"), "--name", "mine"]) == 0
    assert AdapterLibrary().get("mine").problem is None


def test_checkpoint_folder_in_library_listed(trained_adapter):
    run = _trainer_run(trained_adapter, paths.adapters_dir() / "run")
    entry = AdapterLibrary().get("run")
    assert entry.problem == (
        f"contains Trainer checkpoints but no adapter_config.json; import the last one with: "
        f"lora-chat adapters import {run / 'checkpoint-45'} --name NAME"
    )


# Another base model --------------------------------------------------------------------------


def test_other_base_model_refused_before_loading(monkeypatch, capsys, library_adapter, tiny_model, other_tiny_model):
    library_adapter("greet")
    refuse_loading(monkeypatch)
    engine = ChatEngine(str(other_tiny_model))
    with pytest.raises(BaseModelMismatchError) as info:
        engine.attach("greet")
    message = str(info.value)
    assert f"adapter 'greet' was trained on {tiny_model}, but the base model loaded is {other_tiny_model}" in message
    assert f"start with --base-model {tiny_model}" in message

    code = main(["chat", "--adapter", "greet", "--prompt", "hi", "--base-model", str(other_tiny_model)])
    assert code == 2
    assert "was trained on" in capsys.readouterr().err


# Names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "new, message",
    [
        ("a/b", "contains a path separator"),
        ("..", "must not start with '.'"),
        ("../outside", "contains a path separator"),
        ("nul", "is reserved"),
        ("COM1.v2", "is reserved"),
        ("ends.", "must not end with '.'"),
        ("other", "an adapter named 'other' already exists"),
        ("OTHER", "an adapter named 'OTHER' already exists"),
    ],
)
def test_rename_rejects_bad_names(capsys, library_adapter, new, message):
    library_adapter("mine")
    library_adapter("other")
    code = main(["adapters", "rename", "mine", new])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert AdapterLibrary().names() == ["mine", "other"]
    assert not (paths.adapters_dir().parent / "outside").exists()


def test_rename_changes_case_of_own_name(library_adapter):
    library_adapter("mine")
    assert AdapterLibrary().rename("mine", "Mine").name == "Mine"


def test_import_and_train_reject_bad_names(capsys, trained_adapter, small_dataset):
    for argv in (["adapters", "import", str(trained_adapter), "--name", "../x"], ["train", str(small_dataset), "--name", "aux", "--base-model", "/no/model"]):
        code = main(argv)
        assert code == 2
        assert "adapter name" in capsys.readouterr().err
    assert AdapterLibrary().list() == []


# Two processes at once -------------------------------------------------------------------------


def _contend(root, action, index, barrier, results):
    library = AdapterLibrary(root)
    barrier.wait()
    try:
        if action == "rename":
            library.rename("shared", f"renamed-{index}")
        else:
            library.delete("shared")
        results.put((action, index, "ok"))
    except (AdapterNotFoundError, LibraryBusyError) as exc:
        results.put((action, index, type(exc).__name__))
    except BaseException as exc:  # reported to the test, which fails on it
        results.put((action, index, f"crash: {exc!r}"))


def test_concurrent_rename_and_delete(library_adapter):
    library_adapter("shared")
    root = paths.adapters_dir()
    context = multiprocessing.get_context("spawn")
    jobs = [("rename", i) for i in range(3)] + [("delete", i) for i in range(3)]
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    processes = [context.Process(target=_contend, args=(root, action, i, barrier, results)) for action, i in jobs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    outcomes = [results.get(timeout=5) for _ in jobs]

    assert [o for o in outcomes if o[2].startswith("crash")] == []
    winners = [o for o in outcomes if o[2] == "ok"]
    assert len(winners) == 1
    remaining = sorted(p.name for p in root.iterdir() if p.name != ".lock")
    action, index, _ = winners[0]
    assert remaining == ([f"renamed-{index}"] if action == "rename" else [])
    if action == "rename":
        assert AdapterLibrary(root).get(f"renamed-{index}").problem is None


def _hold_lock(root, held, release):
    with AdapterLibrary(root).lock():
        held.set()
        release.wait(30)


def test_busy_library_message():
    root = paths.adapters_dir()
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(root, held, release))
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(LibraryBusyError, match="another lora-chat process is changing the adapter library; try again in a moment"):
            with AdapterLibrary(root).lock(timeout=0.2):
                pass
    finally:
        release.set()
        holder.join(30)


# Deleting the adapter the chat uses ---------------------------------------------------------------


def test_release_then_delete_adapter_in_use(library_adapter, tiny_model):
    library_adapter("inuse")
    engine = ChatEngine(str(tiny_model))
    base_before = engine.answer("Hello!", None, SHORT).text
    engine.answer("Hello!", "inuse", SHORT)

    engine.release("inuse")
    AdapterLibrary().delete("inuse")
    assert not (paths.adapters_dir() / "inuse").exists()
    assert engine.loaded == {}
    assert engine.answer("Hello!", None, SHORT).text == base_before


def test_adapter_deleted_elsewhere_while_in_use(library_adapter, tiny_model):
    library_adapter("inuse")
    engine = ChatEngine(str(tiny_model))
    base_before = engine.answer("Hello!", None, SHORT).text
    engine.answer("Hello!", "inuse", SHORT)

    AdapterLibrary().delete("inuse")  # as another copy of the app would
    with pytest.raises(AdapterNotFoundError, match="adapter 'inuse' is no longer in the library .*choose another adapter, or none"):
        engine.answer("Hello!", "inuse", SHORT)
    assert engine.loaded == {}
    assert engine.answer("Hello!", None, SHORT).text == base_before
