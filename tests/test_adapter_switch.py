"""Switching the chat between two LoRA adapters keeps both in memory and answers with the right one."""

import pytest

from lora_chat.core.inference import ChatEngine
from lora_chat.core.settings import GenerationSettings, TrainSettings
from lora_chat.core.training import train

PAIRS = [("Hello", "Hi there! How can I help you today?"), ("Good morning", "Good morning to you!")]


@pytest.fixture
def two_adapters(tiny_model, sample):
    # Different seeds give different LoRA weights, so the two adapters score differently.
    for name, seed in (("first", 1), ("second", 2)):
        settings = TrainSettings(epochs=2, eval_fraction=0.0, seed=seed, learning_rate=0.01)
        train(sample / "greetings.jsonl", name, settings, str(tiny_model))
    return tiny_model


@pytest.mark.slow
def test_switching_keeps_both_adapters_loaded(two_adapters):
    engine = ChatEngine(str(two_adapters))
    engine.attach("first")
    engine.attach("second")
    assert sorted(engine.loaded) == ["first", "second"]

    for name in ("first", "second", "first"):
        answer = engine.answer("Hello", adapter=name, settings=GenerationSettings(max_new_tokens=2))
        assert answer.adapter == name
        assert sorted(engine.loaded) == ["first", "second"]


@pytest.mark.slow
def test_switching_answers_with_the_chosen_adapter(two_adapters):
    engine = ChatEngine(str(two_adapters))
    engine.attach("first")
    engine.attach("second")
    scores = {name: [engine.score(PAIRS, adapter=name) for _ in range(2)] for name in ("first", "second", "first")}

    # Each adapter alone, in an engine of its own, is the reference.
    for name in ("first", "second"):
        alone = ChatEngine(str(two_adapters))
        assert scores[name][-1] == pytest.approx(alone.score(PAIRS, adapter=name), rel=1e-6)
    assert scores["first"][0] != pytest.approx(scores["second"][0], rel=1e-6)
