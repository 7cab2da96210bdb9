"""The compiled line writers (_lines.c), or None where the extension was not built (no C compiler at
install): the numpy renderers then write every line, the same bytes."""

from __future__ import annotations

from types import ModuleType

lines: ModuleType | None
try:
    from app.core.generation import _lines as lines
except ImportError:
    lines = None
