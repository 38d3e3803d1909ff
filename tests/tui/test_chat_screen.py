"""The Chat screen with a fake engine: streaming, labels, compare, stop, settings, errors and history."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static

from lora_chat.core import paths
from lora_chat.core.history import HistoryStore
from lora_chat.core.settings import Settings
from lora_chat.tui.app import LoraChatApp
from lora_chat.tui.screens.chat import ChatScreen
from lora_chat.tui.screens.history import HistoryScreen
from lora_chat.tui.widgets.chat_turn import AnswerBox
from lora_chat.tui.widgets.dialogs import ErrorDialog
from tests.tui.conftest import make_adapter, wait_until
from tests.tui.fake_engine import FakeEngine


def make_app(engine: FakeEngine) -> LoraChatApp:
    app = LoraChatApp(settings=Settings(base_model="fake/base"))
    app.make_engine = lambda: engine  # type: ignore[method-assign]
    return app


async def open_chat(pilot) -> ChatScreen:
    await pilot.press("f4")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ChatScreen))
    return pilot.app.screen


async def ask(pilot, screen: ChatScreen, prompt: str) -> None:
    await pilot.press(*prompt)
    await pilot.press("enter")
    await wait_until(pilot, lambda: not screen.answering)


def boxes(screen: ChatScreen) -> list[AnswerBox]:
    return list(screen.query(AnswerBox))


@pytest.fixture
def adapters() -> Path:
    root = paths.adapters_dir()
    make_adapter(root, "pirate")
    make_adapter(root, "shouty")
    make_adapter(root, "foreign")
    return root


async def test_answer_streams_with_label():
    engine = FakeEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await wait_until(pilot, lambda: app.engine_state == "ready")
        await ask(pilot, screen, "hello")
        [box] = boxes(screen)
        assert box.text == "base says: hello"
        assert box.border_title == "none (base model)"
        assert box.border_subtitle == "3 tokens, 0.5 s"
        assert screen.query_one("#prompt", Input).value == ""
        assert engine.prompts == [("hello", None)]


async def test_turns_saved_to_history():
    app = make_app(FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await ask(pilot, screen, "one")
        await ask(pilot, screen, "two")
        conversation_id = screen.conversation_id
    assert conversation_id is not None
    stored = HistoryStore().get(conversation_id)
    assert [t.prompt for t in stored.turns] == ["one", "two"]
    assert stored.turns[1].answers[0].text == "base says: two"
    assert stored.turns[1].answers[0].adapter is None
    assert stored.base_model == "fake/base"


async def test_adapter_choice_labels_answer(adapters):
    engine = FakeEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        screen.query_one("#adapter", Select).value = "pirate"
        await wait_until(pilot, lambda: screen.settled["adapter"] == "pirate")
        assert app.current_adapter == "pirate"
        assert "adapter pirate" in app.sub_title
        await ask(pilot, screen, "ahoy")
        [box] = boxes(screen)
        assert box.border_title == "pirate"
        assert box.text == "pirate says: ahoy"


async def test_other_base_adapter_rejected(adapters):
    engine = FakeEngine(other_base=("foreign",))
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        screen.query_one("#adapter", Select).value = "foreign"
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        message = str(app.screen.query_one("#error-message", Static).render())
        assert "google/flan-t5-base" in message
        assert "fake/base" in message
        await pilot.press("escape")
        assert screen.query_one("#adapter", Select).value == "(base)"
        assert app.current_adapter is None


async def test_compare_two_side_by_side(adapters):
    app = make_app(FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        screen.query_one("#adapter", Select).value = "pirate"
        await wait_until(pilot, lambda: screen.settled["adapter"] == "pirate")
        await pilot.press("ctrl+b")
        screen.query_one("#compare-with", Select).value = "shouty"
        await wait_until(pilot, lambda: screen.settled["compare-with"] == "shouty")
        await ask(pilot, screen, "hi")
        first, second = boxes(screen)
        assert (first.border_title, first.text) == ("pirate", "pirate says: hi")
        assert (second.border_title, second.text) == ("shouty", "shouty says: hi")
        assert first.parent is second.parent
        stored = HistoryStore().get(screen.conversation_id)
        assert [a.adapter for a in stored.turns[0].answers] == ["pirate", "shouty"]


async def test_escape_stops_answer():
    app = make_app(FakeEngine(piece_delay=0.3))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await pilot.press(*"a long prompt with many words")
        await pilot.press("enter")
        await wait_until(pilot, lambda: boxes(screen) and boxes(screen)[0].text)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.answering)
        [box] = boxes(screen)
        assert box.border_subtitle.startswith("stopped after")
        assert box.has_class("-stopped")
        assert len(box.text.split()) < 8


async def test_cut_answer_marked():
    app = make_app(FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+g")
        field = screen.query_one("#field-max_new_tokens", Input)
        field.value = "2"
        await pilot.pause()
        screen.query_one("#prompt", Input).focus()
        await ask(pilot, screen, "tell me more")
        [box] = boxes(screen)
        assert box.text == "base says:"
        assert box.border_subtitle == "cut at 2 tokens; ctrl+g raises it"
        assert HistoryStore().get(screen.conversation_id).turns[0].answers[0].cut is True


async def test_bad_setting_keeps_prompt():
    engine = FakeEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+g")
        screen.query_one("#field-temperature", Input).value = "9"
        await pilot.pause()
        assert "temperature: 9.0 is out of range; allowed 0.01 to 5" in str(screen.query_one("#problem-temperature", Static).render())
        screen.query_one("#prompt", Input).focus()
        await pilot.press(*"keep me", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ErrorDialog)
        assert screen.query_one("#prompt", Input).value == "keep me"
        assert engine.prompts == []


async def test_failed_answer_restores_prompt():
    class BrokenEngine(FakeEngine):
        def stream(self, *args, **kwargs):
            raise RuntimeError("out of memory")
            yield  # pragma: no cover - makes this a generator

    app = make_app(BrokenEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await ask(pilot, screen, "precious words")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "out of memory" in str(app.screen.query_one("#error-message", Static).render())
        assert screen.query_one("#prompt", Input).value == "precious words"
        [box] = boxes(screen)
        assert box.border_subtitle == "failed"


async def test_keys_work_while_loading():
    engine = FakeEngine()
    engine.load_gate.clear()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await wait_until(pilot, lambda: app.engine_state == "loading")
        assert str(screen.query_one("#engine-status", Static).render()) == "loading fake/base…"
        await pilot.press(*"typed while loading")
        assert screen.query_one("#prompt", Input).value == "typed while loading"
        engine.load_gate.set()
        await wait_until(pilot, lambda: app.engine_state == "ready")
        assert str(screen.query_one("#engine-status", Static).render()) == "ready · cpu"


async def test_new_chat_clears_history():
    app = make_app(FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await ask(pilot, screen, "first")
        first_id = screen.conversation_id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert boxes(screen) == []
        await ask(pilot, screen, "second")
        assert screen.conversation_id != first_id


async def test_history_continues_conversation(adapters):
    store = HistoryStore()
    conversation_id = store.new_conversation("fake/base", "pirate")
    store.add_turn(conversation_id, "old prompt", [{"adapter": "pirate", "text": "old answer", "cut": True, "settings": {}}])
    store.close()

    app = make_app(FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen) and boxes(screen))
        [box] = boxes(screen)
        assert box.text == "old answer"
        assert box.border_title == "pirate"
        assert box.border_subtitle == "cut by the token limit"
        assert screen.conversation_id == conversation_id
        await wait_until(pilot, lambda: screen.settled["adapter"] == "pirate")

        await ask(pilot, screen, "new prompt")
        screen.query_one("#adapter", Select).value = "(base)"
        await wait_until(pilot, lambda: screen.settled["adapter"] == "(base)")
        await ask(pilot, screen, "plain prompt")
    stored = HistoryStore().get(conversation_id)
    assert stored.adapter is None
    turns = stored.turns[:2]
    assert [t.prompt for t in turns] == ["old prompt", "new prompt"]
    assert turns[1].answers[0].adapter == "pirate"


async def test_release_adapter_unloads(adapters):
    engine = FakeEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        screen.query_one("#adapter", Select).value = "pirate"
        await wait_until(pilot, lambda: screen.settled["adapter"] == "pirate")
        await app.release_adapter("pirate")
        assert engine.released == ["pirate"]
        assert app.current_adapter is None


class RecordingEngine(FakeEngine):
    """A fake engine that records the few-shot examples each answer got."""

    def __init__(self) -> None:
        super().__init__()
        self.few_shot_seen: list[tuple[str | None, object]] = []

    def stream(self, prompt, adapter=None, settings=None, stop=None, **kwargs):
        self.few_shot_seen.append((adapter, kwargs.get("few_shot")))
        yield from super().stream(prompt, adapter, settings, stop, **kwargs)


async def test_few_shot_base_beside_adapter(tmp_path):
    data = tmp_path / "pairs.jsonl"
    rows = [{"input": f"q{i}", "output": f"a{i}"} for i in range(1, 7)]
    data.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    from lora_chat.core.dataset import read_dataset

    content_hash = read_dataset(data).content_hash()
    make_adapter(paths.adapters_dir(), "pirate", {"dataset": {"name": "pairs", "path": str(data), "rows": 6, "content_hash": content_hash, "eval_rows": [1]}})
    engine = RecordingEngine()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        screen.query_one("#adapter", Select).value = "pirate"
        await wait_until(pilot, lambda: screen.settled["adapter"] == "pirate")
        await pilot.press("ctrl+b")
        screen.query_one("#few-shot", Input).value = "2"
        screen.query_one("#prompt", Input).focus()
        await ask(pilot, screen, "hi")
        assert engine.few_shot_seen == [("pirate", None), (None, [("q2", "a2"), ("q3", "a3")])]


async def test_few_shot_without_adapter_explains():
    app = make_app(FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        screen.query_one("#few-shot", Input).value = "3"
        screen.query_one("#prompt", Input).focus()
        await pilot.press(*"hi", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "few-shot prompting takes its examples from an adapter's training rows" in app.screen.message
        assert boxes(screen) == []


async def test_picking_adapter_returns_to_prompt(adapters):
    app = make_app(FakeEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert screen.query_one("#adapter", Select).expanded
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: screen.settled["adapter"] != "(base)")
        assert screen.query_one("#prompt", Input).has_focus
