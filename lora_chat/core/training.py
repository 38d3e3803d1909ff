"""Training a LoRA adapter on a small dataset, reporting progress as events.

The loop is written out (no Trainer) so that it pads per batch, groups rows of similar
length, tokenises once, never writes checkpoint folders, and stops within one step when
asked. It runs under Hugging Face accelerate, so ``accelerate launch -m lora_chat train``
spreads a run over several processes with no change.

Progress goes to ``report(event)``, a plain callable taking a dict, and to an optional
JSONL event log that another process (the TUI) can follow.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import platform
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lora_chat.core.dataset import Dataset, DatasetReport, Row, check_dataset, read_dataset
from lora_chat.core.errors import DatasetError, DiskSpaceError, SettingsError, TrainingCancelled, TrainingError
from lora_chat.core.library import AdapterEntry, AdapterLibrary, validate_name
from lora_chat.core.settings import TrainSettings

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]

# Rows within a group of this many batches are sorted by length before batching, so a
# batch holds rows of similar length and pads little, while the order stays random.
LENGTH_GROUP_BATCHES = 16


class EventLog:
    """A JSONL file with one event per line, flushed at once so other processes can follow it."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self._fh = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")

    def write(self, event: dict[str, Any]) -> None:
        if self._fh:
            self._fh.write(json.dumps(event, ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Read complete events from ``offset`` on; return them and the offset to read from next."""
    events = []
    try:
        with Path(path).open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            log.warning("skipped an unreadable line in %s", path)
    return events, offset + end


@dataclass
class Split:
    train: list[Row]
    eval: list[Row]


def split_rows(rows: list[Row], eval_fraction: float, seed: int) -> Split:
    """Hold out a seeded share of rows for evaluation (none when fewer than 5 rows)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = 0
    if eval_fraction > 0 and len(rows) >= 5:
        n_eval = max(1, round(len(rows) * eval_fraction))
    eval_idx = sorted(order[:n_eval])
    train_idx = sorted(order[n_eval:])
    return Split([rows[i] for i in train_idx], [rows[i] for i in eval_idx])


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, then sort within groups by length and cut into batches; batch order is shuffled too."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * LENGTH_GROUP_BATCHES
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(features: list[dict[str, list[int]]], pad_id: int, device: Any) -> dict[str, Any]:
    """Pad a batch to its own longest row; labels are padded with -100 so pads are not trained on."""
    import torch

    max_in = max(len(f["input_ids"]) for f in features)
    max_out = max(len(f["labels"]) for f in features)
    input_ids = torch.full((len(features), max_in), pad_id, dtype=torch.long)
    attention = torch.zeros((len(features), max_in), dtype=torch.long)
    labels = torch.full((len(features), max_out), -100, dtype=torch.long)
    for i, f in enumerate(features):
        input_ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        attention[i, : len(f["input_ids"])] = 1
        labels[i, : len(f["labels"])] = torch.tensor(f["labels"])
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device), "labels": labels.to(device)}


def linear_module_names(model: Any) -> list[str]:
    """Return the distinct last-part names of the model's Linear layers (q, k, v, o, wi_0, ...)."""
    import torch

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    return sorted(names)


def check_target_modules(model: Any, targets: list[str]) -> None:
    available = linear_module_names(model)
    missing = [t for t in targets if t not in available]
    if missing:
        raise SettingsError(
            f"target-modules: {', '.join(missing)} match no layer of this base model; "
            f"layer names that exist: {', '.join(available)}"
        )


def make_peft_config(settings: TrainSettings) -> Any:
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
    )


def count_trainable_parameters(base_config: dict[str, Any], settings: TrainSettings) -> int:
    """Count LoRA parameters for a T5-shaped model from its config, without loading it."""
    d_model = base_config["d_model"]
    inner = base_config["num_heads"] * base_config["d_kv"]
    d_ff = base_config["d_ff"]
    enc, dec = base_config["num_layers"], base_config.get("num_decoder_layers") or base_config["num_layers"]
    gated = str(base_config.get("feed_forward_proj", "")).startswith("gated")
    shapes = {"q": (d_model, inner), "k": (d_model, inner), "v": (d_model, inner), "o": (inner, d_model), "wo": (d_ff, d_model)}
    shapes.update({"wi_0": (d_model, d_ff), "wi_1": (d_model, d_ff)} if gated else {"wi": (d_model, d_ff)})
    total = 0
    for target in settings.target_modules:
        if target not in shapes:
            continue
        fan_in, fan_out = shapes[target]
        per_layer = settings.rank * (fan_in + fan_out)
        attention_blocks = enc + 2 * dec  # decoder layers have self- and cross-attention
        total += per_layer * (attention_blocks if target in ("q", "k", "v", "o") else enc + dec)
    return total


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "python": platform.python_version()}


