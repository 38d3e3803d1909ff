"""Training runs in a child process, followed through their JSONL event log.

A run lives in its own folder under ``<data dir>/runs/<id>/``:

- ``run.json``: id, pid, adapter name, dataset, base model, command line, start time;
- ``events.jsonl``: the events written by ``lora-chat train --events``;
- ``output.log``: the child's stdout and stderr, which never reach the terminal.

The child is ``python -m lora_chat train ...``, so the app trains exactly as the command
line does. It runs in its own session, so it outlives the app when the user lets a run
finish, and a later app start can re-attach to it through ``run.json``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lora_chat.core import paths
from lora_chat.core.errors import LoraChatError
from lora_chat.core.fileio import atomic_write_text
from lora_chat.core.settings import TrainSettings
from lora_chat.core.training import read_events

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
OUTPUT_FILE = "output.log"

# Events after which the child writes nothing more.
FINAL_EVENTS = ("done", "cancelled", "error")

# The CLI checks for a stop request before each step, but loading the base model cannot
# be interrupted, so SIGINT gets this long before SIGTERM, and SIGTERM this long again
# before SIGKILL.
CANCEL_GRACE_S = 30.0
TERMINATE_GRACE_S = 5.0

# The CLI's exit code after SIGINT (128 + SIGINT).
EXIT_CANCELLED = 130


def train_command(
    dataset: str | Path,
    name: str,
    settings: TrainSettings,
    base_model: str,
    events: Path | None = None,
    defaults: TrainSettings | None = None,
) -> list[str]:
    """Build the ``lora-chat train`` arguments; options equal to ``defaults`` are left out."""
    args = ["train", str(dataset), "--name", name]
    for f in fields(TrainSettings):
        value = getattr(settings, f.name)
        if defaults is not None and getattr(defaults, f.name) == value:
            continue
        option = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(option if value else "--no-" + option[2:])
        else:
            args += [option, _option_text(value)]
    args += ["--base-model", base_model]
    if events is not None:
        args += ["--events", str(events)]
    return args


def _option_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def shell_quote(args: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in args)


@dataclass
class RunInfo:
    """The record of one run, stored as ``run.json``."""

    id: str
    folder: Path
    pid: int
    adapter: str
    dataset: str
    base_model: str
    command: list[str]
    started: float
    cancel_requested: bool = False
    # Set once the app has shown how the run ended, so the next start does not show it again.
    reported: bool = False

    @property
    def events_path(self) -> Path:
        return self.folder / EVENTS_FILE

    @property
    def output_path(self) -> Path:
        return self.folder / OUTPUT_FILE

    def save(self) -> None:
        data = asdict(self)
        data["folder"] = str(self.folder)
        atomic_write_text(self.folder / RUN_FILE, json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> RunInfo:
        data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["folder"] = folder
        return cls(**values)


def _process_alive(pid: int) -> bool:
    """Return whether ``pid`` is a running lora-chat training process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        # A reused pid belongs to some other program; a zombie has an empty command line.
        try:
            parts = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return b"lora_chat" in parts and b"train" in parts
    return True


