"""A form over a settings dataclass: one row per field, each value checked as it is typed."""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from lora_chat.core.errors import SettingsError
from lora_chat.core.settings import parse_value


def field_label(name: str) -> str:
    return name.replace("_", "-")


def value_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class SettingsForm(Widget):
    """The fields of ``settings_class`` with their help and allowed range.

    Each value is checked with :func:`parse_value` as it is typed; a problem is shown under
    its field, naming it. :attr:`problems` maps field names to problems, and
    :meth:`settings` builds the dataclass from the current values.
    """

    DEFAULT_CSS = """
    SettingsForm {
        height: 1fr;
    }
    SettingsForm .form-row {
        height: 1;
    }
    SettingsForm .form-label {
        width: 25;
        padding: 0 1 0 0;
        color: $text-primary;
    }
    SettingsForm Input, SettingsForm Checkbox, SettingsForm Select {
        width: 18;
    }
    SettingsForm #form-scroll {
        height: 1fr;
    }
    SettingsForm #form-focus-help {
        height: auto;
        color: $text-muted;
        padding: 0 1;
        background: $panel;
    }
    SettingsForm .form-help {
        width: 1fr;
        padding: 0 0 0 1;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    SettingsForm .form-problem {
        color: $text-error;
        padding: 0 0 0 25;
        height: auto;
        display: none;
    }
    SettingsForm .form-problem.-shown {
        display: block;
    }
    """

    class Changed(Message):
        """A value of the form changed (valid or not)."""

        def __init__(self, form: SettingsForm) -> None:
            super().__init__()
            self.form = form

        @property
        def control(self) -> SettingsForm:
            return self.form

    def __init__(self, settings: Any, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.settings_class = type(settings)
        self.initial = settings
        self.fields = dataclasses.fields(settings)
        self.problems: dict[str, str] = {}
        self._values: dict[str, Any] = dataclasses.asdict(settings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="form-scroll"):
            for f in self.fields:
                value = getattr(self.initial, f.name)
                help_text = self._help(f)
                with Horizontal(classes="form-row"):
                    yield Label(field_label(f.name), classes="form-label")
                    choices = f.metadata.get("choices")
                    if choices:
                        select = Select([(c, c) for c in choices], value=value, allow_blank=False, id=f"field-{f.name}", compact=True)
                        select.tooltip = help_text
                        yield select
                    elif isinstance(value, bool):
                        checkbox = Checkbox("", value, id=f"field-{f.name}", compact=True)
                        checkbox.tooltip = help_text
                        yield checkbox
                    else:
                        field_input = Input(value_text(value), id=f"field-{f.name}", compact=True, select_on_focus=True)
                        field_input.tooltip = help_text
                        yield field_input
                    yield Static(help_text, classes="form-help", markup=False)
                yield Static("", id=f"problem-{f.name}", classes="form-problem", markup=False)
        yield Static("Each value is checked as you type; the help of the focused field shows here.", id="form-focus-help", markup=False)

    @staticmethod
    def _help(f: dataclasses.Field) -> str:
        text = f.metadata.get("help", "")
        low, high = f.metadata.get("min"), f.metadata.get("max")
        if low is not None and high is not None:
            text += f" ({_number_text(low)} to {_number_text(high)})"
        return text

    def on_descendant_focus(self, event: Any) -> None:
        name = self._field_name(event.widget)
        if name is not None:
            f = next(f for f in self.fields if f.name == name)
            self.query_one("#form-focus-help", Static).update(f"{field_label(name)}: {self._help(f)}")

    def _field_name(self, widget: Widget) -> str | None:
        if widget.id and widget.id.startswith("field-"):
            return widget.id.removeprefix("field-")
        return None

    def _check(self, name: str, raw: Any) -> None:
        problem = self.query_one(f"#problem-{name}", Static)
        try:
            self._values[name] = parse_value(self.settings_class, name, raw)
        except SettingsError as exc:
            self.problems[name] = str(exc)
            problem.update(str(exc))
            problem.add_class("-shown")
        else:
            self.problems.pop(name, None)
            problem.update("")
            problem.remove_class("-shown")
        self.post_message(self.Changed(self))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        name = self._field_name(event.input)
        if name is not None:
            event.stop()
            self._check(name, event.value)

    @on(Checkbox.Changed)
    def _checkbox_changed(self, event: Checkbox.Changed) -> None:
        name = self._field_name(event.checkbox)
        if name is not None:
            event.stop()
            self._check(name, event.value)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        name = self._field_name(event.select)
        if name is not None and event.value != Select.NULL:
            event.stop()
            self._check(name, event.value)

    @property
    def valid(self) -> bool:
        return not self.problems

    def settings(self) -> Any:
        """Build the settings from the values typed; raise SettingsError naming the first bad field."""
        if self.problems:
            raise SettingsError(next(iter(self.problems.values())))
        return self.settings_class(**self._values)

    def set_value(self, name: str, value: Any) -> None:
        widget = self.query_one(f"#field-{name}")
        if isinstance(widget, Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, Select):
            widget.value = value
        elif isinstance(widget, Input):
            widget.value = value_text(value)
