"""Which failures are the user's to fix, and how to say them in one line."""

from __future__ import annotations


def user_facing(exc: BaseException) -> str | None:
    """A one-line message for errors a user can act on; None for bugs (let them raise)."""
    from assistant.embeddings import ModelError
    from assistant.ingest import IngestBusy
    from assistant.settings import SettingsError
    from assistant.store import StoreError

    known: tuple[type[BaseException], ...] = (ModelError, IngestBusy, SettingsError, StoreError)
    try:
        from assistant.chain import IndexMissing

        known = (*known, IndexMissing)
    except ImportError:
        pass
    if isinstance(exc, known):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"
    return None
