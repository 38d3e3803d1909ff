"""The command line: ``lora-chat`` and its subcommands, over the same core as the app."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from lora_chat import __version__
from lora_chat.core.errors import InputError, LoraChatError, TrainingCancelled
from lora_chat.core.settings import GenerationSettings, Settings, TrainSettings, load_settings, parse_value

log = logging.getLogger(__name__)


# Parsing ----------------------------------------------------------------------------


def _common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--base-model",
        metavar="ID_OR_PATH",
        default=default,
        help="base model: a Hugging Face id or a local folder (default: LORA_CHAT_BASE_MODEL, "
        "then base_model in settings.toml, then google/flan-t5-small)",
    )
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if suppress else False, help="show tracebacks and debug logs")


def _setting_type(cls: type, name: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse_value(cls, name, text)
        except LoraChatError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name.replace("_", "-")
    return convert


def _setting_list_type(cls: type, name: str) -> Callable[[str], Any]:
    """Return an argparse type that reads comma-separated values of one setting, each checked."""
    one = _setting_type(cls, name)

    def convert(text: str) -> list[Any]:
        values = [one(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"{name.replace('_', '-')}: give one or more values separated by commas")
        return values

    convert.__name__ = name.replace("_", "-")
    return convert


def _add_train_options(parser: argparse.ArgumentParser, lists: Sequence[str] = ()) -> None:
    """Add an option per training setting; those named in ``lists`` take comma-separated values."""
    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainSettings)}
    metavars = {"epochs": "N", "learning_rate": "X", "rank": "R", "alpha": "A", "dropout": "D", "batch_size": "B", "seed": "S", "target_modules": "q,v", "eval_fraction": "F", "max_input_tokens": "N", "max_output_tokens": "N"}
    metavars.update(method="METHOD", virtual_tokens="N", ia3_target_modules="k,v,wo", ia3_feedforward_modules="wo", eval_every="N", overfit_warning="N", early_stopping="PATIENCE")
    defaults = TrainSettings()
    for name, metavar in metavars.items():
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar=metavar,
            type=_setting_list_type(TrainSettings, name) if name in lists else _setting_type(TrainSettings, name),
            default=None,
            help=f"{helps[name]} (default: {','.join(default) if isinstance(default, list) else default})"
            + ("; several values separated by commas train one adapter each" if name in lists else ""),
        )
    for name in ("rslora", "dora"):
        parser.add_argument("--" + name, dest=name, action=argparse.BooleanOptionalAction, default=None, help=helps[name])


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation")
    t = lambda name: _setting_type(GenerationSettings, name)  # noqa: E731
    group.add_argument("--max-new-tokens", dest="max_new_tokens", type=t("max_new_tokens"), metavar="N", help="maximum number of tokens in one answer")
    group.add_argument("--sample", dest="do_sample", action="store_true", default=None, help="sample instead of greedy decoding")
    group.add_argument("--temperature", type=t("temperature"), metavar="T", help="sampling temperature")
    group.add_argument("--top-p", dest="top_p", type=t("top_p"), metavar="P", help="nucleus sampling threshold")
    group.add_argument("--beams", dest="num_beams", type=t("num_beams"), metavar="N", help="beam search width")
    group.add_argument("--repetition-penalty", dest="repetition_penalty", type=t("repetition_penalty"), metavar="X", help="penalty for repeated tokens")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-chat",
        description="Fine-tune flan-t5-small with LoRA and chat with the result. With no command, start the app.",
    )
    parser.add_argument("--version", action="version", version=f"lora-chat {__version__}")
    _common_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    app = commands.add_parser("app", parents=[common], help="start the app (the same as no command)")
    app.set_defaults(handler=cmd_app)

    dataset = commands.add_parser("dataset", parents=[common], help="check datasets")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", metavar="COMMAND", required=True)
    check = dataset_commands.add_parser("check", parents=[common], help="report on a dataset; exit 0 if it can be trained on, 2 if not")
    check.add_argument("file", type=Path, help="a .json, .jsonl or .csv file")
    check.add_argument("--max-input-tokens", type=_setting_type(TrainSettings, "max_input_tokens"), default=None, metavar="N")
    check.add_argument("--max-output-tokens", type=_setting_type(TrainSettings, "max_output_tokens"), default=None, metavar="N")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=cmd_dataset_check)

    train = commands.add_parser("train", parents=[common], help="train an adapter and add it to the library")
    train.add_argument("file", type=Path, help="the dataset: a .json, .jsonl or .csv file")
    train.add_argument("--name", required=True, help="name of the new adapter (letters, digits, '-', '_', '.')")
    _add_train_options(train)
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train (default: auto)")
    train.add_argument("--events", type=Path, metavar="FILE", help="also write the progress events to this JSONL file")
    train.set_defaults(handler=cmd_train)

    chat = commands.add_parser("chat", parents=[common], help="chat with the base model plus an adapter, or none")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--adapter", metavar="NAME", help="adapter from the library")
    which.add_argument("--no-adapter", action="store_true", help="answer with the base model alone")
    chat.add_argument("--compare", nargs="?", const="", metavar="NAME", help="answer each prompt twice: base (or NAME) beside the adapter")
    chat.add_argument("--prompt", metavar="TEXT", help="answer this one prompt and exit")
    chat.add_argument("--resume", type=int, metavar="ID", help="continue saved conversation ID, with its adapter and base model unless --adapter, --no-adapter or --base-model is given")
    chat.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    chat.add_argument("--few-shot", type=int, default=0, metavar="K", help="put K dataset rows in front of each base-model prompt (few-shot prompting)")
    chat.add_argument("--dataset", type=Path, metavar="FILE", help="rows for --few-shot (default: the adapter's training rows)")
    _add_generation_options(chat)
    chat.set_defaults(handler=cmd_chat)

    evaluate = commands.add_parser("eval", parents=[common], help="score an adapter against the base model and few-shot prompting")
    evaluate.add_argument("name", help="adapter from the library")
    evaluate.add_argument("--dataset", type=Path, metavar="FILE", help="rows to evaluate on (default: the rows held out in training)")
    evaluate.add_argument("--few-shot", type=int, default=3, metavar="K", help="training rows in the few-shot prompt; 0 skips few-shot prompting (default: 3)")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    _add_generation_options(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    sweep = commands.add_parser("sweep", parents=[common], help="train one adapter per combination of settings and rank them by eval loss")
    sweep.add_argument("file", type=Path, help="the dataset: a .json, .jsonl or .csv file")
    sweep.add_argument("--name", help="start of the adapter names, as in NAME-r4 (default: the dataset file name)")
    _add_train_options(sweep, lists=SWEEP_SETTINGS)
    sweep.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train (default: auto)")
    sweep.add_argument("--json", action="store_true", help="print the ranking as JSON")
    sweep.set_defaults(handler=cmd_sweep)

    _add_history_commands(commands, common)

    adapters = commands.add_parser("adapters", parents=[common], help="manage the adapter library")
    adapter_commands = adapters.add_subparsers(dest="adapters_command", metavar="COMMAND", required=True)
    listing = adapter_commands.add_parser("list", parents=[common], help="list the adapters")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_adapters_list)
    show = adapter_commands.add_parser("show", parents=[common], help="show an adapter's metadata")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_adapters_show)
    rename = adapter_commands.add_parser("rename", parents=[common], help="rename an adapter")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(handler=cmd_adapters_rename)
    delete = adapter_commands.add_parser("delete", parents=[common], help="delete an adapter")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=cmd_adapters_delete)
    imp = adapter_commands.add_parser("import", parents=[common], help="import a PEFT adapter folder, a Trainer checkpoint or an exported .zip")
    imp.add_argument("path", type=Path)
    imp.add_argument("--name", required=True)
    imp.set_defaults(handler=cmd_adapters_import)
    export = adapter_commands.add_parser("export", parents=[common], help="export an adapter to a folder or a .zip file")
    export.add_argument("name")
    export.add_argument("dest", type=Path)
    export.set_defaults(handler=cmd_adapters_export)
    merge = adapter_commands.add_parser("merge", parents=[common], help="write the base model with a LoRA or IA3 adapter merged in to a folder")
    merge.add_argument("name")
    merge.add_argument("dest", type=Path, help="a new folder for the merged model and its tokenizer")
    merge.set_defaults(handler=cmd_adapters_merge)
    return parser


def _add_history_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    history = commands.add_parser("history", parents=[common], help="list, show, export and delete saved conversations")
    history_commands = history.add_subparsers(dest="history_command", metavar="COMMAND", required=True)
    listing = history_commands.add_parser("list", parents=[common], help="list saved conversations, newest first")
    listing.add_argument("--search", metavar="TEXT", help="keep conversations whose title, prompts or answers contain TEXT")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_history_list)
    show = history_commands.add_parser("show", parents=[common], help="print a conversation")
    show.add_argument("id", type=int, metavar="ID")
    show.set_defaults(handler=cmd_history_show)
    export = history_commands.add_parser("export", parents=[common], help="write a conversation to FILE (.md for Markdown, .json for JSON)")
    export.add_argument("id", type=int, metavar="ID")
    export.add_argument("file", type=Path, metavar="FILE")
    export.set_defaults(handler=cmd_history_export)
    rename = history_commands.add_parser("rename", parents=[common], help="give a conversation a new title")
    rename.add_argument("id", type=int, metavar="ID")
    rename.add_argument("title", metavar="TITLE")
    rename.set_defaults(handler=cmd_history_rename)
    delete = history_commands.add_parser("delete", parents=[common], help="delete a conversation")
    delete.add_argument("id", type=int, metavar="ID")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=cmd_history_delete)


# Helpers ----------------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    for message in settings.warnings:
        _warn(message)
    if getattr(args, "base_model", None):
        settings.base_model = args.base_model
    return settings


def _library():
    from lora_chat.core.library import DELETED_MARK, AdapterLibrary

    library = AdapterLibrary()
    # Leftovers of an interrupted delete are finished quietly; the user already asked for that.
    unfinished = [p for p in library.clean_staging() if DELETED_MARK not in p.name]
    if unfinished:
        _warn(
            f"removed {len(unfinished)} unfinished adapter folder(s) in {library.root} left by a training run "
            "or import that was stopped while saving; nothing from that run is in the library, so train or import it again"
        )
    return library


# Settings that only one kind of method uses; the others are hidden in ``adapters show``.
_METHOD_ONLY_SETTINGS = {
    "lora": {"rank", "alpha", "dropout", "target_modules", "rslora", "dora"},
    "ia3": {"ia3_target_modules", "ia3_feedforward_modules"},
    "prompt-tuning": {"virtual_tokens"},
    "prefix-tuning": {"virtual_tokens"},
}


def _settings_for_method(method: str) -> set[str]:
    """Return the names of the settings that matter for ``method``."""
    others = set().union(*_METHOD_ONLY_SETTINGS.values()) - _METHOD_ONLY_SETTINGS.get(method, set())
    return {f.name for f in dataclasses.fields(TrainSettings)} - others | {"method"}


def _fmt_setting(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _fmt_loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


# Commands ---------------------------------------------------------------------------


def cmd_app(args: argparse.Namespace) -> int:
    # Start-up creates tens of thousands of objects that live as long as the app (about
    # 60,000 after the imports), and each full garbage collection walks them all. The app
    # turns the collector back on once the first frame is drawn.
    gc.disable()
    from lora_chat.tui.app import run_app

    return run_app(base_model=args.base_model, debug=args.debug)


def cmd_dataset_check(args: argparse.Namespace) -> int:
    from lora_chat.core.dataset import check_dataset, read_dataset
    from lora_chat.core.errors import ModelNotFoundError

    settings = _settings(args)
    dataset = read_dataset(args.file)
    max_in = args.max_input_tokens or settings.train.max_input_tokens
    max_out = args.max_output_tokens or settings.train.max_output_tokens
    counter = None
    try:
        from lora_chat.core.model import load_tokenizer, token_counter

        counter = token_counter(load_tokenizer(settings.base_model))
    except ModelNotFoundError as exc:
        _warn(f"{exc}; token counts are skipped")
    report = check_dataset(dataset, counter, max_in, max_out)

    if args.json:
        print(json.dumps({
            "file": str(args.file),
            "format": dataset.format,
            "rows": len(report.rows),
            "valid_rows": len(report.valid_rows),
            "notes": dataset.notes,
            "input_tokens": report.spread("input"),
            "output_tokens": report.spread("output"),
            "problems": [{"row": r.row.number, "line": r.row.line, "problems": r.problems} for r in report.rows if r.problems],
            "trainable": report.trainable,
        }, indent=2))
    else:
        print(f"{args.file} ({dataset.format})")
        for line in report.summary_lines():
            print(f"  {line}")
        problems = report.problem_lines(limit=50)
        if problems:
            print("problems (these rows are skipped in training):")
            for line in problems:
                print(f"  {line}")
            if any("over the limit" in line for line in problems):
                print("  (shorten the rows over a token limit, or raise --max-input-tokens / --max-output-tokens)")
        print("ready to train" if report.trainable else "cannot be trained on: no valid rows; fix the rows listed above and check again")
    return 0 if report.trainable else 2


class _ProgressPrinter:
    """Prints training events: one line updated in place on a terminal, plain lines otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = 0
        self.last_plain = 0.0
        self.eval_loss: float | None = None
        self.best_eval: float | None = None
        self.rising = 0
        self.width = 0
        self.last_step: dict[str, Any] | None = None

    def _step_text(self, event: dict[str, Any]) -> str:
        step = event["step"]
        bar_width = 20
        filled = int(bar_width * step / max(self.total, 1))
        return (
            f"step {step}/{self.total} [{'#' * filled}{'-' * (bar_width - filled)}] epoch {event['epoch']:.2f} "
            f"loss {_fmt_loss(event['loss'])} eval {_fmt_loss(self.eval_loss)} "
            f"{event['samples_per_second'] or 0:.1f} samples/s ETA {_fmt_seconds(event['eta'])}"
        )

    def _line(self, text: str) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "status":
            self._line(event["message"])
        elif kind == "ready":
            self.total = event["total_steps"]
            self._line(
                f"training {_plural(event['train_rows'], 'row')} ({event['eval_rows']} held out), "
                f"{_plural(event['epochs'], 'epoch')}, {_plural(self.total, 'step')}, "
                f"{event['trainable_parameters']:,} trainable parameters, on {event['device']}"
                + (f", {event['method_description']}" if event.get("method_description") else "")
                + (f", {event['processes']} processes" if event.get("processes", 1) > 1 else "")
            )
        elif kind == "step":
            self.last_step = event
            text = self._step_text(event)
            if self.tty:
                self.stream.write("\r" + text.ljust(self.width))
                self.width = len(text)
                self.stream.flush()
            elif event["step"] in (1, self.total) or time.monotonic() - self.last_plain >= 5:
                self.last_plain = time.monotonic()
                self._line(text)
        elif kind == "eval":
            self.eval_loss = event["eval_loss"]
            if self.best_eval is None or self.eval_loss < self.best_eval:
                self.best_eval, self.rising = self.eval_loss, 0
            else:
                self.rising += 1
            # On a terminal the eval line stays above the progress line, so the curve is kept.
            self._line(f"step {event['step']} (epoch {event['epoch']:g}): eval loss {_fmt_loss(self.eval_loss)}")
        elif kind == "warning":
            self._line(f"warning: {event['message']}")
        elif kind == "done":
            if self.tty and self.last_step:
                # Leave the final progress line, with the last eval loss, on the terminal.
                self._line(self._step_text(self.last_step))
        elif kind in ("cancelled", "error") and self.tty and self.width:
            self._line("")


