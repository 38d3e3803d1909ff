"""Saved conversations: every chat turn in an SQLite database in the data directory.

The schema version is kept in ``PRAGMA user_version``. A new file is built by running every
migration from an empty database, so the upgrade path from version 1 runs on each new install too.
Each write is one transaction in WAL mode, so a process killed mid-write leaves the last committed
state. A file that is not an SQLite database, fails ``PRAGMA quick_check`` or carries a newer schema
version is reported and left untouched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from lora_chat.core import paths
from lora_chat.core.errors import (
    ConversationNotFoundError,
    HistoryDamagedError,
    HistoryError,
    HistoryVersionError,
    InputError,
)

log = logging.getLogger(__name__)

HISTORY_FILE = "history.sqlite3"
SQLITE_HEADER = b"SQLite format 3\x00"
BASE_LABEL = "none (base model)"
TITLE_LENGTH = 60
BUSY_TIMEOUT_S = 5.0


def history_file() -> Path:
    return paths.data_dir() / HISTORY_FILE


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def local_time(stamp: str) -> str:
    """Format a stored UTC time stamp as local ``YYYY-MM-DD HH:MM``."""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def default_title(prompt: str) -> str:
    """Make a title from the first prompt: its first line, shortened to TITLE_LENGTH characters."""
    line = " ".join(prompt.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 3].rstrip() + "..."


# Records ----------------------------------------------------------------------------


@dataclass
class StoredAnswer:
    adapter: str | None
    text: str
    cut: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    adapter_deleted: bool = False
    stopped: bool = False

    @property
    def label(self) -> str:
        name = self.adapter or BASE_LABEL
        return f"{name} (deleted)" if self.adapter_deleted else name


@dataclass
class StoredTurn:
    id: int
    prompt: str
    created: str
    answers: list[StoredAnswer]


@dataclass
class Conversation:
    id: int
    title: str
    base_model: str
    adapter: str | None
    created: str
    updated: str
    adapter_deleted: bool = False
    turns: list[StoredTurn] = field(default_factory=list)


@dataclass
class ConversationSummary:
    """One row of the conversation list."""

    id: int
    title: str
    base_model: str
    adapter: str | None
    adapter_deleted: bool
    created: str
    updated: str
    first_prompt: str
    turn_count: int

    @property
    def adapter_label(self) -> str:
        name = self.adapter or "none"
        return f"{name} (deleted)" if self.adapter_deleted else name


# Schema -----------------------------------------------------------------------------


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, which would split a migration over two transactions.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _create_v1(db: sqlite3.Connection) -> None:
    """Version 1: one answer per turn, stored in the turn row."""
    _run_script(
        db,
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            base_model TEXT NOT NULL,
            adapter TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            prompt TEXT NOT NULL,
            answer TEXT NOT NULL,
            adapter TEXT,
            cut INTEGER NOT NULL DEFAULT 0,
            settings TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL
        );
        CREATE INDEX turns_by_conversation ON turns(conversation_id);
        """
    )


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Version 2: answers get their own table (compare mode keeps two) and a deleted-adapter mark."""
    _run_script(
        db,
        """
        ALTER TABLE conversations ADD COLUMN adapter_deleted INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            adapter TEXT,
            adapter_deleted INTEGER NOT NULL DEFAULT 0,
            text TEXT NOT NULL,
            cut INTEGER NOT NULL DEFAULT 0,
            stopped INTEGER NOT NULL DEFAULT 0,
            settings TEXT NOT NULL DEFAULT '{}'
        );
        INSERT INTO answers (turn_id, position, adapter, text, cut, settings)
            SELECT id, 0, adapter, answer, cut, settings FROM turns;
        CREATE TABLE turns_v2 (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            prompt TEXT NOT NULL,
            created TEXT NOT NULL
        );
        INSERT INTO turns_v2 (id, conversation_id, prompt, created)
            SELECT id, conversation_id, prompt, created FROM turns;
        DROP TABLE turns;
        ALTER TABLE turns_v2 RENAME TO turns;
        CREATE INDEX turns_by_conversation ON turns(conversation_id);
        CREATE INDEX answers_by_turn ON answers(turn_id);
        CREATE INDEX answers_by_adapter ON answers(adapter);
        CREATE INDEX conversations_by_updated ON conversations(updated);
        """
    )


# MIGRATIONS[i] moves the schema from version i to version i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1, _v1_to_v2]
SCHEMA_VERSION = len(MIGRATIONS)


# Store ------------------------------------------------------------------------------


class HistoryStore:
    """The conversation database. Safe to share between threads: one lock serialises all use."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else history_file()
        self._lock = threading.RLock()
        self._check_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open the history database {self.path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    # Opening ------------------------------------------------------------------------

    def _check_file(self) -> None:
        """Reject a file that is not SQLite before sqlite3 sees it."""
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise HistoryError(f"cannot read the history database {self.path}: {exc}") from None
        if header and header != SQLITE_HEADER:
            raise self._damaged("it is not an SQLite database")

    def _damaged(self, reason: str) -> HistoryDamagedError:
        return HistoryDamagedError(
            f"the history database {self.path} is damaged ({reason}); it was left as it is. "
            f"Move it away to start a new history, or open it with the sqlite3 tool to recover what you can"
        )

    def _open(self) -> None:
        """Check the file's version and integrity, then switch to WAL and migrate.

        Nothing is written before both checks pass, so a rejected file stays byte-identical.
        """
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryVersionError(
                    f"the history database {self.path} has schema version {version}, but this lora-chat "
                    f"reads versions up to {SCHEMA_VERSION}; upgrade lora-chat, or move the file away to "
                    f"start a new history (it was left as it is)"
                )
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            raise self._damaged(str(exc)) from None
        if problems != ["ok"]:
            raise self._damaged("; ".join(problems[:3]))

        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate(version)
            self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"cannot prepare the history database {self.path}: {exc}") from None

    def _migrate(self, version: int) -> None:
        # Table rebuilds in migrations need foreign keys off; SQLite ignores this pragma inside a transaction.
        self._db.execute("PRAGMA foreign_keys = OFF")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while this one waited for the write lock.
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
                if current >= target:
                    self._db.execute("COMMIT")
                    continue
                MIGRATIONS[target - 1](self._db)
                self._db.execute(f"PRAGMA user_version = {target}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            log.info("history database %s migrated to schema version %d", self.path, target)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one write transaction; roll back on any error."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._db

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "malformed" in text or "not a database" in text:
                raise self._damaged(text) from None
            raise HistoryError(f"history database {self.path}: {text}") from None

    # Writing ------------------------------------------------------------------------

    def new_conversation(self, base_model: str, adapter: str | None) -> int:
        stamp = _now()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO conversations (title, base_model, adapter, created, updated) VALUES ('', ?, ?, ?, ?)",
                (base_model, adapter, stamp, stamp),
            )
        return int(cursor.lastrowid)

    def add_turn(self, conversation_id: int, prompt: str, answers: list[dict[str, Any]]) -> int:
        """Store a prompt and its answers (two in compare mode); return the turn id.

        Each answer is a dict with ``adapter``, ``text``, ``cut``, ``settings`` and, optionally, ``stopped``.
        """
        if not answers:
            raise InputError("a turn needs at least one answer")
        stamp = _now()
        with self._transaction() as db:
            row = self._conversation_row(db, conversation_id)
            cursor = db.execute(
                "INSERT INTO turns (conversation_id, prompt, created) VALUES (?, ?, ?)",
                (conversation_id, prompt, stamp),
            )
            turn_id = int(cursor.lastrowid)
            for position, answer in enumerate(answers):
                db.execute(
                    "INSERT INTO answers (turn_id, position, adapter, text, cut, stopped, settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        turn_id,
                        position,
                        answer.get("adapter"),
                        str(answer.get("text", "")),
                        int(bool(answer.get("cut", False))),
                        int(bool(answer.get("stopped", False))),
                        json.dumps(answer.get("settings") or {}, sort_keys=True),
                    ),
                )
            title = row["title"] or default_title(prompt)
            db.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?", (stamp, title, conversation_id))
        return turn_id

    def set_adapter(self, conversation_id: int, adapter: str | None) -> None:
        """Record the adapter the conversation now continues with."""
        with self._transaction() as db:
            self._conversation_row(db, conversation_id)
            db.execute("UPDATE conversations SET adapter = ?, adapter_deleted = 0 WHERE id = ?", (adapter, conversation_id))

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise InputError("a conversation title cannot be empty")
        with self._transaction() as db:
            self._conversation_row(db, conversation_id)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def delete(self, conversation_id: int) -> None:
        with self._transaction() as db:
            self._conversation_row(db, conversation_id)
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def delete_last_turn(self, conversation_id: int) -> StoredTurn | None:
        """Remove the newest turn and return it, or return None when the conversation has none."""
        with self._transaction() as db:
            self._conversation_row(db, conversation_id)
            row = db.execute(
                "SELECT id FROM turns WHERE conversation_id = ? ORDER BY id DESC LIMIT 1", (conversation_id,)
            ).fetchone()
            if row is None:
                return None
            turn = self._turns(db, conversation_id, turn_id=row["id"])[0]
            db.execute("DELETE FROM turns WHERE id = ?", (row["id"],))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (_now(), conversation_id))
        return turn

    def mark_adapter_deleted(self, name: str) -> int:
        """Mark answers and conversations made with adapter ``name`` as made with a deleted adapter.

        Returns the number of conversations that contain such answers or continue with that adapter.
        """
        with self._transaction() as db:
            touched = db.execute(
                "SELECT COUNT(*) FROM conversations WHERE adapter = ? OR id IN "
                "(SELECT t.conversation_id FROM turns t JOIN answers a ON a.turn_id = t.id WHERE a.adapter = ?)",
                (name, name),
            ).fetchone()[0]
            db.execute("UPDATE answers SET adapter_deleted = 1 WHERE adapter = ?", (name,))
            db.execute("UPDATE conversations SET adapter_deleted = 1 WHERE adapter = ?", (name,))
        return int(touched)

    # Reading ------------------------------------------------------------------------

    def _conversation_row(self, db: sqlite3.Connection, conversation_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise ConversationNotFoundError(
                f"no saved conversation with id {conversation_id}; 'lora-chat history list' shows the ids"
            )
        return row

    def _turns(self, db: sqlite3.Connection, conversation_id: int, turn_id: int | None = None) -> list[StoredTurn]:
        query = (
            "SELECT t.id AS turn_id, t.prompt, t.created, a.adapter, a.text, a.cut, a.stopped, a.settings, "
            "a.adapter_deleted FROM turns t JOIN answers a ON a.turn_id = t.id WHERE t.conversation_id = ?"
        )
        params: tuple[Any, ...] = (conversation_id,)
        if turn_id is not None:
            query += " AND t.id = ?"
            params += (turn_id,)
        turns: dict[int, StoredTurn] = {}
        for row in db.execute(query + " ORDER BY t.id, a.position", params):
            turn = turns.get(row["turn_id"])
            if turn is None:
                turn = turns[row["turn_id"]] = StoredTurn(row["turn_id"], row["prompt"], row["created"], [])
            turn.answers.append(
                StoredAnswer(
                    adapter=row["adapter"],
                    text=row["text"],
                    cut=bool(row["cut"]),
                    settings=json.loads(row["settings"] or "{}"),
                    adapter_deleted=bool(row["adapter_deleted"]),
                    stopped=bool(row["stopped"]),
                )
            )
        return list(turns.values())

    def get(self, conversation_id: int) -> Conversation:
        with self._reading() as db:
            row = self._conversation_row(db, conversation_id)
            turns = self._turns(db, conversation_id)
        return Conversation(
            id=row["id"],
            title=row["title"],
            base_model=row["base_model"],
            adapter=row["adapter"],
            created=row["created"],
            updated=row["updated"],
            adapter_deleted=bool(row["adapter_deleted"]),
            turns=turns,
        )

    def list_conversations(self, search: str | None = None) -> list[ConversationSummary]:
        """List conversations, newest first; ``search`` keeps those whose title, prompts or answers contain it."""
        query = (
            "SELECT c.*, "
            "(SELECT prompt FROM turns WHERE conversation_id = c.id ORDER BY id LIMIT 1) AS first_prompt, "
            "(SELECT COUNT(*) FROM turns WHERE conversation_id = c.id) AS turn_count "
            "FROM conversations c"
        )
        params: tuple[Any, ...] = ()
        if search and search.strip():
            pattern = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query += (
                " WHERE c.title LIKE ? ESCAPE '\\' OR c.id IN (SELECT t.conversation_id FROM turns t "
                "JOIN answers a ON a.turn_id = t.id WHERE t.prompt LIKE ? ESCAPE '\\' OR a.text LIKE ? ESCAPE '\\')"
            )
            params = (pattern, pattern, pattern)
        query += " ORDER BY c.updated DESC, c.id DESC"
        with self._reading() as db:
            rows = db.execute(query, params).fetchall()
        return [
            ConversationSummary(
                id=row["id"],
                title=row["title"],
                base_model=row["base_model"],
                adapter=row["adapter"],
                adapter_deleted=bool(row["adapter_deleted"]),
                created=row["created"],
                updated=row["updated"],
                first_prompt=row["first_prompt"] or "",
                turn_count=row["turn_count"],
            )
            for row in rows
        ]

    # Export -------------------------------------------------------------------------

    def export_markdown(self, conversation_id: int) -> str:
        return conversation_markdown(self.get(conversation_id))

    def export_json(self, conversation_id: int) -> str:
        return conversation_json(self.get(conversation_id))

    def export(self, conversation_id: int, path: Path) -> Path:
        """Write the conversation to ``path`` as Markdown (.md) or JSON (.json), atomically."""
        return write_export(self.get(conversation_id), path)


def conversation_markdown(conversation: Conversation) -> str:
    adapter = conversation.adapter or BASE_LABEL
    if conversation.adapter_deleted:
        adapter += " (deleted)"
    lines = [
        f"# {conversation.title or 'Conversation'}",
        "",
        f"- base model: {conversation.base_model}",
        f"- adapter: {adapter}",
        f"- started: {conversation.created}",
        f"- updated: {conversation.updated}",
        "",
    ]
    for turn in conversation.turns:
        lines += [f"**You:** {turn.prompt}", ""]
        for answer in turn.answers:
            notes = []
            if answer.cut:
                notes.append(f"cut at {answer.settings.get('max_new_tokens', 'the')} tokens")
            if answer.stopped:
                notes.append("stopped")
            suffix = f" *({', '.join(notes)})*" if notes else ""
            lines += [f"**{answer.label}:** {answer.text}{suffix}", ""]
    return "\n".join(lines)


def conversation_json(conversation: Conversation) -> str:
    data = {
        "id": conversation.id,
        "title": conversation.title,
        "base_model": conversation.base_model,
        "adapter": conversation.adapter,
        "adapter_deleted": conversation.adapter_deleted,
        "created": conversation.created,
        "updated": conversation.updated,
        "turns": [
            {
                "prompt": turn.prompt,
                "created": turn.created,
                "answers": [
                    {
                        "adapter": a.adapter,
                        "adapter_deleted": a.adapter_deleted,
                        "text": a.text,
                        "cut": a.cut,
                        "stopped": a.stopped,
                        "settings": a.settings,
                    }
                    for a in turn.answers
                ],
            }
            for turn in conversation.turns
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_export(conversation: Conversation, path: Path) -> Path:
    """Write ``conversation`` to ``path``; the suffix (.md or .json) picks the format."""
    from lora_chat.core.fileio import atomic_write_text

    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = conversation_json(conversation)
    elif suffix in (".md", ".markdown"):
        text = conversation_markdown(conversation)
    else:
        raise InputError(f"cannot export to {path}: the file name must end in .md (Markdown) or .json")
    if path.is_dir():
        raise InputError(f"cannot export to {path}: it is a folder; give a file name ending in .md or .json")
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
