"""The app's side of chat: one ChatEngine, created on first use and loaded in a thread worker.

The engine belongs to the App, so the base model stays loaded when the user leaves the
Chat screen, and the Adapters screen can release an adapter before deleting it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.signal import Signal

from lora_chat.core.errors import LoraChatError

if TYPE_CHECKING:
    from textual.app import App

    from lora_chat.core.inference import ChatEngine

log = logging.getLogger(__name__)


class EngineState(Message):
    """The engine's state changed: ``idle``, ``loading``, ``ready`` or ``failed``."""

    def __init__(self, state: str, problem: str | None = None) -> None:
        super().__init__()
        self.state = state
        self.problem = problem


class ChatHost:
    """Mixed into the App: owns the chat engine and the stop event of the answer being generated."""

    engine_state: str = "idle"
    engine_problem: str | None = None
    _engine: Any = None
    _engine_changed: Signal[str] | None = None
    # Set to stop the answer being generated; the Chat screen replaces it for each prompt.
    answer_stop: threading.Event | None = None
    # The adapter that "open in chat" asked for (None: the base model), until the Chat screen takes it.
    requested_adapter: str | None = None
    adapter_requested: bool = False

    def make_engine(self) -> ChatEngine:
        """Create the engine; tests replace this to use a fake."""
        from lora_chat.core.inference import ChatEngine

        return ChatEngine(self.base_model)  # type: ignore[attr-defined]

    @property
    def engine(self) -> ChatEngine:
        if self._engine is None:
            self._engine = self.make_engine()
        return self._engine

    @engine.setter
    def engine(self, engine: ChatEngine) -> None:
        self._engine = engine

    @property
    def engine_changed(self) -> Signal[str]:
        """Published with the new state whenever the engine's state changes."""
        if self._engine_changed is None:
            self._engine_changed = Signal(self, "engine-changed")  # type: ignore[arg-type]
        return self._engine_changed

    def ensure_engine(self) -> None:
        """Start loading the base model unless it is loaded or loading."""
        if self.engine_state in ("loading", "ready"):
            return
        self._set_engine_state("loading")
        self.load_engine()

    @work(thread=True, name="loading the base model", group="engine", exit_on_error=False)
    def load_engine(self) -> None:
        app: App = self  # type: ignore[assignment]
        try:
            self.engine.load()
        except Exception as exc:
            app.call_from_thread(self._set_engine_state, "failed", str(exc) if isinstance(exc, LoraChatError) else f"{type(exc).__name__}: {exc}")
            raise
        app.call_from_thread(self._set_engine_state, "ready")

    def _set_engine_state(self, state: str, problem: str | None = None) -> None:
        self.engine_state = state
        self.engine_problem = problem
        self.engine_changed.publish(state)

    async def release_adapter(self, name: str) -> None:
        """Stop any answer and unload adapter ``name`` from the engine (before it is deleted or renamed)."""
        if self._engine is None or name not in self._engine.loaded:
            return
        if self.answer_stop is not None:
            self.answer_stop.set()
        # release() waits for the engine's lock, held by a stopping answer for one more token,
        # so it runs in a thread and the UI keeps drawing.
        await asyncio.to_thread(self._engine.release, name)
        if getattr(self, "current_adapter", None) == name:
            self.current_adapter = None
            self.update_subtitle()  # type: ignore[attr-defined]
        log.info("released adapter %s", name)

    def open_in_chat(self, adapter: str | None) -> None:
        """Switch to the Chat screen with ``adapter`` selected."""
        app: App = self  # type: ignore[assignment]
        # The Chat screen takes it when it is shown (on_screen_resume), whether it is new or not.
        self.requested_adapter = adapter
        self.adapter_requested = True
        app.switch_mode("chat")