def cmd_train(args: argparse.Namespace) -> int:
    from lora_chat.core.training import train

    settings = _settings(args)
    values = dataclasses.asdict(settings.train)
    for f in dataclasses.fields(TrainSettings):
        if getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    train_settings = TrainSettings(**values)
    library = _library()

    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this step (Ctrl+C again to quit at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        result = train(
            args.file,
            args.name,
            train_settings,
            settings.base_model,
            report=_ProgressPrinter(),
            should_stop=stop.is_set,
            event_log=args.events,
            library=library,
            device=args.device,
        )
    except TrainingCancelled as exc:
        _err(str(exc))
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    if not result.main_process:
        return 0  # under accelerate launch, the first process saves and reports
    print(
        f"saved adapter {result.adapter.name!r}: final loss {_fmt_loss(result.final_loss)}, "
        f"eval loss {_fmt_loss(result.final_eval_loss)}, {result.duration_s:.1f} s "
        f"({result.samples_per_second:.1f} samples/s)"
    )
    print(f"chat with it: lora-chat chat --adapter {result.adapter.name}")
    return 0


def _generation(args: argparse.Namespace, settings: Settings) -> GenerationSettings:
    values = dataclasses.asdict(settings.generation)
    for f in dataclasses.fields(GenerationSettings):
        if getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    return GenerationSettings(**values)


def cmd_chat(args: argparse.Namespace) -> int:
    from lora_chat.cli_chat import ChatSession

    settings = _settings(args)
    library = _library()
    adapter = None if args.no_adapter else args.adapter
    compare_with: str | None | bool = False
    if args.compare is not None:
        if adapter is None:
            raise InputError("--compare needs --adapter NAME: it answers with the base model (or --compare NAME) beside that adapter")
        compare_with = args.compare or None
    base_model = settings.base_model
    if args.resume is not None:
        from lora_chat.core.history import HistoryStore

        history = HistoryStore()
        conversation = history.get(args.resume)
        base_model = args.base_model or conversation.base_model
        if args.adapter is None and not args.no_adapter:
            adapter = _resume_adapter(conversation, library)
        compare_with = _resume_compare(conversation, library, adapter, compare_with, args.compare is not None)
    else:
        history = _open_history()
    session = ChatSession(base_model, library, _generation(args, settings), adapter, compare_with, device=args.device, history=history)
    session.few_shot = _few_shot_examples(args, library, adapter)
    try:
        if args.resume is not None:
            session.resume(conversation)
        if args.prompt is not None:
            return session.one_shot(args.prompt)
        return session.interactive()
    finally:
        if history is not None:
            history.close()


def _open_history() -> Any:
    """Open the history store, or warn and return None so chat still works when it cannot be used."""
    from lora_chat.core.errors import HistoryError
    from lora_chat.core.history import HistoryStore

    try:
        return HistoryStore()
    except HistoryError as exc:
        _warn(f"{exc}; this chat will not be saved")
        return None


def _resume_adapter(conversation: Any, library: Any) -> str | None:
    """Pick the adapter a resumed conversation continues with: its own, if it still exists."""
    name = conversation.adapter
    if name is None:
        return None
    if conversation.adapter_deleted or name not in library.names():
        raise InputError(
            f"conversation {conversation.id} used adapter {name!r}, which is no longer in the library; "
            f"continue it with --adapter NAME or --no-adapter"
        )
    return name


def _resume_compare(conversation: Any, library: Any, adapter: str | None, compare_with: str | None | bool, given: bool) -> str | None | bool:
    """Return what a resumed conversation compares with: compare mode comes back when its last turn compared."""
    if given or not conversation.turns or adapter is None:
        return compare_with
    answers = conversation.turns[-1].answers
    if len(answers) != 2:
        return compare_with
    other = answers[0].adapter
    if other is not None and other not in library.names():
        _warn(f"conversation {conversation.id} compared with adapter {other!r}, which is no longer in the library; compare mode is off")
        return compare_with
    return other


def _print_conversation(conversation: Any) -> None:
    from lora_chat.core.history import local_time

    adapter = conversation.adapter or "none (base model)"
    if conversation.adapter_deleted:
        adapter += " (deleted)"
    print(f"conversation {conversation.id}: {conversation.title}")
    print(f"base model: {conversation.base_model}   adapter: {adapter}")
    print(f"started {local_time(conversation.created)}, updated {local_time(conversation.updated)}, {len(conversation.turns)} turn(s)")
    for turn in conversation.turns:
        print()
        print(f"you> {turn.prompt}")
        for answer in turn.answers:
            notes = [note for note, on in (("cut by the token limit", answer.cut), ("stopped", answer.stopped)) if on]
            prefix = f"[{answer.label}] " if len(turn.answers) > 1 or answer.adapter != conversation.adapter else ""
            print(prefix + answer.text + (f"  ({', '.join(notes)})" if notes else ""))


def cmd_history_list(args: argparse.Namespace) -> int:
    from lora_chat.core.history import HistoryStore, local_time

    with HistoryStore() as history:
        conversations = history.list_conversations(args.search)
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in conversations], indent=2, ensure_ascii=False))
        return 0
    if not conversations:
        print("no conversations match" if args.search else "no saved conversations yet; start one with: lora-chat chat")
        return 0
    rows = [("ID", "UPDATED", "ADAPTER", "TURNS", "TITLE")]
    for c in conversations:
        rows.append((str(c.id), local_time(c.updated), c.adapter_label, str(c.turn_count), c.title or c.first_prompt))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])
    return 0


