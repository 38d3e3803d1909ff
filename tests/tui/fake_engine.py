"""A stand-in for ChatEngine that answers from a script, with no model."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

from lora_chat.core.errors import BaseModelMismatchError
from lora_chat.core.inference import Answer
from lora_chat.core.settings import GenerationSettings


class FakeEngine:
    """Answers "<adapter> says: <prompt>" word by word.

    ``other_base`` names adapters that raise BaseModelMismatchError, ``load_gate`` holds
    ``load()`` until it is set, and ``piece_delay`` spaces the pieces out so a test can stop
    an answer half-way.
    """

    def __init__(self, other_base: tuple[str, ...] = (), piece_delay: float = 0.0) -> None:
        self.base_model = "fake/base"
        self.device = "cpu"
        self.loaded: dict[str, Any] = {}
        self.released: list[str] = []
        self.prompts: list[tuple[str, str | None]] = []
        self.other_base = other_base
        self.piece_delay = piece_delay
        self.load_gate = threading.Event()
        self.load_gate.set()
        self.load_calls = 0
        self._loaded = False

    @property
    def is_loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        self.load_calls += 1
        self.load_gate.wait(10)
        self._loaded = True

    def attach(self, name: str) -> Any:
        if name in self.other_base:
            raise BaseModelMismatchError(
                f"adapter {name!r} was trained on google/flan-t5-base, but the base model loaded is fake/base"
            )
        self.loaded[name] = object()
        return self.loaded[name]

    def release(self, name: str) -> None:
        self.loaded.pop(name, None)
        self.released.append(name)

    def stream(
        self, prompt: str, adapter: str | None = None, settings: GenerationSettings | None = None, stop: threading.Event | None = None, **kwargs: Any
    ) -> Iterator[str | Answer]:
        settings = settings or GenerationSettings()
        self.load()
        if adapter is not None:
            self.attach(adapter)
        self.prompts.append((prompt, adapter))
        words = f"{adapter or 'base'} says: {prompt}".split()
        sent: list[str] = []
        for word in words[: settings.max_new_tokens]:
            if stop is not None and stop.is_set():
                break
            if self.piece_delay:
                time.sleep(self.piece_delay)
            piece = ("" if not sent else " ") + word
            sent.append(word)
            yield piece
        stopped = stop is not None and stop.is_set()
        yield Answer(
            text=" ".join(sent),
            adapter=adapter,
            tokens=len(sent),
            cut=len(words) > settings.max_new_tokens and not stopped,
            stopped=stopped,
            seconds=0.5,
        )
