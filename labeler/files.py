"""Files written so that a crash never leaves a half-written one: temporary file, fsync, rename.

One implementation, in ``training.files`` (a light module: ``training`` imports nothing from
labeler, and both write their files through it)."""

from training.files import atomic_open

__all__ = ["atomic_open"]
