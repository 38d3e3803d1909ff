import json
import zipfile

import pytest

from lora_chat.core.errors import AdapterError, AdapterNameError, AdapterNotFoundError, InputError
from lora_chat.core.library import AdapterLibrary, validate_name


def make_adapter(folder, weights=b"", meta=None):
    """Write a minimal adapter folder with a valid (empty-tensor) safetensors file."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "base"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (folder / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + (weights or b"\x00\x00\x80\x3f"))
    if meta is not None:
        (folder / "lora_chat.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("name", ["greet", "v1.2", "a_b-c", "x" * 64])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name, message",
    [("", "empty"), ("a/b", "path separator"), ("a\\b", "path separator"), ("..", "must not start"), (".hidden", "must not start"),
     ("x" * 65, "maximum is 64"), ("sp ace", "characters other than"), ("CON", "reserved"), ("none", "reserved")],
)
def test_invalid_names(name, message):
    with pytest.raises(AdapterNameError, match=message):
        validate_name(name)


def test_list_shows_broken_entries(tmp_path):
    library = AdapterLibrary(tmp_path / "lib")
    make_adapter(library.root / "good", meta={"name": "good"})
    (library.root / "no-config").mkdir()
    cut = make_adapter(library.root / "cut")
    data = (cut / "adapter_model.safetensors").read_bytes()
    (cut / "adapter_model.safetensors").write_bytes(data[:-2])
    entries = {e.name: e for e in library.list()}
    assert entries["good"].problem is None
    assert entries["no-config"].problem == "missing adapter_config.json"
    assert "cut off" in entries["cut"].problem


def test_rename_and_delete(tmp_path):
    library = AdapterLibrary(tmp_path / "lib")
    make_adapter(library.root / "a", meta={"name": "a"})
    make_adapter(library.root / "b")
    with pytest.raises(AdapterNameError, match="already exists"):
        library.rename("a", "b")
    library.rename("a", "c")
    assert library.names() == ["b", "c"]
    assert json.loads((library.root / "c" / "lora_chat.json").read_text())["name"] == "c"
    library.delete("c")
    assert not (library.root / "c").exists()
    assert library.names() == ["b"]
    with pytest.raises(AdapterNotFoundError):
        library.delete("c")


def test_import_takes_only_adapter_files(tmp_path):
    source = make_adapter(tmp_path / "run" / "checkpoint-45")
    (source / "optimizer.pt").write_bytes(b"x" * 100)
    (source / "trainer_state.json").write_text("{}")
    library = AdapterLibrary(tmp_path / "lib")
    entry = library.import_folder(source, "imp")
    assert sorted(p.name for p in entry.path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "lora_chat.json"]
    assert entry.base_model == "base"


def test_import_of_checkpoints_parent_names_last(tmp_path):
    make_adapter(tmp_path / "run" / "checkpoint-5")
    make_adapter(tmp_path / "run" / "checkpoint-45")
    library = AdapterLibrary(tmp_path / "lib")
    with pytest.raises(InputError, match=r"checkpoint-45 --name x"):
        library.import_folder(tmp_path / "run", "x")


def test_import_rejects_cut_weights(tmp_path):
    source = make_adapter(tmp_path / "src")
    (source / "adapter_model.safetensors").write_bytes(b"\x10\x00")
    with pytest.raises(AdapterError, match="cut off"):
        AdapterLibrary(tmp_path / "lib").import_folder(source, "x")


def test_export_folder_and_zip(tmp_path):
    library = AdapterLibrary(tmp_path / "lib")
    make_adapter(library.root / "a", meta={"name": "a"})
    folder = library.export("a", tmp_path / "out")
    assert (folder / "adapter_config.json").is_file()
    archive = library.export("a", tmp_path / "a.zip")
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["a/adapter_config.json", "a/adapter_model.safetensors", "a/lora_chat.json"]


def test_staging_left_by_dead_process_is_removed(tmp_path):
    library = AdapterLibrary(tmp_path / "lib")
    leftover = library.root / ".staging-999999999-abc"
    leftover.mkdir(parents=True)
    assert library.clean_staging() == [leftover]
    assert not leftover.exists()
    assert library.list() == []


def test_import_of_exported_zip(tmp_path):
    library = AdapterLibrary(tmp_path / "lib")
    make_adapter(library.root / "a", meta={"name": "a"})
    archive = library.export("a", tmp_path / "a.zip")
    entry = library.import_folder(archive, "b")
    assert entry.name == "b"
    assert entry.problem is None
    assert (entry.path / "adapter_model.safetensors").read_bytes() == (library.root / "a" / "adapter_model.safetensors").read_bytes()


def test_import_zip_without_adapter(tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes.txt", "hi")
    with pytest.raises(InputError, match="contains no adapter_config.json"):
        AdapterLibrary(tmp_path / "lib").import_folder(archive, "x")
