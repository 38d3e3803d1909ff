"""The interactive ``lora-chat chat`` prompt: streamed answers and slash commands."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_chat.core.errors import HistoryError, InputError, LoraChatError, SettingsError
from lora_chat.core.history import Conversation, HistoryStore, StoredAnswer, StoredTurn, write_export
from lora_chat.core.inference import BASE_LABEL, Answer, ChatEngine
from lora_chat.core.library import AdapterLibrary
from lora_chat.core.settings import GenerationSettings, parse_value

HELP = """commands:
  /retry             answer the last prompt again
  /undo              drop the last turn
  /adapter NAME|none switch adapter (the base model stays loaded)
  /compare [NAME]    answer with the base (or NAME) beside the current adapter; /compare off to stop
  /set KEY VALUE     change a generation setting (/set alone lists them)
  /save FILE         save this conversation as Markdown (.md) or JSON (.json)
  /help              show this help
  /quit              leave (Ctrl+D works too)
Ctrl+C stops an answer; a second Ctrl+C leaves."""


def _allowed(key: str) -> str:
    """Describe the values generation setting ``key`` accepts, or return "" for an unknown key."""
    for f in dataclasses.fields(GenerationSettings):
        if f.name != key:
            continue
        if isinstance(f.default, bool):
            return "true or false"
        low, high = f.metadata.get("min"), f.metadata.get("max")
        if low is not None and high is not None:
            return f"{low:g} to {high:g}"
    return ""


@dataclass
class Turn:
    prompt: str
    answers: list[Answer]
    settings: dict[str, Any]

    def answer_records(self) -> list[dict[str, Any]]:
        """The answers in the form :meth:`HistoryStore.add_turn` stores."""
        return [
            {"adapter": a.adapter, "text": a.text, "cut": a.cut, "stopped": a.stopped, "settings": self.settings}
            for a in self.answers
        ]


class ChatSession:
    """One chat on the command line: the engine, the current adapter and the turns so far.

    With a ``history`` store, each turn is saved as it happens; the conversation row is created
    with the first turn, so a chat left before any prompt leaves nothing behind.
    """

    def __init__(
        self,
        base_model: str,
        library: AdapterLibrary,
        generation: GenerationSettings,
        adapter: str | None = None,
        compare_with: str | None | bool = False,
        device: str | None = None,
        out: Any = None,
        history: HistoryStore | None = None,
        engine: Any = None,
        few_shot: list[tuple[str, str]] | None = None,
    ) -> None:
        self.engine = engine or ChatEngine(base_model, library, None if device in (None, "auto") else device)
        self.library = library
        self.generation = generation
        self.adapter = adapter
        self.compare_with = compare_with  # False: off; None: the base model; str: another adapter
        self.turns: list[Turn] = []
        self.out = out or sys.stdout
        self.history = history
        self.conversation_id: int | None = None
        self._stop = threading.Event()
        self._answering = False
        self.few_shot = few_shot or []  # examples put in front of base-model prompts (few-shot prompting)

    def resume(self, conversation: Conversation) -> None:
        """Continue ``conversation``: its turns become this chat's turns and new turns are added to it."""
        self.conversation_id = conversation.id
        self.turns = [
            Turn(
                turn.prompt,
                [Answer(text=a.text, adapter=a.adapter, cut=a.cut, stopped=a.stopped) for a in turn.answers],
                turn.answers[0].settings if turn.answers else {},
            )
            for turn in conversation.turns
        ]
        if self.adapter != conversation.adapter or conversation.adapter_deleted:
            self._record_adapter()

    # Saving ---------------------------------------------------------------------------

    def _save_failed(self, exc: HistoryError) -> None:
        print(f"warning: {exc}; this chat is no longer saved, but /save FILE still exports it", file=sys.stderr)
        self.history = None

    def _record(self, turn: Turn) -> None:
        if self.history is None:
            return
        try:
            if self.conversation_id is None:
                self.conversation_id = self.history.new_conversation(self.engine.base_model, self.adapter)
            self.history.add_turn(self.conversation_id, turn.prompt, turn.answer_records())
        except HistoryError as exc:
            self._save_failed(exc)

    def _forget_last(self) -> None:
        if self.history is None or self.conversation_id is None:
            return
        try:
            self.history.delete_last_turn(self.conversation_id)
        except HistoryError as exc:
            self._save_failed(exc)

    def _record_adapter(self) -> None:
        if self.history is None or self.conversation_id is None:
            return
        try:
            self.history.set_adapter(self.conversation_id, self.adapter)
        except HistoryError as exc:
            self._save_failed(exc)

    def snapshot(self) -> Conversation:
        """This chat as a :class:`Conversation`: from the store when saved there, else from memory."""
        if self.history is not None and self.conversation_id is not None:
            return self.history.get(self.conversation_id)
        turns = [
            StoredTurn(
                0,
                t.prompt,
                "",
                [StoredAnswer(a.adapter, a.text, a.cut, t.settings, stopped=a.stopped) for a in t.answers],
            )
            for t in self.turns
        ]
        title = turns[0].prompt[:60] if turns else "Chat"
        return Conversation(0, title, self.engine.base_model, self.adapter, "", "", turns=turns)

    def _print(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def _prepare(self) -> None:
        if not self.engine.is_loaded:
            print(f"loading {self.engine.base_model} ...", file=sys.stderr)
        self.engine.load()
        for name in (self.adapter, self.compare_with if isinstance(self.compare_with, str) else None):
            if name:
                self.engine.attach(name)
        for note in self.engine.notes:
            print(f"warning: {note}", file=sys.stderr)
        self.engine.notes.clear()

    def _answer_one(self, prompt: str, adapter: str | None, label: bool) -> Answer:
        few_shot = self.few_shot if adapter is None else None
        if label:
            self._print(f"[{adapter or BASE_LABEL}{f' + {len(few_shot)}-shot prompt' if few_shot else ''}]")
        answer = self.engine.answer(
            prompt, adapter, self.generation, on_piece=lambda p: self._print(p, end=""), stop=self._stop, few_shot=few_shot
        )
        if not answer.text:
            # A model can spend every token on pieces its tokenizer decodes to nothing.
            self._print("(empty answer)", end="")
        if answer.stopped:
            self._print(" [stopped]")
        elif answer.cut:
            how = "--max-new-tokens N" if self.one_shot_mode else "/set max_new_tokens N"
            self._print(f" [cut at {self.generation.max_new_tokens} tokens; raise it with {how}]")
        else:
            self._print()
        return answer

    def _generate(self, prompt: str) -> Turn:
        """Answer ``prompt`` with the current adapter (and the comparison, when on), printing as it streams."""
        self._prepare()
        self._stop.clear()
        answers = []
        if self.compare_with is not False:
            other = self.compare_with if isinstance(self.compare_with, str) else None
            answers.append(self._answer_one(prompt, other, label=True))
            if not self._stop.is_set():
                answers.append(self._answer_one(prompt, self.adapter, label=True))
        else:
            answers.append(self._answer_one(prompt, self.adapter, label=False))
        return Turn(prompt, answers, dataclasses.asdict(self.generation))

    def ask(self, prompt: str) -> Turn:
        """Answer ``prompt``, keep the turn and save it."""
        turn = self._generate(prompt)
        self.turns.append(turn)
        self._record(turn)
        return turn

    one_shot_mode = False

    def one_shot(self, prompt: str) -> int:
        self.one_shot_mode = True
        if not prompt.strip():
            raise InputError("--prompt is empty; give the text to answer")
        self.ask(prompt)
        if self.conversation_id is not None:
            print(f"saved as conversation {self.conversation_id}; continue it with: lora-chat chat --resume {self.conversation_id}", file=sys.stderr)
        return 0

    # Commands -------------------------------------------------------------------------

    def command(self, line: str) -> bool:
        """Run a slash command; return False when the chat should end."""
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name == "help":
            self._print(HELP)
        elif name == "retry":
            if not self.turns:
                raise InputError("nothing to retry yet; type a prompt first")
            # The old turn is replaced only once the new answer exists, so a failed retry loses nothing.
            turn = self._generate(self.turns[-1].prompt)
            self.turns.pop()
            self._forget_last()
            self.turns.append(turn)
            self._record(turn)
        elif name == "undo":
            if not self.turns:
                raise InputError("nothing to undo")
            turn = self.turns.pop()
            self._forget_last()
            self._print(f"dropped the turn {turn.prompt[:40]!r}")
        elif name == "adapter":
            if not rest:
                self._print(f"adapter: {self.adapter or BASE_LABEL}; adapters: {', '.join(self.library.names()) or 'none yet'}")
            else:
                target = None if rest.lower() == "none" else rest
                if target:
                    self.engine.attach(target)
                self.adapter = target
                self._record_adapter()
                self._print(f"now answering with {self.adapter or BASE_LABEL}")
        elif name == "compare":
            if rest.lower() == "off":
                self.compare_with = False
                self._print("compare mode off")
            else:
                if self.adapter is None and not rest:
                    raise InputError("compare needs an adapter: /adapter NAME first, or /compare NAME")
                other = rest or None
                if other:
                    self.engine.attach(other)
                self.compare_with = other
                self._print(f"comparing {other or BASE_LABEL} with {self.adapter or BASE_LABEL}")
        elif name == "set":
            self._set(rest)
        elif name == "save":
            if not rest:
                raise InputError("/save needs a file name, for example /save chat.md")
            self._print(f"saved to {self.save(Path(rest))}")
        else:
            raise InputError(f"unknown command /{name}; /help lists the commands")
        return True

    def _set(self, rest: str) -> None:
        if not rest:
            for key, value in dataclasses.asdict(self.generation).items():
                allowed = _allowed(key)
                self._print(f"  {key} = {value}" + (f"  ({allowed})" if allowed else ""))
            return
        key, _, value = rest.partition(" ")
        key = key.replace("-", "_")
        if not value.strip():
            allowed = _allowed(key)
            raise InputError(f"/set {key} needs a value" + (f" ({allowed})" if allowed else ""))
        try:
            checked = parse_value(GenerationSettings, key, value.strip())
        except SettingsError as exc:
            allowed = _allowed(key)
            if allowed and "allowed" not in str(exc):
                raise SettingsError(f"{exc}; allowed {allowed}") from None
            raise
        self.generation = dataclasses.replace(self.generation, **{key: checked})
        self._print(f"{key} = {checked}")

    def save(self, path: Path) -> Path:
        """Export this chat to ``path`` as Markdown (.md) or JSON (.json), the same formats as ``history export``."""
        if not self.turns:
            raise InputError("nothing to save yet; type a prompt first")
        return write_export(self.snapshot(), path)

    # Loop -----------------------------------------------------------------------------

    def interactive(self) -> int:
        self._prepare()
        target = self.adapter or BASE_LABEL
        if self.conversation_id is not None:
            self._print_recap()
        self._print(f"chatting with {target} on {self.engine.base_model}. /help lists commands, /quit leaves.")
        # True after a Ctrl+C at the prompt or one that stopped an answer: the next Ctrl+C leaves.
        leave_on_interrupt = False

        def on_sigint(signum: int, frame: Any) -> None:
            if self._answering and not self._stop.is_set():
                self._stop.set()
                return
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            while True:
                try:
                    line = input("you> ")
                except EOFError:
                    self._print()
                    return self._leave()
                except KeyboardInterrupt:
                    if leave_on_interrupt:
                        self._print()
                        return self._leave()
                    leave_on_interrupt = True
                    self._print("\n(Ctrl+C again to leave)")
                    continue
                leave_on_interrupt = False
                line = line.strip()
                if not line:
                    continue
                self._stop.clear()
                try:
                    self._answering = True
                    if line.startswith("/"):
                        if not self.command(line):
                            return self._leave()
                    else:
                        self.ask(line)
                except LoraChatError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                except KeyboardInterrupt:
                    # A second Ctrl+C while the first one is still stopping the answer.
                    self._print(" [stopped]")
                    return self._leave()
                finally:
                    self._answering = False
                if self._stop.is_set():
                    leave_on_interrupt = True
        finally:
            signal.signal(signal.SIGINT, previous)

    def _print_recap(self, last: int = 3) -> None:
        earlier = len(self.turns) - last
        self._print(f"continuing conversation {self.conversation_id} ({len(self.turns)} turn(s))")
        if earlier > 0:
            self._print(f"  ... {earlier} earlier turn(s); 'lora-chat history show {self.conversation_id}' prints them all")
        for turn in self.turns[-last:]:
            self._print(f"you> {turn.prompt}")
            for answer in turn.answers:
                prefix = f"[{answer.label}] " if len(turn.answers) > 1 else ""
                self._print(f"{prefix}{answer.text}")

    def _leave(self) -> int:
        if self.conversation_id is not None and self.history is not None:
            self._print(f"saved as conversation {self.conversation_id}; continue it with: lora-chat chat --resume {self.conversation_id}")
        return 0
