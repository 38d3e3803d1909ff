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
# flan-t5 was trained on inputs of up to 512 tokens; few-shot prompts are kept within that.
FEW_SHOT_MAX_TOKENS = 512


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
    few_shot: int = 0  # examples put in front of the prompt (few-shot prompting); 0 for a plain prompt

    @property
    def label(self) -> str:
        label = self.adapter or BASE_LABEL
        return f"{label} + {self.few_shot}-shot prompt" if self.few_shot else label


def few_shot_prompt(examples: list[tuple[str, str]], prompt: str) -> str:
    """Put input/output examples in front of ``prompt``, in the Input:/Output: form flan-t5 follows."""
    parts = [f"Input: {source}\nOutput: {target}" for source, target in examples]
    parts.append(f"Input: {prompt}\nOutput:")
    return "\n\n".join(parts)


@dataclass
class _Stream:
    pieces: list[str] = field(default_factory=list)


class ChatEngine:
    """Holds the base model once and answers prompts with or without an adapter.

    Methods may be called from worker threads; one lock serialises model use.

    peft cannot hold adapters of different methods in one PeftModel, so adapters are
    grouped: LoRA or IA3 adapters live in one PeftModel that adds layers inside the base
    model (one of the two methods at a time), and prompt or prefix tuning adapters in one
    PeftModel per method that wraps the same base model object. Whichever answers, the
    others' layers are disabled, and the base model is never loaded twice.
    """

    def __init__(self, base_model: str, library: AdapterLibrary | None = None, device: str | None = None) -> None:
        self.base_model = base_model
        self.library = library or AdapterLibrary()
        self.requested_device = device
        self.device: str | None = None
        self.tokenizer: Any = None
        self.model: Any = None  # the base model; adapters add layers to it but never replace it
        self._injected: Any = None  # the PeftModel with the LoRA or IA3 adapters, if any
        self._prompt_models: dict[str, Any] = {}  # peft type (PROMPT_TUNING, PREFIX_TUNING) to its PeftModel
        self._owner: dict[str, Any] = {}  # adapter name to the PeftModel that holds it
        self._adapter_layers: list[Any] | None = None  # the LoRA or IA3 layers in the base model, see _select_injected
        self._adapter_layers_key: tuple[Any, ...] | None = None
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
        import json

        from peft import PeftConfig, PeftModel

        from lora_chat.core.methods import fix_prefix_generation

        peft_type = str(json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type", "LORA"))
        if PeftConfig.from_pretrained(str(folder)).is_prompt_learning:
            holder = self._prompt_models.get(peft_type)
            if holder is None:
                holder = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
                if peft_type == "PREFIX_TUNING":
                    fix_prefix_generation(holder)
                self._prompt_models[peft_type] = holder
            else:
                holder.load_adapter(str(folder), adapter_name=name)
        else:
            # PeftType is a str enum: it equals its value, while str() of it is "PeftType.LORA".
            if self._injected is not None and self._injected.peft_type != peft_type:
                # NOTE: switching between a LoRA and an IA3 adapter unloads the other method's
                # adapters (the base model stays), so compare mode across them reloads adapter files.
                self._unload_injected()
            if self._injected is None:
                self._injected = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
            else:
                self._injected.load_adapter(str(folder), adapter_name=name)
            holder = self._injected
        holder.eval()
        self._owner[name] = holder

    def _unload_injected(self) -> None:
        """Take the LoRA or IA3 layers out of the base model and forget their adapters."""
        for name in [n for n, holder in self._owner.items() if holder is self._injected]:
            del self._owner[name]
            self.loaded.pop(name, None)
        self._injected.unload()
        self._injected = None
        self._adapter_layers_key = None  # a later PeftModel may reuse the id of this one
        self.model.eval()

    def adapter_model(self, name: str) -> Any:
        """Attach adapter ``name`` and return the PeftModel that holds it (for merging)."""
        with self._lock:
            self.attach(name)
            return self._owner[name]

    def release(self, name: str) -> None:
        """Unload adapter ``name`` (before it is deleted or renamed in the library)."""
        with self._lock:
            if name not in self.loaded:
                return
            del self.loaded[name]
            holder = self._owner.pop(name)
            if any(other is holder for other in self._owner.values()):
                holder.delete_adapter(name)
            elif holder is self._injected:
                self._unload_injected()
            else:
                self._prompt_models = {k: v for k, v in self._prompt_models.items() if v is not holder}

    def _activate(self, adapter: str | None) -> tuple[Any, Any]:
        """Select ``adapter``; return a context manager and the model that answers with it under that context.

        Call with the lock held, in the caller's thread: attaching takes the lock too.
        """
        import contextlib

        if adapter is not None:
            self.attach(adapter)
        holder = self._owner.get(adapter) if adapter is not None else None
        if holder is not None and holder is self._injected:
            self._select_injected(adapter)
            return contextlib.nullcontext(), holder
        # The base model and prompt-learning adapters answer with the LoRA or IA3 layers off.
        disabled = self._injected.disable_adapter() if self._injected is not None else contextlib.nullcontext()
        if holder is None:
            return disabled, self.model
        holder.set_adapter(adapter)
        return disabled, holder

    def _select_injected(self, adapter: str) -> None:
        """Make ``adapter`` the active one of the LoRA or IA3 adapters.

        peft's ``set_adapter`` walks every module of the model twice to find the adapter layers.
        Here they are found once per set of loaded adapters, so a switch takes about 1 ms instead
        of 3 on the flan-t5-small stand-in (``adapter_switch_s`` in benchmarks/run.py).
        """
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        holder = self._injected
        key = (id(holder), tuple(sorted(holder.peft_config)))
        if self._adapter_layers_key != key:
            modules = list(holder.modules())
            # Adapters with modules_to_save or trainable tokens need peft's own bookkeeping.
            auxiliary = any(isinstance(m, AuxiliaryTrainingWrapper) for m in modules)
            self._adapter_layers = None if auxiliary else [m for m in modules if isinstance(m, BaseTunerLayer)]
            self._adapter_layers_key = key
        layers = self._adapter_layers
        if layers is None or any(layer.merged for layer in layers):
            holder.set_adapter(adapter)
            return
        # inference_mode=True leaves the adapter weights frozen; the chat never trains them.
        for layer in layers:
            layer.set_adapter(adapter, inference_mode=True)
        # The same two names peft's PeftModel.set_adapter and LoraModel.set_adapter set (peft 0.21).
        holder.active_adapter = adapter
        holder.base_model.active_adapter = adapter

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
        few_shot: list[tuple[str, str]] | None = None,
    ) -> Iterator[str | Answer]:
        """Yield text pieces as they are generated, then the finished :class:`Answer`.

        ``few_shot`` input/output examples go in front of the prompt (few-shot prompting);
        the last ones are dropped when they do not fit in :data:`FEW_SHOT_MAX_TOKENS`.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        settings = settings or GenerationSettings()
        stop = stop or threading.Event()
        self.load()

        class StopOnEvent(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        class Streamer(TextIteratorStreamer):
            def __deepcopy__(self, memo: dict) -> Streamer:
                # peft 0.21 deep-copies generate's arguments for prompt tuning. A copy would
                # stream into a queue that no caller reads, and its lock cannot be copied.
                return self

        with self._lock:
            started = time.perf_counter()
            shots = 0
            if few_shot:
                prompt, shots = self.build_few_shot_prompt(few_shot, prompt)
            inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            streamer = None
            if settings.num_beams == 1:
                streamer = Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
            result: dict[str, Any] = {}
            active, model = self._activate(adapter)

            def run() -> None:
                try:
                    with active, torch.inference_mode():
                        result["ids"] = model.generate(
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
                few_shot=shots,
            )
        yield answer

    def build_few_shot_prompt(self, examples: list[tuple[str, str]], prompt: str) -> tuple[str, int]:
        """Return the few-shot prompt with as many of ``examples`` as fit, and how many that is."""
        self.load()
        used = list(examples)
        while True:
            text = few_shot_prompt(used, prompt)
            if not used or len(self.tokenizer(text)["input_ids"]) <= FEW_SHOT_MAX_TOKENS:
                return text, len(used)
            used.pop()

    def score(self, pairs: list[tuple[str, str]], adapter: str | None = None, few_shot: list[tuple[str, str]] | None = None) -> list[float]:
        """Return the mean loss per token of each expected output given its input, under ``adapter``."""
        import torch

        self.load()
        losses = []
        with self._lock:
            active, model = self._activate(adapter)
            with active, torch.inference_mode():
                for source, target in pairs:
                    text = self.build_few_shot_prompt(few_shot, source)[0] if few_shot else source
                    inputs = self.tokenizer(text, return_tensors="pt").to(self.device)
                    labels = self.tokenizer(text_target=target, return_tensors="pt")["input_ids"].to(self.device)
                    losses.append(float(model(**inputs, labels=labels).loss))
        return losses

    def answer(
        self,
        prompt: str,
        adapter: str | None = None,
        settings: GenerationSettings | None = None,
        on_piece: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        few_shot: list[tuple[str, str]] | None = None,
    ) -> Answer:
        """Generate a whole answer, passing each piece to ``on_piece`` as it comes."""
        final: Answer | None = None
        for item in self.stream(prompt, adapter, settings, stop, few_shot):
            if isinstance(item, Answer):
                final = item
            elif on_piece:
                on_piece(item)
        assert final is not None
        return final
