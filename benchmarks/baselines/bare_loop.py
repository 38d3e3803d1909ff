"""A bare PyTorch training loop: the floor that lora-chat's trainer is measured against.

It trains the same LoRA adapter on the same batches as lora-chat (the same length-grouped,
per-batch-padded batches from the same seed) with AdamW and a linear learning-rate decay,
and nothing else: no Trainer, no accelerate, no progress events, no saving. Run by
``benchmarks/run.py`` as

    python benchmarks/baselines/bare_loop.py SPEC.json

The last line of stdout is ``RESULT {...}`` with the timings.
"""

from __future__ import annotations

import json
import random
import sys
import time


def main(spec_path: str) -> int:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    settings = spec["settings"]
    started = time.perf_counter()

    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from lora_chat.core.training import collate, length_grouped_batches

    device = torch.device(spec["device"])
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    torch.manual_seed(settings["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForSeq2SeqLM.from_pretrained(spec["model"], dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.SEQ_2_SEQ_LM,
            r=settings["rank"],
            lora_alpha=settings["alpha"],
            lora_dropout=settings["dropout"],
            target_modules=settings["target_modules"],
        ),
    ).to(device)

    with open(spec["rows"], encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    inputs = tokenizer([r["input"] for r in rows])["input_ids"]
    labels = tokenizer(text_target=[r["output"] for r in rows])["input_ids"]
    features = [{"input_ids": i, "labels": l} for i, l in zip(inputs, labels)]
    lengths = [len(f["input_ids"]) + len(f["labels"]) for f in features]

    optimizer = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=settings["learning_rate"], weight_decay=0.0)
    total_steps = -(-len(features) // settings["batch_size"]) * settings["epochs"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps))
    rng = random.Random(settings["seed"])
    model.train()

    train_started = time.perf_counter()
    loss = None
    for _ in range(settings["epochs"]):
        for batch_indices in length_grouped_batches(lengths, settings["batch_size"], rng):
            batch = collate([features[i] for i in batch_indices], tokenizer.pad_token_id, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    final_loss = float(loss.detach()) if loss is not None else None
    train_s = time.perf_counter() - train_started

    samples = len(rows) * settings["epochs"]
    result = {
        "train_s": train_s,
        "samples_per_second": samples / train_s,
        "final_loss": final_loss,
        "total_s": time.perf_counter() - started,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
