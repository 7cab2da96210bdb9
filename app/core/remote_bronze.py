"""Bronze batches on object storage: uploaded from local staging file by file, ``_SUCCESS`` last."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from app.core.storage import ObjectStore

SUCCESS_FILE, META_FILE = "_SUCCESS", "_batch_meta.json"
_BATCH = re.compile(r"^raw/(companies|events)/(?:(\d{8}T\d{6}Z)|date=[^/]+/hour=[^/]+/batch_id=(\d{8}T\d{6}Z))/[^/]+$")


class RemoteBronze:
    """The object-storage side of a layout: every path here is relative to the bronze root."""

    def __init__(self, store: ObjectStore):
        self.store = store

    @cached_property
    def fs(self) -> Any:
        return self.store.filesystem()

    def publish(self, staging: Path, relative: str, names: Iterable[str], matches: Callable[[dict[str, Any]], bool],
                checkpoint: Callable[[], None]) -> bool:
        """Upload a staged batch to ``relative``; True when an identical batch was already there (adopted).

        A copy already visible there with other bytes is first made invisible (its ``_SUCCESS`` deleted),
        objects of it this batch does not have are removed, then each file is PUT (records and sidecars,
        the meta file last) and ``_SUCCESS`` after them. ``checkpoint`` may abandon the batch between
        uploads; until ``_SUCCESS`` lands nothing of it counts as published."""
        target = self.store.path(relative)
        present = self._names_under(target)
        if SUCCESS_FILE in present:
            meta = self.read_meta(relative)
            if meta is not None and matches(meta):
                return True
            self.fs.rm_file(f"{target}/{SUCCESS_FILE}")
        ordered = sorted(names, key=lambda name: name == META_FILE)  # the meta file last among the files
        for stale in sorted(present - set(ordered) - {SUCCESS_FILE}):
            self.fs.rm_file(f"{target}/{stale}")
        for name in ordered:
            checkpoint()
            self.upload_file(staging / name, f"{target}/{name}")
        checkpoint()
        self.fs.pipe_file(f"{target}/{SUCCESS_FILE}", b"")
        return False

    def upload_file(self, source: Path, destination: str) -> None:
        """One object PUT (multipart for a large file; visible only once complete)."""
        self.fs.put_file(str(source), destination)

    def read_bytes(self, relative: str) -> bytes:
        return bytes(self.fs.cat_file(self.store.path(relative)))

    def read_meta(self, relative: str) -> dict[str, Any] | None:
        try:
            meta = orjson.loads(self.read_bytes(f"{relative}/{META_FILE}"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def objects(self, relative: str = "raw") -> dict[str, int]:
        """{path relative to the bronze root: size in bytes} of every object under ``relative``."""
        prefix = self.store.path(relative)
        root = self.store.root + "/"
        try:
            found = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return {}
        return {path[len(root):]: int(info.get("size") or 0) for path, info in sorted(found.items())
                if path.startswith(root)}

    def batches(self, stream: str | None = None,
                objects: Iterable[str] | None = None) -> dict[tuple[str, str], list[str]]:
        """{(stream, batch folder relative to the root): its objects} for every batch folder, committed
        or not, in either layout; from ``objects`` when the caller listed them already."""
        found: dict[tuple[str, str], list[str]] = {}
        for path in self.objects("raw") if objects is None else objects:
            match = _BATCH.match(path)
            if match and (stream is None or match.group(1) == stream):
                found.setdefault((match.group(1), path.rsplit("/", 1)[0]), []).append(path)
        return found

    def committed(self, stream: str) -> list[tuple[str, str]]:
        """(batch_id, folder) of the batches of ``stream`` that carry ``_SUCCESS``, sorted by batch_id."""
        done = []
        for (_, folder), paths in self.batches(stream).items():
            if f"{folder}/{SUCCESS_FILE}" in paths:
                done.append((folder.rsplit("/", 1)[1].removeprefix("batch_id="), folder))
        return sorted(done)

    def remove(self, paths: list[str]) -> None:
        """Delete objects (relative paths); markers first, so no batch is ever visible in part."""
        markers = [p for p in paths if p.endswith("/" + SUCCESS_FILE)]
        for group in (markers, [p for p in paths if not p.endswith("/" + SUCCESS_FILE)]):
            if group:
                self.fs.rm([self.store.path(p) for p in group])

    def _names_under(self, target: str) -> set[str]:
        try:
            return {entry.rsplit("/", 1)[1] for entry in self.fs.ls(target, detail=False)}
        except FileNotFoundError:
            return set()
