import pytest

from lora_chat.core import paths
from lora_chat.core.errors import SettingsError
from lora_chat.core.settings import GenerationSettings, Settings, TrainSettings, load_settings, parse_value, save_settings


def test_defaults_without_file():
    settings = load_settings()
    assert settings.base_model == "google/flan-t5-small"
    assert settings.train.target_modules == ["q", "v"]
    assert settings.warnings == []


def test_round_trip():
    settings = Settings(base_model="/models/x", train=TrainSettings(rank=4), generation=GenerationSettings(max_new_tokens=12))
    save_settings(settings)
    again = load_settings()
    assert again.base_model == "/models/x"
    assert again.train.rank == 4
    assert again.generation.max_new_tokens == 12


def test_broken_file_warns_and_is_kept():
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text('base_model = "x"\n[train\nrank = 4\n')
    before = path.read_bytes()
    settings = load_settings()
    assert settings.base_model == "google/flan-t5-small"
    assert len(settings.warnings) == 1
    assert "line 2" in settings.warnings[0]
    assert path.read_bytes() == before


def test_bad_value_uses_default_and_names_field():
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text("[train]\nrank = 0\nepochs = 3\n")
    settings = load_settings()
    assert settings.train.rank == 8
    assert settings.train.epochs == 3
    assert "rank: 0 is out of range; allowed 1 to 256" in settings.warnings[0]


def test_env_overrides_file(monkeypatch):
    save_settings(Settings(base_model="from-file"))
    monkeypatch.setenv("LORA_CHAT_BASE_MODEL", "from-env")
    assert load_settings().base_model == "from-env"


@pytest.mark.parametrize(
    "name, text, expected",
    [("rank", "16", 16), ("learning_rate", "5e-4", 5e-4), ("target_modules", "q, k,v", ["q", "k", "v"]), ("eval_fraction", "0", 0.0)],
)
def test_parse_value_accepts(name, text, expected):
    assert parse_value(TrainSettings, name, text) == expected


@pytest.mark.parametrize(
    "cls, name, text, message",
    [
        (TrainSettings, "rank", "2.5", "rank: expected a whole number"),
        (TrainSettings, "learning_rate", "fast", "learning-rate: expected a number"),
        (TrainSettings, "dropout", "1.5", "dropout: 1.5 is out of range; allowed 0 to 0.9"),
        (TrainSettings, "learning_rate", "nan", "learning-rate: expected a finite number"),
        (GenerationSettings, "temperature", "0", "temperature: 0.0 is out of range"),
        (GenerationSettings, "colour", "1", "unknown setting 'colour'"),
    ],
)
def test_parse_value_rejects(cls, name, text, message):
    with pytest.raises(SettingsError, match=message):
        parse_value(cls, name, text)