def cmd_history_show(args: argparse.Namespace) -> int:
    from lora_chat.core.history import HistoryStore

    with HistoryStore() as history:
        _print_conversation(history.get(args.id))
    return 0


def cmd_history_export(args: argparse.Namespace) -> int:
    from lora_chat.core.history import HistoryStore

    with HistoryStore() as history:
        path = history.export(args.id, args.file)
    print(f"exported conversation {args.id} to {path}")
    return 0


def cmd_history_rename(args: argparse.Namespace) -> int:
    from lora_chat.core.history import HistoryStore

    with HistoryStore() as history:
        history.rename(args.id, args.title)
        title = history.get(args.id).title
    print(f"conversation {args.id} is now titled {title!r}")
    return 0


def cmd_history_delete(args: argparse.Namespace) -> int:
    from lora_chat.core.history import HistoryStore

    with HistoryStore() as history:
        conversation = history.get(args.id)
        question = f"delete conversation {args.id} ({conversation.title!r}, {len(conversation.turns)} turns)?"
        if not args.yes and not _confirm_delete(question, f"deleting conversation {args.id}"):
            return 1
        history.delete(args.id)
    print(f"deleted conversation {args.id}")
    return 0


def _check_few_shot(count: int) -> None:
    if count < 0:
        raise InputError(f"--few-shot must be 0 or more, got {count}")