def prepare_dataset(
    source: str | Path | Dataset, tokenizer: Any, settings: TrainSettings
) -> tuple[Dataset, DatasetReport]:
    """Read and check a dataset; raise DatasetError when no row can be trained on."""
    from lora_chat.core.model import token_counter

    dataset = source if isinstance(source, Dataset) else read_dataset(source)
    report = check_dataset(dataset, token_counter(tokenizer), settings.max_input_tokens, settings.max_output_tokens)
    require_valid_rows(report)
    return dataset, report


def require_valid_rows(report: DatasetReport) -> None:
    """Raise DatasetError naming the first problems when no row of ``report`` can be trained on."""
    if report.trainable:
        return
    dataset = report.dataset
    problems = report.problem_lines(limit=3)
    raise DatasetError(
        f"{dataset.path or dataset.name}: no valid rows to train on ({len(report.rows)} rows, all with problems: "
        + "; ".join(problems)
        + "); fix them with 'lora-chat dataset check'"
    )


@dataclass
class TrainResult:
    adapter: AdapterEntry
    final_loss: float | None
    final_eval_loss: float | None
    duration_s: float
    samples_per_second: float


def _adapter_bytes(trainable: int) -> int:
    """Estimate the disk space a saved adapter takes: fp32 weights plus room for the config and metadata."""
    return trainable * 4 + 2_000_000


def _check_disk_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskSpaceError(
            f"not enough free disk space to save the adapter in {folder}: {needed / 1e6:.1f} MB needed, "
            f"{free / 1e6:.1f} MB free; free some space and train again"
        )


def _verify_saved_adapter(folder: Path) -> None:
    """Load the saved weights back and check they are there and not all zero."""
    from safetensors.torch import load_file

    from lora_chat.core.library import adapter_files_problem

    problem = adapter_files_problem(folder)
    if problem:
        raise TrainingError(f"the saved adapter is incomplete ({problem}); nothing was added to the library")
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    if not tensors:
        raise TrainingError("the saved adapter holds no weights; nothing was added to the library")
    if not all(bool(t.isfinite().all()) for t in tensors.values()):
        raise TrainingError("the saved adapter's weights contain NaN or infinite values; nothing was added to the library")
    if all(float(t.abs().sum()) == 0.0 for t in tensors.values()):
        raise TrainingError("the saved adapter's weights are all zero; nothing was added to the library")


