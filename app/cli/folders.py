"""Output folders given on the command line, checked before any work: a bad one is a usage error (exit 2)
at once, never a failure after minutes of work."""

from __future__ import annotations

import os
from pathlib import Path

from app.core.errors import UsageError


def writable_folder(path: Path, option: str) -> None:
    """``path`` is a folder this process can write in (made if missing), or a usage error saying why not."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: the folder cannot be made ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: this user cannot write in it")


def writable_file(path: Path, option: str) -> None:
    """``path`` can be written as a file: not a folder, in a folder this process can write in."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder, not a file")
    writable_folder(path.parent, f"{option} {path}: its folder")