def _confirm_delete(question: str, without_terminal: str) -> bool:
    """Ask ``question`` on the terminal; raise InputError off a terminal, where nobody can answer."""
    if not sys.stdin.isatty():
        raise InputError(f"{without_terminal} needs confirmation; add --yes to delete without asking")
    reply = input(f"{question} [y/N] ").strip().lower()
    if reply in ("y", "yes"):
        return True
    print("nothing deleted")
    return False


def _few_shot_examples(args: argparse.Namespace, library: Any, adapter: str | None) -> list[tuple[str, str]]:
    """Return the rows for ``chat --few-shot K``: from --dataset, else the adapter's training rows."""
    _check_few_shot(args.few_shot)
    if not args.few_shot:
        return []
    from lora_chat.core.evaluate import held_out_rows, pick_few_shot_rows, valid_rows

    if args.dataset is not None:
        from lora_chat.core.dataset import read_dataset

        rows = pick_few_shot_rows(valid_rows(read_dataset(args.dataset)), args.few_shot)
    elif adapter is not None:
        rows = pick_few_shot_rows(held_out_rows(library.get(adapter))[1], args.few_shot)
    else:
        raise InputError("--few-shot needs rows to put in the prompt: give --dataset FILE, or --adapter NAME to use its training rows")
    return [(r.input, r.output) for r in rows]