def output_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class TrainingRun:
    """One run: started here as a child process, or re-attached to by its folder.

    :meth:`poll` returns the new events. When the child has ended without a final event
    (killed, crashed), :meth:`poll` adds one (``cancelled`` or ``error``) to the event log,
    so every later reader sees how the run ended.
    """

    def __init__(self, info: RunInfo, process: subprocess.Popen | None = None) -> None:
        self.info = info
        self.process = process
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        self._cancel_sent: float | None = None
        self._terminate_sent: float | None = None
        self.exit_code: int | None = None
        if process is None and info.cancel_requested:
            # Cancelled by an earlier app that has quit since: keep escalating from now on.
            self._cancel_sent = time.monotonic()

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def final_event(self) -> dict[str, Any] | None:
        if self.events and self.events[-1]["event"] in FINAL_EVENTS:
            return self.events[-1]
        return None

    @property
    def finished(self) -> bool:
        return self.final_event is not None

    @property
    def outcome(self) -> str:
        """``running``, ``done``, ``cancelled`` or ``error``."""
        final = self.final_event
        return final["event"] if final else "running"

    def _child_ended(self) -> bool:
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return False
            self.exit_code = code
            return True
        return not _process_alive(self.info.pid)

    def poll(self) -> list[dict[str, Any]]:
        """Read the events written since the last call; escalate a cancel that takes too long."""
        if self.finished:
            return []
        new, self._offset = read_events(self.info.events_path, self._offset)
        self.events.extend(new)
        if self.finished:
            self._reap()
            return new

        if self._child_ended():
            # Read once more: the child may have written its last event just before exiting.
            late, self._offset = read_events(self.info.events_path, self._offset)
            self.events.extend(late)
            new += late
            if not self.finished:
                event = self._ended_without_report()
                self._append_event(event)
                self.events.append(event)
                new.append(event)
            return new

        self._escalate_cancel()
        return new

    def _ended_without_report(self) -> dict[str, Any]:
        cancelled = self.info.cancel_requested or self.exit_code == EXIT_CANCELLED
        now = time.time()
        event: dict[str, Any] = {"event": "cancelled" if cancelled else "error", "time": round(now, 3), "elapsed": round(now - self.info.started, 3)}
        if cancelled:
            event["message"] = "training cancelled; nothing was added to the library"
        else:
            code = f"exit code {self.exit_code}" if self.exit_code is not None else "exit code unknown"
            tail = output_tail(self.info.output_path, 3)
            event["message"] = (
                f"the training process ended without reporting a result ({code}); nothing was added to the library"
                + (f"; its last output: {tail}" if tail else "")
                + f"; the full output is in {self.info.output_path}"
            )
            event["error_type"] = "ProcessDied"
            event["expected"] = False
        event["synthesized"] = True
        return event

    def _append_event(self, event: dict[str, Any]) -> None:
        try:
            with self.info.events_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(event) + "\n")
            self._offset = self.info.events_path.stat().st_size
        except OSError as exc:
            log.warning("could not record the end of run %s in %s: %s", self.id, self.info.events_path, exc)

    def _reap(self) -> None:
        """Collect the child's exit code so it does not stay a zombie."""
        if self.process is not None:
            self.exit_code = self.process.poll()

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.info.pid, signum)
        except ProcessLookupError:
            pass

    def cancel(self) -> None:
        """Ask the child to stop after its current step (SIGINT, as Ctrl+C in the CLI)."""
        if self.finished or self._cancel_sent is not None:
            return
        self.info.cancel_requested = True
        try:
            self.info.save()
        except OSError as exc:
            log.warning("could not record the cancel request of run %s: %s", self.id, exc)
        if self.process is not None and self.process.poll() is not None:
            return
        if self.process is None and not _process_alive(self.info.pid):
            return
        log.info("cancelling run %s (pid %s)", self.id, self.info.pid)
        self._signal(signal.SIGINT)
        self._cancel_sent = time.monotonic()

    def _escalate_cancel(self) -> None:
        if self._cancel_sent is None:
            return
        now = time.monotonic()
        if self._terminate_sent is None and now - self._cancel_sent > CANCEL_GRACE_S:
            log.warning("run %s did not stop within %.0f s of SIGINT; sending SIGTERM", self.id, CANCEL_GRACE_S)
            self._signal(signal.SIGTERM)
            self._terminate_sent = now
        elif self._terminate_sent is not None and now - self._terminate_sent > TERMINATE_GRACE_S:
            log.warning("run %s did not stop after SIGTERM; sending SIGKILL", self.id)
            self._signal(signal.SIGKILL)
            self._terminate_sent = now

    def mark_reported(self) -> None:
        """Record that the user has seen how the run ended."""
        self.info.reported = True
        try:
            self.info.save()
        except OSError as exc:
            log.warning("could not update %s: %s", self.info.folder / RUN_FILE, exc)

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> str:
        """Poll until the run ends or ``timeout`` passes; return the outcome."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            self.poll()
            if self.finished or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(interval)
        return self.outcome


@dataclass
class RunProgress:
    """The state of a run folded from its events, as the Train screen shows it."""

    run_id: str = ""
    adapter: str = ""
    dataset: str = ""
    status: str = "starting"
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    epochs: int = 0
    loss: float | None = None
    best_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    eval_losses: list[float] = field(default_factory=list)
    eval_loss: float | None = None
    best_eval_loss: float | None = None
    samples_per_second: float | None = None
    elapsed: float = 0.0
    eta: float | None = None
    device: str = ""
    trainable_parameters: int | None = None
    outcome: str = "running"
    message: str = ""
    started: float | None = None
    # The training's overfitting warning, cleared when the eval loss reaches a new best.
    overfit_warning: str | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def overfitting(self) -> bool:
        """True while the eval loss rises and the train loss falls, as the training reported."""
        return self.overfit_warning is not None

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if "elapsed" in event:
            self.elapsed = float(event["elapsed"])
        if kind == "start":
            self.adapter = event.get("name", self.adapter)
            self.started = event.get("time")
            self.epochs = int((event.get("settings") or {}).get("epochs", 0))
            self.status = "starting"
        elif kind == "status":
            self.status = event.get("message", "")
        elif kind == "ready":
            self.total_steps = int(event["total_steps"])
            self.epochs = int(event.get("epochs", self.epochs))
            self.device = str(event.get("device", ""))
            self.trainable_parameters = event.get("trainable_parameters")
            self.status = "training"
        elif kind == "step":
            self.step = int(event["step"])
            self.total_steps = int(event.get("total_steps", self.total_steps))
            self.epoch = float(event.get("epoch", self.epoch))
            self.loss = float(event["loss"])
            self.losses.append(self.loss)
            if self.best_loss is None or self.loss < self.best_loss:
                self.best_loss = self.loss
            self.samples_per_second = event.get("samples_per_second")
            self.eta = event.get("eta")
            self.status = "training"
        elif kind == "eval":
            self.eval_loss = float(event["eval_loss"])
            self.eval_losses.append(self.eval_loss)
            if self.best_eval_loss is None or self.eval_loss < self.best_eval_loss:
                self.best_eval_loss = self.eval_loss
                self.overfit_warning = None
        elif kind == "warning":
            if event.get("kind") == "overfitting":
                self.overfit_warning = event.get("message") or "eval loss is rising while the train loss falls"
        elif kind == "done":
            self.outcome = "done"
            self.status = "done"
            self.eta = 0.0
            self.message = f"adapter {event.get('adapter', self.adapter)!r} is in the library"
        elif kind in ("cancelled", "error"):
            self.outcome = kind
            self.status = kind
            self.eta = None
            self.message = event.get("message", "")


def progress_of(run: TrainingRun) -> RunProgress:
    progress = RunProgress(run_id=run.id, adapter=run.info.adapter, dataset=run.info.dataset)
    for event in run.events:
        progress.apply(event)
    return progress


class RunManager:
    """Starts runs and finds earlier ones under ``root`` (by default ``<data dir>/runs``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.runs_dir()

    def start(
        self,
        dataset: str | Path,
        name: str,
        settings: TrainSettings,
        base_model: str,
        device: str | None = None,
    ) -> TrainingRun:
        """Start ``lora-chat train`` as a child process and return the run."""
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        folder = self.root / run_id
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise LoraChatError(f"cannot create the run folder {folder} ({exc.strerror or exc}); set LORA_CHAT_HOME to a writable folder") from None
        dataset_path = Path(dataset).expanduser().resolve()
        args = train_command(dataset_path, name, settings, base_model, folder / EVENTS_FILE)
        if device:
            args += ["--device", device]
        command = [sys.executable, "-m", "lora_chat", *args]

        with (folder / OUTPUT_FILE).open("wb") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own session: the terminal's signals and hangup do not reach it, so a
                # run the user lets finish outlives the app.
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        info = RunInfo(run_id, folder, process.pid, name, str(dataset_path), base_model, command, time.time())
        info.save()
        log.info("started run %s (pid %s): %s", run_id, process.pid, shell_quote(command))
        return TrainingRun(info, process)

    def list(self) -> list[RunInfo]:
        """List the recorded runs, oldest first; folders without a readable ``run.json`` are skipped."""
        if not self.root.is_dir():
            return []
        runs = []
        for folder in self.root.iterdir():
            if not (folder / RUN_FILE).is_file():
                continue
            try:
                runs.append(RunInfo.load(folder))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipped the run folder %s: %s", folder, exc)
        return sorted(runs, key=lambda r: r.started)

    def open(self, info: RunInfo) -> TrainingRun:
        """Re-attach to a recorded run and read its events so far."""
        run = TrainingRun(info)
        run.poll()
        return run

    def latest(self) -> TrainingRun | None:
        """Return the newest run, still going or not, re-attached."""
        runs = self.list()
        return self.open(runs[-1]) if runs else None

    def running(self) -> TrainingRun | None:
        """Return the newest run whose process is still going, or None."""
        latest = self.latest()
        if latest is not None and not latest.finished:
            return latest
        return None
