"""The Adapters screen: the adapter library as a table, with details and the loss curve."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any, Iterable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Header, Label, Sparkline, Static

from lora_chat.core.errors import AdapterError, InputError
from lora_chat.core.library import AdapterEntry, AdapterLibrary
from lora_chat.tui.screens.base import LoraScreen
from lora_chat.tui.widgets.dialogs import ConfirmDialog, PromptDialog
from lora_chat.tui.widgets.key_bar import KeyBar

# The columns that tell adapters apart come first, so they stay in view at 80 columns.
COLUMNS = (
    ("name", "name"),
    ("status", "status"),
    ("loss", "loss"),
    ("eval_loss", "eval loss"),
    ("rank", "rank"),
    ("epochs", "epochs"),
    ("dataset", "dataset"),
    ("rows", "rows"),
    ("created", "created"),
    ("base_model", "base model"),
    ("problem", "problem"),
)


def _loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _created(meta: dict[str, Any]) -> str:
    return str(meta.get("created") or "-")[:16].replace("T", " ")


def table_cells(entry: AdapterEntry) -> list[str]:
    """Return the table columns of one library entry, in the order of COLUMNS."""
    meta = entry.meta
    base_model = str(entry.base_model or "-")
    if entry.broken:
        return [entry.name, "broken", "", "", "", "", "", "", _created(meta), base_model, entry.problem or ""]
    settings = meta.get("settings") or {}
    dataset = meta.get("dataset") or {}
    return [
        entry.name,
        "ok",
        _loss(meta.get("final_loss")),
        _loss(meta.get("final_eval_loss")),
        str(settings.get("rank", "-")),
        str(settings.get("epochs", "-")),
        str(dataset.get("name") or "-"),
        str(dataset.get("valid_rows", dataset.get("rows", "-"))),
        _created(meta),
        base_model,
        "",
    ]


def detail_lines(entry: AdapterEntry) -> list[str]:
    """Return everything known of an adapter, one "label: value" line each."""
    meta = entry.meta
    lines = [f"name: {entry.name}", f"folder: {entry.path}"]
    if entry.broken:
        lines.append(f"BROKEN: {entry.problem}")
    lines += [f"base model: {entry.base_model or '-'}", f"method: {entry.method}", f"created: {_created(meta)}"]
    dataset = meta.get("dataset") or {}
    if dataset:
        rows = dataset.get("valid_rows", dataset.get("rows"))
        lines.append(f"dataset: {dataset.get('name')} ({rows} rows, content hash {dataset.get('content_hash')})")
    if meta.get("imported_from"):
        lines.append(f"imported from: {meta['imported_from']}")
    settings = meta.get("settings") or {}
    if settings:
        lines.append("settings:")
        for key, value in settings.items():
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            lines.append(f"  {key.replace('_', '-')}: {value}")
    if meta.get("trainable_parameters"):
        lines.append(f"trainable parameters: {meta['trainable_parameters']:,}")
    if "final_loss" in meta:
        lines.append(f"final loss: {_loss(meta.get('final_loss'))}   eval loss: {_loss(meta.get('final_eval_loss'))}")
    if meta.get("duration_s") is not None:
        lines.append(f"trained in: {meta['duration_s']} s on {meta.get('device', '-')} ({meta.get('samples_per_second', '-')} samples/s)")
    if meta.get("versions"):
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    return lines


class AdaptersScreen(LoraScreen):
    """The library table on top, the highlighted adapter's details and loss curve below."""

    DEFAULT_CSS = """
    AdaptersScreen #adapters-main {
        height: 1fr;
    }
    AdaptersScreen #adapters-title {
        text-overflow: ellipsis;
        text-wrap: nowrap;
    }
    AdaptersScreen #adapters {
        height: auto;
        max-height: 45%;
        min-height: 4;
    }
    AdaptersScreen #adapters-empty {
        height: auto;
        padding: 1 2;
        color: $text-muted;
    }
    AdaptersScreen #adapter-detail-pane {
        height: 1fr;
        border-top: hkey $primary 50%;
    }
    AdaptersScreen #adapter-detail {
        width: 1fr;
        padding: 0 1;
    }
    AdaptersScreen #adapter-curves {
        width: 1fr;
        padding: 0 1;
    }
    AdaptersScreen #adapter-curves Sparkline {
        height: 4;
        margin-bottom: 1;
    }
    AdaptersScreen #adapter-curves Label {
        color: $text-muted;
    }
    AdaptersScreen #eval-curve > .sparkline--max-color {
        color: $accent;
    }
    AdaptersScreen.-narrow #adapter-curves {
        width: 30;
    }
    """

    BINDINGS = [
        Binding("c", "open_in_chat", "Chat with it"),
        Binding("e", "evaluate", "Evaluate"),
        Binding("r", "rename", "Rename"),
        Binding("delete", "delete", "Delete"),
        Binding("x", "export", "Export"),
        Binding("i", "import_folder", "Import"),
        Binding("w", "sweep", "Sweep", show=False),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
    ]

    def __init__(self, library: AdapterLibrary | None = None) -> None:
        super().__init__()
        self.library = library or AdapterLibrary()
        self.entries: dict[str, AdapterEntry] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="adapters-main"):
            yield Label("Adapter library", classes="pane-title", id="adapters-title")
            yield DataTable(id="adapters", cursor_type="row", zebra_stripes=True)
            yield Static("", id="adapters-empty", markup=False)
            with Horizontal(id="adapter-detail-pane"):
                with VerticalScroll(id="adapter-detail"):
                    yield Static("", id="adapter-info", markup=False)
                with Vertical(id="adapter-curves"):
                    yield Label("", id="loss-label", markup=False)
                    yield Sparkline([], id="loss-curve")
                    yield Label("", id="eval-label", markup=False)
                    yield Sparkline([], id="eval-curve")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#adapters", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.refresh_library()

    def on_screen_resume(self) -> None:
        # A training run may have added an adapter while another screen was shown.
        self.refresh_library()

    # Table --------------------------------------------------------------------------

    def refresh_library(self, select: str | None = None) -> None:
        """Read the library again and redraw the table, keeping the cursor on ``select`` or the same name."""
        table = self.query_one("#adapters", DataTable)
        current = select or self.current_name()
        entries = self.library.list()
        self.entries = {entry.name: entry for entry in entries}
        table.clear()
        error_style = self.app.theme_variables.get("text-error", "")
        for entry in entries:
            cells = table_cells(entry)
            style = error_style if entry.broken else ""
            table.add_row(*(Text(cell, style=style) for cell in cells), key=entry.name)

        empty = self.query_one("#adapters-empty", Static)
        empty.display = not entries
        empty.update(
            f"No adapters yet in {self.library.root}.\n"
            "Train one on the Train screen (F2), or press i to import a PEFT adapter folder."
        )
        self.query_one("#adapters-title", Label).update(f"Adapter library · {len(entries)} adapter{'' if len(entries) == 1 else 's'} · {self.library.root}")
        names = list(self.entries)
        if current in names:
            table.move_cursor(row=names.index(current))
        self.show_detail(self.current_name())

    def current_name(self) -> str | None:
        table = self.query_one("#adapters", DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - CellDoesNotExist while the table is being refilled
            return None

    def current_entry(self) -> AdapterEntry | None:
        name = self.current_name()
        return self.entries.get(name) if name else None

    @on(DataTable.RowHighlighted, "#adapters")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail(event.row_key.value if event.row_key else None)

    @on(DataTable.RowSelected, "#adapters")
    def row_selected(self) -> None:
        self.action_open_in_chat()

    def show_detail(self, name: str | None) -> None:
        entry = self.entries.get(name) if name else None
        pane = self.query_one("#adapter-detail-pane")
        pane.display = entry is not None
        if entry is None:
            return
        self.query_one("#adapter-info", Static).update("\n".join(detail_lines(entry)))

        losses = [point["loss"] for point in entry.meta.get("loss_history", []) if isinstance(point.get("loss"), (int, float))]
        eval_losses = [point["eval_loss"] for point in entry.meta.get("eval_history", []) if isinstance(point.get("eval_loss"), (int, float))]
        self.query_one("#loss-curve", Sparkline).data = losses
        self.query_one("#eval-curve", Sparkline).data = eval_losses
        self.query_one("#loss-label", Label).update(
            f"loss {losses[0]:.3f} → {losses[-1]:.3f}" if losses else "no loss history recorded"
        )
        self.query_one("#eval-label", Label).update(
            f"eval loss {eval_losses[0]:.3f} → {eval_losses[-1]:.3f}" if eval_losses else "no eval loss recorded"
        )
        self.query_one("#loss-curve").display = bool(losses)
        self.query_one("#eval-curve").display = bool(eval_losses)

    # Actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("open_in_chat", "evaluate", "rename", "delete", "export") and self.current_entry() is None:
            return None
        return True

    def action_refresh(self) -> None:
        self.refresh_library()
        self.notify("Library read again")

    def action_open_in_chat(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        if entry.broken:
            error = AdapterError(f"adapter {entry.name!r} is broken ({entry.problem}); delete it or import it again")
            self.app.show_error(error, title="Cannot open in chat")
            return
        self.app.open_in_chat(entry.name)

    def action_evaluate(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        if entry.broken:
            error = AdapterError(f"adapter {entry.name!r} is broken ({entry.problem}); delete it or import it again")
            self.app.show_error(error, title="Cannot evaluate")
            return
        from lora_chat.tui.screens.evaluate import EvaluateScreen

        self.app.push_screen(EvaluateScreen(entry))

    def action_sweep(self) -> None:
        from lora_chat.tui.screens.sweep import SweepScreen

        self.app.push_screen(SweepScreen())

    async def _release(self, name: str) -> None:
        """Let the chat engine drop ``name`` if it has it loaded, before the folder changes."""
        release = getattr(self.app, "release_adapter", None)
        if release is not None:
            result = release(name)
            if inspect.isawaitable(result):
                await result
        if self.app.current_adapter == name:
            self.app.current_adapter = None
            self.app.update_subtitle()

    @work(name="delete adapter", group="library", exclusive=True, exit_on_error=False)
    async def action_delete(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        question = f"Delete the adapter {entry.name!r}?\nIts folder {entry.path} is removed; this cannot be undone."
        if not await self.app.push_screen_wait(ConfirmDialog(question, title="Delete adapter", confirm_label="Delete", danger=True)):
            return
        await self._release(entry.name)
        await asyncio.to_thread(self.library.delete, entry.name)
        self.refresh_library()
        self.notify(f"Deleted {entry.name}")

    @work(name="rename adapter", group="library", exclusive=True, exit_on_error=False)
    async def action_rename(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        new_name = await self.app.push_screen_wait(
            PromptDialog(f"New name for {entry.name}", title="Rename adapter", value=entry.name, check=self._check_new_name)
        )
        if new_name is None or new_name == entry.name:
            return
        was_current = self.app.current_adapter == entry.name
        await self._release(entry.name)
        renamed = await asyncio.to_thread(self.library.rename, entry.name, new_name)
        if was_current:
            self.app.current_adapter = renamed.name
            self.app.update_subtitle()
        self.refresh_library(select=renamed.name)
        self.notify(f"Renamed {entry.name} to {renamed.name}")

    def _check_new_name(self, name: str) -> None:
        self.library.check_new_name(name)

    @work(name="export adapter", group="library", exclusive=True, exit_on_error=False)
    async def action_export(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        if entry.broken:
            raise AdapterError(f"adapter {entry.name!r} is broken ({entry.problem}); it cannot be exported")
        default = str(Path.cwd() / f"{entry.name}.zip")
        target = await self.app.push_screen_wait(
            PromptDialog("Export to a folder, or to a .zip file when the name ends in .zip", title=f"Export {entry.name}", value=default)
        )
        if target is None:
            return
        path = await asyncio.to_thread(self.library.export, entry.name, Path(target))
        self.notify(f"Exported {entry.name} to {path}")

    @work(name="import adapter", group="library", exclusive=True, exit_on_error=False)
    async def action_import_folder(self) -> None:
        source = await self.app.push_screen_wait(
            PromptDialog(
                "A folder saved by peft's save_pretrained (it holds adapter_config.json), or a .zip written by export",
                title="Import adapter",
                check=_existing_adapter_source,
            )
        )
        if source is None:
            return
        folder = Path(source).expanduser()
        suggested = folder.resolve().stem if folder.is_file() else folder.resolve().name
        try:
            self.library.check_new_name(suggested)
        except InputError:
            suggested = ""
        name = await self.app.push_screen_wait(
            PromptDialog("Name of the adapter in the library", title="Import adapter", value=suggested, check=self._check_new_name)
        )
        if name is None:
            return
        entry = await asyncio.to_thread(self.library.import_folder, folder, name)
        self.refresh_library(select=entry.name)
        self.notify(f"Imported {folder} as {entry.name}")

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Commands of this screen for the command palette."""
        yield SystemCommand("Adapters: import", "Copy a PEFT adapter folder or an exported .zip into the library (i)", self.action_import_folder)
        yield SystemCommand("Adapters: refresh", "Read the library folder again (ctrl+r)", self.action_refresh)
        yield SystemCommand("Adapters: sweep", "Train one adapter per setting and rank them by eval loss (w)", self.action_sweep)
        entry = self.current_entry()
        if entry is not None:
            yield SystemCommand(f"Adapters: chat with {entry.name}", "Open the adapter in the Chat screen (c)", self.action_open_in_chat)
            yield SystemCommand(f"Adapters: export {entry.name}", "Copy the adapter to a folder or .zip (x)", self.action_export)
            yield SystemCommand(
                f"Adapters: evaluate {entry.name}", "Compare it with the base model and few-shot prompting on held-out rows (e)", self.action_evaluate
            )


def _existing_adapter_source(text: str) -> None:
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"{path}: not found")
    if not path.is_dir() and path.suffix.lower() != ".zip":
        raise InputError(f"{path} is neither a folder nor a .zip file")

