"""A logging handler that keeps recent records for the in-app log view."""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from textual.app import App

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LogLineAdded(Message):
    """A log record, formatted, posted to the app from whichever thread logged it."""

    def __init__(self, line: str, levelno: int) -> None:
        super().__init__()
        self.line = line
        self.levelno = levelno


class AppLogHandler(logging.Handler):
    """Keep the last ``capacity`` records and post each one to the app.

    ``App.post_message`` is thread-safe, so worker threads and library code may log freely.
    """

    def __init__(self, app: App, capacity: int = 2000, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.app = app
        self.lines: collections.deque[tuple[str, int]] = collections.deque(maxlen=capacity)
        self.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
            return
        self.lines.append((line, record.levelno))
        self.app.post_message(LogLineAdded(line, record.levelno))
