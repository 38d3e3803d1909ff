"""The "seed recipe": the plain Trainer script lora-chat replaces, as a baseline to beat.

A ``Seq2SeqTrainer`` run with inputs and targets padded to a fixed 128 tokens, the default
collator and a checkpoint folder saved every epoch. Run by ``benchmarks/run.py`` as

    python benchmarks/baselines/seed_recipe.py SPEC.json

where SPEC.json names the model, the rows file (JSONL with input and output), the device and
the training settings. The last line of stdout is ``RESULT {...}`` with the timings.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

# Every input and every target is padded (or cut) to this many tokens.
FIXED_LENGTH = 128


def main(spec_path: str) -> int:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    settings = spec["settings"]
    started = time.perf_counter()

    import datasets
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        default_data_collator,
    )

    datasets.disable_progress_bars()
    cuda = spec["device"] == "cuda"
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
    )

    with open(spec["rows"], encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]

    def tokenize(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        encoded = tokenizer(batch["input"], max_length=FIXED_LENGTH, padding="max_length", truncation=True)
        targets = tokenizer(text_target=batch["output"], max_length=FIXED_LENGTH, padding="max_length", truncation=True)
        pad = tokenizer.pad_token_id
        encoded["labels"] = [[t if t != pad else -100 for t in ids] for ids in targets["input_ids"]]
        return encoded

    train_set = datasets.Dataset.from_list(rows).map(tokenize, batched=True, remove_columns=["input", "output"])

    with tempfile.TemporaryDirectory(prefix="seed-recipe-") as output_dir:
        args = Seq2SeqTrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=settings["batch_size"],
            num_train_epochs=settings["epochs"],
            learning_rate=settings["learning_rate"],
            weight_decay=0.0,
            save_strategy="epoch",
            logging_steps=10,
            seed=settings["seed"],
            report_to="none",
            disable_tqdm=True,
            use_cpu=not cuda,
            bf16=cuda and torch.cuda.is_bf16_supported(),
        )
        trainer = Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=train_set,
            data_collator=default_data_collator,
            processing_class=tokenizer,
        )
        train_started = time.perf_counter()
        output = trainer.train()
        train_s = time.perf_counter() - train_started

    samples = len(rows) * settings["epochs"]
    result = {
        "train_s": train_s,
        "samples_per_second": samples / train_s,
        "final_loss": output.training_loss,
        "total_s": time.perf_counter() - started,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
