"""The progress of a training run: bar, loss curves, numbers and how it ended."""

from __future__ import annotations

from statistics import fmean

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Label, ProgressBar, Sparkline, Static

from lora_chat.core.runs import RunProgress


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def format_loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def _mean(values: list[float]) -> float:
    # Sparkline buckets many steps into its width; the mean of a bucket is the honest loss.
    return fmean(values) if values else 0.0


OUTCOME_TITLES = {
    "running": "Training",
    "done": "Trained",
    "cancelled": "Cancelled training of",
    "error": "Training failed for",
}


class RunView(Vertical):
    """The view of a :class:`RunProgress`. The screen that contains it handles the buttons."""

    DEFAULT_CSS = """
    RunView {
        padding: 0 1;
    }
    RunView #run-title {
        text-style: bold;
        width: 100%;
    }
    RunView #run-status {
        color: $text-muted;
        width: 100%;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    RunView #run-progress-row {
        height: 1;
        margin-top: 1;
    }
    RunView ProgressBar {
        width: 1fr;
    }
    RunView ProgressBar Bar {
        width: 1fr;
    }
    RunView #run-steps {
        width: auto;
        margin-left: 2;
    }
    RunView .spark-row {
        height: 2fr;
        min-height: 3;
        max-height: 12;
        margin-top: 1;
    }
    RunView #eval-row {
        height: 1fr;
        min-height: 2;
        max-height: 6;
        margin-top: 0;
    }
    RunView .spark-label {
        width: 11;
        color: $text-muted;
    }
    RunView Sparkline {
        width: 1fr;
        height: 100%;
    }
    RunView #run-stats {
        grid-size: 2;
        grid-columns: 1fr 1fr;
        grid-rows: 1;
        height: 4;
        margin-top: 1;
    }
    RunView #overfit-hint {
        color: $text-warning;
        display: none;
        height: auto;
    }
    RunView #overfit-hint.-shown {
        display: block;
    }
    RunView #run-message {
        height: auto;
        margin-top: 1;
    }
    RunView #run-message.-error {
        color: $text-error;
    }
    RunView #run-message.-done {
        color: $text-success;
    }
    RunView #run-buttons {
        height: auto;
        margin-top: 1;
    }
    RunView #run-buttons Button {
        margin-right: 2;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="run-title", markup=False)
        yield Static("starting", id="run-status", markup=False)
        with Horizontal(id="run-progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="run-bar")
            yield Static("", id="run-steps")
        with Horizontal(classes="spark-row"):
            yield Label("loss", classes="spark-label")
            yield Sparkline([], summary_function=_mean, id="loss-spark")
        with Horizontal(classes="spark-row", id="eval-row"):
            yield Label("eval loss", classes="spark-label")
            yield Sparkline([], summary_function=_mean, id="eval-spark")
        with Grid(id="run-stats"):
            yield Static("", id="stat-loss", markup=False)
            yield Static("", id="stat-epoch", markup=False)
            yield Static("", id="stat-eval", markup=False)
            yield Static("", id="stat-speed", markup=False)
            yield Static("", id="stat-time", markup=False)
            yield Static("", id="stat-device", markup=False)
        yield Static("", id="overfit-hint", markup=False)
        yield Static("", id="run-message", markup=False)
        with Horizontal(id="run-buttons"):
            yield Button("Cancel training (ctrl+x)", id="cancel-run", variant="error", compact=True)
            yield Button("Chat with it (ctrl+t)", id="chat-with-adapter", variant="success", compact=True)
            yield Button("New run (ctrl+n)", id="new-run", variant="primary", compact=True)

    def show(self, progress: RunProgress) -> None:
        """Update every part of the view from ``progress``."""
        title = OUTCOME_TITLES.get(progress.outcome, "Training")
        dataset = progress.dataset.rsplit("/", 1)[-1]
        self.query_one("#run-title", Static).update(f"{title} {progress.adapter!r}" + (f" on {dataset}" if dataset else ""))
        self.query_one("#run-status", Static).update(progress.status)

        bar = self.query_one("#run-bar", ProgressBar)
        if progress.total_steps:
            bar.update(total=progress.total_steps, progress=progress.step)
        steps = f"step {progress.step} of {progress.total_steps}" if progress.total_steps else "loading"
        self.query_one("#run-steps", Static).update(steps)

        self.query_one("#loss-spark", Sparkline).data = list(progress.losses)
        self.query_one("#eval-spark", Sparkline).data = list(progress.eval_losses)

        best = f" (best {format_loss(progress.best_loss)})" if progress.best_loss is not None else ""
        self.query_one("#stat-loss", Static).update(f"loss {format_loss(progress.loss)}{best}")
        epochs = f" of {progress.epochs}" if progress.epochs else ""
        self.query_one("#stat-epoch", Static).update(f"epoch {progress.epoch:.2f}{epochs}")
        best_eval = f" (best {format_loss(progress.best_eval_loss)})" if progress.best_eval_loss is not None else ""
        self.query_one("#stat-eval", Static).update(f"eval loss {format_loss(progress.eval_loss)}{best_eval}")
        speed = f"{progress.samples_per_second:.1f}" if progress.samples_per_second is not None else "-"
        self.query_one("#stat-speed", Static).update(f"samples/s {speed}")
        self.query_one("#stat-time", Static).update(
            f"elapsed {format_duration(progress.elapsed)}  ETA {format_duration(progress.eta)}"
        )
        self.query_one("#stat-device", Static).update(f"device {progress.device or '-'}")

        hint = self.query_one("#overfit-hint", Static)
        hint.update(f"Warning: {progress.overfit_warning}" if progress.overfit_warning else "")
        hint.set_class(progress.overfitting, "-shown")
        message = self.query_one("#run-message", Static)
        message.update(self._outcome_message(progress))
        message.set_class(progress.outcome == "error", "-error")
        message.set_class(progress.outcome == "done", "-done")

        running = progress.outcome == "running"
        self.query_one("#cancel-run").display = running
        self.query_one("#chat-with-adapter").display = progress.outcome == "done"
        self.query_one("#new-run").display = not running

    def tick(self, progress: RunProgress, now: float) -> None:
        """Advance the elapsed time between events, so a slow step never looks frozen."""
        if progress.outcome == "running" and progress.started is not None:
            elapsed = max(progress.elapsed, now - progress.started)
            self.query_one("#stat-time", Static).update(f"elapsed {format_duration(elapsed)}  ETA {format_duration(progress.eta)}")

    @staticmethod
    def _outcome_message(progress: RunProgress) -> str:
        if progress.outcome == "done":
            return f"Adapter {progress.adapter!r} is in the library."
        if progress.outcome in ("cancelled", "error"):
            return progress.message
        return ""
