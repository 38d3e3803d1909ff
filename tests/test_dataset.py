import json

import pytest

from lora_chat.core.dataset import Row, check_dataset, read_dataset, save_dataset
from lora_chat.core.errors import DatasetError

SAMPLE_FILES = ["greetings.jsonl", "pirate.csv", "capitals_json.json"]


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_datasets_read_cleanly(sample, name):
    dataset = read_dataset(sample / name)
    report = check_dataset(dataset)
    assert 20 <= len(dataset.rows) <= 60
    assert len(report.valid_rows) == len(dataset.rows)


@pytest.mark.parametrize(
    "content, suffix",
    [
        ('[{"input": "a", "output": "b"}]', ".json"),
        ('{"input": "a", "output": "b"}\n', ".jsonl"),
        ("input,output\na,b\n", ".csv"),
        ('\ufeff[{"input": "a", "output": "b"}]', ".json"),
        ("\ufeffinput,output\na,b\n", ".csv"),
    ],
)
def test_formats_and_bom(tmp_path, content, suffix):
    path = tmp_path / f"d{suffix}"
    path.write_text(content, encoding="utf-8")
    dataset = read_dataset(path)
    assert [(r.input, r.output) for r in dataset.rows] == [("a", "b")]


@pytest.mark.parametrize(
    "keys",
    [("prompt", "completion"), ("instruction", "response"), ("question", "answer")],
)
def test_aliases_are_mapped_and_reported(tmp_path, keys):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({keys[0]: "x", keys[1]: "y"}) + "\n")
    dataset = read_dataset(path)
    assert dataset.rows[0].input == "x"
    assert dataset.rows[0].output == "y"
    assert f"fields mapped: {keys[0]} -> input, {keys[1]} -> output" in dataset.notes


@pytest.mark.parametrize(
    "content, suffix, expected",
    [
        ('[{"input": "a", "output": "b"},]', ".json", "line 1, column 32"),
        ('[{"input": "a",\n "output": "b"}', ".json", "line 2"),
        ('{"input": "a", "output": "b"}\n{"input": "c", "output": \n', ".jsonl", "line 2"),
        ('{"input": "a"}', ".json", "one JSON object"),
        ('input,output\n"a,b\n', ".csv", "line"),
        ("question\nhello\n", ".csv", "no 'input' and 'output' fields"),
        ("", ".json", "empty"),
        ("[]", ".json", "no rows"),
    ],
)
def test_broken_files_name_the_place(tmp_path, content, suffix, expected):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content, encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(DatasetError) as info:
        read_dataset(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert path.read_bytes() == before


def test_trailing_comma_gets_hint(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"input": "a", "output": "b"},\n]')
    with pytest.raises(DatasetError, match="trailing comma"):
        read_dataset(path)


def test_not_utf8_names_byte(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("input,output\ncaf\xe9,b\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"byte 0xe9 at offset 16, line 2.*re-save the file as UTF-8"):
        read_dataset(path)


def test_binary_file_rejected(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(DatasetError, match="binary"):
        read_dataset(path)


def test_row_problems_are_reported(tmp_path):
    path = tmp_path / "d.json"
    rows = [
        {"input": "a", "output": "b"},
        {"input": "", "output": "b"},
        {"input": "a", "output": None},
        {"input": 3, "output": "b"},
        {"input": "a", "output": "b"},
        {"input": "x"},
    ]
    path.write_text(json.dumps(rows))
    report = check_dataset(read_dataset(path))
    problems = [r.problems for r in report.rows]
    assert problems[0] == []
    assert problems[1] == ["input is empty"]
    assert problems[2] == ["output is null, expected text"]
    assert problems[3] == ["input is a number, expected text"]
    assert problems[4] == ["duplicate of row 1"]
    assert problems[5] == ["output is missing"]
    assert len(report.valid_rows) == 1


def test_token_limits_reported_not_cut(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"input": "one two three four five", "output": "ok"}) + "\n")
    dataset = read_dataset(path)
    report = check_dataset(dataset, lambda texts: [len(t.split()) + 1 for t in texts], max_input_tokens=4, max_output_tokens=8)
    assert report.rows[0].problems == ["input is 6 tokens, over the limit of 4"]
    assert dataset.rows[0].input == "one two three four five"
    assert not report.trainable


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_save_round_trip(tmp_path, suffix):
    rows = [Row('say "hi", please', "line one\nline two"), Row("ünïcode ✓", "b")]
    path = save_dataset(rows, tmp_path / f"out{suffix}")
    again = read_dataset(path)
    assert [(r.input, r.output) for r in again.rows] == [(r.input, r.output) for r in rows]
    assert not list(tmp_path.glob(".*tmp"))