def train(
    dataset: str | Path | Dataset,
    name: str,
    settings: TrainSettings,
    base_model: str,
    *,
    report: Report | None = None,
    should_stop: ShouldStop | None = None,
    event_log: Path | None = None,
    library: AdapterLibrary | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train an adapter and add it to the library as ``name``.

    Raises DatasetError or SettingsError before any model loads when the input is bad,
    TrainingCancelled when ``should_stop()`` turns true, and TrainingError on a NaN loss.
    Nothing is added to the library unless the whole run succeeds.
    """
    library = library or AdapterLibrary()
    events = EventLog(event_log)
    started = time.time()
    # Under ``accelerate launch`` only the first process reports and writes the event log.
    main_process = os.environ.get("RANK", "0") == "0"

    def emit(kind: str, **fields: Any) -> None:
        event = {"event": kind, "time": round(time.time(), 3), "elapsed": round(time.time() - started, 3), **fields}
        if main_process:
            events.write(event)
            if report:
                report(event)

    try:
        emit("start", name=name, base_model=base_model, pid=os.getpid(), settings=dataclasses.asdict(settings))
        result = _train(dataset, name, settings, base_model, emit, should_stop or (lambda: False), library, device, started)
        return result
    except TrainingCancelled as exc:
        emit("cancelled", message=str(exc))
        raise
    except Exception as exc:
        from lora_chat.core.errors import LoraChatError

        emit("error", message=str(exc), error_type=type(exc).__name__, expected=isinstance(exc, LoraChatError))
        raise
    finally:
        events.close()


def _train(
    source: str | Path | Dataset,
    name: str,
    settings: TrainSettings,
    base_model: str,
    emit: Callable[..., None],
    should_stop: ShouldStop,
    library: AdapterLibrary,
    device: str | None,
    started: float,
) -> TrainResult:
    validate_name(name)
    library.ensure_root()
    library.check_new_name(name)
    library.clean_staging()

    from lora_chat.core.model import describe_base_model, load_base_model, load_tokenizer, pick_device

    # A file that cannot be read, or has no valid row even before token counts, is
    # rejected before the tokenizer or the base model loads.
    dataset = source if isinstance(source, Dataset) else read_dataset(source)
    require_valid_rows(check_dataset(dataset, None, settings.max_input_tokens, settings.max_output_tokens))

    emit("status", message="loading the tokenizer")
    tokenizer = load_tokenizer(base_model)
    dataset, data_report = prepare_dataset(dataset, tokenizer, settings)
    rows = data_report.valid_rows
    skipped = len(data_report.rows) - len(rows)
    split = split_rows(rows, settings.eval_fraction, settings.seed)
    emit(
        "status",
        message=f"{len(rows)} valid rows ({skipped} skipped), {len(split.train)} for training, {len(split.eval)} held out",
        rows=len(rows),
        skipped=skipped,
    )
    if should_stop():
        raise TrainingCancelled("training cancelled before it started; nothing was added to the library")

    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import get_peft_model

    device = pick_device(device)
    use_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    # T5 overflows in fp16, so mixed precision is bf16 or nothing.
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if use_bf16 else "no")
    set_seed(settings.seed)

    emit("status", message=f"loading the base model on {accelerator.device}")
    model = load_base_model(base_model, "cpu")
    base_info = describe_base_model(base_model, model)
    check_target_modules(model, settings.target_modules)
    model = get_peft_model(model, make_peft_config(settings))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Checked again before saving; checking now spares a whole run that could not be saved.
    _check_disk_space(library.root, _adapter_bytes(trainable))

    def encode(batch_rows: list[Row]) -> list[dict[str, list[int]]]:
        inputs = tokenizer([r.input for r in batch_rows])["input_ids"]
        labels = tokenizer(text_target=[r.output for r in batch_rows])["input_ids"]
        return [{"input_ids": i, "labels": l} for i, l in zip(inputs, labels)]

    train_features = encode(split.train)
    eval_features = encode(split.eval) if split.eval else []
    lengths = [len(f["input_ids"]) + len(f["labels"]) for f in train_features]

    optimizer = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=settings.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(train_features) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / max(1, total_steps)))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    world, rank = accelerator.num_processes, accelerator.process_index
    pad_id = tokenizer.pad_token_id

    emit(
        "ready",
        total_steps=total_steps,
        epochs=settings.epochs,
        steps_per_epoch=steps_per_epoch,
        train_rows=len(split.train),
        eval_rows=len(split.eval),
        trainable_parameters=trainable,
        device=str(accelerator.device) + (" (bf16)" if use_bf16 else ""),
        processes=world,
    )

    rng = random.Random(settings.seed)
    history: list[dict[str, Any]] = []
    eval_history: list[dict[str, Any]] = []
    step = 0
    samples = 0
    train_started = time.time()
    last_loss: float | None = None
    eval_loss: float | None = None

    for epoch in range(settings.epochs):
        model.train()
        for batch_idx in length_grouped_batches(lengths, settings.batch_size, rng):
            if should_stop():
                raise TrainingCancelled(f"training cancelled at step {step} of {total_steps}; nothing was added to the library")
            # Each process takes its share of the same batch, so several processes compute
            # the gradient a single process would.
            local = batch_idx[rank::world] or batch_idx[:1]
            batch = collate([train_features[i] for i in local], pad_id, accelerator.device)
            with accelerator.autocast():
                loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {float(loss)} at step {step + 1}; training stopped and nothing was added "
                    f"to the library; try a lower learning rate (now {settings.learning_rate:g})"
                )
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            step += 1
            samples += len(batch_idx)
            last_loss = float(accelerator.reduce(loss.detach(), reduction="mean")) if world > 1 else float(loss.detach())
            history.append({"step": step, "loss": round(last_loss, 5)})
            elapsed = time.time() - train_started
            emit(
                "step",
                step=step,
                total_steps=total_steps,
                epoch=round(epoch + (step - epoch * steps_per_epoch) / steps_per_epoch, 3),
                loss=round(last_loss, 5),
                learning_rate=scheduler.get_last_lr()[0],
                samples_per_second=round(samples / elapsed, 2) if elapsed > 0 else None,
                eta=round(elapsed / step * (total_steps - step), 1),
            )

        if eval_features:
            eval_loss = evaluate_loss(model, eval_features, settings.batch_size, pad_id, accelerator.device)
            if not math.isfinite(eval_loss):
                raise TrainingError(
                    f"the eval loss became {eval_loss} after epoch {epoch + 1}; training stopped and nothing was added "
                    f"to the library; try a lower learning rate (now {settings.learning_rate:g})"
                )
            eval_history.append({"step": step, "epoch": epoch + 1, "eval_loss": round(eval_loss, 5)})
            emit("eval", step=step, epoch=epoch + 1, eval_loss=round(eval_loss, 5))

    duration = time.time() - train_started
    if should_stop():
        raise TrainingCancelled("training cancelled before saving; nothing was added to the library")

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return TrainResult(AdapterEntry(name, library.root / name), last_loss, eval_loss, duration, samples / max(duration, 1e-9))

    emit("status", message="saving the adapter")
    unwrapped = accelerator.unwrap_model(model)
    meta = {
        "name": name,
        "method": "lora",
        "base_model": base_info.to_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dataset": {
            "name": dataset.name,
            "path": str(dataset.path.resolve()) if dataset.path else None,
            "rows": len(dataset.rows),
            "valid_rows": len(rows),
            "content_hash": dataset.content_hash(),
            "eval_rows": [r.number for r in split.eval],
        },
        "settings": dataclasses.asdict(settings),
        "trainable_parameters": trainable,
        "loss_history": history,
        "eval_history": eval_history,
        "final_loss": last_loss,
        "final_eval_loss": eval_loss,
        "duration_s": round(duration, 2),
        "samples_per_second": round(samples / duration, 2) if duration > 0 else None,
        "device": str(accelerator.device),
        "processes": world,
        "versions": _versions(),
    }
    entry = save_adapter(unwrapped, meta, library, name, trainable)
    emit("done", adapter=name, path=str(entry.path), final_loss=last_loss, final_eval_loss=eval_loss, duration=round(duration, 2))
    return TrainResult(entry, last_loss, eval_loss, duration, meta["samples_per_second"] or 0.0)


def save_adapter(model: Any, meta: dict[str, Any], library: AdapterLibrary, name: str, trainable: int) -> AdapterEntry:
    """Save into a staging folder, check it, and rename it into the library in one step."""
    needed = _adapter_bytes(trainable)
    _check_disk_space(library.root, needed)
    staging = library.new_staging()
    try:
        try:
            model.save_pretrained(str(staging), safe_serialization=True)
            library.write_metadata(staging, meta)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskSpaceError(
                    f"the disk filled up while saving the adapter in {library.root} ({exc.strerror or exc}); "
                    f"nothing was added to the library; free at least {needed / 1e6:.1f} MB and train again"
                ) from None
            raise TrainingError(
                f"saving the adapter in {library.root} failed ({exc.strerror or exc}); nothing was added to the library"
            ) from None
        _verify_saved_adapter(staging)
        return library.commit_staging(staging, name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def evaluate_loss(model: Any, features: list[dict[str, list[int]]], batch_size: int, pad_id: int, device: Any) -> float:
    """Return the mean loss per target token over ``features``, under inference mode."""
    import torch

    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            batch = collate(features[start : start + batch_size], pad_id, device)
            n = int((batch["labels"] != -100).sum())
            total += float(model(**batch).loss) * n
            tokens += n
    if was_training:
        model.train()
    return total / max(tokens, 1)
