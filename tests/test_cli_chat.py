"""The command-line chat: slash commands, saving turns, Ctrl+C, and resuming a conversation."""

import io
import json
import os
import signal

import pytest

from lora_chat.cli_chat import ChatSession
from lora_chat.core.errors import AdapterNotFoundError, InputError, SettingsError
from lora_chat.core.history import HistoryStore
from lora_chat.core.inference import Answer
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import GenerationSettings


class FakeEngine:
    """Answers with a numbered echo; knows only the adapters it is given."""

    def __init__(self, adapters=("pirate", "poet"), on_answer=None):
        self.base_model = "stand-in/base"
        self.adapters = set(adapters)
        self.is_loaded = False
        self.notes = []
        self.calls = []
        self.on_answer = on_answer

    def load(self):
        self.is_loaded = True

    def attach(self, name):
        if name not in self.adapters:
            raise AdapterNotFoundError(f"no adapter named {name!r}")

    def answer(self, prompt, adapter, settings, on_piece=None, stop=None, **options):
        self.calls.append((prompt, adapter, settings))
        if self.on_answer:
            return self.on_answer(prompt, adapter, settings, on_piece, stop)
        text = f"{adapter or 'base'} answer {len(self.calls)} to {prompt}"
        for word in text.split(" "):
            on_piece(word + " ")
        return Answer(text=text, adapter=adapter, tokens=5, cut=settings.max_new_tokens < 5)


@pytest.fixture
def store():
    with HistoryStore() as opened:
        yield opened


def make_session(store, adapter="pirate", engine=None, **kwargs):
    out = io.StringIO()
    session = ChatSession(
        "stand-in/base", AdapterLibrary(), GenerationSettings(), adapter, out=out, history=store, engine=engine or FakeEngine(), **kwargs
    )
    return session, out


def test_each_turn_saved_as_it_happens(store):
    session, out = make_session(store)
    session.ask("hello")
    assert "pirate answer 1 to hello" in out.getvalue()

    conv = store.get(session.conversation_id)
    assert conv.base_model == "stand-in/base"
    assert conv.adapter == "pirate"
    assert [t.prompt for t in conv.turns] == ["hello"]
    saved = conv.turns[0].answers[0]
    assert saved.text == "pirate answer 1 to hello"
    assert saved.settings["max_new_tokens"] == GenerationSettings().max_new_tokens


def test_no_conversation_before_first_prompt(store):
    session, out = make_session(store)
    session.command("/help")
    assert store.list_conversations() == []
    assert "/retry" in out.getvalue()


def test_retry_replaces_last_turn(store):
    session, out = make_session(store)
    session.ask("one")
    session.ask("two")
    session.command("/retry")

    assert [t.answers[0].text for t in session.turns] == ["pirate answer 1 to one", "pirate answer 3 to two"]
    stored = store.get(session.conversation_id).turns
    assert [t.answers[0].text for t in stored] == ["pirate answer 1 to one", "pirate answer 3 to two"]


def test_retry_and_undo_need_a_turn(store):
    session, out = make_session(store)
    with pytest.raises(InputError, match="nothing to retry"):
        session.command("/retry")
    with pytest.raises(InputError, match="nothing to undo"):
        session.command("/undo")


def test_undo_drops_last_turn(store):
    session, out = make_session(store)
    session.ask("one")
    session.ask("two")
    session.command("/undo")

    assert [t.prompt for t in session.turns] == ["one"]
    assert [t.prompt for t in store.get(session.conversation_id).turns] == ["one"]
    assert "dropped the turn 'two'" in out.getvalue()


def test_set_out_of_range_shows_range(store):
    session, out = make_session(store)
    with pytest.raises(SettingsError, match="max-new-tokens: 5000 is out of range; allowed 1 to 2048"):
        session.command("/set max_new_tokens 5000")
    with pytest.raises(SettingsError, match="expected a number, got 'hot'; allowed 0.01 to 5"):
        session.command("/set temperature hot")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        session.command("/set colour red")
    assert session.generation.max_new_tokens == GenerationSettings().max_new_tokens


def test_set_changes_next_answer(store):
    engine = FakeEngine()
    session, out = make_session(store, engine=engine)
    session.command("/set max-new-tokens 3")
    session.ask("hi")

    assert session.generation.max_new_tokens == 3
    assert engine.calls[-1][2].max_new_tokens == 3
    saved = store.get(session.conversation_id).turns[0].answers[0]
    assert saved.cut is True
    assert saved.settings["max_new_tokens"] == 3
    assert "[cut at 3 tokens" in out.getvalue()


def test_set_lists_settings_with_ranges(store):
    session, out = make_session(store)
    session.command("/set")
    assert "max_new_tokens = 64  (1 to 2048)" in out.getvalue()
    assert "do_sample = False  (true or false)" in out.getvalue()


def test_adapter_none_and_back(store):
    engine = FakeEngine()
    session, out = make_session(store, engine=engine)
    session.ask("first")
    session.command("/adapter none")
    session.ask("second")

    assert session.adapter is None
    assert engine.calls[-1][1] is None
    assert "now answering with none (base model)" in out.getvalue()
    conv = store.get(session.conversation_id)
    assert conv.adapter is None
    assert [t.answers[0].adapter for t in conv.turns] == ["pirate", None]

    with pytest.raises(AdapterNotFoundError):
        session.command("/adapter missing")
    assert session.adapter is None


