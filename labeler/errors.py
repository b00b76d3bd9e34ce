"""Errors the user can act on. The CLI turns each into exit code 2 and its message."""

import errno
import sqlite3


class LabelerError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class InputError(LabelerError):
    """The dataset or a file given on the command line cannot be used as it is."""


class WorkspaceError(LabelerError):
    """The workspace is missing, already exists, or is in a state that forbids the command."""


class ArrayError(LabelerError):
    """A stored array is missing, changed since it was recorded, or has the wrong shape."""


class Problem(str):
    """Why a record is quarantined: the text stored and shown (it is a ``str``), and a stable ``code`` that
    the import summary counts by (the text names rows and values, so it cannot be grouped on)."""

    code: str

    def __new__(cls, code: str, text: str):
        problem = super().__new__(cls, text)
        problem.code = code
        return problem

    def __getnewargs__(self):  # pickled across the image-check processes
        return self.code, str(self)


def explain(exc: BaseException) -> LabelerError | None:
    """A clear error for the system failures a user can fix (full disk, read-only files, a damaged
    database); None for anything else (a bug, which keeps its traceback)."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {exc.filename}" if exc.filename else ""
        return LabelerError(
            f"the disk is full{where}; free some space and run the command again "
            "(the workspace keeps every finished step)"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and exc.filename:
        return LabelerError(f"cannot write {exc.filename}: {exc.strerror}; choose a writable place")
    if isinstance(exc, RuntimeError) and ("failed writing" in text or "No space left" in text):
        return LabelerError(
            f"could not write a model file ({text.splitlines()[0]}); is the disk full? "
            "Free some space and rerun with --resume"
        )
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in text:
        return LabelerError(
            "the disk holding the workspace is full; free some space and run the command again "
            "(SQLite rolled the unfinished write back)"
        )
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in text:
        return LabelerError("the workspace is read-only (folder, file or mount); this command writes to it")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return LabelerError(
            f"the workspace database is damaged ({text}); restore labeler.db from a backup "
            "(keep any labeler.db-wal beside it) or re-import into a new workspace"
        )
    return None