def cmd_eval(args: argparse.Namespace) -> int:
    from lora_chat.core.evaluate import evaluate_adapter
    from lora_chat.core.inference import ChatEngine

    _check_few_shot(args.few_shot)
    settings = _settings(args)
    library = _library()
    library.get(args.name)
    engine = ChatEngine(settings.base_model, library, None if args.device == "auto" else args.device)
    tty = sys.stderr.isatty()

    def progress(event: dict[str, Any]) -> None:
        if tty:
            sys.stderr.write(f"\ranswering {event['done']}/{event['total']}")
            sys.stderr.flush()

    result = evaluate_adapter(
        args.name, settings.base_model, dataset=args.dataset, few_shot=args.few_shot, library=library, engine=engine,
        generation=_generation(args, settings), report=progress,
    )
    if tty:
        sys.stderr.write("\r" + " " * 30 + "\r")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"adapter {result.adapter} ({result.method}) on {result.source}")
    print(f"{'':<34} {'EXACT':>6} {'F1':>6} {'LOSS':>8} {'TIME':>8}")
    for s in result.summaries:
        print(f"{s.label[:34]:<34} {s.exact_match:>6.0%} {s.f1:>6.2f} {s.mean_loss:>8.4f} {s.seconds:>7.1f}s")
    for row in result.rows:
        print(f"\nrow {row.number}: {row.input}")
        print(f"  expected   {row.expected}")
        for s in result.summaries:
            mark = "=" if row.exact[s.system] else "x"
            print(f"  {s.system:<10} {mark} {row.answers[s.system]}")
    return 0


