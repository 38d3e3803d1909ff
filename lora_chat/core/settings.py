"""Settings: base model, training defaults and generation defaults, stored as TOML.

Each field carries its help text and its allowed range in ``metadata``; the CLI, the
Train form and ``/set`` in chat all check values through :func:`parse_value`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lora_chat.core import paths
from lora_chat.core.errors import SettingsError

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "google/flan-t5-small"
BASE_MODEL_ENV = "LORA_CHAT_BASE_MODEL"


def _field(
    default: Any, help: str, low: float | None = None, high: float | None = None, choices: tuple[str, ...] | None = None, **kwargs: Any
) -> Any:
    metadata = {"help": help, "min": low, "max": high, "choices": choices}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata, **kwargs)


def _check_fields(obj: Any) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        setattr(obj, f.name, _coerce(type(obj), f, value))


def _coerce(owner: type, f: dataclasses.Field, value: Any) -> Any:
    """Convert ``value`` to the field's type and check its range, naming the field on failure."""
    label = f.name.replace("_", "-")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    kind = type(default)
    low, high = f.metadata.get("min"), f.metadata.get("max")

    if kind is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "yes", "on", "1"):
                return True
            if lowered in ("false", "no", "off", "0"):
                return False
        if isinstance(value, bool):
            return value
        raise SettingsError(f"{label}: expected true or false, got {value!r}")

    if kind is list:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{label}: expected a comma-separated list of names, got {value!r}")
        items = [v for v in value if v]
        if not items:
            raise SettingsError(f"{label}: give at least one name (for example q,v)")
        return items

    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{label}: expected a non-empty text value, got {value!r}")
        choices = f.metadata.get("choices")
        if choices and value.strip() not in choices:
            raise SettingsError(f"{label}: {value.strip()!r} is not one of {', '.join(choices)}")
        return value.strip()

    try:
        if isinstance(value, bool):
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number: float = int(value) if not isinstance(value, str) else int(value.strip())
        else:
            number = float(value)
    except (TypeError, ValueError):
        wanted = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{label}: expected {wanted}, got {value!r}") from None

    if isinstance(number, float) and not math.isfinite(number):
        raise SettingsError(f"{label}: expected a finite number, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise SettingsError(f"{label}: {number} is out of range; allowed {_range_text(low, high)}")
    return number


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f"{low:g} or more"
    return f"{high:g} or less"


@dataclass
class TrainSettings:
    """Training settings. The defaults train 20-50 rows on a laptop CPU in a few minutes."""

    rank: int = _field(8, "LoRA rank: the size of the low-rank update matrices", 1, 256)
    alpha: float = _field(32.0, "LoRA alpha: the update is scaled by alpha / rank", 0.01, 4096)
    dropout: float = _field(0.05, "Dropout on the LoRA input, from 0 to 0.9", 0.0, 0.9)
    target_modules: list[str] = _field(["q", "v"], "Modules that get LoRA weights (T5 names: q, k, v, o, wi_0, wi_1, wo)")
    learning_rate: float = _field(1e-3, "Peak learning rate of AdamW", 1e-7, 1.0)
    epochs: int = _field(10, "Passes over the training rows", 1, 1000)
    batch_size: int = _field(8, "Rows per training step", 1, 1024)
    seed: int = _field(42, "Random seed for the split, the shuffling and the LoRA initialisation", 0, 2**31 - 1)
    eval_fraction: float = _field(0.1, "Share of rows held out to measure eval loss (0 turns evaluation off)", 0.0, 0.5)
    max_input_tokens: int = _field(256, "Longest input in tokens; longer rows are reported, never cut", 4, 4096)
    max_output_tokens: int = _field(128, "Longest output in tokens; longer rows are reported, never cut", 4, 4096)
    method: str = _field(
        "lora",
        "Fine-tuning method: lora, ia3, prompt-tuning or prefix-tuning (the last two often need a higher learning rate, such as 0.01 to 0.03)",
        choices=("lora", "ia3", "prompt-tuning", "prefix-tuning"),
    )
    rslora: bool = _field(False, "LoRA only: scale the update by alpha / sqrt(rank) (rsLoRA) instead of alpha / rank")
    dora: bool = _field(False, "LoRA only: split each update into magnitude and direction (DoRA); slower per step")
    virtual_tokens: int = _field(20, "Prompt and prefix tuning: number of virtual tokens learned in front of the input", 1, 512)
    ia3_target_modules: list[str] = _field(["k", "v", "wo"], "IA3 only: modules whose activations get a learned scale")
    ia3_feedforward_modules: list[str] = _field(
        ["wo"], "IA3 only: modules of the feed-forward block, scaled on their input; names not in ia3-target-modules are ignored"
    )
    eval_every: int = _field(0, "Steps between evaluations, besides one at each epoch end; 0 picks it from the data size (4 times an epoch above 25 steps an epoch)", 0, 1_000_000)
    overfit_warning: int = _field(2, "Warn when eval loss has risen this many evaluations in a row while the training loss fell (0: never)", 0, 1000)
    early_stopping: int = _field(0, "Stop when eval loss has not improved for this many evaluations and keep the best adapter (0: off)", 0, 1000)

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class GenerationSettings:
    """How answers are generated in chat."""

    max_new_tokens: int = _field(64, "Maximum number of tokens in one answer; a longer answer is cut and marked as cut", 1, 2048)
    do_sample: bool = _field(False, "Sample the next token instead of picking the most likely one")
    temperature: float = _field(0.7, "Sampling temperature (used only when sampling)", 0.01, 5.0)
    top_p: float = _field(0.9, "Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p", 0.01, 1.0)
    num_beams: int = _field(1, "Beam search width (1 means greedy or sampling)", 1, 16)
    repetition_penalty: float = _field(1.0, "Penalty for repeating tokens (1.0 means none)", 0.5, 5.0)

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class Settings:
    """Everything in ``settings.toml``."""

    base_model: str = DEFAULT_BASE_MODEL
    train: TrainSettings = field(default_factory=TrainSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    warnings: list[str] = field(default_factory=list, compare=False)

    def to_toml_dict(self) -> dict[str, Any]:
        return {
            "base_model": self.base_model,
            "train": dataclasses.asdict(self.train),
            "generation": dataclasses.asdict(self.generation),
        }


def parse_value(cls: type, name: str, value: Any) -> Any:
    """Check one field of ``cls`` given as text or a value; raise SettingsError naming the field."""
    for f in fields(cls):
        if f.name == name:
            return _coerce(cls, f, value)
    known = ", ".join(f.name.replace("_", "-") for f in fields(cls))
    raise SettingsError(f"unknown setting {name!r}; known settings: {known}")


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _section(cls: type, data: Any, where: str, warnings: list[str]) -> Any:
    if not isinstance(data, dict):
        warnings.append(f"{where}: expected a table, using the defaults")
        return cls()
    values = {}
    names = {f.name for f in fields(cls)}
    for key, value in data.items():
        if key not in names:
            warnings.append(f"{where}: unknown setting {key!r} ignored")
            continue
        try:
            values[key] = parse_value(cls, key, value)
        except SettingsError as exc:
            warnings.append(f"{where}: {exc}; using the default")
    return cls(**values)


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings file; a broken file gives warnings and the defaults, and is left as it is."""
    path = path or paths.settings_file()
    warnings: list[str] = []
    data: dict[str, Any] = {}
    if path.exists():
        # Imported here: without a settings file, start-up does without the TOML parser.
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - exercised only on Python 3.10
            import tomli as tomllib
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            warnings.append(f"{path} is not valid TOML ({exc}); using the default settings and leaving the file as it is")
        except (OSError, UnicodeDecodeError) as exc:
            warnings.append(f"cannot read {path} ({exc}); using the default settings")

    settings = Settings(
        train=_section(TrainSettings, data.get("train", {}), f"{path} [train]", warnings),
        generation=_section(GenerationSettings, data.get("generation", {}), f"{path} [generation]", warnings),
    )
    base = data.get("base_model")
    if isinstance(base, str) and base.strip():
        settings.base_model = base.strip()
    elif base is not None:
        warnings.append(f"{path}: base_model must be a model id or a folder path; using {DEFAULT_BASE_MODEL}")
    for key in data:
        if key not in ("base_model", "train", "generation"):
            warnings.append(f"{path}: unknown setting {key!r} ignored")

    env_base = os.environ.get(BASE_MODEL_ENV, "").strip()
    if env_base:
        settings.base_model = env_base
    settings.warnings = warnings
    for message in warnings:
        log.warning("%s", message)
    return settings


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings atomically with tomli-w."""
    import tomli_w

    from lora_chat.core.fileio import atomic_write_bytes

    path = path or paths.settings_file()
    try:
        atomic_write_bytes(path, tomli_w.dumps(settings.to_toml_dict()).encode("utf-8"))
    except OSError as exc:
        from lora_chat.core.errors import LoraChatError

        raise LoraChatError(
            f"cannot save the settings to {path} ({exc.strerror or exc}); the old file is unchanged; "
            f"make {path.parent} writable or set {paths.HOME_ENV} to a writable folder"
        ) from None
    return path
