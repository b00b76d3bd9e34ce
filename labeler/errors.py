"""Errors the user can act on. The CLI turns each into exit code 2 and its message."""


class LabelerError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class InputError(LabelerError):
    """The dataset or a file given on the command line cannot be used as it is."""


class WorkspaceError(LabelerError):
    """The workspace is missing, already exists, or is in a state that forbids the command."""


class ArrayError(LabelerError):
    """A stored array is missing, changed since it was recorded, or has the wrong shape."""
