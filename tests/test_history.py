"""The conversation history database: round trip, search, migration, damaged files, crashes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from lora_chat.core import history, paths
from lora_chat.core.errors import ConversationNotFoundError, HistoryDamagedError, HistoryVersionError, InputError
from lora_chat.core.history import HistoryStore

SETTINGS = {"max_new_tokens": 64, "do_sample": False, "temperature": 0.7, "top_p": 0.9, "num_beams": 1, "repetition_penalty": 1.0}


def answer(text, adapter="pirate", cut=False, **settings):
    return {"adapter": adapter, "text": text, "cut": cut, "settings": {**SETTINGS, **settings}}


@pytest.fixture
def store():
    with HistoryStore() as opened:
        yield opened


def test_store_file_in_data_dir(store):
    assert store.path == paths.data_dir() / "history.sqlite3"
    assert store.path.exists()


def test_round_trip(store):
    cid = store.new_conversation("google/flan-t5-small", "pirate")
    store.add_turn(cid, "hello there", [answer("ahoy matey")])
    store.add_turn(cid, "tell me more", [answer("a long tale", cut=True, max_new_tokens=8)])
    store.add_turn(cid, "compare", [answer("base says hi", adapter=None), answer("arr hi")])

    conv = store.get(cid)
    assert conv.id == cid
    assert conv.title == "hello there"
    assert conv.base_model == "google/flan-t5-small"
    assert conv.adapter == "pirate"
    assert conv.created <= conv.updated
    assert [t.prompt for t in conv.turns] == ["hello there", "tell me more", "compare"]
    first = conv.turns[0].answers[0]
    assert (first.adapter, first.text, first.cut, first.adapter_deleted) == ("pirate", "ahoy matey", False, False)
    assert first.settings == SETTINGS
    assert conv.turns[1].answers[0].cut is True
    assert conv.turns[1].answers[0].settings["max_new_tokens"] == 8
    assert [(a.adapter, a.text) for a in conv.turns[2].answers] == [(None, "base says hi"), ("pirate", "arr hi")]
    assert conv.turns[0].created


def test_round_trip_survives_reopen(store):
    cid = store.new_conversation("base", None)
    store.add_turn(cid, "q", [answer("a", adapter=None)])
    store.close()
    with HistoryStore() as again:
        assert again.get(cid).turns[0].answers[0].text == "a"


def test_list_newest_first_with_first_prompt(store):
    old = store.new_conversation("base", "pirate")
    store.add_turn(old, "first of old", [answer("x")])
    new = store.new_conversation("base", None)
    store.add_turn(new, "first of new", [answer("y", adapter=None)])
    store.add_turn(new, "second of new", [answer("z", adapter=None)])
    # Same-second updates fall back to the id; make the order unambiguous.
    store._db.execute("UPDATE conversations SET updated = '2020-01-01T00:00:00+00:00' WHERE id = ?", (old,))

    listed = store.list_conversations()
    assert [c.id for c in listed] == [new, old]
    assert listed[0].first_prompt == "first of new"
    assert listed[0].turn_count == 2
    assert listed[0].adapter is None
    assert listed[1].adapter == "pirate"
    assert listed[1].adapter_label == "pirate"


def test_search_prompts_and_answers(store):
    a = store.new_conversation("base", "pirate")
    store.add_turn(a, "where is the treasure", [answer("under the palm")])
    b = store.new_conversation("base", None)
    store.add_turn(b, "capital of France", [answer("Paris", adapter=None)])

    assert [c.id for c in store.list_conversations("treasure")] == [a]
    assert [c.id for c in store.list_conversations("paris")] == [b]
    assert store.list_conversations("nowhere") == []
    assert store.list_conversations("100%") == []
    assert len(store.list_conversations("  ")) == 2


def test_rename_and_delete(store):
    cid = store.new_conversation("base", None)
    store.add_turn(cid, "q", [answer("a", adapter=None)])
    store.rename(cid, "  My   chat ")
    assert store.get(cid).title == "My chat"
    with pytest.raises(InputError):
        store.rename(cid, "   ")

    store.delete(cid)
    with pytest.raises(ConversationNotFoundError, match=f"no saved conversation with id {cid}"):
        store.get(cid)
    assert store._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0


def test_unknown_id_is_typed_error(store):
    for call in (store.get, store.delete, store.delete_last_turn, store.export_markdown, store.export_json):
        with pytest.raises(ConversationNotFoundError):
            call(99)
    with pytest.raises(ConversationNotFoundError):
        store.add_turn(99, "q", [answer("a")])
    with pytest.raises(ConversationNotFoundError):
        store.rename(99, "x")


def test_delete_last_turn(store):
    cid = store.new_conversation("base", None)
    store.add_turn(cid, "one", [answer("1", adapter=None)])
    store.add_turn(cid, "two", [answer("2", adapter=None), answer("2b")])

    removed = store.delete_last_turn(cid)
    assert removed.prompt == "two"
    assert [a.text for a in removed.answers] == ["2", "2b"]
    assert [t.prompt for t in store.get(cid).turns] == ["one"]
    assert store.delete_last_turn(cid).prompt == "one"
    assert store.delete_last_turn(cid) is None


def test_mark_adapter_deleted_keeps_turns(store):
    kept = store.new_conversation("base", "pirate")
    store.add_turn(kept, "q", [answer("arr")])
    other = store.new_conversation("base", "poet")
    store.add_turn(other, "q", [answer("base", adapter=None), answer("arr", adapter="pirate")])

    assert store.mark_adapter_deleted("pirate") == 2

    conv = store.get(kept)
    assert conv.adapter_deleted is True
    assert conv.turns[0].answers[0].text == "arr"
    assert conv.turns[0].answers[0].adapter_deleted is True
    both = store.get(other)
    assert both.adapter_deleted is False
    assert [a.adapter_deleted for a in both.turns[0].answers] == [False, True]
    assert store.list_conversations()[-1].adapter_label == "pirate (deleted)"


def test_export_markdown_and_json(store, tmp_path):
    cid = store.new_conversation("base", "pirate")
    store.add_turn(cid, "hello", [answer("ahoy", cut=True, max_new_tokens=8)])
    store.add_turn(cid, "both", [answer("plain", adapter=None), answer("arr")])

    md = store.export_markdown(cid)
    assert md.startswith("# hello\n")
    assert "- adapter: pirate" in md
    assert "**You:** hello" in md
    assert "ahoy *(cut at 8 tokens)*" in md
    assert "**none (base model):** plain" in md
    assert "**pirate:** arr" in md

    data = json.loads(store.export_json(cid))
    assert data["base_model"] == "base"
    assert [t["prompt"] for t in data["turns"]] == ["hello", "both"]
    assert data["turns"][0]["answers"][0]["cut"] is True
    assert data["turns"][1]["answers"][0]["adapter"] is None

    written = store.export(cid, tmp_path / "out.json")
    assert json.loads(written.read_text()) == data
    with pytest.raises(InputError, match=r"must end in \.md"):
        store.export(cid, tmp_path / "out.txt")


def build_v1_file(path):
    """Write a version-1 database the way the first schema stored it: the answer inside the turn row."""
    db = sqlite3.connect(path)
    history._create_v1(db)
    db.execute("INSERT INTO conversations VALUES (1, 'old chat', 'base', 'pirate', '2024-01-01T10:00:00+00:00', '2024-01-01T10:05:00+00:00')")
    db.execute(
        "INSERT INTO turns VALUES (1, 1, 'hello', 'ahoy', 'pirate', 0, ?, '2024-01-01T10:00:00+00:00')",
        (json.dumps(SETTINGS),),
    )
    db.execute("INSERT INTO turns VALUES (2, 1, 'more', 'arr arr', 'pirate', 1, '{}', '2024-01-01T10:05:00+00:00')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()


def test_migration_from_v1(tmp_path):
    path = tmp_path / "history.sqlite3"
    build_v1_file(path)

    with HistoryStore(path) as store:
        conv = store.get(1)
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

        assert conv.title == "old chat"
        assert conv.adapter_deleted is False
        assert [t.prompt for t in conv.turns] == ["hello", "more"]
        assert conv.turns[0].answers[0].text == "ahoy"
        assert conv.turns[0].answers[0].settings == SETTINGS
        assert conv.turns[1].answers[0].cut is True
        assert conv.turns[1].created == "2024-01-01T10:05:00+00:00"

        # The migrated file takes new turns with two answers.
        store.add_turn(1, "again", [answer("x", adapter=None), answer("y")])
        assert len(store.get(1).turns[2].answers) == 2


def test_failed_migration_rolls_back(tmp_path, monkeypatch):
    path = tmp_path / "history.sqlite3"
    build_v1_file(path)

    def broken(db):
        db.execute("ALTER TABLE conversations ADD COLUMN half_done INTEGER")
        raise sqlite3.OperationalError("simulated failure")

    monkeypatch.setattr(history, "MIGRATIONS", [history._create_v1, broken])
    with pytest.raises(history.HistoryError, match="simulated failure"):
        HistoryStore(path)

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = [row[1] for row in db.execute("PRAGMA table_info(conversations)")]
    assert "half_done" not in columns
    db.close()


def test_damaged_file_reported_untouched(tmp_path):
    path = tmp_path / "history.sqlite3"
    data = os.urandom(8192)
    path.write_bytes(data)

    with pytest.raises(HistoryDamagedError, match="is damaged") as info:
        HistoryStore(path)
    assert str(path) in str(info.value)
    assert "Move it away" in str(info.value)
    assert path.read_bytes() == data


def test_damaged_pages_reported_untouched(tmp_path):
    path = tmp_path / "history.sqlite3"
    with HistoryStore(path) as store:
        cid = store.new_conversation("base", None)
        for i in range(200):
            store.add_turn(cid, f"prompt {i} " * 20, [answer(f"answer {i} " * 20, adapter=None)])
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store._db.execute("PRAGMA journal_mode = DELETE")
    raw = bytearray(path.read_bytes())
    # Keep the 100-byte header valid and scramble the pages after the first one.
    raw[4096:] = os.urandom(len(raw) - 4096)
    path.write_bytes(bytes(raw))

    with pytest.raises(HistoryDamagedError):
        HistoryStore(path)
    assert path.read_bytes() == bytes(raw)


def test_newer_version_reported_untouched(tmp_path):
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE future (x)")
    db.execute(f"PRAGMA user_version = {history.SCHEMA_VERSION + 5}")
    db.commit()
    db.close()
    data = path.read_bytes()

    with pytest.raises(HistoryVersionError, match=f"schema version {history.SCHEMA_VERSION + 5}") as info:
        HistoryStore(path)
    assert "upgrade lora-chat" in str(info.value)
    assert path.read_bytes() == data


def test_empty_file_becomes_database(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"")
    with HistoryStore(path) as store:
        assert store.list_conversations() == []


CHILD_HOLDS_TRANSACTION = textwrap.dedent(
    """
    import sys, time
    from lora_chat.core.history import HistoryStore

    store = HistoryStore()
    cid = store.new_conversation("base", None)
    store.add_turn(cid, "committed", [{"adapter": None, "text": "kept", "cut": False, "settings": {}}])
    db = store._db
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO turns (conversation_id, prompt, created) VALUES (?, 'half', 'now')", (cid,))
    print(cid, flush=True)
    time.sleep(60)
    """
)

CHILD_WRITES_IN_LOOP = textwrap.dedent(
    """
    from lora_chat.core.history import HistoryStore

    store = HistoryStore()
    cid = store.new_conversation("base", "pirate")
    i = 0
    while True:
        store.add_turn(cid, f"p{i}", [{"adapter": None, "text": f"a{i}", "cut": False, "settings": {}},
                                      {"adapter": "pirate", "text": f"b{i}", "cut": False, "settings": {}}])
        i += 1
        print(i, flush=True)
    """
)


def start_child(script):
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())


def test_killed_inside_transaction_leaves_readable_db():
    child = start_child(CHILD_HOLDS_TRANSACTION)
    cid = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()

    with HistoryStore() as store:
        conv = store.get(cid)
        assert [t.prompt for t in conv.turns] == ["committed"]
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_killed_while_writing_keeps_whole_turns():
    child = start_child(CHILD_WRITES_IN_LOOP)
    deadline = time.monotonic() + 30
    while int(child.stdout.readline()) < 30 and time.monotonic() < deadline:
        pass
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()

    with HistoryStore() as store:
        conv = store.list_conversations()[0]
        turns = store.get(conv.id).turns
        assert len(turns) >= 30
        for i, turn in enumerate(turns):
            assert turn.prompt == f"p{i}"
            assert [a.text for a in turn.answers] == [f"a{i}", f"b{i}"]
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
