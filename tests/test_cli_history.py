"""``lora-chat history`` and ``lora-chat chat --resume``: exit codes, output and the saved rows."""

import json

import pytest

from lora_chat.cli import main
from lora_chat.core import paths
from lora_chat.core.history import HistoryStore
from tests.test_library import make_adapter


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def answer(text, adapter="pirate", cut=False):
    return {"adapter": adapter, "text": text, "cut": cut, "settings": {"max_new_tokens": 64}}


@pytest.fixture
def saved():
    """Two saved conversations: 1 with adapter pirate (two turns), 2 with the base model."""
    with HistoryStore() as store:
        first = store.new_conversation("stand-in/base", "pirate")
        store.add_turn(first, "where is the treasure", [answer("under the palm")])
        store.add_turn(first, "and the map", [answer("lost at sea", cut=True)])
        second = store.new_conversation("stand-in/base", None)
        store.add_turn(second, "capital of France", [answer("Paris", adapter=None)])
    return first, second


def test_history_list_empty(capsys):
    code, out, err = run(capsys, "history", "list")
    assert code == 0
    assert "no saved conversations yet" in out


def test_history_list(capsys, saved):
    first, second = saved
    code, out, err = run(capsys, "history", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "UPDATED", "ADAPTER", "TURNS", "TITLE"]
    assert lines[1].split()[0] == str(second)
    assert "none" in lines[1]
    assert lines[2].split()[0] == str(first)
    assert "pirate" in lines[2] and "where is the treasure" in lines[2]


def test_history_list_search_and_json(capsys, saved):
    first, second = saved
    code, out, err = run(capsys, "history", "list", "--search", "palm", "--json")
    assert code == 0
    data = json.loads(out)
    assert [c["id"] for c in data] == [first]
    assert data[0]["first_prompt"] == "where is the treasure"
    assert data[0]["turn_count"] == 2

    code, out, err = run(capsys, "history", "list", "--search", "zebra")
    assert code == 0
    assert "no conversations match" in out


def test_history_show(capsys, saved):
    first, _ = saved
    code, out, err = run(capsys, "history", "show", str(first))
    assert code == 0
    assert f"conversation {first}: where is the treasure" in out
    assert "adapter: pirate" in out
    assert "you> and the map" in out
    assert "lost at sea  (cut by the token limit)" in out


def test_history_unknown_id_exit_2(capsys):
    for argv in (["show", "7"], ["export", "7", "x.md"], ["delete", "7", "--yes"], ["rename", "7", "t"]):
        code, out, err = run(capsys, "history", *argv)
        assert code == 2
        assert err == "error: no saved conversation with id 7; 'lora-chat history list' shows the ids\n"


def test_history_export(capsys, saved, tmp_path):
    first, _ = saved
    code, out, err = run(capsys, "history", "export", str(first), str(tmp_path / "chat.md"))
    assert code == 0
    assert f"exported conversation {first} to {tmp_path / 'chat.md'}" in out
    assert "**You:** where is the treasure" in (tmp_path / "chat.md").read_text()

    code, out, err = run(capsys, "history", "export", str(first), str(tmp_path / "chat.json"))
    assert code == 0
    assert json.loads((tmp_path / "chat.json").read_text())["turns"][1]["answers"][0]["cut"] is True

    code, out, err = run(capsys, "history", "export", str(first), str(tmp_path / "chat.txt"))
    assert code == 2
    assert "must end in .md (Markdown) or .json" in err
    assert not (tmp_path / "chat.txt").exists()


def test_history_rename_and_delete(capsys, saved, monkeypatch):
    first, second = saved
    code, out, err = run(capsys, "history", "rename", str(first), "Treasure talk")
    assert code == 0
    assert "'Treasure talk'" in out

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, out, err = run(capsys, "history", "delete", str(first))
    assert code == 2
    assert "--yes" in err

    code, out, err = run(capsys, "history", "delete", str(first), "--yes")
    assert code == 0
    assert f"deleted conversation {first}" in out
    with HistoryStore() as store:
        assert [c.id for c in store.list_conversations()] == [second]


def test_history_damaged_file_exit_1(capsys):
    path = paths.data_dir() / "history.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database at all" * 10)
    code, out, err = run(capsys, "history", "list")
    assert code == 1
    assert err.startswith(f"error: the history database {path} is damaged")
    assert path.read_bytes() == b"not a database at all" * 10


def test_adapters_delete_marks_conversations(capsys, saved):
    first, second = saved
    make_adapter(paths.adapters_dir() / "pirate")
    code, out, err = run(capsys, "adapters", "delete", "pirate", "--yes")
    assert code == 0
    assert "1 saved conversation(s) with 'pirate' are kept" in out

    with HistoryStore() as store:
        conv = store.get(first)
    assert conv.adapter_deleted is True
    assert len(conv.turns) == 2
    assert all(t.answers[0].adapter_deleted for t in conv.turns)

    code, out, err = run(capsys, "history", "list")
    assert "pirate (deleted)" in out


def test_resume_deleted_adapter_asks_for_another(capsys, saved):
    first, _ = saved
    with HistoryStore() as store:
        store.mark_adapter_deleted("pirate")
    code, out, err = run(capsys, "chat", "--resume", str(first), "--prompt", "hi")
    assert code == 2
    assert "used adapter 'pirate', which is no longer in the library" in err
    assert "--no-adapter" in err


def test_resume_unknown_id(capsys):
    code, out, err = run(capsys, "chat", "--resume", "42", "--prompt", "hi")
    assert code == 2
    assert "no saved conversation with id 42" in err


@pytest.mark.slow
def test_chat_saves_and_resumes_with_tiny_model(capsys, tiny_model, tmp_path):
    code, out, err = run(capsys, "chat", "--no-adapter", "--prompt", "hello", "--base-model", str(tiny_model), "--max-new-tokens", "4")
    assert code == 0
    assert "saved as conversation 1; continue it with: lora-chat chat --resume 1" in err

    # Resuming uses the conversation's base model, so --base-model is not needed again.
    code, out, err = run(capsys, "chat", "--resume", "1", "--prompt", "again", "--max-new-tokens", "4")
    assert code == 0, err

    with HistoryStore() as store:
        conv = store.get(1)
        assert len(store.list_conversations()) == 1
    assert conv.base_model == str(tiny_model)
    assert [t.prompt for t in conv.turns] == ["hello", "again"]
    assert conv.turns[1].answers[0].settings["max_new_tokens"] == 4

    code, out, err = run(capsys, "history", "export", "1", str(tmp_path / "chat.md"))
    assert code == 0
    assert "**You:** again" in (tmp_path / "chat.md").read_text()


def test_resume_restores_compare_mode():
    from types import SimpleNamespace

    from lora_chat.cli import _resume_compare

    class Library:
        def names(self):
            return ["pirate", "poet"]

    def conversation(*adapters):
        answers = [SimpleNamespace(adapter=a) for a in adapters]
        return SimpleNamespace(id=7, turns=[SimpleNamespace(answers=answers)])

    assert _resume_compare(conversation(None, "pirate"), Library(), "pirate", False, given=False) is None
    assert _resume_compare(conversation("poet", "pirate"), Library(), "pirate", False, given=False) == "poet"
    assert _resume_compare(conversation("pirate"), Library(), "pirate", False, given=False) is False
    assert _resume_compare(conversation("gone", "pirate"), Library(), "pirate", False, given=False) is False
    assert _resume_compare(conversation(None, "pirate"), Library(), "pirate", "poet", given=True) == "poet"
