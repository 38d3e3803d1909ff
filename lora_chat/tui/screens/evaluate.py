"""The Evaluate view: an adapter against the base model and few-shot prompting, on held-out rows."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, DataTable, Header, Input, Label, ProgressBar, Static

from lora_chat.core.errors import InputError, SettingsError, TrainingCancelled
from lora_chat.core.library import AdapterEntry
from lora_chat.tui.screens.base import LoraScreen
from lora_chat.tui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from lora_chat.core.evaluate import EvalReport, RowResult

# Few-shot rows in the prompt when the view opens, the same default as 'lora-chat eval'.
DEFAULT_FEW_SHOT = 3
# Widest and narrowest text cell, in characters. The pane under the table shows the highlighted row in full.
CELL_WIDTH = 30
MIN_CELL_WIDTH = 10
# Table header of each system.
SYSTEM_HEADERS = {"base": "base", "few-shot": "few-shot", "adapter": "adapter"}


def clip(text: str, width: int = CELL_WIDTH) -> str:
    """Return ``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def parse_few_shot(text: str) -> int:
    """Read the few-shot K field: a whole number from 0 to 20."""
    try:
        value = int(text.strip() or "0")
    except ValueError:
        raise SettingsError(f"few-shot K: expected a whole number of training rows, got {text.strip()!r}") from None
    if not 0 <= value <= 20:
        raise SettingsError(f"few-shot K: {value} is out of range; allowed 0 to 20 (0 skips few-shot prompting)")
    return value


