"""The Chat screen: answers from the base model or an adapter, streamed, one or two side by side."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Header, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from lora_chat.core.errors import InputError, LoraChatError
from lora_chat.core.inference import BASE_LABEL, Answer
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import GenerationSettings
from lora_chat.tui.screens.base import LoraScreen
from lora_chat.tui.widgets.chat_turn import AnswerBox, ChatTurn
from lora_chat.tui.widgets.key_bar import KeyBar
from lora_chat.tui.widgets.settings_form import SettingsForm

log = logging.getLogger(__name__)

# The Select value for "no adapter"; parentheses are not allowed in adapter names.
BASE_OPTION = "(base)"


def to_adapter(value: object) -> str | None:
    return None if value in (BASE_OPTION, Select.NULL) else str(value)


def to_option(adapter: str | None) -> str:
    return adapter if adapter is not None else BASE_OPTION


class AnswerPiece(Message):
    """A piece of text generated for one answer box."""

    def __init__(self, box: AnswerBox, piece: str) -> None:
        super().__init__()
        self.box = box
        self.piece = piece


class AnswerDone(Message):
    """One answer box is finished."""

    def __init__(self, box: AnswerBox, answer: Answer) -> None:
        super().__init__()
        self.box = box
        self.answer = answer


class TurnDone(Message):
    """Every answer of a turn has ended (finished, stopped or failed)."""

    def __init__(self, turn: ChatTurn, answers: list[Answer], settings: GenerationSettings, error: BaseException | None) -> None:
        super().__init__()
        self.turn = turn
        self.answers = answers
        self.settings = settings
        self.error = error


class AdapterAttached(Message):
    """An adapter chosen in the Select is loaded, or failed to load."""

    def __init__(self, select_id: str, adapter: str | None, error: BaseException | None) -> None:
        super().__init__()
        self.select_id = select_id
        self.adapter = adapter
        self.error = error


class ChatScreen(LoraScreen):
    """Chat with the base model plus an adapter, or none; compare two side by side."""

    DEFAULT_CSS = """
    ChatScreen #chat-bar {
        height: 1;
        padding: 0 1;
    }
    ChatScreen #chat-bar Label {
        width: auto;
        padding-right: 1;
        color: $text-primary;
    }
    ChatScreen #adapter {
        width: 28;
    }
    ChatScreen #compare-with {
        width: 28;
        display: none;
    }
    ChatScreen #compare-with.-shown {
        display: block;
    }
    ChatScreen #compare {
        width: auto;
        margin: 0 1;
    }
    ChatScreen #engine-status {
        width: 1fr;
        color: $text-muted;
        text-align: right;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    ChatScreen #engine-status.-failed {
        color: $text-error;
    }
    ChatScreen.-narrow #adapter, ChatScreen.-narrow #compare-with {
        width: 20;
    }
    ChatScreen #chat-main {
        height: 1fr;
    }
    ChatScreen #conversation {
        width: 1fr;
        padding: 0 1;
    }
    ChatScreen #chat-empty {
        color: $text-muted;
        padding: 1 2;
    }
    ChatScreen #generation {
        width: 44;
        display: none;
        border-left: vkey $primary 50%;
    }
    ChatScreen #generation.-shown {
        display: block;
    }
    ChatScreen #generation-title {
        text-style: bold;
        padding: 0 1;
    }
    ChatScreen #generation SettingsForm .form-help {
        display: none;
    }
    ChatScreen #generation SettingsForm .form-label {
        width: 20;
        padding-left: 1;
    }
    ChatScreen #generation SettingsForm .form-problem {
        padding-left: 1;
    }
    ChatScreen #prompt {
        margin: 0 1;
    }
    ChatScreen #few-shot-label {
        padding: 1 1 0 1;
        text-style: bold;
    }
    ChatScreen #few-shot {
        width: 8;
        margin: 0 1;
    }
    ChatScreen #few-shot-help {
        color: $text-muted;
        padding: 0 1;
    }
    """

    # The prompt Input takes ctrl+a/e/k/u/w/x/c/v/d, and terminals send ctrl+h as backspace,
    # so ctrl+h only works where the terminal reports it apart (the kitty keyboard protocol).
    BINDINGS = [
        Binding("escape", "stop_answer", "Stop answer"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+r,ctrl+h", "history", "History"),
        Binding("ctrl+b", "toggle_compare", "Compare"),
        Binding("ctrl+g", "toggle_generation", "Settings"),
        Binding("ctrl+o", "focus_adapter", "Adapter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.turns: list[ChatTurn] = []
        self.stop_event: threading.Event | None = None
        self.answering = False
        self.pending_prompt: str | None = None
        self.conversation_id: int | None = None
        # The adapter the saved conversation records; it follows the adapter of the latest turn.
        self.conversation_adapter: str | None = None
        self._history: Any = None
        self._history_failed = False
        # The last value each Select settled on, to go back to when attaching fails.
        self.settled: dict[str, str] = {"adapter": BASE_OPTION, "compare-with": BASE_OPTION}

    # Layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="chat-bar"):
            yield Label("Adapter")
            yield Select([(BASE_LABEL, BASE_OPTION)], value=BASE_OPTION, allow_blank=False, id="adapter", compact=True)
            yield Checkbox("compare with", id="compare", compact=True)
            yield Select([(BASE_LABEL, BASE_OPTION)], value=BASE_OPTION, allow_blank=False, id="compare-with", compact=True)
            yield Static("", id="engine-status", markup=False)
        with Horizontal(id="chat-main"):
            with VerticalScroll(id="conversation"):
                yield Static(
                    "Type a prompt below and press Enter; Escape stops an answer. ctrl+o picks the adapter, "
                    "ctrl+b compares two side by side, ctrl+g shows the generation settings and ctrl+r "
                    "opens saved conversations.",
                    id="chat-empty",
                )
            with VerticalScroll(id="generation"):
                yield Static("Generation settings", id="generation-title")
                yield SettingsForm(self.app.settings.generation, id="generation-form")
                yield Label("Few-shot examples for base answers", id="few-shot-label")
                yield Input("0", id="few-shot", type="integer", compact=True, tooltip="0 to 16")
                yield Static(
                    "K training rows of the adapter in the turn go in front of the prompt "
                    "when the base model answers: prompting beside fine-tuning.",
                    id="few-shot-help",
                )
        yield Input(placeholder="Ask something and press Enter", id="prompt")
        yield KeyBar()

    def on_mount(self) -> None:
        self.refresh_adapters()
        self.app.engine_changed.subscribe(self, self.show_engine_state)
        self.show_engine_state(self.app.engine_state)
        self.query_one("#prompt", Input).focus()
        self.app.ensure_engine()

    def on_unmount(self) -> None:
        # A generating thread cannot be killed; stopping it lets the app exit at once.
        self.action_stop_answer()

    def on_screen_resume(self) -> None:
        self.refresh_adapters()
        self.query_one("#prompt", Input).focus()
        if self.app.adapter_requested:
            # Asked for by "open in chat" on another screen.
            self.app.adapter_requested = False
            self.select_adapter(self.app.requested_adapter)

    # Adapters -----------------------------------------------------------------------

    def refresh_adapters(self) -> None:
        names = [e.name for e in AdapterLibrary().list() if not e.broken]
        options = [(BASE_LABEL, BASE_OPTION)] + [(name, name) for name in names]
        for select_id in ("adapter", "compare-with"):
            select = self.query_one(f"#{select_id}", Select)
            # The value on show may still be loading (not settled yet); keep it unless it is gone.
            wanted = str(select.value) if select.value != Select.NULL else self.settled[select_id]
            with select.prevent(Select.Changed):
                select.set_options(options)
                select.value = wanted if wanted == BASE_OPTION or wanted in names else BASE_OPTION
            if self.settled[select_id] not in names:
                self.settled[select_id] = BASE_OPTION
        self._update_current_adapter()

    def select_adapter(self, adapter: str | None) -> None:
        """Choose ``adapter`` (None for the base model) in the main Select and load it."""
        self.refresh_adapters()
        self.query_one("#adapter", Select).value = to_option(adapter)

    @on(Select.Changed, "#adapter, #compare-with")
    def _adapter_changed(self, event: Select.Changed) -> None:
        select_id = event.select.id or "adapter"
        adapter = to_adapter(event.value)
        # Back to typing once the list closes: a key meant for the prompt must not land on the Select.
        self.call_after_refresh(self.query_one("#prompt", Input).focus)
        if adapter is None:
            self._settle(select_id, None)
            return
        self.show_engine_state(f"loading adapter {adapter}")
        self.app.ensure_engine()
        self.attach_adapter(select_id, adapter)

    @work(thread=True, name="loading the adapter", group="attach", exit_on_error=False)
    def attach_adapter(self, select_id: str, adapter: str) -> None:
        # Errors go back as a message, so the Select can return to its last good value.
        try:
            self.app.engine.load()
            self.app.engine.attach(adapter)
        except Exception as exc:  # noqa: BLE001 - every failure is shown in a dialog by the handler
            self.post_message(AdapterAttached(select_id, adapter, exc))
            return
        self.post_message(AdapterAttached(select_id, adapter, None))

    def on_adapter_attached(self, message: AdapterAttached) -> None:
        if message.error is None:
            self._settle(message.select_id, message.adapter)
            self.show_engine_state(self.app.engine_state)
            return
        select = self.query_one(f"#{message.select_id}", Select)
        with select.prevent(Select.Changed):
            select.value = self.settled[message.select_id]
        self.show_engine_state(self.app.engine_state)
        self.app.show_error(message.error, title=f"Cannot use adapter {message.adapter!r}")

    def _settle(self, select_id: str, adapter: str | None) -> None:
        self.settled[select_id] = to_option(adapter)
        self._update_current_adapter()

    def _update_current_adapter(self) -> None:
        self.app.current_adapter = to_adapter(self.settled["adapter"])
        self.app.update_subtitle()

    def action_focus_adapter(self) -> None:
        select = self.query_one("#adapter", Select)
        select.focus()
        select.action_show_overlay()

    # Compare and settings -----------------------------------------------------------

    @property
    def comparing(self) -> bool:
        return self.query_one("#compare", Checkbox).value

    def action_toggle_compare(self) -> None:
        checkbox = self.query_one("#compare", Checkbox)
        checkbox.value = not checkbox.value

    @on(Checkbox.Changed, "#compare")
    def _compare_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#compare-with").set_class(event.value, "-shown")

    def action_toggle_generation(self) -> None:
        panel = self.query_one("#generation")
        panel.toggle_class("-shown")
        if panel.has_class("-shown"):
            self.query_one("#generation-form Input").focus()
        else:
            self.query_one("#prompt", Input).focus()

    def generation_settings(self) -> GenerationSettings:
        return self.query_one("#generation-form", SettingsForm).settings()

    def few_shot_count(self) -> int:
        """Return K from the few-shot field; raise InputError when it is not 0 to 16."""
        text = self.query_one("#few-shot", Input).value.strip() or "0"
        if not text.isdigit() or not 0 <= int(text) <= 16:
            raise InputError(f"few-shot examples: expected a whole number from 0 to 16, got {text!r}")
        return int(text)

    # Engine state -------------------------------------------------------------------

    def show_engine_state(self, state: str) -> None:
        status = self.query_one("#engine-status", Static)
        texts = {
            "idle": "",
            "loading": f"loading {self.app.base_model}…",
            "ready": f"ready · {self.app.engine.device or 'cpu'}" if self.app.engine_state == "ready" else "",
            "failed": f"the base model failed to load: {self.app.engine_problem}",
        }
        status.update(texts.get(state, state))
        status.set_class(state == "failed", "-failed")

    # Sending and streaming ----------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.send(event.value)

    def send(self, text: str) -> None:
        """Start answering ``text`` with the chosen adapter(s)."""
        prompt = text.strip()
        if not prompt:
            return
        if self.answering:
            self.notify("An answer is still coming; press Escape to stop it first.", severity="warning")
            return
        try:
            settings = self.generation_settings()
            few_shot = self.few_shot_count()
        except LoraChatError as exc:
            self.app.show_error(f"generation settings: {exc}", title="Cannot answer")
            return

        # The choices on show, even one still loading: the answer waits for it.
        adapters = [to_adapter(self.query_one("#adapter", Select).value)]
        if self.comparing:
            adapters.append(to_adapter(self.query_one("#compare-with", Select).value))
        # Few-shot examples come from the training rows of the adapter in the same turn.
        few_shot_source = next((a for a in adapters if a is not None), None) if few_shot and None in adapters else None
        if few_shot and None in adapters and few_shot_source is None:
            self.app.show_error(
                "few-shot prompting takes its examples from an adapter's training rows; "
                "choose an adapter to compare with, or set few-shot examples to 0",
                title="Cannot answer",
            )
            return
        turn = ChatTurn(prompt, adapters)
        self.query_one("#chat-empty").display = False
        conversation = self.query_one("#conversation", VerticalScroll)
        conversation.mount(turn)
        conversation.scroll_end(animate=False)
        self.turns.append(turn)

        self.query_one("#prompt", Input).value = ""
        self.pending_prompt = prompt
        self.stop_event = threading.Event()
        self.app.answer_stop = self.stop_event
        self.answering = True
        self.app.ensure_engine()
        self.generate(turn, prompt, adapters, settings, self.stop_event, few_shot_source, few_shot)

    @work(thread=True, name="answering", group="chat", exit_on_error=False)
    def generate(
        self,
        turn: ChatTurn,
        prompt: str,
        adapters: list[str | None],
        settings: GenerationSettings,
        stop: threading.Event,
        few_shot_source: str | None = None,
        few_shot: int = 0,
    ) -> None:
        answers: list[Answer] = []
        error: BaseException | None = None
        try:
            examples = None
            if few_shot_source is not None:
                from lora_chat.core.evaluate import pick_few_shot_rows, training_dataset, valid_rows

                entry = AdapterLibrary().get(few_shot_source)
                held_out = set((entry.meta.get("dataset") or {}).get("eval_rows") or [])
                rows = pick_few_shot_rows(valid_rows(training_dataset(entry)), few_shot, held_out)
                examples = [(r.input, r.output) for r in rows]
            for box, adapter in zip(turn.boxes, adapters):
                if stop.is_set():
                    break
                # Only the base model's answer gets the examples: that is the prompting side.
                extra = {"few_shot": examples} if adapter is None and examples else {}
                for item in self.app.engine.stream(prompt, adapter, settings, stop, **extra):
                    if isinstance(item, Answer):
                        answers.append(item)
                        self.post_message(AnswerDone(box, item))
                    else:
                        self.post_message(AnswerPiece(box, item))
        except Exception as exc:  # noqa: BLE001 - shown in a dialog by the TurnDone handler
            error = exc
        self.post_message(TurnDone(turn, answers, settings, error))

    def on_answer_piece(self, message: AnswerPiece) -> None:
        message.box.add_piece(message.piece)
        self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)

    def on_answer_done(self, message: AnswerDone) -> None:
        answer = message.answer
        message.box.border_title = answer.label
        message.box.finish(answer.text, answer.tokens, answer.seconds, answer.cut, answer.stopped)
        self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)

    def on_turn_done(self, message: TurnDone) -> None:
        self.answering = False
        stopped = self.stop_event is not None and self.stop_event.is_set()
        self.app.answer_stop = None
        if message.error is not None:
            note = "failed"
        elif stopped:
            note = "stopped before it began"
        else:
            note = "no answer"
        for box in message.turn.boxes[len(message.answers) :]:
            box.fail(note)
        if message.error is not None:
            # Nothing typed is lost: the prompt goes back into the input unless something new is there.
            prompt_input = self.query_one("#prompt", Input)
            if not prompt_input.value.strip() and self.pending_prompt:
                prompt_input.value = self.pending_prompt
            self.app.show_error(message.error, title="The answer failed")
        if message.answers:
            self.save_turn(message.turn.prompt, message.answers, message.settings)
        self.pending_prompt = None

    def action_stop_answer(self) -> None:
        if self.answering and self.stop_event is not None:
            self.stop_event.set()

    # History ------------------------------------------------------------------------

    @property
    def history(self) -> Any:
        """The conversation store, opened on first use; None when it cannot be opened."""
        if self._history is None and not self._history_failed:
            try:
                from lora_chat.core.history import HistoryStore

                self._history = HistoryStore()
            except LoraChatError as exc:
                self._history_failed = True
                log.warning("conversations are not saved: %s", exc)
                self.app.show_error(f"{exc}\n\nThis chat works, but its conversations are not saved.", title="Saved conversations")
        return self._history

    def save_turn(self, prompt: str, answers: list[Answer], settings: GenerationSettings) -> None:
        store = self.history
        if store is None:
            return
        records = [
            {"adapter": a.adapter, "text": a.text, "cut": a.cut, "stopped": a.stopped, "settings": dataclasses.asdict(settings)}
            for a in answers
        ]
        adapter = answers[0].adapter
        try:
            if self.conversation_id is None:
                self.conversation_id = store.new_conversation(self.app.base_model, adapter)
            elif adapter != self.conversation_adapter:
                store.set_adapter(self.conversation_id, adapter)
            self.conversation_adapter = adapter
            store.add_turn(self.conversation_id, prompt, records)
        except LoraChatError as exc:
            log.warning("could not save a turn of conversation %s: %s", self.conversation_id, exc)
            self.notify(f"This turn was not saved: {exc}", severity="error")

    def action_history(self) -> None:
        store = self.history
        if store is None:
            return
        try:
            from lora_chat.tui.screens.history import HistoryScreen
        except ImportError:
            self.notify("The list of saved conversations is not available in this version.", severity="warning")
            return

        def chosen(conversation_id: int | None) -> None:
            if conversation_id is not None:
                self.load_conversation(conversation_id)

        self.app.push_screen(HistoryScreen(store), chosen)

    def load_conversation(self, conversation_id: int) -> None:
        """Show a saved conversation; new turns continue it."""
        store = self.history
        if store is None:
            return
        with self.app.errors_shown("Cannot open the conversation"):
            conversation = store.get(conversation_id)
            self.action_new_chat()
            self.conversation_id = conversation.id
            self.conversation_adapter = conversation.adapter
            conversation_view = self.query_one("#conversation", VerticalScroll)
            for stored in conversation.turns:
                turn = ChatTurn(stored.prompt, [a.adapter for a in stored.answers], [a.text for a in stored.answers])
                conversation_view.mount(turn)
                self.turns.append(turn)
                for box, answer in zip(turn.boxes, stored.answers):
                    box.border_title = answer.label
                    box.mark_stored(answer.cut, getattr(answer, "stopped", False))
            if conversation.turns:
                self.query_one("#chat-empty").display = False
            conversation_view.scroll_end(animate=False)
            if conversation.adapter is None or conversation.adapter in AdapterLibrary().names():
                self.select_adapter(conversation.adapter)
            self.notify(f"Continuing {conversation.title!r}.", title="Conversation")

    def action_new_chat(self) -> None:
        """Clear the conversation on screen; the next prompt starts a new saved conversation."""
        self.action_stop_answer()
        for turn in self.turns:
            turn.remove()
        self.turns.clear()
        self.conversation_id = None
        self.query_one("#chat-empty").display = True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_answer":
            return self.answering
        return True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "chat" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.refresh_bindings()
