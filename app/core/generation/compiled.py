"""The compiled kernels (_native.c: line writers, counter hashing), or None where the extension was not
built (no C compiler at install): numpy then does the same work, to the same bytes."""

from __future__ import annotations

from types import ModuleType

native: ModuleType | None
try:
    from app.core.generation import _native as native
except ImportError:
    native = None
