"""A broken settings file, an unwritable data directory, no network, and --debug."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from lora_chat.cli import main
from lora_chat.core import paths
from lora_chat.core.errors import LoraChatError
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import Settings, load_settings, save_settings


@pytest.fixture(autouse=True)
def restore_log_handlers():
    """Drop the terminal handler that ``--debug`` adds, so no later test logs to a closed capture stream."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    root.handlers[:] = before


def write_settings(text: str | bytes):
    path = paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


# Settings file ---------------------------------------------------------------------------


def test_broken_settings_warn_with_line(capsys, sample, tiny_model):
    path = write_settings('base_model = "x"\n[train]\nrank = = 4\n')
    before = path.read_bytes()
    code = main(["dataset", "check", str(sample / "greetings.jsonl"), "--base-model", str(tiny_model)])
    out, err = capsys.readouterr()

    assert code == 0
    assert err.startswith(f"warning: {path} is not valid TOML (")
    assert "at line 3, column 8" in err
    assert "using the default settings and leaving the file as it is" in err
    assert err.count("\n") == 1
    # The default limits are used: 256 input tokens, 128 output tokens.
    assert "ready to train" in out
    assert path.read_bytes() == before


def test_bad_setting_values_fall_back(capsys):
    path = write_settings('[train]\nrank = "big"\nepochs = 3\ncolour = "red"\n[generation]\ntemperature = 0\n')
    before = path.read_bytes()
    settings = load_settings()
    assert settings.train.rank == 8
    assert settings.train.epochs == 3
    assert settings.generation.temperature == 0.7
    assert f"{path} [train]: rank: expected a whole number, got 'big'; using the default" in settings.warnings
    assert f"{path} [train]: unknown setting 'colour' ignored" in settings.warnings
    assert any("temperature: 0.0 is out of range" in w for w in settings.warnings)
    assert path.read_bytes() == before


def test_settings_not_utf8_use_defaults():
    path = write_settings(b'base_model = "caf\xe9"\n')
    settings = load_settings()
    assert settings.base_model == "google/flan-t5-small"
    assert len(settings.warnings) == 1
    assert settings.warnings[0].startswith(f"cannot read {path} (")
    assert "using the default settings" in settings.warnings[0]


def test_save_settings_unwritable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(LoraChatError, match=r"cannot save the settings to .*a-file/settings.toml \(.+\); the old file is unchanged"):
        save_settings(Settings(), blocker / "settings.toml")


# Data directory that cannot be written ---------------------------------------------------------------


@pytest.fixture
def unwritable_home(tmp_path, monkeypatch):
    """Point LORA_CHAT_HOME below a regular file: no folder can be created there, even by root."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    home = blocker / "home"
    monkeypatch.setenv("LORA_CHAT_HOME", str(home))
    return home


def test_unwritable_home_train_and_import(capsys, unwritable_home, small_dataset, trained_adapter, tiny_model):
    expected = f"error: cannot create the adapter library at {unwritable_home / 'data' / 'adapters'} (Not a directory); set LORA_CHAT_HOME to a writable folder\n"
    for argv in (
        ["train", str(small_dataset), "--name", "x", "--epochs", "1", "--base-model", str(tiny_model)],
        ["adapters", "import", str(trained_adapter), "--name", "x"],
    ):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 1
        assert err.endswith(expected)
        assert "Traceback" not in err


def test_unwritable_home_list_still_works(capsys, unwritable_home):
    assert main(["adapters", "list"]) == 0
    assert "no adapters yet" in capsys.readouterr().out


def test_read_only_library_message(monkeypatch, tmp_path):
    # Root may write to any folder, and these tests may run as root, so the permission check
    # itself is made to fail; the message is the one a user without write access gets.
    library = AdapterLibrary(tmp_path / "adapters")
    library.root.mkdir()
    real_access = __import__("os").access
    monkeypatch.setattr("os.access", lambda path, mode: False if str(path) == str(library.root) else real_access(path, mode))
    with pytest.raises(LoraChatError, match=f"the adapter library {library.root} is read-only; set LORA_CHAT_HOME to a writable folder"):
        library.ensure_root()


# No network and no cached base model ----------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Turn the hub on (HF_HUB_OFFLINE unset) with an empty cache, and fail any real connection."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))

    def no_connect(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "create_connection", no_connect)


def test_missing_model_one_sentence_no_hang(monkeypatch, capsys, no_network):
    from lora_chat.core import model

    monkeypatch.setattr(model, "hub_reachable", lambda timeout=5.0: False)
    started = time.monotonic()
    code = main(["chat", "--prompt", "hi", "--base-model", "google/flan-t5-small"])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()

    assert code == 1
    assert err.endswith(
        "error: base model google/flan-t5-small is not in the Hugging Face cache and the Hugging Face hub cannot be "
        "reached; run lora-chat once with network access to download it, or point --base-model at a local model folder\n"
    )
    assert "Traceback" not in err
    assert elapsed < 20


def test_hub_check_bounded_when_lookup_hangs(monkeypatch):
    from lora_chat.core.model import hub_reachable

    def slow_lookup(*args, **kwargs):
        time.sleep(2)
        raise socket.gaierror("name lookup timed out")

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    started = time.monotonic()
    assert hub_reachable(timeout=0.3) is False
    assert time.monotonic() - started < 1.5

    # Let the abandoned lookup end inside this test, so its log line has somewhere to go.
    for thread in threading.enumerate():
        if thread.name == "lora-chat-hub-check":
            thread.join(5)


# --debug ---------------------------------------------------------------------------------------------


def test_debug_shows_traceback(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[{")
    assert main(["dataset", "check", str(path)]) == 2
    plain = capsys.readouterr().err
    assert "Traceback" not in plain

    assert main(["dataset", "check", str(path), "--debug"]) == 2
    debug = capsys.readouterr().err
    assert "Traceback (most recent call last)" in debug
    assert "lora_chat.core.errors.DatasetError" in debug
    assert debug.rstrip().endswith(plain.rstrip())


def test_unexpected_failure_one_line_unless_debug(monkeypatch, capsys):
    def broken_list(self):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(AdapterLibrary, "list", broken_list)
    assert main(["adapters", "list"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: unexpected failure: RuntimeError: simulated bug; the log {paths.log_file()} has the details, "
        "or run again with --debug\n"
    )

    with pytest.raises(RuntimeError, match="simulated bug"):
        main(["adapters", "list", "--debug"])
