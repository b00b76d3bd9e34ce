"""The review web app (Gradio). ``build_app(workspace)`` returns the Blocks; ``launch(app)`` serves it."""

from labeler.app.blocks import build_app, launch

__all__ = ["build_app", "launch"]