SWEEP_SETTINGS = ("method", "rank", "alpha", "dropout", "learning_rate", "epochs", "batch_size", "virtual_tokens")


def cmd_sweep(args: argparse.Namespace) -> int:
    from lora_chat.core.sweep import run_sweep

    settings = _settings(args)
    values = dataclasses.asdict(settings.train)
    for f in dataclasses.fields(TrainSettings):
        if getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    grid = {name: values.pop(name) for name in SWEEP_SETTINGS if isinstance(values[name], list) and len(values[name]) > 1}
    values.update({name: values[name][0] for name in SWEEP_SETTINGS if isinstance(values.get(name), list)})
    name = args.name or args.file.stem
    printer = _ProgressPrinter()

    def progress(event: dict[str, Any]) -> None:
        nonlocal printer
        if event["event"] == "start":
            printer = _ProgressPrinter()
            printer._line(f"[{event['sweep_index'] + 1}/{event['sweep_total']}] training {event['sweep_run']}")
        elif event["event"] != "status":
            printer(event)

    stop = threading.Event()
    result = run_sweep(
        args.file, name, TrainSettings(**values), grid, settings.base_model, report=progress, should_stop=stop.is_set, library=_library(), device=args.device
    )
    if args.json:
        print(json.dumps({"ranked_by": result.ranked_by, "runs": [
            {k: v for k, v in dataclasses.asdict(run).items() if k != "settings"} for run in result.runs
        ]}, indent=2))
        return 0 if any(run.error is None for run in result.runs) else 1
    print(f"ranked by {result.ranked_by} (same split and seed {values['seed']}):")
    header = ("#", "ADAPTER", "SETTINGS", "EVAL LOSS", "LOSS", "TIME", "PARAMETERS")
    table = [header]
    for place, run in enumerate(result.runs, 1):
        changes = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in run.changes.items())
        if run.error:
            table.append((str(place), run.name, changes, "failed", "-", "-", run.error[:60]))
            continue
        params = f"{run.trainable_parameters:,}" if run.trainable_parameters is not None else "-"
        table.append((str(place), run.name, changes, _fmt_loss(run.eval_loss), _fmt_loss(run.final_loss), f"{run.duration_s:.1f}s", params))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
    return 0 if any(run.error is None for run in result.runs) else 1


