"""Bad dataset files: each gets a message naming the file, the place and the fix, and stays unchanged."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lora_chat.cli import main
from lora_chat.core.dataset import check_dataset, read_dataset
from lora_chat.core.errors import DatasetError, LoraChatError
from lora_chat.core.settings import TrainSettings
from tests.faults.conftest import FILES

# File of the collection -> the part of its error message that names the problem and the fix.
UNREADABLE = [
    ("binary.jsonl", "binary file, not JSON, JSONL or CSV text; give a dataset saved as UTF-8 text"),
    ("xlsx_renamed.csv", "Excel .xlsx/.ods workbook; in the spreadsheet, save it as 'CSV UTF-8'"),
    ("utf16.json", "UTF-16 text, not UTF-8; re-save the file as UTF-8"),
    ("latin1.csv", "not UTF-8 text (byte 0xe9 at offset 16, line 2); re-save the file as UTF-8"),
    ("empty.json", "the file is empty; add rows"),
    ("whitespace.jsonl", "the file is empty; add rows"),
    ("empty_list.json", "the file contains no rows"),
    ("csv_no_rows.csv", "has a header line but no rows under it"),
    ("trailing_comma.json", "line 4, column 1: expecting value; remove the trailing comma before it"),
    ("cut_off.json", "line 3, column 18: unterminated string; a text value has no closing quote; the file may be cut off"),
    ("object_not_list.json", "holds one JSON object, expected a list of objects"),
    ("list_of_strings.json", "row 1 is text, expected an object like"),
    ("jsonl_list_line.jsonl", "line 1 is a list, expected an object like"),
    ("one_bad_line.jsonl", "invalid JSON on line 3, column 30"),
    ("jsonl_two_bad_lines.jsonl", "invalid JSON on line 2, column 15: expecting ',' delimiter (also invalid: line 4)"),
    ("broken_quoting.csv", "invalid CSV at line 2"),
    ("short_row.csv", "line 2 has 1 column but the header has 2; a value is missing there"),
    ("csv_extra_column.csv", "line 2 has 3 columns but the header has 2; wrap fields that contain ',' in double quotes"),
    ("missing_column.csv", "no 'input' and 'output' fields (found: answer, input); rename the columns"),
    ("missing_keys.jsonl", "no 'input' and 'output' fields (found: prompt, text)"),
    ("json_in_csv_suffix.csv", "contains JSON, not CSV; rename it to .json"),
    ("deep_nesting.json", "nests lists or objects too deeply"),
]


@pytest.mark.parametrize("name, expected", UNREADABLE)
def test_unreadable_file_names_place_and_fix(bad_file, name, expected):
    path = bad_file(name)
    before = path.read_bytes()
    with pytest.raises(DatasetError) as info:
        read_dataset(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert path.read_bytes() == before


@pytest.mark.parametrize("name, expected", UNREADABLE)
def test_unreadable_file_cli_one_line_exit_2(capsys, bad_file, name, expected):
    path = bad_file(name)
    code = main(["dataset", "check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"error: {path}: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert expected in err


def test_one_bad_jsonl_line_names_trailing_comma(bad_file):
    with pytest.raises(DatasetError, match="line 3, column 30.*remove the trailing comma"):
        read_dataset(bad_file("one_bad_line.jsonl"))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("wrong_types.jsonl", [
            ["input is null, expected text"],
            ["input is a number, expected text"],
            ["input is a list, expected text"],
            ["input is an object, expected text"],
            ["output is true/false, expected text"],
        ]),
        ("null_output.json", [["output is null, expected text"], ["output is missing"]]),
        ("empty_strings.jsonl", [["input is empty"], ["output is empty"]]),
        ("nan.json", [["input is a number, expected text"]]),
    ],
)
def test_wrong_values_are_row_problems(bad_file, name, expected):
    report = check_dataset(read_dataset(bad_file(name)))
    assert [r.problems for r in report.rows] == expected
    assert not report.trainable


def test_wrong_values_cli_exit_2(capsys, bad_file, tiny_model):
    path = bad_file("wrong_types.jsonl")
    code = main(["dataset", "check", str(path), "--base-model", str(tiny_model)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "row 3 (line 3): input is a list, expected text" in out
    assert "cannot be trained on: no valid rows; fix the rows listed above" in out


def test_unpaired_surrogate_is_row_problem(capsys, bad_file, tiny_model):
    path = bad_file("bad_escape.jsonl")
    report = check_dataset(read_dataset(path))
    assert report.rows[0].problems == [
        "input has an invalid character (an unpaired surrogate \\ud800) at position 1; remove it or write the character itself"
    ]
    # The tokenizer rejects surrogates, so this also checks that none reach it.
    code = main(["dataset", "check", str(path), "--base-model", str(tiny_model)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "unpaired surrogate" in out
    assert err == ""


def test_byte_order_mark_is_skipped(bad_file):
    for name in ("bom.jsonl", "excel_crlf_bom.csv"):
        dataset = read_dataset(bad_file(name))
        assert dataset.rows[0].input == "Hello"
        assert "byte-order mark skipped" in dataset.notes


@pytest.mark.parametrize("name, note", [("spreadsheet_semicolon.csv", "columns separated by ';'"), ("tab_separated.csv", "columns separated by tabs")])
def test_spreadsheet_delimiters_are_read(bad_file, name, note):
    dataset = read_dataset(bad_file(name))
    assert [(r.input, r.output) for r in dataset.rows] == [("Hello", "Hi")]
    assert note in dataset.notes


def test_extra_keys_are_reported(bad_file):
    dataset = read_dataset(bad_file("extra_keys.jsonl"))
    assert "extra fields ignored: id, source" in dataset.notes


def test_long_rows_reported_never_cut(capsys, bad_file, tiny_model):
    path = bad_file("too_long.jsonl")
    original = json.loads(path.read_text().splitlines()[0])["input"]
    assert read_dataset(path).rows[0].input == original

    code = main(["dataset", "check", str(path), "--base-model", str(tiny_model)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "row 1 (line 1): input is 1801 tokens, over the limit of 256" in out
    assert "raise --max-input-tokens" in out


def test_all_duplicates_are_reported(capsys, bad_file):
    report = check_dataset(read_dataset(bad_file("all_duplicates.jsonl")))
    assert [r.duplicate_of for r in report.rows] == [None, 1, 1, 1, 1]
    assert len(report.valid_rows) == 1
    lines = report.summary_lines()
    assert "exact duplicates of earlier rows, skipped: 4" in lines
    assert any(line.startswith("only 1 distinct valid row:") for line in lines)


def test_training_refused_before_model_loads(monkeypatch, bad_file):
    from lora_chat.core import model
    from lora_chat.core.training import train

    def must_not_load(*args, **kwargs):
        raise AssertionError("a model was loaded for a dataset with no valid rows")

    monkeypatch.setattr(model, "load_base_model", must_not_load)
    monkeypatch.setattr(model, "load_tokenizer", must_not_load)
    for name in ("empty_strings.jsonl", "wrong_types.jsonl", "cut_off.json"):
        path = bad_file(name)
        with pytest.raises(DatasetError) as info:
            train(path, "x", TrainSettings(), "/no/such/model")
        assert str(path) in str(info.value)


def test_training_refused_cli_exit_2(capsys, bad_file):
    from lora_chat.core import paths

    path = bad_file("null_output.json")
    # A missing base model would fail with exit 1, so exit 2 shows the dataset was rejected first.
    code = main(["train", str(path), "--name", "x", "--base-model", "/no/such/model"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "no valid rows to train on (2 rows, all with problems: row 1: output is null, expected text; row 2: output is missing)" in err
    assert "Traceback" not in err
    assert not (paths.adapters_dir() / "x").exists()


def test_every_file_in_collection_is_covered():
    covered = {name for name, _ in UNREADABLE} | {
        "wrong_types.jsonl", "null_output.json", "empty_strings.jsonl", "nan.json", "bad_escape.jsonl", "bom.jsonl",
        "excel_crlf_bom.csv", "spreadsheet_semicolon.csv", "tab_separated.csv", "extra_keys.jsonl", "too_long.jsonl",
        "all_duplicates.jsonl",
    }
    assert sorted(p.name for p in FILES.iterdir()) == sorted(covered)


# Property tests: whatever the bytes, the reader fails only with the product's own errors.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["input", "output", "prompt", "x"]) | st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


def _read_and_check(path):
    try:
        dataset = read_dataset(path)
    except LoraChatError:
        return
    check_dataset(dataset)
    dataset.content_hash()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".json", ".jsonl", ".csv", ".txt"]))
def test_random_bytes_raise_only_own_errors(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    _read_and_check(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON_VALUES, as_lines=st.booleans())
def test_random_json_raises_only_own_errors(tmp_path, value, as_lines):
    if as_lines and isinstance(value, list):
        path = tmp_path / "random.jsonl"
        path.write_text("".join(json.dumps(v) + "\n" for v in value), encoding="utf-8")
    else:
        path = tmp_path / "random.json"
        path.write_text(json.dumps(value), encoding="utf-8")
    _read_and_check(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.text(alphabet=string.printable + "\"'é", max_size=8), max_size=4), max_size=5))
def test_random_csv_raises_only_own_errors(tmp_path, rows):
    path = tmp_path / "random.csv"
    path.write_text("input,output\n" + "\n".join(",".join(row) for row in rows), encoding="utf-8")
    _read_and_check(path)
