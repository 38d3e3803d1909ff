"""The Sweep view: train one adapter per combination of settings and rank them by eval loss."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Header, Input, Label, ProgressBar, Select, Static

from lora_chat.core import paths
from lora_chat.core.dataset import library_datasets
from lora_chat.core.errors import InputError, SettingsError, TrainingCancelled
from lora_chat.core.settings import TrainSettings, parse_value
from lora_chat.tui.screens.base import LoraScreen
from lora_chat.tui.widgets.dialogs import dataset_file_dialog
from lora_chat.tui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from lora_chat.core.sweep import SweepResult, SweepRun

# The settings the form offers as comma lists, with their labels. 'lora-chat sweep' takes these too.
SWEEP_FIELDS = (
    ("method", "methods"),
    ("rank", "ranks"),
    ("learning_rate", "learning rates"),
    ("epochs", "epochs"),
    ("virtual_tokens", "virtual tokens"),
)


def parse_list(name: str, text: str) -> list[Any]:
    """Read a comma list of one training setting, checking each value. Raises SettingsError naming the field."""
    return [parse_value(TrainSettings, name, part.strip()) for part in text.split(",") if part.strip()]


def build_grid(base: TrainSettings, texts: dict[str, str]) -> tuple[TrainSettings, dict[str, list[Any]]]:
    """Split the form's lists into fixed settings (one value) and the grid to sweep (several values)."""
    fixed: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    for name, text in texts.items():
        values = parse_list(name, text)
        if len(values) == 1:
            fixed[name] = values[0]
        elif len(values) > 1:
            grid[name] = list(dict.fromkeys(values))
    if not grid:
        raise SettingsError("a sweep needs at least one setting with several values; type a comma list such as 4,8,16 for ranks")
    return dataclasses.replace(base, **fixed), grid


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def ranking_cells(place: int, run: SweepRun) -> list[str]:
    """Return one line of the ranking table."""
    changes = ", ".join(f"{key.replace('_', '-')} {value}" for key, value in run.changes.items())
    if run.error:
        return [str(place), run.name, changes, "failed", "-", "-", "-", run.error]
    parameters = f"{run.trainable_parameters:,}" if run.trainable_parameters is not None else "-"
    duration = f"{run.duration_s:.1f} s" if run.duration_s is not None else "-"
    return [str(place), run.name, changes, _loss(run.eval_loss), _loss(run.final_loss), duration, parameters, ""]


