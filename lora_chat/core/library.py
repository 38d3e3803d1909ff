"""The adapter library: one folder per adapter under the data directory.

An adapter folder holds the PEFT files (``adapter_config.json`` and the weights) and
``lora_chat.json`` with what lora-chat knows of it. New adapters are written into a
``.staging-*`` folder and renamed into place in one step, so a folder without the dot
is always complete. Renames and deletes take a file lock, so two copies of the app
cannot interleave them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import struct
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from lora_chat.core import paths
from lora_chat.core.errors import (
    AdapterError,
    AdapterNameError,
    AdapterNotFoundError,
    InputError,
    LibraryBusyError,
    LoraChatError,
)

log = logging.getLogger(__name__)

METADATA_FILE = "lora_chat.json"
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
STAGING_PREFIX = ".staging-"
# Marks a staging folder that contains an adapter on its way out (see AdapterLibrary.delete).
DELETED_MARK = "-deleted-"
# Saving an adapter takes seconds, so a staging folder this old is a leftover even when
# its process id now belongs to a live process (ids are reused after a restart).
STAGING_MAX_AGE_S = 6 * 3600
# Bytes per element of the safetensors dtypes.
SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Names Windows reserves for devices, and "none", which chat uses for the base model.
RESERVED_NAMES = {"con", "prn", "aux", "nul", "none", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def validate_name(name: str) -> str:
    """Return ``name`` if it can name an adapter, else raise AdapterNameError saying why."""
    if not name:
        raise AdapterNameError("adapter name is empty; use letters, digits, '-', '_' and '.'")
    if "/" in name or "\\" in name:
        raise AdapterNameError(f"adapter name {name!r} contains a path separator; use letters, digits, '-', '_' and '.'")
    if len(name) > 64:
        raise AdapterNameError(f"adapter name is {len(name)} characters long; the maximum is 64")
    if name in (".", "..") or name.startswith("."):
        raise AdapterNameError(f"adapter name {name!r} must not start with '.'")
    if name.endswith("."):
        # Windows drops a trailing dot, so such a folder could not be exported there.
        raise AdapterNameError(f"adapter name {name!r} must not end with '.'")
    if not NAME_PATTERN.match(name):
        raise AdapterNameError(f"adapter name {name!r} contains characters other than letters, digits, '-', '_' and '.'")
    if name.split(".")[0].lower() in RESERVED_NAMES:
        raise AdapterNameError(f"adapter name {name!r} is reserved; choose another name")
    return name


def check_safetensors(path: Path) -> None:
    """Raise AdapterError when a safetensors file is cut off or its header is corrupt."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise AdapterError(f"{path} is cut off ({size} bytes)")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > size - 8:
                raise AdapterError(f"{path} is cut off: its header says {header_len} bytes, the file has {size}")
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AdapterError(f"{path} is not a valid safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise AdapterError(f"{path} is not a valid safetensors file (its header is not a JSON object)")
    end = 0
    for key, tensor in header.items():
        if key == "__metadata__":
            continue
        try:
            start, stop = (int(v) for v in tensor["data_offsets"])
            count = math.prod(int(n) for n in tensor["shape"])
            item_size = SAFETENSORS_DTYPE_BYTES[tensor["dtype"]]
        except (TypeError, KeyError, ValueError):
            raise AdapterError(f"{path} is corrupt: the header entry for {key!r} is invalid") from None
        if stop - start != count * item_size:
            raise AdapterError(f"{path} is corrupt: tensor {key!r} takes {stop - start} bytes, its shape needs {count * item_size}")
        end = max(end, stop)
    if 8 + header_len + end > size:
        raise AdapterError(f"{path} is cut off: {8 + header_len + end} bytes expected, {size} found")


def last_checkpoint(folder: Path) -> Path | None:
    """Return the ``checkpoint-N`` subfolder with the highest N that contains an adapter, if any."""
    try:
        checkpoints = [
            p for p in folder.glob("checkpoint-*")
            if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / CONFIG_FILE).is_file()
        ]
    except OSError:
        return None
    return max(checkpoints, key=lambda p: int(p.name.split("-")[-1]), default=None)


def adapter_files_problem(folder: Path) -> str | None:
    """Return why ``folder`` is not a usable PEFT adapter, or None when it looks complete."""
    config = folder / CONFIG_FILE
    if not config.is_file():
        last = last_checkpoint(folder)
        if last is not None:
            return f"contains Trainer checkpoints but no {CONFIG_FILE}; import the last one with: lora-chat adapters import {last} --name NAME"
        return f"missing {CONFIG_FILE}"
    try:
        loaded = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        return f"{CONFIG_FILE} is not valid JSON ({exc})"
    if not isinstance(loaded, dict):
        return f"{CONFIG_FILE} is not a JSON object"
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        return "missing adapter weights (adapter_model.safetensors)"
    if weights[0].suffix == ".safetensors":
        try:
            check_safetensors(weights[0])
        except AdapterError as exc:
            return str(exc).replace(str(weights[0]), weights[0].name)
    return None


