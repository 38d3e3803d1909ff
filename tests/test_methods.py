"""Fine-tuning methods: settings, peft configs, parameter counts, training and chat with each."""

import json

import pytest

from lora_chat.core.errors import SettingsError
from lora_chat.core.inference import ChatEngine
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.methods import count_trainable_parameters, make_peft_config, method_of_peft_type
from lora_chat.core.settings import GenerationSettings, TrainSettings, parse_value
from lora_chat.core.training import train

METHOD_SETTINGS = [
    TrainSettings(method="lora", rank=4),
    TrainSettings(method="lora", rank=4, dora=True, rslora=True),
    TrainSettings(method="lora", rank=2, target_modules=["q", "k", "v", "o", "wi_0", "wi_1", "wo"]),
    TrainSettings(method="ia3"),
    TrainSettings(method="ia3", ia3_target_modules=["q", "wi_0", "wo"], ia3_feedforward_modules=["wi_0", "wo"]),
    TrainSettings(method="prompt-tuning", virtual_tokens=7),
    TrainSettings(method="prefix-tuning", virtual_tokens=5),
]


def test_method_setting_rejects_unknown():
    with pytest.raises(SettingsError, match="method: 'adapter' is not one of lora, ia3, prompt-tuning, prefix-tuning"):
        parse_value(TrainSettings, "method", "adapter")


def test_defaults_keep_plain_lora():
    settings = TrainSettings()
    config = make_peft_config(settings)
    assert settings.method == "lora"
    assert config.peft_type == "LORA"
    assert config.use_dora is False
    assert config.use_rslora is False
    assert sorted(config.target_modules) == ["q", "v"]


@pytest.mark.parametrize("settings", METHOD_SETTINGS, ids=lambda s: f"{s.method}-{len(s.target_modules)}-{s.dora}")
def test_parameter_count_matches_peft(settings, tiny_model):
    from peft import get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(str(tiny_model))
    config = model.config.to_dict()
    peft_model = get_peft_model(model, make_peft_config(settings, config))
    actual = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert count_trainable_parameters(config, settings) == actual


def test_parameter_count_without_t5_fields():
    assert count_trainable_parameters({"hidden_size": 64}, TrainSettings()) is None


def test_peft_type_names():
    assert method_of_peft_type("PROMPT_TUNING") == "prompt-tuning"
    assert method_of_peft_type("IA3") == "ia3"
    assert method_of_peft_type(None) == "lora"


def test_ia3_unknown_module_named(sample, tiny_model):
    settings = TrainSettings(method="ia3", ia3_target_modules=["k_proj"], epochs=1)
    with pytest.raises(SettingsError, match="ia3-target-modules: k_proj match no layer"):
        train(sample / "greetings.jsonl", "bad", settings, str(tiny_model))


@pytest.mark.slow
def test_engine_switches_methods_like_fresh_loads(sample, tiny_model):
    """Each adapter answers as it does loaded alone, and the base stays the base, in any order."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from lora_chat.core.methods import fix_prefix_generation

    library = AdapterLibrary()
    methods = {
        "m-lora": TrainSettings(method="lora", dora=True),
        "m-ia3": TrainSettings(method="ia3"),
        "m-prompt": TrainSettings(method="prompt-tuning", virtual_tokens=4),
        "m-prefix": TrainSettings(method="prefix-tuning", virtual_tokens=4),
    }
    for name, settings in methods.items():
        settings.epochs, settings.learning_rate = 2, 0.05
        train(sample / "greetings.jsonl", name, settings, str(tiny_model), library=library)
        meta = json.loads((library.get(name).path / "lora_chat.json").read_text())
        assert meta["method"] == settings.method

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    prompt = "Good morning! How are you today?"

    def alone(name):
        model = AutoModelForSeq2SeqLM.from_pretrained(str(tiny_model)).eval()
        if name:
            model = PeftModel.from_pretrained(model, str(library.get(name).path)).eval()
            fix_prefix_generation(model)
        with torch.inference_mode():
            ids = model.generate(**tokenizer(prompt, return_tensors="pt"), max_new_tokens=8, do_sample=False)
        return tokenizer.decode(ids[0][1:], skip_special_tokens=True).strip()

    expected = {name: alone(name) for name in [None, *methods]}
    assert len({expected[None], expected["m-lora"], expected["m-prompt"], expected["m-prefix"]}) == 4

    engine = ChatEngine(str(tiny_model), library)
    settings = GenerationSettings(max_new_tokens=8)
    base_model_object = None
    for name in [None, "m-lora", "m-prompt", None, "m-ia3", "m-prefix", "m-lora", None, "m-prefix", "m-ia3", None]:
        assert engine.answer(prompt, name, settings).text == expected[name], name
        base_model_object = base_model_object or engine.model
        assert engine.model is base_model_object

    engine.release("m-prompt")
    assert engine.answer(prompt, None, settings).text == expected[None]
    assert engine.answer(prompt, "m-prompt", settings).text == expected["m-prompt"]
