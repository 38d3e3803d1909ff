"""Switching the chat between two LoRA adapters keeps both in memory: no reload per switch."""

import pytest

from lora_chat.core.inference import ChatEngine
from lora_chat.core.settings import GenerationSettings, TrainSettings
from lora_chat.core.training import train


@pytest.mark.slow
def test_switching_keeps_both_adapters_loaded(tiny_model, sample):
    for name in ("first", "second"):
        train(sample / "greetings.jsonl", name, TrainSettings(epochs=1, eval_fraction=0.0), str(tiny_model))
    engine = ChatEngine(str(tiny_model))
    engine.attach("first")
    engine.attach("second")
    assert sorted(engine.loaded) == ["first", "second"]

    for name in ("first", "second", "first"):
        answer = engine.answer("Hello", adapter=name, settings=GenerationSettings(max_new_tokens=2))
        assert answer.adapter == name
        assert sorted(engine.loaded) == ["first", "second"]
