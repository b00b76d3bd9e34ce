"""Training errors. labeler's CLI prints the message of a TrainingError and exits with code 2, as it
does for its own errors; this package imports nothing from labeler."""


class TrainingError(Exception):
    """The training options or data cannot be used; the message says how to fix it."""
