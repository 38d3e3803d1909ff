"""The app's side of training: one run at a time, owned by the App so leaving a screen never stops it.

A thread worker follows the run's event log and posts :class:`TrainingEvents`. The handler
folds them into ``app.training_progress`` and publishes it on ``app.training_changed``,
the signal the Train screen subscribes to.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.signal import Signal
from textual.worker import get_current_worker

from lora_chat.core.errors import LoraChatError
from lora_chat.tui.widgets.choice_dialog import ChoiceDialog

if TYPE_CHECKING:
    from textual.app import App

    from lora_chat.core.runs import RunManager, RunProgress, TrainingRun
    from lora_chat.core.settings import TrainSettings

log = logging.getLogger(__name__)

# How often the worker reads the event log, in seconds.
POLL_INTERVAL_S = 0.2


class TrainingEvents(Message):
    """New events of a training run, posted from the worker that follows its log."""

    def __init__(self, run: TrainingRun, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.run = run
        self.events = events


class TrainingHost:
    """Mixed into the App: starts, follows, cancels and re-attaches to training runs."""

    training_run: TrainingRun | None = None
    training_progress: RunProgress | None = None
    _runs: RunManager | None = None
    _training_changed: Signal[RunProgress] | None = None

    @property
    def runs(self) -> RunManager:
        if self._runs is None:
            # Imported here: the run manager is not needed for the first frame.
            from lora_chat.core.runs import RunManager

            self._runs = RunManager()
        return self._runs

    @runs.setter
    def runs(self, manager: RunManager) -> None:
        self._runs = manager

    @property
    def training_changed(self) -> Signal[RunProgress]:
        """Published with the run's progress after each batch of events."""
        if self._training_changed is None:
            self._training_changed = Signal(self, "training-changed")  # type: ignore[arg-type]
        return self._training_changed

    @property
    def training_active(self) -> bool:
        return self.training_run is not None and not self.training_run.finished

    # Textual calls the on_mount of each class in the MRO, so this runs beside the App's own.
    def on_mount(self) -> None:
        # After the first frame, so that looking for runs does not delay it.
        self.call_after_refresh(self.restore_training)  # type: ignore[attr-defined]

    @work(thread=True, name="finding training runs", group="training", exit_on_error=False)
    def restore_training(self) -> None:
        """Re-attach to a run still going, or show how the last run ended if the user has not seen it."""
        app: App = self  # type: ignore[assignment]
        run = self.runs.latest()
        if run is None or (run.finished and run.info.reported):
            return
        app.call_from_thread(self._adopt_run, run, True)

    def _adopt_run(self, run: TrainingRun, restored: bool) -> None:
        app: App = self  # type: ignore[assignment]
        if self.training_active:
            return
        from lora_chat.core.runs import progress_of

        self.training_run = run
        self.training_progress = progress_of(run)
        self.training_changed.publish(self.training_progress)
        if not run.finished:
            if restored:
                app.notify(f"Training of {run.info.adapter!r} is still going; the Train screen (F2) follows it.", title="Training")
            self.follow_training(run)
        elif restored and not run.info.reported:
            self._report_end(run)

    def start_training(self, dataset: str | Path, name: str, settings: TrainSettings, device: str | None = None) -> TrainingRun:
        """Start a run in a child process; raise LoraChatError when one is already going."""
        if self.training_active:
            assert self.training_run is not None
            raise LoraChatError(
                f"adapter {self.training_run.info.adapter!r} is still training; wait for it to end or cancel it first"
            )
        base_model = self.base_model  # type: ignore[attr-defined]
        run = self.runs.start(dataset, name, settings, base_model, device=device)
        self._adopt_run(run, restored=False)
        return run

    def cancel_training(self) -> None:
        if self.training_run is not None and not self.training_run.finished:
            self.training_run.cancel()
            if self.training_progress is not None:
                self.training_progress.status = "stopping after this step"
                self.training_changed.publish(self.training_progress)

    @work(thread=True, name="following the training run", group="training", exit_on_error=False)
    def follow_training(self, run: TrainingRun) -> None:
        app: App = self  # type: ignore[assignment]
        worker = get_current_worker()
        while not worker.is_cancelled:
            events = run.poll()
            if events:
                app.post_message(TrainingEvents(run, events))
            if run.finished:
                return
            time.sleep(POLL_INTERVAL_S)

    def on_training_events(self, message: TrainingEvents) -> None:
        if message.run is not self.training_run:
            return
        if self.training_progress is None:
            from lora_chat.core.runs import progress_of

            self.training_progress = progress_of(message.run)
        else:
            for event in message.events:
                self.training_progress.apply(event)
        self.training_changed.publish(self.training_progress)
        if message.run.finished and not message.run.info.reported:
            self._report_end(message.run)

    def _report_end(self, run: TrainingRun) -> None:
        app: App = self  # type: ignore[assignment]
        final = run.final_event or {}
        name = run.info.adapter
        if run.outcome == "done":
            app.notify(f"Adapter {name!r} is in the library. Open it in chat from the Train screen (ctrl+t).", title="Training done")
        elif run.outcome == "cancelled":
            app.notify(f"Training of {name!r} was cancelled; nothing was added to the library.", title="Training cancelled", severity="warning")
        else:
            show_error = getattr(app, "show_error", None)
            message = f"Training of {name!r} failed: {final.get('message', 'no message')}"
            if show_error is not None:
                show_error(message, title="Training failed")
            else:
                app.notify(message, severity="error")
        run.mark_reported()

    async def confirm_quit_training(self) -> bool:
        """Ask whether to stop a running training or let it finish; return False to stay in the app.

        It waits on a dialog, so call it from a worker.
        """
        app: App = self  # type: ignore[assignment]
        run = self.training_run
        if run is None or run.finished:
            return True
        progress = self.training_progress
        where = f" (step {progress.step} of {progress.total_steps})" if progress and progress.total_steps else ""
        choice = await app.push_screen_wait(
            ChoiceDialog(
                f"Adapter {run.info.adapter!r} is still training{where}.\n\n"
                "Stop it now (nothing is added to the library), or let it finish in the background: "
                "the adapter is added to the library when it ends, and the next start of lora-chat shows how it went.",
                title="Training is running",
                choices=[("finish", "Let it finish", "primary"), ("stop", "Stop training", "error"), ("stay", "Don't quit", "default")],
                focus="stay",
            )
        )
        if choice == "stop":
            self.cancel_training()
            return True
        return choice == "finish"
