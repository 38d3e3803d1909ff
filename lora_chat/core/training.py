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
from lora_chat.core.methods import count_trainable_parameters, describe_method, make_peft_config, target_modules  # noqa: F401
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


def check_target_modules(model: Any, targets: list[str], setting: str = "target-modules") -> None:
    available = linear_module_names(model)
    missing = [t for t in targets if t not in available]
    if missing:
        raise SettingsError(
            f"{setting}: {', '.join(missing)} match no layer of this base model; "
            f"layer names that exist: {', '.join(available)}"
        )


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
    main_process: bool = True


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
        raise TrainingError("the saved adapter contains no weights; nothing was added to the library")
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
    if settings.early_stopping and not split.eval:
        raise SettingsError(
            f"early-stopping needs held-out rows, but none were held out ({len(rows)} valid rows, eval-fraction "
            f"{settings.eval_fraction:g}); set --eval-fraction above 0 with at least 5 rows, or turn early stopping off"
        )
    if should_stop():
        raise TrainingCancelled("training cancelled before it started; nothing was added to the library")

    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import get_peft_model

    device = pick_device(device)
    # NOTE: this CUDA and bf16 path has not run on a GPU yet; the tests cover the CPU path only.
    use_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    # T5 overflows in fp16, so mixed precision is bf16 or nothing.
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if use_bf16 else "no")
    set_seed(settings.seed)

    emit("status", message=f"loading the base model on {accelerator.device}")
    model = load_base_model(base_model, "cpu")
    base_info = describe_base_model(base_model, model)
    check_target_modules(model, target_modules(settings), "ia3-target-modules" if settings.method == "ia3" else "target-modules")
    model = get_peft_model(model, make_peft_config(settings, model.config.to_dict()))
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
    # The scheduler stays outside accelerate: prepared, it steps once per process on each
    # step, which decays the learning rate world-size times too fast here, because every
    # process works on a share of the same batch.
    model, optimizer = accelerator.prepare(model, optimizer)
    world, rank = accelerator.num_processes, accelerator.process_index
    pad_id = tokenizer.pad_token_id
    interval = eval_interval(steps_per_epoch, settings.eval_every)
    tracker = EvalTracker(settings.overfit_warning, settings.early_stopping)
    best_weights: dict[str, Any] | None = None
    stopped_early = False

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
        method=settings.method,
        method_description=describe_method(settings),
        eval_every=interval,
    )

    rng = random.Random(settings.seed)
    history: list[dict[str, Any]] = []
    step = 0
    samples = 0
    train_started = time.time()
    last_loss: float | None = None
    eval_loss: float | None = None

    for epoch in range(settings.epochs):
        model.train()
        for batch_idx in length_grouped_batches(lengths, settings.batch_size, rng):
            if stopped_early:
                break
            if should_stop():
                raise TrainingCancelled(f"training cancelled at step {step} of {total_steps}; nothing was added to the library")
            # Each process takes its share of the same batch, so several processes compute
            # the gradient a single process would.
            local = batch_idx[rank::world] or batch_idx[:1]
            batch = collate([train_features[i] for i in local], pad_id, accelerator.device)
            with accelerator.autocast():
                loss = model(**batch).loss
            if world > 1:
                # DDP averages the gradients of the processes. Weighting each share by its
                # target tokens makes that average the gradient of the whole batch's mean
                # loss; a process with no share of a small batch adds nothing.
                batch_tokens = sum(len(train_features[i]["labels"]) for i in batch_idx)
                share_tokens = sum(len(train_features[i]["labels"]) for i in batch_idx[rank::world])
                loss = loss * (share_tokens * world / batch_tokens)
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

            step_in_epoch = step - epoch * steps_per_epoch
            if not eval_features or (step_in_epoch % interval and step_in_epoch != steps_per_epoch):
                continue
            # Each process scores its share of the held-out rows; the sums are added up.
            unwrapped = accelerator.unwrap_model(model)
            sums = loss_sums(unwrapped, eval_features[rank::world], settings.batch_size, pad_id, accelerator.device)
            if world > 1:
                sums = accelerator.reduce(torch.tensor(sums, device=accelerator.device), reduction="sum").tolist()
            eval_loss = sums[0] / max(sums[1], 1)
            if not math.isfinite(eval_loss):
                raise TrainingError(
                    f"the eval loss became {eval_loss} at step {step}; training stopped and nothing was added "
                    f"to the library; try a lower learning rate (now {settings.learning_rate:g})"
                )
            window = [h["loss"] for h in history if h["step"] > tracker.last_step]
            warning = tracker.add(step, round(epoch + step_in_epoch / steps_per_epoch, 3), eval_loss, sum(window) / len(window))
            emit("eval", step=step, epoch=tracker.history[-1]["epoch"], eval_loss=round(eval_loss, 5), best_eval_loss=round(tracker.best_loss, 5))
            if warning:
                emit("warning", category="overfitting", step=step, message=warning)
            if settings.early_stopping and tracker.best_step == step:
                best_weights = {k: v.detach().clone() for k, v in unwrapped.named_parameters() if v.requires_grad}
            if tracker.should_stop_early():
                stopped_early = True
                emit(
                    "status",
                    message=f"early stopping at step {step}: eval loss has not improved for {settings.early_stopping} "
                    f"evaluations; keeping the adapter from step {tracker.best_step} (eval loss {tracker.best_loss:.4f})",
                )
        if stopped_early:
            break

    restored_step = None
    if best_weights is not None and tracker.best_step != step:
        unwrapped = accelerator.unwrap_model(model)
        with torch.no_grad():
            for key, param in unwrapped.named_parameters():
                if key in best_weights:
                    param.copy_(best_weights[key])
        restored_step = tracker.best_step
        eval_loss = tracker.best_loss
    duration = time.time() - train_started
    if should_stop():
        raise TrainingCancelled("training cancelled before saving; nothing was added to the library")

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return TrainResult(AdapterEntry(name, library.root / name), last_loss, eval_loss, duration, samples / max(duration, 1e-9), False)

    emit("status", message="saving the adapter")
    unwrapped = accelerator.unwrap_model(model)
    meta = {
        "name": name,
        "method": settings.method,
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
        "eval_history": tracker.history,
        "eval_every": interval,
        "warnings": tracker.warnings,
        "early_stopping": {
            "patience": settings.early_stopping,
            "stopped_early": stopped_early,
            "best_step": tracker.best_step,
            "best_eval_loss": tracker.best_loss,
            "restored_step": restored_step,
        }
        if settings.early_stopping
        else None,
        "final_loss": last_loss,
        "final_eval_loss": eval_loss,
        "last_eval_loss": tracker.history[-1]["eval_loss"] if tracker.history else None,
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
    total, tokens = loss_sums(model, features, batch_size, pad_id, device)
    return total / max(tokens, 1)


def loss_sums(model: Any, features: list[dict[str, list[int]]], batch_size: int, pad_id: int, device: Any) -> tuple[float, int]:
    """Return the summed loss over the target tokens of ``features`` and the number of those tokens."""
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
    return total, tokens


def eval_interval(steps_per_epoch: int, eval_every: int) -> int:
    """Return the steps between evaluations: ``eval_every``, else an epoch up to 25 steps and a quarter epoch above."""
    if eval_every:
        return eval_every
    return steps_per_epoch if steps_per_epoch <= 25 else math.ceil(steps_per_epoch / 4)


@dataclass
class EvalTracker:
    """Eval losses so far, the best one, and whether the run is overfitting.

    ``overfit_after``: evaluations in a row with a rising eval loss (while the mean
    training loss between evaluations fell) before a warning; 0 never warns.
    ``patience``: evaluations without a new best before early stopping; 0 never stops.
    """

    overfit_after: int
    patience: int
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_loss: float | None = None
    best_step: int | None = None
    last_step: int = 0
    since_best: int = 0
    rising: int = 0
    warned_this_rise: bool = False

    def add(self, step: int, epoch: float, eval_loss: float, train_loss: float) -> str | None:
        """Record one evaluation; return a warning message when overfitting starts to show."""
        previous = self.history[-1] if self.history else None
        self.history.append({"step": step, "epoch": epoch, "eval_loss": round(eval_loss, 5), "train_loss": round(train_loss, 5)})
        self.last_step = step
        if self.best_loss is None or eval_loss < self.best_loss:
            self.best_loss, self.best_step, self.since_best = eval_loss, step, 0
        else:
            self.since_best += 1
        self.rising = self.rising + 1 if previous and eval_loss > previous["eval_loss"] else 0
        if not self.rising:
            self.warned_this_rise = False

        if not self.overfit_after or self.rising < self.overfit_after or self.warned_this_rise:
            return None
        start = self.history[-1 - self.rising]
        if train_loss >= start["train_loss"]:
            return None
        self.warned_this_rise = True
        message = (
            f"eval loss has risen for {self.rising} evaluations in a row ({start['eval_loss']:.4f} at step "
            f"{start['step']} to {eval_loss:.4f} at step {step}) while the training loss fell "
            f"({start['train_loss']:.4f} to {train_loss:.4f}): the adapter is overfitting; fewer epochs, a lower "
            "learning rate or more rows would help, and --early-stopping keeps the best adapter"
        )
        self.warnings.append({"step": step, "message": message})
        return message

    def should_stop_early(self) -> bool:
        return bool(self.patience) and self.since_best >= self.patience
