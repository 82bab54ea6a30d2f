"""Ctrl-C said in one line: what is saved and how to resume, instead of a traceback.

Nothing here imports the rest of kdlib, so the loop (``checkpoint.says_interrupt``) and the image store's build both
raise it.
"""

from __future__ import annotations


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a kernel interrupt), said in one line: what is saved and how to resume. Still a KeyboardInterrupt,
    so nothing catches it as an error; IPython shows its line instead of a traceback."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def _render_traceback_(self) -> list[str]:  # IPython's hook for an exception's own rendering
        return [f"interrupted: {self.message}"]
