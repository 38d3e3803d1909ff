"""Time lora-chat's chat engine: streaming against a plain ``generate``, and adapter switching.

Run by ``benchmarks/run.py`` as ``python benchmarks/probes/chat.py SPEC.json``. SPEC.json names
the model, the device, two adapters already in the library (``LORA_CHAT_HOME``), a prompt,
the number of new tokens and the repeats. The last line of stdout is ``RESULT {...}``, each
measurement a list with one figure per repeat.
"""

from __future__ import annotations

import gc
import json
import sys
import time


def main(spec_path: str) -> int:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    repeats = spec["repeats"]
    first, second = spec["adapters"]

    import torch

    from lora_chat.core.inference import Answer, ChatEngine
    from lora_chat.core.settings import GenerationSettings

    results: dict[str, list[float]] = {
        "stream_tokens_per_second": [],
        "plain_tokens_per_second": [],
        "first_token_s": [],
        "adapter_switch_s": [],
        "base_reload_s": [],
    }

    engine = ChatEngine(spec["model"], device=spec["device"])
    started = time.perf_counter()
    engine.load()
    results["base_load_s"] = [time.perf_counter() - started]

    # Both sides get exactly ``tokens`` new tokens, so tokens per second compare like with like.
    # The stand-in's random weights mostly pick ids past the end of its tokenizer. Those decode
    # to nothing, so nothing would stream. Suppressed, the stand-in streams text as a trained
    # model does. Both sides generate with the same extra arguments.
    tokens = spec["max_new_tokens"]
    settings = GenerationSettings(max_new_tokens=tokens, do_sample=False, num_beams=1)
    vocab_size = engine.model.get_output_embeddings().weight.shape[0]
    extra = {"min_new_tokens": tokens, "suppress_tokens": list(range(len(engine.tokenizer), vocab_size)) or None}
    engine_kwargs = engine._generate_kwargs
    engine._generate_kwargs = lambda s: {**engine_kwargs(s), **extra}
    plain_kwargs = engine._generate_kwargs(settings)

    def stream_once() -> tuple[float, float, int]:
        started = time.perf_counter()
        answer = None
        for item in engine.stream(spec["prompt"], adapter=None, settings=settings):
            if isinstance(item, Answer):
                answer = item
        elapsed = time.perf_counter() - started
        if answer.first_token_s is None:
            raise RuntimeError(f"nothing was streamed for {spec['prompt']!r}: {answer}")
        return elapsed, answer.first_token_s, answer.tokens

    def plain_once() -> tuple[float, int]:
        started = time.perf_counter()
        inputs = engine.tokenizer(spec["prompt"], return_tensors="pt").to(engine.device)
        with torch.inference_mode():
            ids = engine.model.generate(**inputs, **plain_kwargs)
        elapsed = time.perf_counter() - started
        return elapsed, int((ids[0][1:] != engine.tokenizer.pad_token_id).sum())

    stream_once()  # warm-up: first calls pay for lazy initialisation in torch
    plain_once()
    for _ in range(repeats):
        stream_s, first_token_s, stream_tokens = stream_once()
        plain_s, plain_tokens = plain_once()
        results["stream_tokens_per_second"].append(stream_tokens / stream_s)
        results["plain_tokens_per_second"].append(plain_tokens / plain_s)
        results["first_token_s"].append(first_token_s)
    results["tokens"] = [stream_tokens, plain_tokens]

    started = time.perf_counter()
    engine.attach(first)
    results["first_attach_s"] = [time.perf_counter() - started]
    engine.attach(second)
    for i in range(repeats * 2):
        target = second if i % 2 == 0 else first
        with engine._lock:
            started = time.perf_counter()
            # The step ``stream`` takes before it generates with ``target`` (a private method,
            # because the engine switches adapters only as part of answering).
            activated = engine._activate(target)
            results["adapter_switch_s"].append(time.perf_counter() - started)
        answering = activated[1] if isinstance(activated, tuple) else engine.model
        active = getattr(answering, "active_adapter", target)
        if active != target:
            raise RuntimeError(f"the switch to adapter {target!r} did not take effect: {active!r} is active")

    del engine
    gc.collect()
    for _ in range(repeats):
        started = time.perf_counter()
        fresh = ChatEngine(spec["model"], device=spec["device"])
        fresh.load()
        fresh.attach(first)
        results["base_reload_s"].append(time.perf_counter() - started)
        del fresh
        gc.collect()

    print("RESULT " + json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
