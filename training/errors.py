"""Training errors; a LabelerError, so the CLI prints the message and exits with code 2."""

from labeler.errors import LabelerError


class TrainingError(LabelerError):
    """The training options or data cannot be used; the message says how to fix it."""
