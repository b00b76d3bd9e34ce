"""Training errors. labeler's CLI prints the message of a TrainingError and exits with code 2, as it
does for its own errors; this package imports nothing from labeler."""


class TrainingError(Exception):
    """The training options or data cannot be used; the message says how to fix it."""


def load_problem(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in a few words: never torch's own advice
    (to load with weights_only=False, which would run the file's code, or to file an issue with PyTorch)."""
    text = str(exc).strip()
    if any(sign in text for sign in ("Unsupported operand", "invalid load key", "could not find MARK", "magic number")):
        return "it is not a PyTorch file"
    if "Weights only load failed" in text:
        return "it holds Python objects, not only tensors, and labeler never runs code from a weights file"
    if "failed finding central directory" in text or "PytorchStreamReader" in text or isinstance(exc, EOFError):
        return "it is truncated or damaged"
    return text.splitlines()[0][:200] if text else type(exc).__name__
