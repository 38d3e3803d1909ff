"""The Datasets screen: pick, open, edit, check and save datasets of input/output rows."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from lora_chat.core import paths
from lora_chat.core.dataset import FORMATS, DatasetReport, RowReport, library_datasets, read_dataset
from lora_chat.core.errors import DatasetError, LoraChatError
from lora_chat.tui.dataset_document import CachedTokenCounter, DatasetDocument, Entry
from lora_chat.tui.screens.base import LoraScreen
from lora_chat.tui.widgets.dialogs import ConfirmDialog, PromptDialog
from lora_chat.tui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from lora_chat.tui.widgets.row_editor import RowEditor

log = logging.getLogger(__name__)

COLUMNS = (("number", "#"), ("input", "input"), ("output", "output"), ("in_tokens", "in"), ("out_tokens", "out"), ("problems", "problems"))
# The footer has room for a few keys only, so the sidebar lists them all when it is tall
# enough; otherwise "?" shows them in Textual's keys panel.
KEYS_HINT = """\
a add  ↵ edit
d duplicate
del delete
^z undo  ^y redo
/ search
p problems only
^s save
n new  o open
i import
x export
? all keys"""
PREVIEW_CHARS = 200
SEARCH_DELAY_S = 0.2
# Above this many rows to remove at once, clearing the table and adding the rest is quicker
# than DataTable.remove_row, which rebuilds its map of row positions on each call.
REBUILD_THRESHOLD = 200


def _preview(text: str) -> str:
    return text[:PREVIEW_CHARS].replace("\r", "").replace("\n", " ⏎ ").replace("\t", " ")


class Cell:
    """A one-line table cell of plain text (never read as markup) cut to the column width.

    It has no ``__rich_measure__``: DataTable (Textual 8.2) measures every new cell to size
    auto-width columns, which took most of the time of adding 3,000 rows under cProfile,
    and these columns have fixed widths anyway.
    """

    __slots__ = ("text", "sort_value", "style", "justify")

    def __init__(self, text: str, sort_value: Any = None, style: str = "", justify: JustifyMethod = "left") -> None:
        self.text = text
        self.sort_value = text if sort_value is None else sort_value
        self.style = style
        self.justify = justify

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.text, style=self.style, justify=self.justify, no_wrap=True, overflow="ellipsis", end="")

    def __str__(self) -> str:
        return self.text


class RowNumberCell:
    """The row number, read from the document when drawn.

    Deleting or inserting a row renumbers every row after it. Working the number out at
    draw time (DataTable redraws after every change) spares an update of each of those cells.
    """

    __slots__ = ("document", "key")

    def __init__(self, document: DatasetDocument, key: str) -> None:
        self.document = document
        self.key = key

    @property
    def sort_value(self) -> int:
        return self.document.index_of(self.key)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(str(self.sort_value + 1), justify="right", no_wrap=True, end="")

    def __str__(self) -> str:
        return str(self.sort_value + 1)


def _dataset_name_check(name: str) -> None:
    if "/" in name or "\\" in name or name.startswith("."):
        raise DatasetError(f"{name!r} is not a plain file name; use letters, digits, '-', '_' and '.'")


class RowsTable(DataTable):
    """The rows table; it shares its width between the columns whenever its size changes."""

    def on_resize(self) -> None:
        # The screen's own resize comes before the table's layout settles, so the table
        # tells the screen once it knows its final width.
        fit = getattr(self.screen, "fit_columns", None)
        if fit is not None:
            fit()


class DatasetsScreen(LoraScreen):
    """Datasets in the library on the left, the rows of the open dataset on the right."""

    DEFAULT_CSS = """
    DatasetsScreen #datasets-main {
        height: 1fr;
    }
    DatasetsScreen #dataset-sidebar {
        width: 26;
        border-right: vkey $primary 50%;
    }
    /* At 80 columns the library list gives its space to the rows. */
    DatasetsScreen.-narrow #dataset-sidebar {
        width: 20;
    }
    DatasetsScreen #dataset-list {
        height: 1fr;
        border: none;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    DatasetsScreen #dataset-keys, DatasetsScreen #dataset-keys-short {
        height: auto;
        padding: 0 1;
    }
    DatasetsScreen #dataset-keys-short, DatasetsScreen.-short #dataset-keys {
        display: none;
    }
    DatasetsScreen.-short #dataset-keys-short {
        display: block;
    }
    DatasetsScreen #dataset-pane {
        width: 1fr;
    }
    DatasetsScreen #dataset-heading {
        height: 1;
        padding: 0 1;
    }
    DatasetsScreen #dataset-name {
        text-style: bold;
    }
    DatasetsScreen #unsaved-marker {
        color: $text-warning;
        margin-left: 2;
        display: none;
    }
    DatasetsScreen #dataset-path {
        color: $text-muted;
        margin-left: 2;
        width: 1fr;
        text-overflow: ellipsis;
        text-wrap: nowrap;
    }
    DatasetsScreen #search {
        margin: 0 1;
    }
    DatasetsScreen #rows {
        height: 1fr;
    }
    DatasetsScreen #empty-hint {
        padding: 1 2;
        color: $text-muted;
        height: 1fr;
    }
    DatasetsScreen #dataset-totals {
        height: auto;
        padding: 0 1;
        background: $panel;
    }
    """

    BINDINGS = [
        Binding("a", "add_row", "Add"),
        Binding("enter", "edit_row", "Edit", show=False),
        Binding("d", "duplicate_row", "Duplicate"),
        Binding("delete", "delete_row", "Delete"),
        Binding("ctrl+z", "undo", "Undo"),
        Binding("ctrl+y", "redo", "Redo", show=False),
        Binding("slash", "search", "Search"),
        Binding("p", "toggle_problems", "Problems only", show=False),
        Binding("ctrl+s", "save", "Save"),
        Binding("n", "new_dataset", "New", show=False),
        Binding("o", "open_file", "Open file", show=False),
        Binding("i", "import_file", "Import", show=False),
        Binding("x", "export_file", "Export", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.document: DatasetDocument | None = None
        self.report: DatasetReport | None = None
        self.problems_only = False
        self.count_tokens: CachedTokenCounter | None = None
        self.tokenizer_state = "not loaded"  # "loading", "ready" or why it failed
        self._shown: dict[str, tuple[Any, ...]] = {}
        self._shown_order: list[str] = []
        self._search_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="datasets-main"):
            with Vertical(id="dataset-sidebar"):
                yield Label("Library datasets", classes="pane-title")
                yield OptionList(id="dataset-list")
                yield Static(KEYS_HINT, id="dataset-keys", classes="hint")
                yield Static("? all keys", id="dataset-keys-short", classes="hint")
            with Vertical(id="dataset-pane"):
                with Horizontal(id="dataset-heading"):
                    yield Label("No dataset open", id="dataset-name", markup=False)
                    yield Label("● unsaved", id="unsaved-marker")
                    yield Label("", id="dataset-path", markup=False)
                yield Input(placeholder="Search rows ( / )", id="search")
                yield RowsTable(id="rows", cursor_type="row", zebra_stripes=True)
                yield Static(
                    "Pick a dataset on the left, or press n for a new one, o to open a file, i to import one.",
                    id="empty-hint",
                )
                yield Static("", id="dataset-totals", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#rows", DataTable)
        for key, label in COLUMNS:
            # A Text label: a str label goes through Rich's markup parser, whose first use
            # loads its emoji table and costs the first frame a few milliseconds.
            table.add_column(Text(label), key=key, width=8)
        self.refresh_library()
        self.show_document_state()

    def on_screen_resume(self) -> None:
        self.refresh_library()

    def on_screen_suspend(self) -> None:
        # A dialog on top suspends this screen too; remind only when another screen takes over.
        self.call_after_refresh(self._remind_unsaved)

    def _remind_unsaved(self) -> None:
        if self.app.current_mode != "datasets" and self.document is not None and self.document.dirty:
            self.notify(f"{self.document.name} has unsaved changes; ctrl+s on the Datasets screen saves them.", severity="warning")

    def on_resize(self) -> None:
        self.fit_columns()

    # Library list -------------------------------------------------------------------

    def refresh_library(self) -> None:
        option_list = self.query_one("#dataset-list", OptionList)
        highlighted = option_list.highlighted_option.id if option_list.highlighted_option else None
        files = library_datasets(paths.datasets_dir())
        option_list.clear_options()
        option_list.add_options(Option(Text(path.name), id=str(path)) for path in files)
        if not files:
            option_list.add_option(Option("(none yet: press n)", id="", disabled=True))
        ids = [str(path) for path in files]
        option_list.highlighted = ids.index(highlighted) if highlighted in ids else 0

    @on(OptionList.OptionSelected, "#dataset-list")
    def library_dataset_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.open_dataset(Path(event.option.id))

    # Opening ------------------------------------------------------------------------

    async def confirm_discard(self) -> bool:
        """Return whether the open dataset may be closed, asking when it has unsaved changes."""
        if self.document is None or not self.document.dirty:
            return True
        question = f"{self.document.name} has unsaved changes. Discard them?"
        return bool(await self.app.push_screen_wait(ConfirmDialog(question, title="Unsaved changes", confirm_label="Discard", danger=True)))

    @work(name="open dataset", group="dataset-file", exclusive=True, exit_on_error=False)
    async def open_dataset(self, path: Path, row_number: int | None = None, focus_field: str = "input") -> None:
        """Open a dataset file for editing; with ``row_number``, open that row in the editor at ``focus_field``."""
        path = Path(path).expanduser()
        same_file = self.document is not None and self.document.path is not None and self.document.path.resolve() == path.resolve()
        if not same_file:
            if not await self.confirm_discard():
                return
            dataset = await asyncio.to_thread(read_dataset, path)
            self.load_document(DatasetDocument.from_dataset(dataset))
        if row_number is not None and self.document is not None:
            if not 1 <= row_number <= len(self.document):
                raise DatasetError(f"{path}: there is no row {row_number}; the dataset has {len(self.document)} rows")
            key = self.document.entries[row_number - 1].key
            self.clear_filters()
            self.move_to(key)
            self.edit_entry(key, focus_field)

    def open_row(self, path: Path, row_number: int, focus_field: str = "input") -> None:
        """Open ``path`` (when it is not open already) and the row ``row_number`` (from 1) in the editor.

        ``focus_field`` ("input" or "output") is the field that gets the cursor.
        """
        self.open_dataset(Path(path), row_number, focus_field)

    def load_document(self, document: DatasetDocument) -> None:
        self.document = document
        self.report = None
        table = self.query_one("#rows", DataTable)
        table.clear()
        self._shown.clear()
        self._shown_order.clear()
        self.clear_filters(sync=False)
        self.sync_table()
        # The table was hidden until now, so its width is known only after the next refresh.
        self.call_after_refresh(self.fit_columns)
        if document.rows and table.row_count:
            table.move_cursor(row=0)
        table.focus()
        for note in document.notes:
            self.notify(note, title=document.name)
        if self.count_tokens is None and self.tokenizer_state in ("not loaded",):
            self.load_tokenizer()

    @work(name="load tokenizer", group="tokenizer", thread=True, exclusive=True, exit_on_error=False)
    def load_tokenizer(self) -> CachedTokenCounter | str:
        """Load the base model's tokenizer; return a token counter, or why it could not load."""
        self.app.call_from_thread(self._set_tokenizer_state, "loading")
        from lora_chat.core.model import load_tokenizer, token_counter

        try:
            return CachedTokenCounter(token_counter(load_tokenizer(self.app.base_model)))
        except LoraChatError as exc:
            return str(exc)

    def _set_tokenizer_state(self, state: str) -> None:
        self.tokenizer_state = state
        self.show_totals()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "load tokenizer" or event.state is not WorkerState.SUCCESS:
            return
        result = event.worker.result
        if isinstance(result, CachedTokenCounter):
            self.count_tokens = result
            self.tokenizer_state = "ready"
        else:
            self.tokenizer_state = str(result)
            log.warning("token counts are off: %s", result)
        self.sync_table()

    # Table --------------------------------------------------------------------------

    def fit_columns(self) -> None:
        """Share the table's width between the text columns; the counts keep a fixed width."""
        table = self.query_one("#rows", DataTable)
        width = table.size.width or 80
        fixed = {"number": 5, "in_tokens": 4, "out_tokens": 4}
        # Each column has one cell of padding on each side.
        free = max(30, width - sum(fixed.values()) - 2 * len(COLUMNS) - 2)
        widths = {**fixed, "input": free * 37 // 100, "output": free * 37 // 100}
        widths["problems"] = free - widths["input"] - widths["output"]
        for key, column in table.columns.items():
            column.width = widths[key.value]
            column.auto_width = False
        table.refresh(layout=True)

    def _matches(self, entry: Entry, row_report: RowReport, needle: str) -> bool:
        if self.problems_only and row_report.valid:
            return False
        if not needle:
            return True
        return needle in entry.input.lower() or needle in entry.output.lower() or any(needle in p.lower() for p in row_report.problems)

    def _cells(self, entry: Entry, row_report: RowReport) -> tuple[str, ...]:
        """Return the text of every column but the row number, which RowNumberCell works out."""
        tokens = (row_report.input_tokens, row_report.output_tokens)
        return (
            _preview(entry.input),
            _preview(entry.output),
            "" if tokens[0] is None else str(tokens[0]),
            "" if tokens[1] is None else str(tokens[1]),
            "; ".join(row_report.problems),
        )

    def _renderables(self, cells: tuple[str, ...]) -> list[Cell]:
        error_style = self.app.theme_variables.get("text-error", "")
        input_text, output_text, in_tokens, out_tokens, problems = cells
        return [
            Cell(input_text),
            Cell(output_text),
            Cell(in_tokens, justify="right"),
            Cell(out_tokens, justify="right"),
            Cell(problems, style=error_style),
        ]

    def sync_table(self) -> None:
        """Bring the table in line with the document, touching only the rows that changed."""
        document = self.document
        table = self.query_one("#rows", DataTable)
        if document is None:
            self.show_document_state()
            return
        limits = self.app.settings.train
        self.report = document.check(self.count_tokens, limits.max_input_tokens, limits.max_output_tokens)
        needle = self.query_one("#search", Input).value.strip().lower()

        visible_rows: dict[str, tuple[str, ...]] = {}
        for entry, row_report in zip(document.entries, self.report.rows):
            if self._matches(entry, row_report, needle):
                visible_rows[entry.key] = self._cells(entry, row_report)

        removed = [key for key in self._shown if key not in visible_rows]
        if len(removed) > REBUILD_THRESHOLD:
            table.clear()
            self._shown.clear()
            self._shown_order.clear()
        else:
            for key in removed:
                table.remove_row(key)
                del self._shown[key]
            if removed:
                self._shown_order = [key for key in self._shown_order if key in self._shown]

        text_columns = [key for key, _ in COLUMNS[1:]]
        for key, cells in visible_rows.items():
            old = self._shown.get(key)
            if old is None:
                table.add_row(RowNumberCell(document, key), *self._renderables(cells), key=key)
                self._shown_order.append(key)
            elif old != cells:
                for column, old_value, new_value, renderable in zip(text_columns, old, cells, self._renderables(cells)):
                    if old_value != new_value:
                        table.update_cell(key, column, renderable)
            self._shown[key] = cells

        order = list(visible_rows)
        if order != self._shown_order:
            table.sort("number", key=lambda cell: cell.sort_value)
            self._shown_order = order
        self.show_document_state()

    def clear_filters(self, sync: bool = True) -> None:
        search = self.query_one("#search", Input)
        changed = bool(search.value) or self.problems_only
        with search.prevent(Input.Changed):
            search.value = ""
        self.problems_only = False
        if sync and changed:
            self.sync_table()

    def move_to(self, key: str | None) -> None:
        if key is None:
            return
        table = self.query_one("#rows", DataTable)
        if key not in self._shown:
            # The row is hidden by the search; show every row so the change is visible.
            self.clear_filters()
        if key in self._shown:
            table.move_cursor(row=table.get_row_index(key), scroll=True)

    def current_key(self) -> str | None:
        table = self.query_one("#rows", DataTable)
        if self.document is None or not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - CellDoesNotExist when the cursor is past the end
            return None

    # Heading and totals -------------------------------------------------------------

    def show_document_state(self) -> None:
        document = self.document
        has_document = document is not None
        self.query_one("#rows", DataTable).display = has_document
        self.query_one("#search", Input).display = has_document
        self.query_one("#empty-hint", Static).display = not has_document
        self.query_one("#dataset-name", Label).update(document.name if document else "No dataset open")
        self.query_one("#dataset-path", Label).update(str(document.path.parent) if document and document.path else "")
        self.query_one("#unsaved-marker", Label).display = bool(document and document.dirty)
        self.show_totals()

    def show_totals(self) -> None:
        totals = self.query_one("#dataset-totals", Static)
        if self.document is None or self.report is None:
            totals.update("")
            return
        report = self.report
        parts = [f"{len(report.rows)} rows", f"{len(report.valid_rows)} valid"]
        visible_count = len(self._shown)
        if visible_count != len(report.rows):
            parts.append(f"{visible_count} shown")
        for field_name in ("input", "output"):
            spread = report.spread(field_name)
            if spread:
                parts.append(f"{field_name} tokens {spread[0]}–{spread[2]} (median {spread[1]})")
        if self.count_tokens is None:
            if self.tokenizer_state == "loading":
                parts.append("token counts: loading the tokenizer…")
            elif self.tokenizer_state != "not loaded":
                parts.append("no token counts: the base model's tokenizer did not load (ctrl+l shows why)")
        totals.update(" · ".join(parts))

    # Search -------------------------------------------------------------------------

    def action_search(self) -> None:
        if self.document is not None:
            self.query_one("#search", Input).focus()

    @on(Input.Changed, "#search")
    def search_changed(self) -> None:
        # Typing fast filters once, after the last key, instead of once per key.
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DELAY_S, self.sync_table)

    @on(Input.Submitted, "#search")
    def search_submitted(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self.sync_table()
        self.query_one("#rows", DataTable).focus()

    def key_escape(self) -> None:
        search = self.query_one("#search", Input)
        if search.has_focus:
            search.value = ""
            self.query_one("#rows", DataTable).focus()

    def action_toggle_problems(self) -> None:
        if self.document is None:
            return
        self.problems_only = not self.problems_only
        self.notify("Showing rows with problems only" if self.problems_only else "Showing all rows")
        self.sync_table()

    # Row actions --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row_actions = {"add_row", "edit_row", "duplicate_row", "delete_row", "undo", "redo", "save", "search", "toggle_problems", "export_file"}
        if action in row_actions and self.document is None:
            return None  # shown greyed out in the footer
        return True

    def edit_entry(self, key: str | None, focus_field: str = "input") -> None:
        document = self.document
        if document is None or key is None:
            return
        entry = document.get(key)
        number = document.index_of(key) + 1

        def apply(result: tuple[str, str] | None) -> None:
            if result is not None and self.document is document:
                document.update(key, *result)
                self.sync_table()
                self.move_to(key)

        self.app.push_screen(self.row_editor(f"Row {number} of {document.name}", entry.input, entry.output, focus_field), apply)

    def row_editor(self, title: str, input: str = "", output: str = "", focus_field: str = "input") -> RowEditor:
        # Imported here: the editor's text areas are not needed for the first frame.
        from lora_chat.tui.widgets.row_editor import RowEditor

        limits = self.app.settings.train
        return RowEditor(title, input, output, self.count_tokens, limits.max_input_tokens, limits.max_output_tokens, focus_field)

    def action_edit_row(self) -> None:
        self.edit_entry(self.current_key())

    @on(DataTable.RowSelected, "#rows")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.edit_entry(event.row_key.value)

    def action_add_row(self) -> None:
        document = self.document
        if document is None:
            return
        key = self.current_key()
        index = document.index_of(key) + 1 if key else len(document)

        def apply(result: tuple[str, str] | None) -> None:
            if result is not None and self.document is document:
                new_key = document.insert(index, *result)
                self.sync_table()
                self.move_to(new_key)

        self.app.push_screen(self.row_editor(f"New row in {document.name}"), apply)

    def action_duplicate_row(self) -> None:
        key = self.current_key()
        if self.document is None or key is None:
            return
        new_key = self.document.duplicate(key)
        self.sync_table()
        self.move_to(new_key)

    def action_delete_row(self) -> None:
        key = self.current_key()
        if self.document is None or key is None:
            return
        table = self.query_one("#rows", DataTable)
        cursor = table.cursor_row
        number = self.document.index_of(key) + 1
        self.document.delete(key)
        self.sync_table()
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.notify(f"Row {number} deleted; ctrl+z brings it back.")

    def action_undo(self) -> None:
        self._step(self.document.undo() if self.document else None, "Undid", "Nothing to undo")

    def action_redo(self) -> None:
        self._step(self.document.redo() if self.document else None, "Redid", "Nothing to redo")

    def _step(self, result: tuple[str, str | None] | None, verb: str, nothing: str) -> None:
        if result is None:
            self.notify(nothing)
            return
        description, key = result
        self.sync_table()
        self.move_to(key)
        self.notify(f"{verb}: {description}")

    # Files --------------------------------------------------------------------------

    def action_save(self) -> None:
        document = self.document
        if document is None:
            return
        with self.app.errors_shown("Save failed"):
            path = document.save()
            self.sync_table()
            self.refresh_library()
            self.notify(f"Saved {len(document)} rows to {path}")

    @work(name="new dataset", group="dataset-file", exclusive=True, exit_on_error=False)
    async def action_new_dataset(self) -> None:
        if not await self.confirm_discard():
            return
        folder = paths.datasets_dir()

        def check(name: str) -> None:
            _dataset_name_check(name)
            if self._library_path(name).exists():
                raise DatasetError(f"{self._library_path(name)} already exists; choose another name")

        name = await self.app.push_screen_wait(
            PromptDialog(f"Name of the new dataset (saved as JSONL in {folder})", title="New dataset", placeholder="my-dataset", check=check)
        )
        if name is None:
            return
        document = DatasetDocument([], self._library_path(name), "jsonl")
        self.load_document(document)
        self.action_add_row()

    def _library_path(self, name: str) -> Path:
        path = paths.datasets_dir() / name
        return path if path.suffix.lower().lstrip(".") in FORMATS else path.with_suffix(".jsonl")

    @work(name="open file", group="dataset-file", exclusive=True, exit_on_error=False)
    async def action_open_file(self) -> None:
        path = await self.app.push_screen_wait(
            PromptDialog("Path of a .json, .jsonl or .csv file; it is edited in place", title="Open dataset file", check=_existing_file)
        )
        if path is not None:
            self.open_dataset(Path(path).expanduser())

    @work(name="import dataset", group="dataset-file", exclusive=True, exit_on_error=False)
    async def action_import_file(self) -> None:
        """Copy a JSON, JSONL or CSV file into the library as JSONL and open the copy."""
        source = await self.app.push_screen_wait(
            PromptDialog("Path of a .json, .jsonl or .csv file to copy into the library", title="Import dataset", check=_existing_file)
        )
        if source is None:
            return
        if not await self.confirm_discard():
            return
        dataset = await asyncio.to_thread(read_dataset, Path(source).expanduser())
        target = self._library_path(Path(source).stem + ".jsonl")
        if target.exists():
            name = await self.app.push_screen_wait(
                PromptDialog(f"{target.name} is already in the library; name the copy", title="Import dataset", value=f"{target.stem}-2", check=lambda n: _free_name(self._library_path(n)))
            )
            if name is None:
                return
            target = self._library_path(name)
        document = DatasetDocument.from_dataset(dataset)
        document.path, document.format = target, "jsonl"
        await asyncio.to_thread(document.save)
        self.load_document(document)
        self.refresh_library()
        self.notify(f"Imported {len(document)} rows from {source} into {target}")

    @work(name="export dataset", group="dataset-file", exclusive=True, exit_on_error=False)
    async def action_export_file(self) -> None:
        document = self.document
        if document is None:
            return
        default = str(Path.cwd() / f"{Path(document.name).stem}.jsonl")
        target = await self.app.push_screen_wait(
            PromptDialog("Export to a .json or .jsonl file", title=f"Export {document.name}", value=default, check=_free_name)
        )
        if target is None:
            return
        path = await asyncio.to_thread(document.export, Path(target).expanduser())
        self.notify(f"Exported {len(document)} rows to {path}")

    # Quitting and other screens -----------------------------------------------------

    def quit_blockers(self) -> list[str]:
        if self.document is not None and self.document.dirty:
            return [f"The dataset {self.document.name} has unsaved changes."]
        return []

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Commands of this screen for the command palette."""
        yield SystemCommand("Dataset: new", "Start a new dataset in the library (n)", self.action_new_dataset)
        yield SystemCommand("Dataset: open file", "Open a JSON, JSONL or CSV file by path (o)", self.action_open_file)
        yield SystemCommand("Dataset: import", "Copy a JSON, JSONL or CSV file into the library (i)", self.action_import_file)
        if self.document is not None:
            yield SystemCommand("Dataset: export", "Write the rows to a JSON or JSONL file (x)", self.action_export_file)
            yield SystemCommand("Dataset: save", "Save the open dataset (ctrl+s)", self.action_save)
            yield SystemCommand("Dataset: problems only", "Show only rows with problems, or all rows again (p)", self.action_toggle_problems)
            yield SystemCommand("Dataset: redo", "Redo the last undone change (ctrl+y)", self.action_redo)


def _existing_file(text: str) -> None:
    path = Path(text).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: file not found" if not path.exists() else f"{path} is not a file")


def _free_name(text: str | Path) -> None:
    path = Path(text).expanduser()
    if path.exists():
        raise DatasetError(f"{path} already exists; choose another name")
