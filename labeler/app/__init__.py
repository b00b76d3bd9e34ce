"""The review web app (Gradio). ``ReviewApp(workspace)`` builds it; ``.launch()`` serves it."""

from labeler.app.blocks import ReviewApp

__all__ = ["ReviewApp"]
