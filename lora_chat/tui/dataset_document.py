"""A dataset open for editing: rows with stable keys, an undo history and the unsaved state.

It holds no widgets, so the Datasets screen and the tests share one model of an edit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from lora_chat.core.dataset import Dataset, DatasetReport, Row, check_dataset, save_dataset
from lora_chat.core.errors import DatasetError

_keys = itertools.count(1)


@dataclass
class Entry:
    """One row of the document. ``key`` stays the same while the row moves or changes."""

    input: str
    output: str
    key: str = field(default_factory=lambda: f"r{next(_keys)}")
    type_problems: list[str] = field(default_factory=list)


@dataclass
class _Change:
    """One undoable step: rows removed at ``index`` and rows put there instead."""

    description: str
    index: int
    removed: list[Entry]
    inserted: list[Entry]


class DatasetDocument:
    """The rows of one dataset file, the edits made to them and whether they are saved."""

    def __init__(self, entries: Iterable[Entry], path: Path | None, fmt: str = "jsonl", notes: Iterable[str] = ()) -> None:
        self.entries: list[Entry] = list(entries)
        self.path = path
        self.format = fmt
        self.notes = list(notes)
        self._history: list[_Change] = []
        self._position = 0  # changes before this index are applied; the rest can be redone
        self._saved_position: int | None = 0
        self._index: dict[str, int] | None = None

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> DatasetDocument:
        entries = [Entry(r.input, r.output, type_problems=list(r.type_problems)) for r in dataset.rows]
        return cls(entries, dataset.path, dataset.format, dataset.notes)

    # Reading ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.name if self.path else "untitled"

    @property
    def dirty(self) -> bool:
        return self._position != self._saved_position

    def __len__(self) -> int:
        return len(self.entries)

    def index_of(self, key: str) -> int:
        if self._index is None:
            self._index = {entry.key: i for i, entry in enumerate(self.entries)}
        return self._index[key]

    def get(self, key: str) -> Entry:
        return self.entries[self.index_of(key)]

    def rows(self) -> list[Row]:
        """Return the rows as the core sees them, numbered from 1."""
        return [Row(e.input, e.output, number=i, type_problems=list(e.type_problems)) for i, e in enumerate(self.entries, 1)]

    def check(self, count_tokens: Callable[[list[str]], list[int]] | None, max_input_tokens: int, max_output_tokens: int) -> DatasetReport:
        dataset = Dataset(self.rows(), self.path, self.format, self.notes)
        return check_dataset(dataset, count_tokens, max_input_tokens, max_output_tokens)

    # Editing ------------------------------------------------------------------------

    def _apply(self, change: _Change) -> None:
        end = change.index + len(change.removed)
        self.entries[change.index : end] = change.inserted
        self._index = None

    def _do(self, change: _Change) -> None:
        if self._saved_position is not None and self._saved_position > self._position:
            self._saved_position = None  # the saved state can no longer be reached by undo or redo
        del self._history[self._position :]
        self._apply(change)
        self._history.append(change)
        self._position += 1

    def insert(self, index: int, input: str = "", output: str = "") -> str:
        """Insert a row before ``index``; return its key."""
        index = max(0, min(index, len(self.entries)))
        entry = Entry(input, output)
        self._do(_Change("add row", index, [], [entry]))
        return entry.key

    def update(self, key: str, input: str, output: str) -> None:
        index = self.index_of(key)
        old = self.entries[index]
        if (old.input, old.output) == (input, output):
            return
        # The new text is plain text typed by the user, so problems found when reading it are gone.
        self._do(_Change("edit row", index, [old], [Entry(input, output, key=old.key)]))

    def duplicate(self, key: str) -> str:
        """Put a copy of a row right after it; return the copy's key."""
        index = self.index_of(key)
        source = self.entries[index]
        entry = Entry(source.input, source.output, type_problems=list(source.type_problems))
        self._do(_Change("duplicate row", index + 1, [], [entry]))
        return entry.key

    def delete(self, key: str) -> None:
        index = self.index_of(key)
        self._do(_Change("delete row", index, [self.entries[index]], []))

    def undo(self) -> tuple[str, str | None] | None:
        """Undo the last change; return its description and the key of the row to show."""
        if self._position == 0:
            return None
        self._position -= 1
        change = self._history[self._position]
        self._apply(_Change(change.description, change.index, change.inserted, change.removed))
        return change.description, self._key_near(change.index, change.removed)

    def redo(self) -> tuple[str, str | None] | None:
        """Redo the last undone change; return its description and the key of the row to show."""
        if self._position >= len(self._history):
            return None
        change = self._history[self._position]
        self._apply(change)
        self._position += 1
        return change.description, self._key_near(change.index, change.inserted)

    def _key_near(self, index: int, entries: list[Entry]) -> str | None:
        if entries:
            return entries[0].key
        if not self.entries:
            return None
        return self.entries[min(index, len(self.entries) - 1)].key

    # Saving -------------------------------------------------------------------------

    def save(self, path: Path | None = None, fmt: str | None = None) -> Path:
        """Write the rows atomically to ``path`` (by default the file they came from)."""
        target = path or self.path
        if target is None:
            raise DatasetError("this dataset has no file yet; save it under a name first")
        if not self.entries:
            raise DatasetError(f"{target}: the dataset has no rows; add at least one row before saving")
        saved = save_dataset(self.rows(), target, fmt)
        if path is None or path == self.path:
            self._saved_position = self._position
            for entry in self.entries:
                entry.type_problems = []
        return saved

    def export(self, path: Path) -> Path:
        """Write the rows to another JSON or JSONL file; the document stays tied to its own file."""
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in ("json", "jsonl"):
            raise DatasetError(f"{path}: export writes .json or .jsonl files; end the file name with one of them")
        if not self.entries:
            raise DatasetError("the dataset has no rows to export")
        return save_dataset(self.rows(), path, suffix)


class CachedTokenCounter:
    """Count tokens per text, remembering each text's count so that an edit re-counts one row."""

    def __init__(self, count: Callable[[list[str]], list[int]]) -> None:
        self._count = count
        self._known: dict[str, int] = {}

    def __call__(self, texts: list[str]) -> list[int]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._known))
        if missing:
            self._known.update(zip(missing, self._count(missing)))
        return [self._known[t] for t in texts]
