"""The metadata store: the only code that opens a Session."""

from app.store.store import Store

__all__ = ["Store"]