def cmd_adapters_list(args: argparse.Namespace) -> int:
    library = _library()
    entries = library.list()
    if args.json:
        print(json.dumps([_entry_json(e) for e in entries], indent=2, ensure_ascii=False))
        return 0
    if not entries:
        print(f"no adapters yet in {library.root}; train one with: lora-chat train FILE --name NAME")
        return 0
    rows = [("NAME", "BASE MODEL", "CREATED", "DATASET", "ROWS", "RANK", "EPOCHS", "LOSS", "EVAL LOSS")]
    for e in entries:
        if e.broken:
            rows.append((e.name, f"BROKEN: {e.problem}", "", "", "", "", "", "", ""))
            continue
        m = e.meta
        s = m.get("settings", {})
        d = m.get("dataset", {})
        rows.append((
            e.name,
            str(e.base_model or "-"),
            str(m.get("created", "-"))[:16].replace("T", " "),
            str(d.get("name", "-")),
            str(d.get("valid_rows", d.get("rows", "-"))),
            str(s.get("rank", "-")),
            str(s.get("epochs", "-")),
            _fmt_loss(m.get("final_loss")),
            _fmt_loss(m.get("final_eval_loss")),
        ))
    widths = [max(len(r[i]) for r in rows if not r[1].startswith("BROKEN") or i == 0) for i in range(len(rows[0]))]
    for r in rows:
        if r[1].startswith("BROKEN"):
            print(f"{r[0].ljust(widths[0])}  {r[1]}")
        else:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _entry_json(entry: Any) -> dict[str, Any]:
    data = {"name": entry.name, "path": str(entry.path), "broken": entry.broken, "problem": entry.problem, "base_model": entry.base_model}
    data["metadata"] = entry.meta
    return data


