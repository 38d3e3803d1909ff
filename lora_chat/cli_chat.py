"""The interactive ``lora-chat chat`` prompt: streamed answers and slash commands."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_chat.core.errors import InputError, LoraChatError
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


@dataclass
class Turn:
    prompt: str
    answers: list[Answer]


class ChatSession:
    """One chat on the command line: the engine, the current adapter and the turns so far."""

    def __init__(
        self,
        base_model: str,
        library: AdapterLibrary,
        generation: GenerationSettings,
        adapter: str | None = None,
        compare_with: str | None | bool = False,
        device: str | None = None,
        out: Any = None,
    ) -> None:
        self.engine = ChatEngine(base_model, library, None if device in (None, "auto") else device)
        self.library = library
        self.generation = generation
        self.adapter = adapter
        self.compare_with = compare_with  # False: off; None: the base model; str: another adapter
        self.turns: list[Turn] = []
        self.out = out or sys.stdout
        self._stop = threading.Event()

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
        if label:
            self._print(f"[{adapter or BASE_LABEL}]")
        answer = self.engine.answer(prompt, adapter, self.generation, on_piece=lambda p: self._print(p, end=""), stop=self._stop)
        if answer.stopped:
            self._print(" [stopped]")
        elif answer.cut:
            self._print(f" [cut at {self.generation.max_new_tokens} tokens; raise it with /set max_new_tokens N]")
        else:
            self._print()
        return answer

    def ask(self, prompt: str) -> Turn:
        """Answer ``prompt`` with the current adapter (and the comparison, when on)."""
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
        turn = Turn(prompt, answers)
        self.turns.append(turn)
        return turn

    def one_shot(self, prompt: str) -> int:
        if not prompt.strip():
            raise InputError("--prompt is empty; give the text to answer")
        self.ask(prompt)
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
            prompt = self.turns.pop().prompt
            self.ask(prompt)
        elif name == "undo":
            if not self.turns:
                raise InputError("nothing to undo")
            turn = self.turns.pop()
            self._print(f"dropped the turn {turn.prompt[:40]!r}")
        elif name == "adapter":
            if not rest:
                self._print(f"adapter: {self.adapter or BASE_LABEL}; adapters: {', '.join(self.library.names()) or 'none yet'}")
            else:
                target = None if rest.lower() == "none" else rest
                if target:
                    self.engine.attach(target)
                self.adapter = target
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
                self._print(f"  {key} = {value}")
            return
        key, _, value = rest.partition(" ")
        key = key.replace("-", "_")
        if not value.strip():
            raise InputError(f"/set {key} needs a value")
        checked = parse_value(GenerationSettings, key, value.strip())
        self.generation = dataclasses.replace(self.generation, **{key: checked})
        self._print(f"{key} = {checked}")

    def save(self, path: Path) -> Path:
        from lora_chat.core.fileio import atomic_write_text

        if path.suffix.lower() == ".json":
            data = [{"prompt": t.prompt, "answers": [dataclasses.asdict(a) for a in t.answers]} for t in self.turns]
            atomic_write_text(path, json.dumps({"base_model": self.engine.base_model, "turns": data}, indent=2, ensure_ascii=False) + "\n")
        else:
            lines = [f"# Chat with {self.engine.base_model}", ""]
            for t in self.turns:
                lines += [f"**You:** {t.prompt}", ""]
                for a in t.answers:
                    lines += [f"**{a.label}:** {a.text}" + (" *(cut)*" if a.cut else ""), ""]
            atomic_write_text(path, "\n".join(lines))
        return path

    # Loop -----------------------------------------------------------------------------

    def interactive(self) -> int:
        self._prepare()
        target = self.adapter or BASE_LABEL
        self._print(f"chatting with {target} on {self.engine.base_model}. /help lists commands, /quit leaves.")
        interrupted_at_prompt = False

        def on_sigint(signum: int, frame: Any) -> None:
            if self._stop.is_set() or not self._answering:
                raise KeyboardInterrupt
            self._stop.set()

        self._answering = False
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            while True:
                try:
                    line = input("you> ")
                    interrupted_at_prompt = False
                except EOFError:
                    self._print()
                    return 0
                except KeyboardInterrupt:
                    if interrupted_at_prompt:
                        self._print()
                        return 0
                    interrupted_at_prompt = True
                    self._print("\n(Ctrl+C again to leave)")
                    continue
                line = line.strip()
                if not line:
                    continue
                try:
                    self._answering = True
                    if line.startswith("/"):
                        if not self.command(line):
                            return 0
                    else:
                        self.ask(line)
                except LoraChatError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                except KeyboardInterrupt:
                    self._print(" [stopped]")
                finally:
                    self._answering = False
        finally:
            signal.signal(signal.SIGINT, previous)
