"""The bottom line of every screen: the keys that work here, drawn as one widget."""

from __future__ import annotations

import itertools
from typing import NamedTuple

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget

# The key that lists every key of the screen: the app binds it to its help panel.
ALL_KEYS_KEY = "question_mark"


class _Entry(NamedTuple):
    """One item of the bar: a key and what it does. A folded group has no key, so a click on it does nothing."""

    key: str | None
    label: str
    description: str
    enabled: bool = True
    group: Binding.Group | None = None

    @property
    def width(self) -> int:
        return len(self.label) + 2 + (len(self.description) + 1 if self.description else 0)


class _KeySpan(NamedTuple):
    """The cells of one key on the bar, for clicks and hover."""

    start: int
    end: int
    entry: _Entry


def _width(entries: list[_Entry]) -> int:
    return sum(entry.width for entry in entries)


def _fold_groups(entries: list[_Entry]) -> list[_Entry]:
    """Fold each run of entries of one binding group into one entry, such as ``f1-f4 Screens``."""
    folded: list[_Entry] = []
    for group, run in itertools.groupby(entries, key=lambda entry: entry.group):
        run_entries = list(run)
        if group is None or len(run_entries) == 1:
            folded.extend(run_entries)
        else:
            folded.append(_Entry(None, f"{run_entries[0].label}-{run_entries[-1].label}", group.description, group=group))
    return folded


class KeyBar(Widget):
    """One line of the keys of the focused widget and the screen, like Textual's Footer.

    The Footer makes a widget for each key and builds them all again whenever the
    bindings change. On the Datasets screen that took about a third of the time from
    start to the first frame, so this bar draws the same line as one widget.

    When the line is too long for the terminal, the keys of one binding group fold
    into one item (``f1-f4 Screens``). If it is still too long, keys are left off the
    end and the bar shows ``? more keys``. The command palette key stays on the right
    while it fits. Clicking a key presses it.
    """

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
        & > .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._spans: list[_KeySpan] = []
        self._hover: int | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        self.refresh()

    def entries(self) -> list[_Entry]:
        """Return one entry per action of the shown bindings, in the order of the screen's bindings."""
        seen: set[str] = set()
        entries: list[_Entry] = []
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen.add(binding.action)
                entries.append(_Entry(binding.key, self.app.get_key_display(binding), binding.description, enabled, binding.group))
        return entries

    def _palette_entry(self) -> list[_Entry]:
        if not self.app.ENABLE_COMMAND_PALETTE:
            return []
        active = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        if active is None:
            return []
        return [_Entry(active.binding.key, self.app.get_key_display(active.binding), active.binding.description)]

    def layout_entries(self, width: int) -> tuple[list[_Entry], list[_Entry]]:
        """Return the entries drawn on the left and those drawn on the right of a bar ``width`` cells wide."""
        entries = self.entries()
        palette = self._palette_entry()
        if _width(entries) + _width(palette) <= width:
            return entries, palette
        entries = _fold_groups(entries)
        if _width(entries) + _width(palette) <= width:
            return entries, palette
        more = _Entry(ALL_KEYS_KEY, "?", "more keys")
        for right in (palette, []):
            fitting = list(entries)
            while fitting and _width(fitting) + more.width + _width(right) > width:
                fitting.pop()
            if fitting or not right:
                return fitting + [more], right
        return [more], []

    def render(self) -> Text:
        left, right = self.layout_entries(self.size.width)
        key_style = self.get_component_rich_style("key-bar--key", partial=True)
        description_style = self.get_component_rich_style("key-bar--description", partial=True)
        line = Text(no_wrap=True, overflow="crop")
        spans: list[_KeySpan] = []

        def add(entry: _Entry) -> None:
            start = line.cell_len
            item = Text.assemble((f" {entry.label} ", key_style), (f"{entry.description} " if entry.description else "", description_style))
            if not entry.enabled:
                item.stylize(Style(dim=True))
            if self._hover == start and entry.key is not None:
                item.stylize(Style(reverse=True))
            line.append_text(item)
            spans.append(_KeySpan(start, line.cell_len, entry))

        for entry in left:
            add(entry)
        if right:
            line.append(" " * max(self.size.width - line.cell_len - _width(right), 1))
            for entry in right:
                add(entry)
        self._spans = spans
        return line

    def _span_at(self, x: int) -> _KeySpan | None:
        return next((span for span in self._spans if span.start <= x < span.end), None)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        span = self._span_at(event.x)
        hover = span.start if span is not None else None
        if hover != self._hover:
            self._hover = hover
            self.refresh()

    def on_leave(self) -> None:
        if self._hover is not None:
            self._hover = None
            self.refresh()

    def on_click(self, event: events.Click) -> None:
        span = self._span_at(event.x)
        if span is None or span.entry.key is None:
            return
        if span.entry.enabled:
            self.app.simulate_key(span.entry.key)
        else:
            self.app.bell()
