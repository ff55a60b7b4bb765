"""User-facing errors: one base class, and how to say any failure a user can act on in one line."""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can act on (bad input, a missing index, a busy ingest, a bad setting).

    Interfaces print or return its message; they never show a traceback for it.
    """


def user_facing(exc: BaseException) -> str | None:
    """A one-line message for errors a user can act on; None for bugs (let them raise)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"
    return None