def test_compare_keeps_both_answers(store):
    session, out = make_session(store)
    session.command("/compare")
    session.ask("hi")

    saved = store.get(session.conversation_id).turns[0].answers
    assert [a.adapter for a in saved] == [None, "pirate"]
    assert "[none (base model)]" in out.getvalue()

    session.command("/compare off")
    session.ask("again")
    assert len(store.get(session.conversation_id).turns[1].answers) == 1


def test_save_markdown_and_json(store, tmp_path):
    session, out = make_session(store)
    with pytest.raises(InputError, match="nothing to save"):
        session.command(f"/save {tmp_path / 'empty.md'}")
    session.ask("hello")
    session.command(f"/save {tmp_path / 'chat.md'}")
    session.command(f"/save {tmp_path / 'chat.json'}")

    md = (tmp_path / "chat.md").read_text()
    assert "**You:** hello" in md
    assert "pirate answer 1 to hello" in md
    data = json.loads((tmp_path / "chat.json").read_text())
    assert data["turns"][0]["answers"][0]["text"] == "pirate answer 1 to hello"
    assert f"saved to {tmp_path / 'chat.json'}" in out.getvalue()
    with pytest.raises(InputError, match="must end in .md"):
        session.command(f"/save {tmp_path / 'chat.txt'}")


def test_save_without_store(tmp_path):
    session, out = make_session(None)
    session.ask("hello")
    session.command(f"/save {tmp_path / 'chat.md'}")
    assert "pirate answer 1 to hello" in (tmp_path / "chat.md").read_text()


def test_unknown_command(store):
    session, out = make_session(store)
    with pytest.raises(InputError, match="unknown command /frobnicate"):
        session.command("/frobnicate")
    assert session.command("/quit") is False


def test_resume_continues_conversation(store):
    first, _ = make_session(store)
    first.ask("hello")
    cid = first.conversation_id

    second, out = make_session(store)
    second.resume(store.get(cid))
    second.ask("again")
    second.command("/undo")
    second.command("/undo")

    assert second.conversation_id == cid
    assert store.get(cid).turns == []
    assert len(store.list_conversations()) == 1


def feed_input(monkeypatch, lines):
    """Replace input(): each item is a line to return, or an exception to raise (EOFError, KeyboardInterrupt)."""
    items = iter(lines)

    def fake_input(prompt=""):
        item = next(items)
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item
        return item

    monkeypatch.setattr("builtins.input", fake_input)


def interrupt_answer(times):
    """An engine answer that sends itself SIGINT ``times`` times, as a user pressing Ctrl+C would."""

    def on_answer(prompt, adapter, settings, on_piece, stop):
        on_piece("partial ")
        for _ in range(times):
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(5)
        return Answer(text="partial", adapter=adapter, stopped=True)

    return on_answer


def test_ctrl_c_stops_answer_then_leaves(store, monkeypatch):
    engine = FakeEngine(on_answer=interrupt_answer(1))
    session, out = make_session(store, engine=engine)
    feed_input(monkeypatch, ["tell me a story", KeyboardInterrupt, "never read"])

    assert session.interactive() == 0

    text = out.getvalue()
    assert "partial  [stopped]" in text
    assert f"saved as conversation {session.conversation_id}" in text
    saved = store.get(session.conversation_id).turns[0].answers[0]
    assert saved.stopped is True
    assert saved.text == "partial"


def test_ctrl_c_at_prompt_needs_two(store, monkeypatch):
    session, out = make_session(store)
    feed_input(monkeypatch, [KeyboardInterrupt, "hello", KeyboardInterrupt, KeyboardInterrupt])

    assert session.interactive() == 0
    assert out.getvalue().count("(Ctrl+C again to leave)") == 2
    assert [t.prompt for t in store.get(session.conversation_id).turns] == ["hello"]


def test_second_ctrl_c_while_stopping_leaves(store, monkeypatch):
    def on_answer(prompt, adapter, settings, on_piece, stop):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the second Ctrl+C should have interrupted the answer")

    session, out = make_session(store, engine=FakeEngine(on_answer=on_answer))
    feed_input(monkeypatch, ["hello", "never read"])

    assert session.interactive() == 0
    assert out.getvalue().rstrip().endswith("[stopped]")


def test_interactive_commands_and_errors(store, monkeypatch, capsys):
    session, out = make_session(store)
    feed_input(monkeypatch, ["hi", "/set num_beams 99", "/adapter none", "hi", "/quit"])

    assert session.interactive() == 0
    assert "num-beams: 99 is out of range; allowed 1 to 16" in capsys.readouterr().err
    assert [a.adapter for t in store.get(session.conversation_id).turns for a in t.answers] == ["pirate", None]


def test_empty_cut_answer_one_shot_hint(store):
    def empty(prompt, adapter, settings, on_piece, stop):
        return Answer(text="", adapter=adapter, tokens=8, cut=True)

    session, out = make_session(store, engine=FakeEngine(on_answer=empty))
    assert session.one_shot("hi") == 0
    assert out.getvalue() == "(empty answer) [cut at 64 tokens; raise it with --max-new-tokens N]\n"


def test_cut_answer_interactive_hint(store):
    session, out = make_session(store)
    session.generation = GenerationSettings(max_new_tokens=2)
    session.ask("hi")
    assert "[cut at 2 tokens; raise it with /set max_new_tokens N]" in out.getvalue()