def cmd_adapters_show(args: argparse.Namespace) -> int:
    entry = _library().get(args.name)
    if args.json:
        print(json.dumps(_entry_json(entry), indent=2, ensure_ascii=False))
        return 0
    m = entry.meta
    print(f"name:        {entry.name}")
    print(f"path:        {entry.path}")
    if entry.broken:
        print(f"BROKEN:      {entry.problem}")
    print(f"base model:  {entry.base_model or '-'}")
    print(f"method:      {entry.method}")
    print(f"created:     {m.get('created', '-')}")
    d = m.get("dataset") or {}
    if d:
        print(f"dataset:     {d.get('name')} ({d.get('valid_rows', d.get('rows'))} rows, hash {d.get('content_hash')})")
    settings_shown = m.get("settings") or {}
    if settings_shown:
        print("settings:")
    for key, value in settings_shown.items():
        if key not in _settings_for_method(str(settings_shown.get("method", entry.method))):
            continue
        print(f"  {key.replace('_', '-'):<24} {_fmt_setting(value)}")
    if "final_loss" in m:
        print(f"final loss:  {_fmt_loss(m.get('final_loss'))}   eval loss: {_fmt_loss(m.get('final_eval_loss'))}")
    if "duration_s" in m:
        print(f"trained in:  {m['duration_s']} s on {m.get('device')} ({m.get('samples_per_second')} samples/s)")
    if m.get("imported_from"):
        print(f"imported from: {m['imported_from']}")
    if m.get("versions"):
        print("versions:    " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    history = [h["loss"] for h in m.get("loss_history", [])]
    if history:
        from lora_chat.core.sparkline import sparkline

        print(f"loss curve:  {sparkline(history, 60)}")
    return 0


def cmd_adapters_rename(args: argparse.Namespace) -> int:
    entry = _library().rename(args.old, args.new)
    print(f"renamed {args.old!r} to {entry.name!r}")
    return 0


def cmd_adapters_delete(args: argparse.Namespace) -> int:
    library = _library()
    entry = library.get(args.name)
    if not args.yes and not _confirm_delete(f"delete adapter {entry.name!r} ({entry.path})?", f"deleting {args.name!r}"):
        return 1
    library.delete(args.name)
    print(f"deleted {args.name!r}")
    _mark_history_adapter_deleted(args.name)
    return 0


def _mark_history_adapter_deleted(name: str) -> None:
    """Mark saved conversations made with adapter ``name``; the adapter is already gone, so only warn on failure."""
    from lora_chat.core.errors import HistoryError
    from lora_chat.core.history import HistoryStore

    try:
        with HistoryStore() as history:
            marked = history.mark_adapter_deleted(name)
    except HistoryError as exc:
        _warn(f"{exc}; saved conversations with {name!r} were not marked as made with a deleted adapter")
        return
    if marked:
        print(f"{marked} saved conversation(s) with {name!r} are kept and marked as made with a deleted adapter")


def cmd_adapters_import(args: argparse.Namespace) -> int:
    entry = _library().import_folder(args.path, args.name)
    print(f"imported {args.path} as {entry.name!r}" + (f" (base model {entry.base_model})" if entry.base_model else ""))
    return 0


def cmd_adapters_export(args: argparse.Namespace) -> int:
    dest = _library().export(args.name, args.dest)
    print(f"exported {args.name!r} to {dest}")
    return 0


def cmd_adapters_merge(args: argparse.Namespace) -> int:
    from lora_chat.core.merge import merge_adapter

    settings = _settings(args)
    dest = merge_adapter(args.name, args.dest, settings.base_model, _library())
    print(f"wrote {dest}: the base model {settings.base_model} with adapter {args.name!r} merged in (the base model folder is unchanged)")
    print(f"load it without peft: AutoModelForSeq2SeqLM.from_pretrained({str(dest)!r})")
    return 0


# Entry point ------------------------------------------------------------------------


def _app_only_args(argv: Sequence[str]) -> argparse.Namespace | None:
    """Parse ``argv`` with the app's options only, or return None when it has anything else.

    Starting the app is the common case, and building the whole parser with every
    command takes longer than parsing ``--base-model`` and ``--debug``.
    """
    if any(arg in ("-h", "--help", "--version") for arg in argv):
        return None
    parser = argparse.ArgumentParser(prog="lora-chat", add_help=False, exit_on_error=False)
    _common_options(parser, suppress=False)
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    return None if rest else args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _app_only_args(argv)
    if args is None:
        args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    if getattr(args, "base_model", None) is None:
        args.base_model = None

    from lora_chat.core.logs import setup_logging

    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.DEBUG)
        setup_logging(logging.DEBUG, handler)
    else:
        setup_logging()

    handler_fn = getattr(args, "handler", cmd_app)
    try:
        return handler_fn(args)
    except LoraChatError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        log.info("command failed: %s", exc)
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``lora-chat adapters list | head``): stop quietly, as other
        # command-line tools do, and keep Python from complaining when it flushes stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        log.exception("unexpected failure")
        if debug:
            raise
        from lora_chat.core import paths

        _err(f"unexpected failure: {type(exc).__name__}: {exc}; the log {paths.log_file()} has the details, or run again with --debug")
        return 1
