"""A workspace folder: ``labeler.db`` + ``arrays/`` + ``models/`` + ``reports/``.

The database (see ``store``) holds the items, the pinned classes, decisions, rounds and
flags; arrays (pred_probs, embeddings) are .npy files under ``arrays/`` whose path, shape
and sha256 the store records, so a changed file is noticed before it is used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from labeler.errors import ArrayError, WorkspaceError
from labeler.files import atomic_open
from labeler.store import ArrayRecord, Store

DB_NAME = "labeler.db"
SUBFOLDERS = ("arrays", "models", "reports")


class Workspace:
    """An open workspace; use ``Workspace.open`` or ``Workspace.create``."""

    def __init__(self, path: Path, store: Store):
        self.path = path
        self.store = store

    @staticmethod
    def check_creatable(path: str | Path, *, force: bool = False) -> None:
        """Raise unless ``path`` is new, an empty folder, or (with ``force``) an existing workspace."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise WorkspaceError(f"{path} is a file; choose a new folder for the workspace")
        if (path / DB_NAME).exists():
            with Store.open(path / DB_NAME, readonly=True) as store:
                items, source = store.count_items(), store.get_meta("source")
                decisions = len(store.decisions())
            if force or (source is None and items == 0):  # an interrupted import left only the schema: start again
                return
            raise WorkspaceError(
                f"{path} already holds an import of {source or '?'} ({items} items, {decisions} decisions); "
                "pass --force to re-import (decisions are kept and re-attached by image path), "
                "or choose a new workspace folder"
            )
        if path.is_dir() and any(path.iterdir()):
            raise WorkspaceError(f"{path} is a folder with files in it but no {DB_NAME}; choose a new or empty folder")

    @classmethod
    def create(cls, path: str | Path, *, force: bool = False) -> Workspace:
        cls.check_creatable(path, force=force)
        path = Path(path)
        for sub in SUBFOLDERS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        return cls(path, Store.open(path / DB_NAME, create=True))

    @staticmethod
    def check(path: str | Path) -> Path:
        """``path``, refused (WorkspaceError) unless it holds a workspace: cheap, for commands to say it first."""
        path = Path(path)
        if not (path / DB_NAME).exists():
            raise WorkspaceError(f"{path} is not a labeler workspace (no {DB_NAME}); create one with `labeler import`")
        return path

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Workspace:
        """Open an imported workspace (``readonly``: for commands that only read it; works on read-only mounts)."""
        path = cls.check(path)
        store = Store.open(path / DB_NAME, readonly=readonly)
        if store.get_meta("source") is None:
            store.close()
            raise WorkspaceError(
                f"{path} holds no finished import (an earlier `labeler import` was interrupted); run it again"
            )
        return cls(path, store)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The folder image files are relative to."""
        return Path(self.store.get_meta("root"))

    def image_path(self, file: str) -> Path:
        """The absolute path of an item's file; refuses anything that resolves outside the root."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(os.path.join(root, file))
        if not real.startswith(root + os.sep):
            raise WorkspaceError(f"{file!r} resolves outside the dataset root {root}; refused")
        return Path(real)

    def pick_round(self, round_id: int | None = None, *, trained: bool = False):
        """The latest round, or round ``round_id``; with ``trained``, among the rounds that saved models.
        A clear error when there is none."""
        what = "trained round" if trained else "round"
        rounds = [r for r in self.store.rounds() if not trained or r.params.get("model_dir")]
        if not rounds:
            raise WorkspaceError(f"{self.path} has no {what} yet; run `labeler train {self.path}` first")
        chosen = rounds[-1] if round_id is None else next((r for r in rounds if r.id == round_id), None)
        if chosen is None:
            raise WorkspaceError(
                f"{self.path} has no {what} {round_id} (rounds: {', '.join(str(r.id) for r in rounds)})"
            )
        return chosen

    # -- arrays -------------------------------------------------------------------------
    def record_round(self, kind: str, params: dict, metrics: dict, arrays: dict) -> int:
        """Write ``arrays`` ({name: ndarray}) atomically to arrays/, then record the round and them at once."""
        round_id = self.store.next_round_id()
        records = [self._write_array(round_id, name, array) for name, array in arrays.items()]
        return self.store.add_round(kind, params, metrics, records)

    def add_arrays(self, round_id: int, arrays: dict) -> None:
        """Write ``arrays`` for an existing round (replacing any of the same name): files first, then the records."""
        self.store.put_arrays([self._write_array(round_id, name, array) for name, array in arrays.items()])

    def _write_array(self, round_id: int, name: str, array) -> ArrayRecord:

        rel = f"arrays/round-{round_id:03d}-{name}.npy"
        target = self.path / rel
        with atomic_open(target) as fh:
            np.save(fh, array)
        return ArrayRecord(round_id, name, rel, tuple(array.shape), str(array.dtype), _sha256(target))

    def load_array(self, round_id: int, name: str, *, blocks: bool = False):
        """Load a recorded array, refusing one whose file changed since it was recorded; with ``blocks``, a
        ``BlockReader`` instead (large embedding spaces: read a block of rows at a time, never all in memory)."""

        rec = self.store.arrays(round_id).get(name)
        if rec is None:
            raise ArrayError(f"round {round_id} has no {name} array; run `labeler train` first")
        target = self.path / rec.path
        if not target.exists():
            raise ArrayError(f"{target} is missing (recorded for round {round_id}); re-run `labeler train`")
        if _sha256(target) != rec.sha256:
            raise ArrayError(
                f"{target} changed since round {round_id} recorded it (sha256 differs); refusing to use it"
            )
        return BlockReader(target) if blocks else np.load(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class BlockReader:
    """A C-ordered .npy file read a block of leading-axis rows at a time with plain file reads: unlike a memory map,
    what it has read does not stay in the process's memory. ``reader[i]`` of a 3-d array is the 2-d reader of its
    i-th slice; ``reader.block(start, stop)`` reads rows ``start:stop`` into a new array."""

    def __init__(self, path: Path, *, shape=None, dtype=None, offset: int | None = None):

        self.path = Path(path)
        if shape is None:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(fh)
                if fortran:
                    raise ArrayError(f"{self.path} is Fortran-ordered; re-run `labeler train`")
                offset = fh.tell()
        self.shape, self.dtype, self.offset = tuple(shape), np.dtype(dtype), offset
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> BlockReader:

        if self.ndim < 3:
            raise TypeError("index a 3-d reader for a 2-d one; read rows with block(start, stop)")
        if not 0 <= i < self.shape[0]:
            raise IndexError(i)
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        return BlockReader(self.path, shape=self.shape[1:], dtype=self.dtype, offset=self.offset + i * row_bytes)

    def block(self, start: int, stop: int):

        stop = min(stop, self.shape[0])
        per_row = int(np.prod(self.shape[1:], dtype=np.int64))
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + start * per_row * self.dtype.itemsize)
            data = np.fromfile(fh, dtype=self.dtype, count=max(stop - start, 0) * per_row)
        return data.reshape((max(stop - start, 0), *self.shape[1:]))
