"""The fine-tuning methods: LoRA (with rsLoRA and DoRA), IA3, prompt tuning and prefix tuning.

Each method maps to one peft config class. LoRA and IA3 add weights inside the base
model's layers, so they can be merged into it. Prompt and prefix tuning learn virtual
tokens in front of the input, so they cannot be merged.
"""

from __future__ import annotations

from typing import Any

from lora_chat.core.errors import SettingsError
from lora_chat.core.settings import TrainSettings

METHODS = ("lora", "ia3", "prompt-tuning", "prefix-tuning")
PROMPT_LEARNING_METHODS = ("prompt-tuning", "prefix-tuning")
MERGEABLE_METHODS = ("lora", "ia3")

# peft's PeftType values and the method names used here.
PEFT_TYPE_METHODS = {"LORA": "lora", "IA3": "ia3", "PROMPT_TUNING": "prompt-tuning", "PREFIX_TUNING": "prefix-tuning"}

# T5 module names of the feed-forward block (wi for ReLU models, wi_0 and wi_1 for gated ones).
FEED_FORWARD_MODULES = ("wi", "wi_0", "wi_1", "wo")


def method_of_peft_type(peft_type: str | None) -> str:
    """Return the method name for a peft type such as "LORA"; unknown types are lowercased."""
    text = str(peft_type or "LORA")
    return PEFT_TYPE_METHODS.get(text.upper(), text.lower().replace("_", "-"))


def target_modules(settings: TrainSettings) -> list[str]:
    """Return the layer names the method adds weights to (none for prompt and prefix tuning)."""
    if settings.method == "lora":
        return list(settings.target_modules)
    if settings.method == "ia3":
        return list(settings.ia3_target_modules)
    return []


def describe_method(settings: TrainSettings) -> str:
    """Return a short description such as "LoRA r=8 (DoRA)" for progress lines and tables."""
    if settings.method == "lora":
        extras = [name for name, on in (("rsLoRA", settings.rslora), ("DoRA", settings.dora)) if on]
        return f"LoRA r={settings.rank}" + (f" ({', '.join(extras)})" if extras else "")
    if settings.method == "ia3":
        return f"IA3 on {','.join(settings.ia3_target_modules)}"
    return f"{settings.method} with {settings.virtual_tokens} virtual tokens"


def make_peft_config(settings: TrainSettings, model_config: dict[str, Any] | None = None) -> Any:
    """Build the peft config for ``settings.method``; prefix tuning needs the base model's config."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    task = TaskType.SEQ_2_SEQ_LM
    if settings.method == "lora":
        return LoraConfig(
            task_type=task,
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=list(settings.target_modules),
            use_rslora=settings.rslora,
            use_dora=settings.dora,
        )
    if settings.method == "ia3":
        targets = list(settings.ia3_target_modules)
        return IA3Config(
            task_type=task,
            target_modules=targets,
            feedforward_modules=[m for m in settings.ia3_feedforward_modules if m in targets],
        )
    if settings.method == "prompt-tuning":
        return PromptTuningConfig(task_type=task, num_virtual_tokens=settings.virtual_tokens)
    if settings.method == "prefix-tuning":
        if not model_config:
            raise SettingsError("prefix-tuning needs the base model's config to size its virtual tokens")
        # T5 attention is num_heads * d_kv wide, which differs from d_model in flan-t5
        # (6 * 64 = 384 against 512). peft 0.21 uses d_model unless token_dim is set, and
        # the key and value shapes then do not fit.
        heads = model_config["num_heads"]
        return PrefixTuningConfig(
            task_type=task,
            num_virtual_tokens=settings.virtual_tokens,
            token_dim=heads * model_config["d_kv"],
            num_attention_heads=heads,
        )
    raise SettingsError(f"method: {settings.method!r} is not one of {', '.join(METHODS)}")


def count_trainable_parameters(base_config: dict[str, Any], settings: TrainSettings) -> int | None:
    """Count the trainable parameters of a method on a T5-shaped model from its config, without loading it.

    Returns None when the config lacks a T5 field. The counts match peft 0.21's layers.
    DoRA adds one magnitude per output feature of each adapted layer. IA3 learns one
    scale per output feature, or per input feature for feed-forward modules. Prompt
    tuning learns its tokens for the encoder and the decoder. Prefix tuning learns keys
    and values for each layer.
    """
    try:
        d_model = base_config["d_model"]
        inner = base_config["num_heads"] * base_config["d_kv"]
        d_ff = base_config["d_ff"]
        enc = base_config["num_layers"]
    except KeyError:
        return None
    dec = base_config.get("num_decoder_layers") or enc
    gated = str(base_config.get("feed_forward_proj", "")).startswith("gated")
    shapes = {"q": (d_model, inner), "k": (d_model, inner), "v": (d_model, inner), "o": (inner, d_model), "wo": (d_ff, d_model)}
    shapes.update({"wi_0": (d_model, d_ff), "wi_1": (d_model, d_ff)} if gated else {"wi": (d_model, d_ff)})
    attention_blocks = enc + 2 * dec  # decoder layers have self- and cross-attention

    def layers_of(target: str) -> int:
        return attention_blocks if target in ("q", "k", "v", "o") else enc + dec

    if settings.method == "prompt-tuning":
        return settings.virtual_tokens * d_model * 2
    if settings.method == "prefix-tuning":
        return settings.virtual_tokens * enc * 2 * inner

    total = 0
    if settings.method == "ia3":
        feed_forward = set(settings.ia3_feedforward_modules)
        for target in settings.ia3_target_modules:
            if target in shapes:
                fan_in, fan_out = shapes[target]
                total += (fan_in if target in feed_forward else fan_out) * layers_of(target)
        return total

    for target in settings.target_modules:
        if target not in shapes:
            continue
        fan_in, fan_out = shapes[target]
        per_layer = settings.rank * (fan_in + fan_out) + (fan_out if settings.dora else 0)
        total += per_layer * layers_of(target)
    return total


def fix_prefix_generation(model: Any) -> None:
    """Make ``generate`` of a prefix-tuning PeftModel use its prefix (peft 0.21 with transformers 5.x).

    transformers 5.x passes the generation cache as ``cache`` and renames a
    ``past_key_values`` argument to it only when ``cache`` is absent, so the prefix peft
    puts in ``past_key_values`` is dropped and the answer is the base model's. This puts
    the prefix in ``cache`` on the first step and leaves the growing cache alone after
    it. With older transformers, which has no ``cache`` argument, nothing changes.
    """
    peft_prepare = model.prepare_inputs_for_generation

    def prepare_inputs_for_generation(*args: Any, **kwargs: Any) -> dict[str, Any]:
        first_step = bool(kwargs.get("is_first_iteration"))
        inputs = peft_prepare(*args, **kwargs)
        if "cache" not in inputs:
            return inputs
        prefix = inputs.pop("past_key_values", None)
        if first_step and prefix is not None:
            inputs["cache"] = prefix
        return inputs

    model.prepare_inputs_for_generation = prepare_inputs_for_generation
