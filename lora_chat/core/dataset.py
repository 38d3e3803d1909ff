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
# Spreadsheets in many locales save CSV with ';' (the comma is their decimal mark) or tabs.
CSV_DELIMITERS = (",", ";", "\t")
# Fewer valid rows than this train an adapter that mostly repeats them.
FEW_ROWS = 10
# Byte-order marks of encodings other than UTF-8, longest first (UTF-32 LE starts like UTF-16 LE).
OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
# Leading bytes of file types people pick by mistake, with what to do instead.
KNOWN_BINARY = (
    (b"PK\x03\x04", "a zip archive or an Excel .xlsx/.ods workbook; in the spreadsheet, save it as 'CSV UTF-8'"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook; in the spreadsheet, save it as 'CSV UTF-8'"),
    (b"%PDF", "a PDF document; copy the rows into a .csv, .json or .jsonl file"),
)


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
        valid = len(self.valid_rows)
        lines.append(f"{_count(total, 'row')}, {valid} valid")
        duplicates = sum(1 for r in self.rows if r.duplicate_of is not None)
        if duplicates:
            lines.append(f"exact duplicates of earlier rows, skipped: {duplicates}")
        if 0 < valid < FEW_ROWS:
            lines.append(
                f"only {_count(valid, 'distinct valid row')}: an adapter trained on so few rows mostly repeats them; "
                "20 or more work better"
            )
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
    for bom, encoding in OTHER_BOMS:
        if data.startswith(bom):
            raise DatasetError(f"{path}: the file is {encoding} text, not UTF-8; re-save the file as UTF-8")
    for magic, what in KNOWN_BINARY:
        if data.startswith(magic):
            raise DatasetError(f"{path}: this is {what}")
    if b"\x00" in data[:8192]:
        raise DatasetError(
            f"{path}: this looks like a binary file, not JSON, JSONL or CSV text; "
            "give a dataset saved as UTF-8 text (.json, .jsonl or .csv)"
        )
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


_MISSING = object()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _kind(value: Any) -> str:
    """Name a JSON value's type in the words a dataset's author uses."""
    if value is None:
        return "null"
    kinds = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def _as_text(value: Any, name: str, problems: list[str]) -> str:
    """Return ``value`` as text; note in ``problems`` when it is missing or not text."""
    if value is _MISSING:
        problems.append(f"{name} is missing")
        return ""
    if value is None:
        problems.append(f"{name} is null, expected text")
        return ""
    if not isinstance(value, str):
        problems.append(f"{name} is {_kind(value)}, expected text")
        return json.dumps(value, ensure_ascii=False)
    # JSON can escape half of a surrogate pair ("\ud800"), which no tokenizer or UTF-8 encoder accepts.
    bad = next((i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        problems.append(
            f"{name} has an invalid character (an unpaired surrogate \\u{ord(value[bad]):04x}) at position {bad + 1}; "
            "remove it or write the character itself"
        )
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


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
            raise DatasetError(
                f"{path}: {where} is {_kind(obj)}, expected an object like "
                '{"input": "...", "output": "..."}'
            )
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
                input=_as_text(obj.get(in_key, _MISSING), "input", problems),
                output=_as_text(obj.get(out_key, _MISSING), "output", problems),
                number=number,
                line=line,
                type_problems=problems,
            )
        )
    return rows, notes


def _json_hint(exc: json.JSONDecodeError, text: str, closing: str) -> str:
    """Say what most likely went wrong at a JSON syntax error, and what to do."""
    before = text[: exc.pos].rstrip()
    if before.endswith(",") and text[exc.pos : exc.pos + 1] in ("]", "}"):
        return "remove the trailing comma before it"
    if exc.msg.startswith("Unterminated string"):
        return "a text value has no closing quote; the file may be cut off, or a quote is missing there"
    if exc.pos >= len(text.rstrip()):
        return f"the text ends too early; the file seems cut off, so check that it ends with {closing}"
    return "fix the JSON syntax there"


def _json_message(exc: json.JSONDecodeError) -> str:
    # json's messages read "Unterminated string starting at" and expect a position to follow.
    message = exc.msg.removesuffix(" starting at")
    return message[:1].lower() + message[1:]


def _loads(path: Path, text: str, where: str) -> Any:
    """Parse JSON; raise DatasetError for the errors json raises that are not JSONDecodeError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise DatasetError(f"{path}: {where} nests lists or objects too deeply to read; a dataset row is one flat object") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # for example an integer of more than 4300 digits
        raise DatasetError(f"{path}: {where} cannot be read as JSON ({exc})") from None


def _parse_json(path: Path, text: str) -> list[tuple[Any, int | None]]:
    try:
        data = _loads(path, text, "the file")
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {_json_message(exc)}; "
            f"{_json_hint(exc, text, ']')}"
        ) from None
    if isinstance(data, dict):
        raise DatasetError(
            f"{path}: the file holds one JSON object, expected a list of objects like "
            '[{"input": "...", "output": "..."}]'
        )
    if not isinstance(data, list):
        raise DatasetError(f'{path}: expected a JSON list of objects like [{{"input": "...", "output": "..."}}], found {_kind(data)}')
    return [(obj, None) for obj in data]


def _parse_jsonl(path: Path, text: str) -> list[tuple[Any, int | None]]:
    """Parse one object per line; a bad line raises DatasetError naming it and any other bad lines."""
    records = []
    bad: list[tuple[int, json.JSONDecodeError, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((_loads(path, line, f"line {number}"), number))
        except json.JSONDecodeError as exc:
            bad.append((number, exc, line))
    if bad:
        number, exc, line = bad[0]
        others = ""
        if len(bad) > 1:
            listed = ", ".join(str(n) for n, _, _ in bad[1:6]) + (", ..." if len(bad) > 6 else "")
            others = f" (also invalid: line{'s' if len(bad) > 2 else ''} {listed})"
        raise DatasetError(
            f"{path}: invalid JSON on line {number}, column {exc.colno}: {_json_message(exc)}{others}; "
            f"{_json_hint(exc, line, '}')}; each line must be one object like "
            '{"input": "...", "output": "..."}'
        )
    return records


def _csv_delimiter(text: str) -> str:
    """Return the delimiter of the header line: ',' unless only ';' or a tab splits it."""
    header = text.split("\n", 1)[0]
    if "," in header:
        return ","
    return max(CSV_DELIMITERS, key=header.count) if any(d in header for d in CSV_DELIMITERS) else ","


def _parse_csv(path: Path, text: str) -> list[tuple[Any, int | None]]:
    if text.lstrip().startswith(("[", "{")):
        raise DatasetError(f"{path}: the file contains JSON, not CSV; rename it to .json (a list) or .jsonl (one object per line)")
    delimiter = _csv_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
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
                hint = (
                    f"wrap fields that contain '{delimiter}' in double quotes"
                    if len(values) > len(header)
                    else "a value is missing there, or a field with a line break is not wrapped in double quotes"
                )
                raise DatasetError(
                    f"{path}: line {line} has {_count(len(values), 'column')} but the header has {len(header)}; {hint}"
                )
            records.append((dict(zip(header, values)), line))
    except csv.Error as exc:
        raise DatasetError(
            f"{path}: invalid CSV at line {reader.line_num}: {exc}; check the quoting there: a field with "
            'commas, quotes or line breaks must be wrapped in double quotes, with each " inside written as ""'
        ) from None
    if not records:
        raise DatasetError(f"{path}: the CSV file has a header line but no rows under it; add rows of input{delimiter}output")
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
    if fmt == "csv" and _csv_delimiter(text) != ",":
        notes.append("columns separated by " + ("tabs" if _csv_delimiter(text) == "\t" else f"'{_csv_delimiter(text)}'"))
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
