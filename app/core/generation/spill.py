"""A large window's defect plan kept in a temporary file and read back a part's defects at a time.

A window made in parts draws its defects for the whole batch before its first part is written, so its plan
grows with the window (~40 bytes a defect: 62 MB for the 1.5 M defects of a 10 M-event window at 15 %).
Spilled next to the batch's staged files, what stays in memory is a sample of each sorted row column (one
value in ``STRIDE``), and a part reads only its own defects (``restrict``). The file is unlinked from the
start, so it leaves nothing behind, whatever ends the process.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from app.core.generation.columns import DefectTarget
from app.core.generation.defects import DefectPlan, FieldOverride

STRIDE = 4096  # rows of a sorted column between two of its values held in memory


@dataclass(frozen=True)
class _Column:
    offset: int  # in the file, bytes
    length: int  # rows
    dtype: np.dtype[Any]
    width: tuple[int, ...]  # the shape of a row ((): a scalar)
    marks: np.ndarray  # a sorted column's every STRIDE-th value (empty for the others)

    @property
    def row_bytes(self) -> int:
        return int(self.dtype.itemsize * int(np.prod(self.width, dtype=np.int64)))


class SpilledPlan:
    """A ``DefectPlan`` written to an unlinked file in ``folder``; ``restrict`` reads it a part at a time."""

    def __init__(self, plan: DefectPlan, folder: Path) -> None:
        self._file: BinaryIO = tempfile.TemporaryFile(dir=folder, prefix=".defects-")
        self._end = 0
        self.corrupted_count = plan.corrupted_count
        self._counts = plan.counts()
        self.targets: list[DefectTarget] = plan.targets
        try:
            self._rows = self._put(plan.rows, sorted_rows=True)
            self._kinds, self._codes = self._put(plan.kinds), self._put(plan.target_codes)
            self._duplicate_of = self._put(plan.duplicate_of)
            self._overrides = {name: (self._put(o.rows, sorted_rows=True), self._put(o.values))
                               for name, o in plan.overrides.items()}
            self._absent = {name: self._put(rows, sorted_rows=True) for name, rows in plan.absent.items()}
            self._file.flush()
        except BaseException:
            self.close()
            raise

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def restrict(self, lo: int, hi: int) -> DefectPlan:
        """The defects of rows [lo, hi), renumbered from 0, as ``defects.restrict`` gives them."""
        a, b = self._position(self._rows, lo), self._position(self._rows, hi)
        part = DefectPlan(rows=self._read(self._rows, a, b) - lo, kinds=self._read(self._kinds, a, b),
                          target_codes=self._read(self._codes, a, b), targets=self.targets,
                          duplicate_of=self._read(self._duplicate_of, a, b))
        if b > a:
            for name, (rows, values) in self._overrides.items():
                c, d = self._position(rows, lo), self._position(rows, hi)
                if d > c:
                    part.overrides[name] = FieldOverride(self._read(rows, c, d) - lo, self._read(values, c, d))
            for name, absent in self._absent.items():
                c, d = self._position(absent, lo), self._position(absent, hi)
                if d > c:
                    part.absent[name] = self._read(absent, c, d) - lo
        return part

    def close(self) -> None:
        self._file.close()

    def _put(self, values: np.ndarray, sorted_rows: bool = False) -> _Column:
        data = np.ascontiguousarray(values)
        column = _Column(self._end, len(data), data.dtype, data.shape[1:],
                         data[::STRIDE].copy() if sorted_rows else data[:0].copy())
        view = _bytes(data)
        written = 0
        while written < len(view):
            written += self._file.write(view[written:])
        self._end += len(view)
        return column

    def _read(self, column: _Column, a: int, b: int) -> np.ndarray:
        out = np.empty((max(b - a, 0), *column.width), column.dtype)
        view = _bytes(out)
        at, fd = column.offset + a * column.row_bytes, self._file.fileno()
        done = 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], at + done)
            if got == 0:
                raise OSError(f"the spilled defect plan ends early ({self._file.name}: {at + done} bytes)")
            done += got
        return out

    def _position(self, column: _Column, value: int) -> int:
        """Where ``value`` goes in a sorted column (numpy's searchsorted, side left), reading one stride of it."""
        i = int(np.searchsorted(column.marks, value))  # marks[i - 1] < value <= marks[i]
        if i == 0:
            return 0
        a, b = (i - 1) * STRIDE, min(i * STRIDE, column.length)
        return a + int(np.searchsorted(self._read(column, a, b), value))


def _bytes(array: np.ndarray) -> memoryview:
    """A contiguous array's bytes, written or read in place."""
    return array.reshape(-1).view(np.uint8).data
