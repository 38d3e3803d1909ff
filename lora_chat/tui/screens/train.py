"""The Train screen: pick a dataset and a name, set the training settings, start and follow a run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, ContentSwitcher, Header, Input, Label, Select, Static

from lora_chat.core import paths
from lora_chat.core.dataset import library_datasets
from lora_chat.core.errors import LoraChatError
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.methods import count_trainable_parameters, describe_method
from lora_chat.core.runs import RunProgress, shell_quote, train_command
from lora_chat.core.settings import TrainSettings
from lora_chat.tui.screens.base import LoraScreen
from lora_chat.tui.widgets.key_bar import KeyBar
from lora_chat.tui.widgets.run_view import RunView
from lora_chat.tui.widgets.settings_form import SettingsForm


def read_base_config(base_model: str) -> dict[str, Any]:
    """Read the base model's config: the JSON file of a local folder, else through transformers' cache."""
    folder = Path(base_model).expanduser()
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))

    from transformers import AutoConfig

    return AutoConfig.from_pretrained(base_model).to_dict()


def suggest_name(dataset: Path, taken: set[str]) -> str:
    """Return the dataset's stem, with a number added when an adapter already has that name."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in dataset.stem).strip("-.") or "adapter"
    name, number = stem, 2
    while name in taken:
        name, number = f"{stem}-{number}", number + 1
    return name