@dataclass
class AdapterEntry:
    """One folder of the library: its metadata, or why it is broken."""

    name: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def broken(self) -> bool:
        return self.problem is not None

    @property
    def base_model(self) -> str | None:
        base = self.meta.get("base_model")
        if isinstance(base, dict):
            return base.get("name")
        if base:
            return str(base)
        try:
            return json.loads((self.path / CONFIG_FILE).read_text()).get("base_model_name_or_path")
        except (OSError, ValueError):
            return None

    @property
    def method(self) -> str:
        return str(self.meta.get("method") or self.meta.get("settings", {}).get("method") or "lora")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AdapterLibrary:
    """The adapters under ``root`` (by default ``<data dir>/adapters``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.adapters_dir()

    def ensure_root(self) -> Path:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoraChatError(f"cannot create the adapter library at {self.root} ({exc.strerror or exc}); set LORA_CHAT_HOME to a writable folder") from None
        if not os.access(self.root, os.W_OK):
            raise LoraChatError(f"the adapter library {self.root} is read-only; set LORA_CHAT_HOME to a writable folder")
        return self.root

    @contextlib.contextmanager
    def lock(self, timeout: float = 5.0) -> Iterator[None]:
        """Hold the library lock; raise LibraryBusyError if another process keeps it past ``timeout``."""
        import fcntl

        self.ensure_root()
        with open(self.root / ".lock", "a+") as fh:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                        raise LibraryBusyError(
                            "another lora-chat process is changing the adapter library; try again in a moment"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _entry(self, folder: Path) -> AdapterEntry:
        meta: dict[str, Any] = {}
        problem = adapter_files_problem(folder)
        meta_path = folder / METADATA_FILE
        if meta_path.is_file():
            try:
                loaded = json.loads(meta_path.read_text(encoding="utf-8"))
                meta = loaded if isinstance(loaded, dict) else {}
                if not isinstance(loaded, dict):
                    problem = problem or f"{METADATA_FILE} is not a JSON object"
            except (OSError, ValueError) as exc:
                problem = problem or f"{METADATA_FILE} is not valid JSON ({exc})"
        return AdapterEntry(folder.name, folder, meta, problem)

    def list(self) -> list[AdapterEntry]:
        """List every adapter folder, broken ones included, sorted by name."""
        if not self.root.is_dir():
            return []
        entries = []
        for folder in sorted(self.root.iterdir(), key=lambda p: p.name.lower()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            entries.append(self._entry(folder))
        return entries

    def names(self) -> list[str]:
        return [e.name for e in self.list()]

    def get(self, name: str) -> AdapterEntry:
        folder = self.root / name
        if "/" in name or "\\" in name or name.startswith(".") or not folder.is_dir():
            known = ", ".join(self.names()) or "the library is empty"
            raise AdapterNotFoundError(f"no adapter named {name!r} (adapters: {known}); see 'lora-chat adapters list'")
        return self._entry(folder)

    def check_new_name(self, name: str, renaming: str | None = None) -> str:
        """Raise AdapterNameError unless ``name`` is valid and no other adapter has it, ignoring case.

        Case is ignored because the library may be copied to a file system that ignores it
        (macOS, Windows), where "Greet" and "greet" would be one folder.
        """
        validate_name(name)
        clash = (self.root / name).exists() and name != renaming
        if not clash and self.root.is_dir():
            clash = any(
                p.name.lower() == name.lower() and p.name != renaming
                for p in self.root.iterdir()
                if not p.name.startswith(".")
            )
        if clash:
            raise AdapterNameError(f"an adapter named {name!r} already exists; choose another name or delete it first")
        return name

    # Staging --------------------------------------------------------------------------

    def new_staging(self) -> Path:
        """Create an empty staging folder that a crash leaves hidden from :meth:`list`."""
        self.ensure_root()
        folder = self.root / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def commit_staging(self, staging: Path, name: str) -> AdapterEntry:
        """Rename a finished staging folder to ``name`` in one step."""
        with self.lock():
            self.check_new_name(name)
            os.rename(staging, self.root / name)
        return self.get(name)

    def clean_staging(self) -> list[Path]:
        """Remove staging folders left by processes that are gone; return what was removed."""
        removed = []
        if not self.root.is_dir():
            return removed
        for folder in self.root.glob(f"{STAGING_PREFIX}*"):
            pid_text = folder.name[len(STAGING_PREFIX) :].split("-")[0]
            try:
                recent = time.time() - folder.stat().st_mtime < STAGING_MAX_AGE_S
            except OSError:
                continue
            if pid_text.isdigit() and _pid_alive(int(pid_text)) and int(pid_text) != os.getpid() and recent:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed leftover staging folder %s", folder)
            removed.append(folder)
        return removed

    # Changes --------------------------------------------------------------------------

    def rename(self, old: str, new: str) -> AdapterEntry:
        with self.lock():
            entry = self.get(old)
            self.check_new_name(new, renaming=old)
            os.rename(entry.path, self.root / new)
            renamed = self._entry(self.root / new)
            if renamed.meta:
                renamed.meta["name"] = new
                self.write_metadata(renamed.path, renamed.meta)
        return renamed

    def delete(self, name: str) -> None:
        """Delete an adapter folder: first rename it to a hidden name, then remove it."""
        with self.lock():
            entry = self.get(name)
            trash = self.root / f"{STAGING_PREFIX}{os.getpid()}{DELETED_MARK}{uuid.uuid4().hex[:8]}"
            os.rename(entry.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        if trash.exists():  # pragma: no cover - rmtree failures are left for clean_staging
            log.warning("could not remove all of %s; it will be removed at the next start", trash)

    def write_metadata(self, folder: Path, meta: dict[str, Any]) -> None:
        from lora_chat.core.fileio import atomic_write_text

        atomic_write_text(folder / METADATA_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")

    def import_folder(self, source: Path, name: str) -> AdapterEntry:
        """Copy the adapter files of a PEFT folder, Trainer checkpoint or exported .zip into the library."""
        source = Path(source).expanduser()
        validate_name(name)
        if source.is_file() and source.suffix.lower() == ".zip":
            return self._import_zip(source, name)
        if not source.is_dir():
            raise InputError(f"{source} is not a folder; give the folder that contains {CONFIG_FILE}")
        if not (source / CONFIG_FILE).is_file():
            last = last_checkpoint(source)
            if last is not None:
                raise InputError(
                    f"{source} contains Trainer checkpoints but no {CONFIG_FILE}; import the last one with: "
                    f"lora-chat adapters import {last} --name {name}"
                )
            raise InputError(f"{source} has no {CONFIG_FILE}; give a folder saved by peft's save_pretrained")
        problem = adapter_files_problem(source)
        if problem:
            raise AdapterError(f"{source} cannot be imported: {problem}")

        config = json.loads((source / CONFIG_FILE).read_text(encoding="utf-8"))
        self.check_new_name(name)
        staging = self.new_staging()
        try:
            for file_name in (CONFIG_FILE, *WEIGHT_FILES, METADATA_FILE):
                if (source / file_name).is_file():
                    shutil.copy2(source / file_name, staging / file_name)
            meta: dict[str, Any] = {}
            if (staging / METADATA_FILE).is_file():
                try:
                    meta = json.loads((staging / METADATA_FILE).read_text(encoding="utf-8"))
                except ValueError:
                    meta = {}
                if not isinstance(meta, dict):
                    meta = {}
            meta.update(
                name=name,
                imported_from=str(source.resolve()),
                imported=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
            meta.setdefault("created", meta["imported"])
            meta.setdefault("base_model", {"name": config.get("base_model_name_or_path")})
            meta.setdefault("method", str(config.get("peft_type", "LORA")).lower().replace("_", "-"))
            self.write_metadata(staging, meta)
            return self.commit_staging(staging, name)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise LoraChatError(
                f"importing {source} failed ({exc.strerror or exc}); nothing was added to the library; "
                f"check the free space and permissions of {self.root}"
            ) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _import_zip(self, archive: Path, name: str) -> AdapterEntry:
        """Import from a .zip holding one adapter folder (as ``export`` writes) or the files at its top."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lora-chat-import-") as tmp:
            try:
                with zipfile.ZipFile(archive) as zipped:
                    members = [m for m in zipped.namelist() if not m.endswith("/")]
                    unsafe = [m for m in members if m.startswith(("/", "\\")) or ".." in Path(m).parts]
                    if unsafe:
                        raise InputError(f"{archive} contains paths outside its folder ({unsafe[0]}); it cannot be imported")
                    zipped.extractall(tmp)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(f"{archive} is not a readable .zip file ({exc})") from None
            configs = sorted(Path(tmp).rglob(CONFIG_FILE), key=lambda p: len(p.parts))
            if not configs:
                raise InputError(f"{archive} contains no {CONFIG_FILE}; give a .zip written by 'lora-chat adapters export'")
            return self.import_folder(configs[0].parent, name)

    def export(self, name: str, dest: Path) -> Path:
        """Copy an adapter to a folder, or to a .zip file when ``dest`` ends in .zip."""
        entry = self.get(name)
        if entry.broken:
            raise AdapterError(f"adapter {name!r} is broken ({entry.problem}); it cannot be exported")
        dest = Path(dest).expanduser()
        files = [p for p in sorted(entry.path.iterdir()) if p.is_file()]
        try:
            if dest.suffix.lower() == ".zip":
                if dest.exists():
                    raise InputError(f"{dest} already exists; choose another file name")
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
                    for path in files:
                        archive.write(path, f"{name}/{path.name}")
                os.replace(tmp, dest)
                return dest
            target = dest / name if dest.is_dir() else dest
            if target.exists():
                raise InputError(f"{target} already exists; choose another destination")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(entry.path, target)
            return target
        except OSError as exc:
            raise LoraChatError(f"cannot export to {dest} ({exc.strerror or exc})") from None