def cell_width(screen_width: int, text_columns: int) -> int:
    """Return the width of each text column so that the row table fits ``screen_width``."""
    # The row-number column takes 6 cells, each column 2 of padding, and the scrollbar 2.
    free = screen_width - 6 - 2 * text_columns - 2
    return max(MIN_CELL_WIDTH, min(CELL_WIDTH, free // max(text_columns, 1)))


def answer_cell(row: RowResult, system: str, width: int, error_style: str, success_style: str) -> Text:
    """Return one answer as a table cell: marked ✗ when it differs from the expected output."""
    answer = row.answers.get(system, "")
    if row.exact.get(system):
        return Text("✓ " + clip(answer, width - 2), style=success_style)
    return Text("✗ " + clip(answer or "(empty)", width - 2), style=error_style)


def row_detail(row: RowResult, labels: dict[str, str]) -> str:
    """Return the full text of one evaluated row, with each system's scores."""
    lines = [f"row {row.number}", f"input:    {row.input}", f"expected: {row.expected}"]
    for system, label in labels.items():
        if system not in row.answers:
            continue
        mark = "✓" if row.exact.get(system) else "✗"
        lines.append(
            f"{mark} {label}: {row.answers[system] or '(empty)'}   "
            f"(F1 {row.f1.get(system, 0.0):.2f}, loss {row.loss.get(system, float('nan')):.4f})"
        )
    return "\n".join(lines)


class EvalProgress(Message):
    """Count of generated answers so far, posted from the evaluation worker."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total


class EvalFinished(Message):
    """The evaluation ended: with a report, or stopped by the user (``report`` is None)."""

    def __init__(self, report: EvalReport | None, dataset_path: Path | None) -> None:
        super().__init__()
        self.report = report
        self.dataset_path = dataset_path


class EvaluateScreen(LoraScreen):
    """Run ``evaluate_adapter`` for one adapter and show the summary and the per-row answers."""

    DEFAULT_CSS = """
    EvaluateScreen #eval-controls {
        height: 3;
    }
    EvaluateScreen #eval-controls Label {
        padding: 1 1 0 0;
    }
    EvaluateScreen #eval-few-shot {
        width: 8;
    }
    EvaluateScreen #eval-dataset {
        width: 1fr;
    }
    EvaluateScreen #eval-controls Button {
        min-width: 8;
        margin-left: 1;
    }
    EvaluateScreen #eval-status {
        height: auto;
        max-height: 2;
        padding: 0 1;
        color: $text-muted;
    }
    EvaluateScreen #eval-status-bar {
        height: auto;
    }
    EvaluateScreen #eval-progress {
        width: 40;
        padding: 0 1;
    }
    EvaluateScreen #eval-summary {
        height: auto;
        max-height: 5;
    }
    EvaluateScreen #eval-rows {
        height: 2fr;
        min-height: 4;
    }
    EvaluateScreen #eval-detail {
        height: 1fr;
        min-height: 4;
        padding: 0 1;
        border-top: solid $primary;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("r", "run", "Run"),
        Binding("s", "stop", "Stop"),
        Binding("e", "edit_expected", "Edit expected"),
    ]

    def __init__(self, entry: AdapterEntry, few_shot: int = DEFAULT_FEW_SHOT) -> None:
        super().__init__()
        self.entry = entry
        self.few_shot = few_shot
        self.report: EvalReport | None = None
        # The dataset file the shown rows come from, for sending a row back to the Datasets screen.
        self.dataset_path: Path | None = None
        self.running = False
        self.stop_event = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Evaluate {self.entry.name} ({self.entry.method})", id="eval-title", classes="pane-title")
        with Horizontal(id="eval-controls"):
            yield Label("few-shot K")
            yield Input(str(self.few_shot), id="eval-few-shot", type="integer", tooltip="Training rows put in the base model's prompt; 0 skips few-shot prompting")
            yield Input(placeholder="rows from a file (blank: the rows held out in training)", id="eval-dataset")
            yield Button("Run", id="eval-run", variant="primary")
            yield Button("Stop", id="eval-stop", variant="error", disabled=True)
        with Horizontal(id="eval-status-bar"):
            yield ProgressBar(id="eval-progress", show_eta=False)
            yield Static("", id="eval-status", markup=False)
        yield DataTable(id="eval-summary", cursor_type="none", show_cursor=False)
        yield DataTable(id="eval-rows", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="eval-detail"):
            yield Static("", id="eval-row-detail", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        summary = self.query_one("#eval-summary", DataTable)
        summary.add_columns("answered by", "exact match", "token F1", "mean loss", "time")
        self.query_one("#eval-progress").display = False
        # The table has the focus, so r, s and e reach the screen instead of the K field.
        self.query_one("#eval-rows", DataTable).focus()
        self.action_run()

    # Running ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run" and self.running:
            return None
        if action == "stop" and not self.running:
            return None
        if action == "edit_expected" and self.current_row() is None:
            return None
        return True

    def action_run(self) -> None:
        """Start the evaluation with the K and rows in the form. A wrong K goes to the error dialog."""
        if self.running:
            return
        try:
            self.few_shot = parse_few_shot(self.query_one("#eval-few-shot", Input).value)
        except SettingsError as exc:
            self.app.show_error(exc, title="Cannot evaluate")
            return
        text = self.query_one("#eval-dataset", Input).value.strip()
        dataset = Path(text).expanduser() if text else None
        if dataset is not None and not dataset.is_file():
            self.app.show_error(InputError(f"{dataset}: file not found; give a .json, .jsonl or .csv file, or leave it blank"), title="Cannot evaluate")
            return

        self.stop_event = threading.Event()
        self._set_running(True, "loading the base model and the adapter…")
        self.run_evaluation(dataset)

    def _set_running(self, running: bool, status: str) -> None:
        self.running = running
        self.query_one("#eval-run", Button).disabled = running
        self.query_one("#eval-stop", Button).disabled = not running
        self.query_one("#eval-progress").display = running
        self.query_one("#eval-status", Static).update(status)
        self.refresh_bindings()

    @work(thread=True, name="evaluate adapter", group="evaluate", exclusive=True, exit_on_error=False)
    def run_evaluation(self, dataset: Path | None) -> None:
        """Answer the rows three ways in this thread and post the progress and the report as messages."""
        # Imported here: the core loads torch when it runs, and the app must start without it.
        from lora_chat.core import evaluate

        engine = getattr(self.app, "engine", None)
        base_model = self.app.base_model
        stop = self.stop_event
        try:
            report = evaluate.evaluate_adapter(
                self.entry.name,
                base_model,
                dataset=dataset,
                few_shot=self.few_shot,
                engine=engine,
                report=lambda event: self.post_message(EvalProgress(event["done"], event["total"])),
                should_stop=stop.is_set,
            )
        except TrainingCancelled:
            self.post_message(EvalFinished(None, None))
            return
        except BaseException:
            self.app.call_from_thread(self._set_running, False, "evaluation failed")
            raise
        self.post_message(EvalFinished(report, dataset if dataset is not None else training_dataset_path(self.entry)))

    def action_stop(self) -> None:
        if self.running:
            self.stop_event.set()
            self.query_one("#eval-status", Static).update("stopping after the answer being generated…")

    @on(Button.Pressed, "#eval-run")
    def _run_pressed(self) -> None:
        self.action_run()

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#eval-stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    def on_eval_progress(self, message: EvalProgress) -> None:
        self.query_one("#eval-progress", ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#eval-status", Static).update(f"answering {message.done}/{message.total} (s stops)")

    def on_eval_finished(self, message: EvalFinished) -> None:
        if message.report is None:
            self._set_running(False, "stopped; r runs it again")
            return
        self.show_report(message.report, message.dataset_path)

    # Results ------------------------------------------------------------------------

    def show_report(self, report: EvalReport, dataset_path: Path | None) -> None:
        """Fill the summary and the row table from ``report``."""
        self.report = report
        self.dataset_path = dataset_path
        self._set_running(False, f"{report.source} · {report.few_shot}-shot prompt · r runs it again")

        summary = self.query_one("#eval-summary", DataTable)
        summary.clear()
        for item in report.summaries:
            summary.add_row(item.label, f"{item.exact_match:.0%}", f"{item.f1:.2f}", f"{item.mean_loss:.4f}", f"{item.seconds:.1f} s")

        self.fill_rows()
        table = self.query_one("#eval-rows", DataTable)
        if report.rows:
            table.move_cursor(row=0)
            table.focus()
        self.show_row_detail()

    def fill_rows(self) -> None:
        """Fill the row table, with the text cut to fit the screen's width."""
        report = self.report
        if report is None:
            return
        table = self.query_one("#eval-rows", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        systems = [item.system for item in report.summaries]
        width = cell_width(self.size.width, 2 + len(systems))
        table.add_column("row", key="row")
        table.add_column("input", key="input")
        table.add_column("expected", key="expected")
        for system in systems:
            table.add_column(SYSTEM_HEADERS.get(system, system), key=system)
        error_style = self.app.theme_variables.get("text-error", "red")
        success_style = self.app.theme_variables.get("text-success", "green")
        for row in report.rows:
            cells = [str(row.number), clip(row.input, width), clip(row.expected, width)]
            table.add_row(*cells, *(answer_cell(row, system, width, error_style, success_style) for system in systems), key=str(row.number))
        if 0 < cursor < len(report.rows):
            table.move_cursor(row=cursor)

    def on_resize(self) -> None:
        self.fill_rows()

    def current_row(self) -> RowResult | None:
        if self.report is None or not self.report.rows:
            return None
        table = self.query_one("#eval-rows", DataTable)
        index = table.cursor_row
        return self.report.rows[index] if 0 <= index < len(self.report.rows) else None

    @on(DataTable.RowHighlighted, "#eval-rows")
    def show_row_detail(self) -> None:
        row = self.current_row()
        labels = {item.system: item.label for item in self.report.summaries} if self.report else {}
        self.query_one("#eval-row-detail", Static).update(row_detail(row, labels) if row else "")
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#eval-rows")
    def _row_selected(self) -> None:
        self.action_edit_expected()

    async def action_edit_expected(self) -> None:
        """Open the highlighted row's dataset on the Datasets screen, with the row in the editor."""
        row = self.current_row()
        if row is None:
            return
        if self.dataset_path is None or not self.dataset_path.is_file():
            where = self.dataset_path or "a file the adapter does not record"
            self.app.show_error(
                InputError(f"the rows came from {where}, which is not there any more; open the dataset on the Datasets screen (F1)"),
                title="Cannot open the row",
            )
            return
        # As app.edit_dataset_row does, but with the cursor in the expected output, the field to fix.
        await self.app.switch_mode("datasets")
        self.app.get_screen_stack("datasets")[0].open_row(self.dataset_path, row.number, focus_field="output")

    def on_unmount(self) -> None:
        # A thread worker is not cancelled with its screen, so the core is asked to stop.
        self.stop_event.set()

    def action_close(self) -> None:
        if self.running:
            self.stop_event.set()
        self.dismiss()

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Commands of this view for the command palette."""
        yield SystemCommand("Evaluate: run again", "Answer the rows again with the K in the form (r)", self.action_run)
        if self.current_row() is not None:
            yield SystemCommand("Evaluate: edit expected output", "Open the highlighted row on the Datasets screen (e)", self.action_edit_expected)


def training_dataset_path(entry: AdapterEntry) -> Path | None:
    """Return the path of the dataset the adapter was trained on, as its metadata records it."""
    path = (entry.meta.get("dataset") or {}).get("path")
    return Path(path) if path else None