class TrainScreen(LoraScreen):
    """Sets up a training run and follows the App's run while it goes."""

    DEFAULT_CSS = """
    TrainScreen #train-setup {
        padding: 0 1;
    }
    TrainScreen .train-row {
        height: 1;
        margin-bottom: 1;
    }
    TrainScreen .train-row Label {
        width: 14;
        color: $text-primary;
    }
    TrainScreen #dataset {
        width: 1fr;
    }
    TrainScreen #adapter-name {
        width: 1fr;
    }
    TrainScreen #name-problem, TrainScreen #dataset-problem {
        color: $text-error;
        height: auto;
        display: none;
        margin-top: -1;
        margin-bottom: 1;
        padding-left: 14;
    }
    TrainScreen #name-problem.-shown, TrainScreen #dataset-problem.-shown {
        display: block;
    }
    TrainScreen #train-form {
        height: 1fr;
        border-top: hkey $primary 50%;
        border-bottom: hkey $primary 50%;
    }
    TrainScreen #train-params {
        height: 1;
    }
    TrainScreen #train-command {
        color: $text-muted;
        height: auto;
        max-height: 3;
    }
    TrainScreen #train-actions {
        height: 1;
        margin-top: 1;
    }
    TrainScreen #train-actions Button {
        margin-right: 2;
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "start", "Start"),
        Binding("ctrl+o", "open_dataset", "Open file"),
        Binding("ctrl+x", "cancel_run", "Cancel"),
        Binding("ctrl+t", "chat_with_adapter", "Chat with it"),
        Binding("ctrl+n", "new_run", "New run"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.base_config: dict[str, Any] | None = None
        self.base_config_problem: str | None = None
        self.extra_datasets: list[Path] = []
        self.name_edited = False
        # The run whose view the user closed with "New run"; its progress stays out of sight.
        self.closed_run_id: str | None = None

    # Layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with ContentSwitcher(initial="train-setup", id="train-switcher"):
            with Vertical(id="train-setup"):
                with Horizontal(classes="train-row"):
                    yield Label("Dataset")
                    yield Select([], prompt="choose a dataset (ctrl+o opens a file)", id="dataset", compact=True)
                yield Static("", id="dataset-problem", markup=False)
                with Horizontal(classes="train-row"):
                    yield Label("Adapter name")
                    yield Input(placeholder="letters, digits, - _ .", id="adapter-name", compact=True)
                yield Static("", id="name-problem", markup=False)
                yield SettingsForm(self.app.settings.train, id="train-form")
                yield Static("", id="train-params", markup=False)
                yield Static("", id="train-command", markup=False)
                with Horizontal(id="train-actions"):
                    yield Button("Start training (ctrl+s)", id="start", variant="primary", compact=True)
                    yield Button("Open dataset file (ctrl+o)", id="open-dataset", compact=True)
            yield RunView(id="train-run")
        yield KeyBar()

    def on_mount(self) -> None:
        self.refresh_datasets()
        self.load_base_config()
        self.app.training_changed.subscribe(self, self.show_progress)
        if self.app.training_progress is not None:
            self.show_progress(self.app.training_progress)
        self.update_summary()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        progress = self.app.training_progress
        if progress is not None and progress.run_id != self.closed_run_id:
            self.query_one(RunView).tick(progress, time.time())

    def on_screen_resume(self) -> None:
        self.refresh_datasets()

    # Datasets and name --------------------------------------------------------------

    def refresh_datasets(self) -> None:
        select = self.query_one("#dataset", Select)
        current = select.value
        found = library_datasets(paths.datasets_dir())
        options = [(p.name, str(p)) for p in found]
        options += [(str(p), str(p)) for p in self.extra_datasets if p not in found]
        select.set_options(options)
        if current != Select.NULL and any(value == current for _, value in options):
            select.value = current

    def use_dataset(self, path: Path) -> None:
        """Select ``path`` as the dataset, adding it to the list when it is outside the library."""
        path = path.expanduser().resolve()
        if path.parent != paths.datasets_dir().resolve() and path not in self.extra_datasets:
            self.extra_datasets.append(path)
        self.refresh_datasets()
        self.query_one("#dataset", Select).value = str(path)

    def action_open_dataset(self) -> None:
        from lora_chat.tui.widgets.dialogs import dataset_file_dialog

        self.app.push_screen(*dataset_file_dialog(self.use_dataset))

    @on(Button.Pressed, "#open-dataset")
    def _open_pressed(self) -> None:
        self.action_open_dataset()

    @on(Select.Changed, "#dataset")
    def _dataset_changed(self, event: Select.Changed) -> None:
        self._show_problem("#dataset-problem", None)
        if event.value != Select.NULL and not self.name_edited:
            name_input = self.query_one("#adapter-name", Input)
            with name_input.prevent(Input.Changed):
                name_input.value = suggest_name(Path(str(event.value)), set(AdapterLibrary().names()))
            self._check_name()
        self.update_summary()

    @on(Input.Changed, "#adapter-name")
    def _name_changed(self) -> None:
        self.name_edited = True
        self._check_name()
        self.update_summary()

    def _check_name(self) -> bool:
        name = self.query_one("#adapter-name", Input).value.strip()
        problem = None
        if name:
            try:
                AdapterLibrary().check_new_name(name)
            except LoraChatError as exc:
                problem = f"adapter name: {exc}"
        self._show_problem("#name-problem", problem)
        return problem is None

    def _show_problem(self, selector: str, text: str | None) -> None:
        widget = self.query_one(selector, Static)
        widget.update(text or "")
        widget.set_class(bool(text), "-shown")

    # Trainable parameters and the command line ---------------------------------------

    @work(thread=True, name="reading the base model config", group="train-config", exit_on_error=False)
    def load_base_config(self) -> None:
        base_model = self.app.base_model
        try:
            config = read_base_config(base_model)
        except (OSError, ValueError) as exc:
            self.app.call_from_thread(self._set_base_config, None, f"the config of {base_model} could not be read ({exc})")
            return
        self.app.call_from_thread(self._set_base_config, config, None)

    def _set_base_config(self, config: dict[str, Any] | None, problem: str | None) -> None:
        self.base_config = config
        self.base_config_problem = problem
        self.update_summary()

    @on(SettingsForm.Changed)
    def update_summary(self) -> None:
        form = self.query_one(SettingsForm)
        params = self.query_one("#train-params", Static)
        command = self.query_one("#train-command", Static)
        if not form.valid:
            params.update("Trainable parameters: fix the settings marked in red first")
            command.update("")
            return
        settings = form.settings()
        params.update(self._parameter_text(settings))

        dataset = self.query_one("#dataset", Select).value
        name = self.query_one("#adapter-name", Input).value.strip() or "NAME"
        dataset_text = str(dataset) if dataset != Select.NULL else "FILE"
        args = train_command(dataset_text, name, settings, self.app.base_model, defaults=self.app.settings.train)
        command.update("$ " + shell_quote(["lora-chat", *args]))

    def _parameter_text(self, settings: TrainSettings) -> str:
        method = describe_method(settings)
        if self.base_config is None:
            return f"Trainable parameters: {self.base_config_problem or 'reading the base model config'} ({method})"
        count = count_trainable_parameters(self.base_config, settings)
        if count is None:
            return f"Trainable parameters: unknown, the base model config is not T5-shaped ({method})"
        return f"Trainable parameters: {count:,} ({method})"

    # Starting -----------------------------------------------------------------------

    def action_start(self) -> None:
        if self.app.training_active:
            self.app.show_error("A run is already going; wait for it to end or cancel it first.", title="Training is running")
            return
        dataset = self.query_one("#dataset", Select).value
        if dataset == Select.NULL:
            self._show_problem("#dataset-problem", "dataset: choose a dataset from the library, or open a file with ctrl+o")
            self.query_one("#dataset", Select).focus()
            return
        name_input = self.query_one("#adapter-name", Input)
        name = name_input.value.strip()
        if not name:
            self._show_problem("#name-problem", "adapter name: type a name for the new adapter")
            name_input.focus()
            return
        if not self._check_name():
            name_input.focus()
            return
        form = self.query_one(SettingsForm)
        if not form.valid:
            problems = "\n".join(form.problems.values())
            self.app.show_error(f"{problems}\n\nFix the settings marked in red, then start again.", title="Cannot start training")
            return

        with self.app.errors_shown("Cannot start training"):
            self.app.start_training(Path(str(dataset)), name, form.settings())
            self.name_edited = False

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    # Following the run --------------------------------------------------------------

    def show_progress(self, progress: RunProgress) -> None:
        """Show the App's run; called through the app's training_changed signal."""
        if progress.run_id == self.closed_run_id:
            return
        self.query_one(RunView).show(progress)
        switcher = self.query_one(ContentSwitcher)
        if switcher.current != "train-run":
            switcher.current = "train-run"
            self.set_focus(None)
        self.refresh_bindings()

    def action_cancel_run(self) -> None:
        from lora_chat.tui.widgets.dialogs import ConfirmDialog

        if not self.app.training_active:
            return
        name = self.app.training_run.info.adapter

        def answered(stop: bool | None) -> None:
            if stop:
                self.app.cancel_training()

        self.app.push_screen(
            ConfirmDialog(
                f"Stop training {name!r}? It stops after the current step and nothing is added to the library.",
                title="Stop training?",
                confirm_label="Stop training",
                danger=True,
            ),
            answered,
        )

    def action_chat_with_adapter(self) -> None:
        progress = self.app.training_progress
        if progress is not None and progress.outcome == "done":
            self.app.open_in_chat(progress.adapter)

    def action_new_run(self) -> None:
        progress = self.app.training_progress
        if progress is None or progress.outcome == "running":
            return
        self.closed_run_id = progress.run_id
        self.query_one(ContentSwitcher).current = "train-setup"
        self._check_name()
        self.query_one("#adapter-name", Input).focus()
        self.refresh_bindings()

    @on(Button.Pressed, "#cancel-run")
    def _cancel_pressed(self) -> None:
        self.action_cancel_run()

    @on(Button.Pressed, "#chat-with-adapter")
    def _chat_pressed(self) -> None:
        self.action_chat_with_adapter()

    @on(Button.Pressed, "#new-run")
    def _new_run_pressed(self) -> None:
        self.action_new_run()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_mounted:
            return True
        setup = self.query_one(ContentSwitcher).current == "train-setup"
        progress = self.app.training_progress
        if action in ("start", "open_dataset"):
            return setup
        if action == "cancel_run":
            return self.app.training_active
        if action == "chat_with_adapter":
            return not setup and progress is not None and progress.outcome == "done"
        if action == "new_run":
            return not setup and progress is not None and progress.outcome != "running"
        return True
