"""Chat inference: one base model per process, adapters attached by name and switched in place."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from lora_chat.core.errors import AdapterError, AdapterNotFoundError, BaseModelMismatchError
from lora_chat.core.library import AdapterEntry, AdapterLibrary
from lora_chat.core.settings import GenerationSettings

log = logging.getLogger(__name__)

BASE_LABEL = "none (base model)"


@dataclass
class Answer:
    """One generated answer and how it ended."""

    text: str
    adapter: str | None
    tokens: int = 0
    cut: bool = False
    stopped: bool = False
    seconds: float = 0.0
    first_token_s: float | None = None

    @property
    def label(self) -> str:
        return self.adapter or BASE_LABEL


@dataclass
class _Stream:
    pieces: list[str] = field(default_factory=list)


class ChatEngine:
    """Holds the base model once and answers prompts with or without an adapter.

    Methods may be called from worker threads; one lock serialises model use.
    """

    def __init__(self, base_model: str, library: AdapterLibrary | None = None, device: str | None = None) -> None:
        self.base_model = base_model
        self.library = library or AdapterLibrary()
        self.requested_device = device
        self.device: str | None = None
        self.tokenizer: Any = None
        self.model: Any = None  # the base model, or the PeftModel wrapping it once an adapter is loaded
        self.base_info: Any = None
        self.loaded: dict[str, AdapterEntry] = {}
        self.notes: list[str] = []
        self._lock = threading.RLock()

    @property
    def is_loaded(self) -> bool:
        return self.model is not None

    def load(self) -> None:
        """Load the tokenizer and the base model (once)."""
        with self._lock:
            if self.model is not None:
                return
            from lora_chat.core.model import describe_base_model, load_base_model, load_tokenizer, pick_device

            self.device = pick_device(self.requested_device)
            self.tokenizer = load_tokenizer(self.base_model)
            model = load_base_model(self.base_model, self.device)
            model.eval()
            self.base_info = describe_base_model(self.base_model, model)
            self.model = model

    # Adapters -----------------------------------------------------------------------

    def check_base(self, entry: AdapterEntry) -> None:
        """Raise BaseModelMismatchError when ``entry`` was trained on another base model."""
        self.load()
        base = entry.meta.get("base_model")
        trained_on = entry.base_model or "an unknown base model"
        mismatch = False
        if isinstance(base, dict) and base.get("fingerprint"):
            mismatch = base["fingerprint"] != self.base_info.fingerprint
        elif isinstance(base, dict) and base.get("shape"):
            mismatch = base["shape"] != self.base_info.shape
        if mismatch:
            raise BaseModelMismatchError(
                f"adapter {entry.name!r} was trained on {trained_on}, but the base model loaded is "
                f"{self.base_model}; an adapter only works on its own base model, so start with "
                f"--base-model {trained_on}"
            )

    def attach(self, name: str) -> AdapterEntry:
        """Load adapter ``name`` from the library (once) without reloading the base model."""
        with self._lock:
            if name in self.loaded:
                if self.loaded[name].path.is_dir():
                    return self.loaded[name]
                # Another process (or the app's library screen) deleted or renamed it: drop the
                # copy in memory too, so the chat never answers with an adapter the library lacks.
                self.release(name)
                raise AdapterNotFoundError(
                    f"adapter {name!r} is no longer in the library (it was deleted or renamed); "
                    "choose another adapter, or none"
                )
            entry = self.library.get(name)
            if entry.broken:
                raise AdapterError(f"adapter {name!r} is broken ({entry.problem}); delete it or import it again")
            self.check_base(entry)
            from lora_chat.core.compat import adapter_load_dir

            with adapter_load_dir(entry.path) as (folder, dropped):
                if dropped:
                    note = f"adapter {name!r}: ignored settings this peft version does not know: {', '.join(dropped)}"
                    self.notes.append(note)
                    log.warning("%s", note)
                try:
                    self._load_adapter(folder, name)
                except RuntimeError as exc:
                    if "size mismatch" in str(exc):
                        raise BaseModelMismatchError(
                            f"adapter {name!r} does not fit the base model {self.base_model} (its weights have other "
                            f"shapes); it was trained on {entry.base_model or 'another base model'}"
                        ) from None
                    raise AdapterError(f"adapter {name!r} could not be loaded: {exc}") from None
                except (OSError, ValueError, KeyError) as exc:
                    raise AdapterError(f"adapter {name!r} could not be loaded: {exc}") from None
            self.loaded[name] = entry
            return entry

    def _load_adapter(self, folder: Path, name: str) -> None:
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(folder), adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
        self.model.eval()

    def release(self, name: str) -> None:
        """Unload adapter ``name`` (before it is deleted or renamed in the library)."""
        with self._lock:
            if name not in self.loaded:
                return
            del self.loaded[name]
            self.model.delete_adapter(name)
            if not self.loaded:
                self.model = self.model.unload()
                self.model.eval()

    def _activate(self, adapter: str | None) -> Any:
        """Select ``adapter`` and return a context manager under which the model answers with it.

        Call with the lock held, in the caller's thread: attaching takes the lock too.
        """
        import contextlib

        from peft import PeftModel

        if adapter is None:
            if isinstance(self.model, PeftModel):
                return self.model.disable_adapter()
            return contextlib.nullcontext()
        self.attach(adapter)
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    # Generation ---------------------------------------------------------------------

    def _generate_kwargs(self, settings: GenerationSettings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "num_beams": settings.num_beams,
            "repetition_penalty": settings.repetition_penalty,
            "do_sample": settings.do_sample,
        }
        if settings.do_sample:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        return kwargs

    def stream(
        self,
        prompt: str,
        adapter: str | None = None,
        settings: GenerationSettings | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[str | Answer]:
        """Yield text pieces as they are generated, then the finished :class:`Answer`."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        settings = settings or GenerationSettings()
        stop = stop or threading.Event()
        self.load()

        class StopOnEvent(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        with self._lock:
            started = time.perf_counter()
            inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            streamer = None
            if settings.num_beams == 1:
                streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
            result: dict[str, Any] = {}
            active = self._activate(adapter)

            def run() -> None:
                try:
                    with active, torch.inference_mode():
                        result["ids"] = self.model.generate(
                            **inputs,
                            **self._generate_kwargs(settings),
                            streamer=streamer,
                            stopping_criteria=StoppingCriteriaList([StopOnEvent()]),
                        )
                except BaseException as exc:  # handed to the caller's thread below
                    result["error"] = exc
                    if streamer is not None:
                        streamer.end()

            worker = threading.Thread(target=run, name="lora-chat-generate", daemon=True)
            worker.start()
            first: float | None = None
            if streamer is not None:
                for piece in streamer:
                    if piece:
                        if first is None:
                            first = time.perf_counter() - started
                        yield piece
            worker.join()
            if "error" in result:
                raise result["error"]

            ids = result["ids"][0]
            generated = ids[1:]  # drop the decoder start token
            eos = self.tokenizer.eos_token_id
            ended = len(generated) > 0 and int(generated[-1]) == eos
            n_tokens = int((generated != self.tokenizer.pad_token_id).sum()) if len(generated) else 0
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            if streamer is None and text:
                first = time.perf_counter() - started
                yield text
            answer = Answer(
                text=text.strip(),
                adapter=adapter,
                tokens=n_tokens,
                cut=not ended and not stop.is_set() and len(generated) >= settings.max_new_tokens,
                stopped=stop.is_set() and not ended,
                seconds=time.perf_counter() - started,
                first_token_s=first,
            )
        yield answer

    def answer(
        self,
        prompt: str,
        adapter: str | None = None,
        settings: GenerationSettings | None = None,
        on_piece: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Answer:
        """Generate a whole answer, passing each piece to ``on_piece`` as it comes."""
        final: Answer | None = None
        for item in self.stream(prompt, adapter, settings, stop):
            if isinstance(item, Answer):
                final = item
            elif on_piece:
                on_piece(item)
        assert final is not None
        return final
