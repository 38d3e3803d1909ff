"""Typed errors whose messages tell the user what went wrong and what to do."""

from __future__ import annotations


class LoraChatError(Exception):
    """Base class of every error the product reports to the user."""

    exit_code = 1


class InputError(LoraChatError):
    """The user's input (a file, a name, an option) is invalid."""

    exit_code = 2


class DatasetError(InputError):
    """A dataset file cannot be read or cannot be trained on."""


class SettingsError(InputError):
    """A setting has an invalid value."""


class AdapterNameError(InputError):
    """An adapter name is invalid or already taken."""


class AdapterNotFoundError(InputError):
    """No adapter of that name is in the library."""


class AdapterError(LoraChatError):
    """An adapter folder is broken or cannot be used."""


class BaseModelMismatchError(InputError):
    """An adapter was trained on another base model than the one loaded."""


class ModelNotFoundError(LoraChatError):
    """The base model is neither cached nor reachable."""


class TrainingError(LoraChatError):
    """Training failed (for example, the loss became NaN)."""


class TrainingCancelled(LoraChatError):
    """Training was stopped on request; nothing was added to the library."""


class DiskSpaceError(LoraChatError):
    """Too little free disk space to save."""


class LibraryBusyError(LoraChatError):
    """Another lora-chat process holds the library lock."""


class HistoryError(LoraChatError):
    """The conversation history database cannot be read or written."""


class HistoryDamagedError(HistoryError):
    """The history database file is not a valid SQLite database or fails its integrity check."""


class HistoryVersionError(HistoryError):
    """The history database was written by a newer lora-chat with a schema this version cannot read."""


class ConversationNotFoundError(InputError):
    """No saved conversation has that id."""