class SweepProgress(Message):
    """A training event of one run of the sweep, posted from the sweep worker."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class SweepFinished(Message):
    """The sweep ended: with the ranking, or stopped by the user (``result`` is None)."""

    def __init__(self, result: SweepResult | None, message: str = "") -> None:
        super().__init__()
        self.result = result
        self.message = message


class SweepScreen(LoraScreen):
    """A form with the dataset, the name and the lists of settings; the ranking once the sweep is done."""

    DEFAULT_CSS = """
    SweepScreen #sweep-form {
        height: auto;
        padding: 0 1;
    }
    SweepScreen .sweep-line {
        height: 3;
    }
    SweepScreen .sweep-line Label {
        padding: 1 1 0 0;
        width: 16;
    }
    SweepScreen #sweep-dataset {
        width: 1fr;
    }
    SweepScreen .sweep-line Input {
        width: 1fr;
    }
    SweepScreen .sweep-line Button {
        min-width: 10;
        margin-left: 1;
    }
    SweepScreen #sweep-status-bar {
        height: auto;
        padding: 0 1;
    }
    SweepScreen #sweep-progress {
        width: 30;
    }
    SweepScreen #sweep-status {
        height: auto;
        max-height: 2;
        color: $text-muted;
        padding: 0 1;
    }
    SweepScreen #sweep-ranked-by {
        padding: 0 1;
        text-style: bold;
    }
    SweepScreen #sweep-ranking {
        height: 1fr;
        min-height: 3;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("ctrl+x", "stop", "Stop", priority=True),
        Binding("ctrl+o", "open_dataset", "Open file", priority=True),
        Binding("c", "open_in_chat", "Chat with it"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.result: SweepResult | None = None
        self.running = False
        self.stop_event = threading.Event()
        self.extra_datasets: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("Sweep: one adapter per setting, same split and seed, ranked by eval loss", classes="pane-title")
        defaults = TrainSettings()
        with Vertical(id="sweep-form"):
            with Horizontal(classes="sweep-line"):
                yield Label("dataset")
                yield Select([], id="sweep-dataset", prompt="pick a dataset")
                yield Button("Open file", id="sweep-open")
            with Horizontal(classes="sweep-line"):
                yield Label("name")
                yield Input(placeholder="start of the adapter names, as in NAME-r4", id="sweep-name")
                yield Label("ranks", classes="inline")
                yield Input("4,8,16", id="sweep-rank")
            with Horizontal(classes="sweep-line"):
                yield Label("methods")
                yield Input(defaults.method, id="sweep-method", placeholder="lora,ia3,prompt-tuning,prefix-tuning")
                yield Label("learning rates")
                yield Input(f"{defaults.learning_rate:g}", id="sweep-learning_rate")
            with Horizontal(classes="sweep-line"):
                yield Label("epochs")
                yield Input(str(defaults.epochs), id="sweep-epochs")
                yield Label("virtual tokens")
                yield Input(str(defaults.virtual_tokens), id="sweep-virtual_tokens")
                yield Button("Start", id="sweep-start", variant="primary")
                yield Button("Stop", id="sweep-stop", variant="error", disabled=True)
        with Horizontal(id="sweep-status-bar"):
            yield ProgressBar(id="sweep-progress", show_eta=False)
            yield Static("Fill in the lists (comma-separated) and press ctrl+s to start.", id="sweep-status", markup=False)
        yield Static("", id="sweep-ranked-by", markup=False)
        yield DataTable(id="sweep-ranking", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#sweep-ranking", DataTable)
        table.add_columns("#", "adapter", "settings", "eval loss", "loss", "time", "parameters", "problem")
        self.query_one("#sweep-progress").display = False
        self.refresh_datasets()
        # Start from the app's own training settings, as the Train screen does.
        train = self.app.settings.train
        self.query_one("#sweep-epochs", Input).value = str(train.epochs)
        self.query_one("#sweep-learning_rate", Input).value = f"{train.learning_rate:g}"
        self.query_one("#sweep-method", Input).value = train.method

    # Dataset ------------------------------------------------------------------------

    def refresh_datasets(self) -> None:
        select = self.query_one("#sweep-dataset", Select)
        found = library_datasets(paths.datasets_dir())
        options = [(p.name, str(p)) for p in found] + [(str(p), str(p)) for p in self.extra_datasets if p not in found]
        select.set_options(options)

    def use_dataset(self, path: Path) -> None:
        """Select ``path``, adding it to the list when it is outside the library."""
        path = path.expanduser().resolve()
        if path.parent != paths.datasets_dir().resolve() and path not in self.extra_datasets:
            self.extra_datasets.append(path)
        self.refresh_datasets()
        self.query_one("#sweep-dataset", Select).value = str(path)

    @on(Select.Changed, "#sweep-dataset")
    def _dataset_changed(self, event: Select.Changed) -> None:
        name = self.query_one("#sweep-name", Input)
        if event.value != Select.NULL and not name.value.strip():
            name.value = Path(str(event.value)).stem

    def action_open_dataset(self) -> None:
        self.app.push_screen(*dataset_file_dialog(self.use_dataset))

    @on(Button.Pressed, "#sweep-open")
    def _open_pressed(self) -> None:
        self.action_open_dataset()

    # Running ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start" and self.running:
            return None
        if action == "stop" and not self.running:
            return None
        if action == "open_in_chat" and self.current_run() is None:
            return None
        return True

    def action_start(self) -> None:
        """Check the form and start the sweep. A wrong value goes to the error dialog, naming the field."""
        if self.running:
            return
        dataset = self.query_one("#sweep-dataset", Select).value
        name = self.query_one("#sweep-name", Input).value.strip()
        try:
            if dataset == Select.NULL:
                raise InputError("pick a dataset first, or open a file with ctrl+o")
            if not name:
                raise InputError("type a name: the adapters are named NAME-r4, NAME-r8 and so on")
            texts = {key: self.query_one(f"#sweep-{key}", Input).value for key, _label in SWEEP_FIELDS}
            settings, grid = build_grid(self.app.settings.train, texts)
            from lora_chat.core.sweep import plan_sweep

            planned = plan_sweep(name, settings, grid)
        except InputError as exc:
            self.app.show_error(exc, title="Cannot start the sweep")
            return

        self.stop_event = threading.Event()
        self.result = None
        self.query_one("#sweep-ranking", DataTable).clear()
        self.query_one("#sweep-ranked-by", Static).update("")
        bar = self.query_one("#sweep-progress", ProgressBar)
        bar.update(total=len(planned), progress=0)
        self._set_running(True, f"starting {len(planned)} runs: {', '.join(run.name for run in planned)}")
        self.run_sweep_worker(Path(str(dataset)), name, settings, grid)

    def _set_running(self, running: bool, status: str) -> None:
        self.running = running
        self.query_one("#sweep-start", Button).disabled = running
        self.query_one("#sweep-stop", Button).disabled = not running
        self.query_one("#sweep-progress").display = running
        self.query_one("#sweep-status", Static).update(status)
        self.refresh_bindings()

    @work(thread=True, name="sweep", group="sweep", exclusive=True, exit_on_error=False)
    def run_sweep_worker(self, dataset: Path, name: str, settings: TrainSettings, grid: dict[str, list[Any]]) -> None:
        """Train every run in this thread and post the training events and the ranking as messages."""
        # Imported here: training loads torch, and the app must start without it.
        from lora_chat.core import sweep

        stop = self.stop_event
        try:
            result = sweep.run_sweep(
                dataset, name, settings, grid, self.app.base_model, report=lambda event: self.post_message(SweepProgress(event)), should_stop=stop.is_set
            )
        except TrainingCancelled as exc:
            self.post_message(SweepFinished(None, str(exc)))
            return
        except BaseException:
            self.app.call_from_thread(self._set_running, False, "the sweep failed")
            raise
        self.post_message(SweepFinished(result))

    def action_stop(self) -> None:
        if self.running:
            self.stop_event.set()
            self.query_one("#sweep-status", Static).update("stopping at the end of this step…")

    @on(Button.Pressed, "#sweep-start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#sweep-stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    def on_sweep_progress(self, message: SweepProgress) -> None:
        event = message.event
        kind = event.get("event")
        prefix = f"[{event.get('sweep_index', 0) + 1}/{event.get('sweep_total', '?')}] {event.get('sweep_run', '')}"
        status = self.query_one("#sweep-status", Static)
        if kind == "status":
            status.update(f"{prefix}: {event['message']}")
        elif kind == "step":
            status.update(f"{prefix}: step {event['step']}, epoch {event['epoch']:.2f}, loss {_loss(event.get('loss'))}")
        elif kind == "eval":
            status.update(f"{prefix}: eval loss {_loss(event.get('eval_loss'))} at step {event['step']}")
        elif kind in ("done", "error"):
            self.query_one("#sweep-progress", ProgressBar).advance(1)
            if kind == "error":
                status.update(f"{prefix} failed: {event.get('message', '')}")

    def on_sweep_finished(self, message: SweepFinished) -> None:
        if message.result is None:
            self._set_running(False, f"stopped: {message.message}")
            return
        self.show_result(message.result)

    # Ranking ------------------------------------------------------------------------

    def show_result(self, result: SweepResult) -> None:
        """Fill the ranking table, best first, with the cursor on the best adapter."""
        self.result = result
        trained = [run for run in result.runs if not run.error]
        self._set_running(False, f"{len(trained)} of {len(result.runs)} adapters trained · c chats with the highlighted one")
        self.query_one("#sweep-ranked-by", Static).update(f"Ranked by {result.ranked_by}, lowest first")
        table = self.query_one("#sweep-ranking", DataTable)
        table.clear()
        error_style = self.app.theme_variables.get("text-error", "red")
        for place, run in enumerate(result.runs, 1):
            cells = ranking_cells(place, run)
            table.add_row(*(Text(cell, style=error_style if run.error else "") for cell in cells), key=run.name)
        if result.runs:
            table.move_cursor(row=0)
            table.focus()
        self.refresh_bindings()

    def current_run(self) -> SweepRun | None:
        if self.result is None or not self.result.runs:
            return None
        index = self.query_one("#sweep-ranking", DataTable).cursor_row
        return self.result.runs[index] if 0 <= index < len(self.result.runs) else None

    @on(DataTable.RowHighlighted, "#sweep-ranking")
    def _run_highlighted(self) -> None:
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#sweep-ranking")
    def _run_selected(self) -> None:
        self.action_open_in_chat()

    def action_open_in_chat(self) -> None:
        run = self.current_run()
        if run is None:
            return
        if run.error:
            self.app.show_error(InputError(f"{run.name} was not trained ({run.error}); pick an adapter that was"), title="Cannot open in chat")
            return
        self.app.open_in_chat(run.name)

    def on_unmount(self) -> None:
        # A thread worker is not cancelled with its screen, so the core is asked to stop.
        self.stop_event.set()

    def action_close(self) -> None:
        if self.running:
            self.notify("The sweep keeps running here; press ctrl+x to stop it first.", severity="warning")
            return
        self.dismiss()

    def quit_blockers(self) -> list[str]:
        return ["a sweep is training adapters; quitting stops it and keeps only the adapters already trained"] if self.running else []

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Commands of this view for the command palette."""
        yield SystemCommand("Sweep: start", "Train one adapter per setting in the form (ctrl+s)", self.action_start)
        run = self.current_run()
        if run is not None and not run.error:
            yield SystemCommand(f"Sweep: chat with {run.name}", "Open the highlighted adapter in the Chat screen (c)", self.action_open_in_chat)
