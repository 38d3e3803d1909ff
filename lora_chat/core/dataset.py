"""Datasets of input/output pairs: reading JSON, JSONL and CSV, checking rows, saving atomically.

Reading never changes the file. Rows whose fields are missing, empty or not text are
kept (so an editor can fix them) and reported by :func:`check_dataset`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from lora_chat.core.errors import DatasetError
from lora_chat.core.fileio import atomic_write_text

FIELDS = ("input", "output")
ALIASES: dict[str, tuple[str, str]] = {
    "prompt": ("prompt", "completion"),
    "instruction": ("instruction", "response"),
    "question": ("question", "answer"),
}
FORMATS = ("json", "jsonl", "csv")
MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass
class Row:
    """One input/output pair. ``number`` is 1-based; ``line`` is the line in the file when known."""

    input: str
    output: str
    number: int = 0
    line: int | None = None
    type_problems: list[str] = field(default_factory=list)

    def where(self) -> str:
        return f"row {self.number}" + (f" (line {self.line})" if self.line else "")


@dataclass
class Dataset:
    """Rows read from one file, with notes on how the file was read."""

    rows: list[Row]
    path: Path | None = None
    format: str = "jsonl"
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "untitled"

    def content_hash(self) -> str:
        payload = json.dumps([[r.input, r.output] for r in self.rows], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass
class RowReport:
    row: Row
    problems: list[str]
    input_tokens: int | None = None
    output_tokens: int | None = None
    duplicate_of: int | None = None

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass
class DatasetReport:
    """Problems per row and totals for a dataset."""

    dataset: Dataset
    rows: list[RowReport]
    max_input_tokens: int
    max_output_tokens: int
    token_counts: bool

    @property
    def valid_rows(self) -> list[Row]:
        return [r.row for r in self.rows if r.valid]

    @property
    def trainable(self) -> bool:
        return bool(self.valid_rows)

    def spread(self, which: str) -> tuple[int, int, int] | None:
        """Return (min, median, max) token counts of ``which`` ("input" or "output")."""
        counts = [getattr(r, f"{which}_tokens") for r in self.rows]
        counts = [c for c in counts if c is not None]
        if not counts:
            return None
        return min(counts), int(statistics.median(counts)), max(counts)

    def summary_lines(self) -> list[str]:
        lines = list(self.dataset.notes)
        total = len(self.rows)
        lines.append(f"{total} rows, {len(self.valid_rows)} valid")
        for which in ("input", "output"):
            spread = self.spread(which)
            if spread:
                lines.append(f"{which} tokens: min {spread[0]}, median {spread[1]}, max {spread[2]}")
        if not self.token_counts:
            lines.append("token counts skipped: the base model's tokenizer could not be loaded")
        return lines

    def problem_lines(self, limit: int | None = None) -> list[str]:
        lines = [f"{r.row.where()}: {'; '.join(r.problems)}" for r in self.rows if r.problems]
        if limit is not None and len(lines) > limit:
            lines = lines[:limit] + [f"... and {len(lines) - limit} more rows with problems"]
        return lines


def _decode(path: Path, data: bytes) -> str:
    if not data.strip():
        raise DatasetError(f"{path}: the file is empty; add rows with 'input' and 'output' fields")
    if b"\x00" in data[:8192]:
        raise DatasetError(f"{path}: this looks like a binary file, not JSON, JSONL or CSV text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, line {line}); "
            "re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DatasetError(f"{path}: the file is empty; add rows with 'input' and 'output' fields")
    return text


def detect_format(path: Path, text: str | None = None) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix == "ndjson":
        return "jsonl"
    if text is not None:
        head = text.lstrip()
        if head.startswith("["):
            return "json"
        if head.startswith("{"):
            return "jsonl"
    return "csv"


def _as_text(value: Any, name: str, problems: list[str]) -> str:
    if value is None:
        problems.append(f"{name} is missing" if value is None else f"{name} is null")
        return ""
    if isinstance(value, str):
        return value
    kind = {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    problems.append(f"{name} is {kind}, expected text")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _map_keys(keys: Iterable[str], path: Path) -> tuple[str, str, str | None]:
    """Pick the input and output keys; return them and a note when an alias was used."""
    present = set(keys)
    if {"input", "output"} <= present:
        return "input", "output", None
    for in_key, out_key in ALIASES.values():
        if {in_key, out_key} <= present:
            return in_key, out_key, f"fields mapped: {in_key} -> input, {out_key} -> output"
    found = ", ".join(sorted(present)) or "none"
    raise DatasetError(
        f"{path}: no 'input' and 'output' fields (found: {found}); rename the columns to input and output "
        "(prompt/completion, instruction/response and question/answer also work)"
    )


def _rows_from_records(records: Sequence[tuple[Any, int | None]], path: Path) -> tuple[list[Row], list[str]]:
    objects = [(obj, line) for obj, line in records]
    keys: dict[str, None] = {}
    for number, (obj, line) in enumerate(objects, 1):
        if not isinstance(obj, dict):
            where = f"line {line}" if line else f"row {number}"
            kind = "a list" if isinstance(obj, list) else type(obj).__name__
            raise DatasetError(f"{path}: {where} is {kind}, expected an object with 'input' and 'output'")
        keys.update(dict.fromkeys(obj))
    in_key, out_key, note = _map_keys(keys, path)
    notes = [note] if note else []
    extra = sorted(k for k in keys if k not in (in_key, out_key))
    if extra:
        notes.append(f"extra fields ignored: {', '.join(extra)}")

    rows = []
    for number, (obj, line) in enumerate(objects, 1):
        problems: list[str] = []
        rows.append(
            Row(
                input=_as_text(obj.get(in_key), "input", problems),
                output=_as_text(obj.get(out_key), "output", problems),
                number=number,
                line=line,
                type_problems=problems,
            )
        )
    return rows, notes


def _json_error(path: Path, exc: json.JSONDecodeError, text: str, line_offset: int = 0) -> DatasetError:
    hint = "fix the JSON syntax there"
    before = text[: exc.pos].rstrip()
    if before.endswith(",") and text[exc.pos : exc.pos + 1] in ("]", "}"):
        hint = "remove the trailing comma before it"
    elif exc.pos >= len(text.rstrip()):
        hint = "the file seems cut off; check that it ends with ]"
    return DatasetError(
        f"{path}: invalid JSON at line {exc.lineno + line_offset}, column {exc.colno}: {exc.msg}; {hint}"
    )


def _parse_json(path: Path, text: str) -> list[tuple[Any, int | None]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _json_error(path, exc, text) from None
    if isinstance(data, dict):
        raise DatasetError(
            f"{path}: the file holds one JSON object, expected a list of objects like "
            '[{"input": "...", "output": "..."}]'
        )
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of objects, found {type(data).__name__}")
    return [(obj, None) for obj in data]


def _parse_jsonl(path: Path, text: str) -> list[tuple[Any, int | None]]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((json.loads(line), number))
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}: invalid JSON on line {number}, column {exc.colno}: {exc.msg}; "
                "each line must be one object like {\"input\": \"...\", \"output\": \"...\"}"
            ) from None
    return records


def _parse_csv(path: Path, text: str) -> list[tuple[Any, int | None]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            raise DatasetError(f"{path}: the CSV header repeats a column name: {', '.join(header)}")
        records = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            line = reader.line_num
            if len(values) != len(header):
                raise DatasetError(
                    f"{path}: line {line} has {len(values)} columns but the header has {len(header)}; "
                    "quote fields that contain commas"
                )
            records.append((dict(zip(header, values)), line))
    except csv.Error as exc:
        raise DatasetError(f"{path}: invalid CSV at line {reader.line_num}: {exc}; check the quoting there") from None
    return records


def read_dataset(path: str | Path) -> Dataset:
    """Read a dataset file; raise DatasetError naming the file and place of any problem."""
    path = Path(path)
    try:
        if path.is_dir():
            raise DatasetError(f"{path} is a folder; give a .json, .jsonl or .csv file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DatasetError(f"{path}: the file is {size / 1e6:.0f} MB; datasets over {MAX_FILE_BYTES // 10**6} MB are not supported")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except PermissionError:
        raise DatasetError(f"{path}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc.strerror or exc})") from None

    text = _decode(path, data)
    fmt = detect_format(path, text)
    parser: Callable[[Path, str], list[tuple[Any, int | None]]] = {"json": _parse_json, "jsonl": _parse_jsonl, "csv": _parse_csv}[fmt]
    records = parser(path, text)
    if not records:
        raise DatasetError(f"{path}: the file contains no rows; add rows with 'input' and 'output' fields")
    rows, notes = _rows_from_records(records, path)
    if data.startswith(b"\xef\xbb\xbf"):
        notes.append("byte-order mark skipped")
    return Dataset(rows=rows, path=path, format=fmt, notes=notes)


def check_dataset(
    dataset: Dataset,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
    max_input_tokens: int = 256,
    max_output_tokens: int = 128,
) -> DatasetReport:
    """Check every row: text in both fields, within the token limits, not an exact duplicate.

    ``count_tokens`` returns the token count of each text, end-of-sequence token included.
    """
    input_counts: list[int | None] = [None] * len(dataset.rows)
    output_counts: list[int | None] = [None] * len(dataset.rows)
    if count_tokens is not None and dataset.rows:
        input_counts = list(count_tokens([r.input for r in dataset.rows]))
        output_counts = list(count_tokens([r.output for r in dataset.rows]))

    seen: dict[tuple[str, str], int] = {}
    reports = []
    for row, n_in, n_out in zip(dataset.rows, input_counts, output_counts):
        problems = list(row.type_problems)
        if not row.type_problems:
            if not row.input.strip():
                problems.append("input is empty")
            if not row.output.strip():
                problems.append("output is empty")
        if n_in is not None and n_in > max_input_tokens:
            problems.append(f"input is {n_in} tokens, over the limit of {max_input_tokens}")
        if n_out is not None and n_out > max_output_tokens:
            problems.append(f"output is {n_out} tokens, over the limit of {max_output_tokens}")
        key = (row.input, row.output)
        duplicate_of = seen.get(key)
        if duplicate_of is not None:
            problems.append(f"duplicate of row {duplicate_of}")
        else:
            seen[key] = row.number
        reports.append(RowReport(row, problems, n_in, n_out, duplicate_of))
    return DatasetReport(dataset, reports, max_input_tokens, max_output_tokens, count_tokens is not None)


def dumps_dataset(rows: Iterable[Row], fmt: str) -> str:
    records = [{"input": r.input, "output": r.output} for r in rows]
    if fmt == "json":
        return json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "csv":
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
    raise DatasetError(f"unknown dataset format {fmt!r}; use json, jsonl or csv")


def save_dataset(rows: Iterable[Row], path: str | Path, fmt: str | None = None) -> Path:
    """Write rows atomically; the format follows the file suffix unless given."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    try:
        atomic_write_text(path, dumps_dataset(rows, fmt))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot save ({exc.strerror or exc}); choose another folder") from None
    return path


def library_datasets(folder: Path) -> list[Path]:
    """List the dataset files in the library's datasets folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower().lstrip(".") in FORMATS)
