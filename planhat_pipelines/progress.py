"""Progress lines of running syncs on the command line: one updating bar on a terminal, plain lines otherwise.

The engines describe their progress in one line each (``UsageProgress.describe()``,
``CrmProgress.describe()``), which the assets log to the run's Dagster log. The CLI receives those log
lines (see :func:`planhat_pipelines.demo.run.run_all`) and hands them to a :class:`ProgressPrinter`. No
Dagster import here: this is plain text handling.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from collections.abc import Iterator
from typing import TextIO

#: A progress line as the engines write it: ``<section> (<phase>): ... <n> rows/s ...``. The phases are the
#: usage engine's (retry, lookback, range, invalid keys) and the CRM sync's (read, write, send); the other
#: lines the assets log (``companies: read 500 rows ...``) have no phase in parentheses.
PROGRESS_LINE = re.compile(r"^[\w.-]+ \((?:retry|lookback|range|invalid keys|read|validate|write|send)\): .* rows/s")
#: The share done, when a line states it (``(40%)``).
_PERCENT = re.compile(r"\((\d{1,3})%")
_BAR_WIDTH = 20
#: The width of the marker that moves along the bar when a line states no share done.
_MARKER = 4


def is_progress_line(text: str) -> bool:
    """Whether ``text`` is an engine's progress line (and not another line an asset logged)."""
    return PROGRESS_LINE.match(text) is not None


class ProgressPrinter:
    """Shows progress lines: on a terminal one line rewritten in place (``\\r``), elsewhere one line each.

    A log file or a pipe gets every line as it is (so a CI log shows movement); a terminal gets a text bar
    and the latest line, cut to the terminal's width so the ``\\r`` rewrites it instead of wrapping.

    Use :func:`stderr_printer` for the process's standard error while Dagster runs steps in process.

    Args:
        stream: Where to write.
        tty: Force terminal mode on or off (default: whether ``stream`` is a terminal, asked once here).
    """

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.is_tty = stream.isatty() if tty is None else tty
        self._shown = 0  # characters of the updating line on screen (0: none)
        self._ticks = 0

    def update(self, line: str) -> None:
        """Show one progress line."""
        if not self.is_tty:
            self.stream.write(line + "\n")
            self.stream.flush()
            return
        width = max(shutil.get_terminal_size((100, 24)).columns - 1, 20)
        text = f"{self._bar(line)} {line}"[:width]
        # Spaces over what is left of a longer previous line: plain '\r' does not clear it.
        self.stream.write("\r" + text + " " * max(self._shown - len(text), 0))
        self.stream.flush()
        self._shown = len(text)

    def finish(self) -> None:
        """End the updating line, so what is printed next starts on a line of its own (a no-op when none)."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0

    def _bar(self, line: str) -> str:
        """``[#####-----]  25%`` from the share the line states; without one, a marker that moves each update."""
        match = _PERCENT.search(line)
        if match:
            share = min(int(match.group(1)), 100)
            filled = _BAR_WIDTH * share // 100
            return f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {share:3d}%"
        # The line says how far it got (rows, key of the range's end) but not which share of the work that is.
        start = self._ticks % (_BAR_WIDTH - _MARKER + 1)
        self._ticks += 1
        cells = " " * start + "#" * _MARKER
        return f"[{cells.ljust(_BAR_WIDTH)}]  ...."


@contextlib.contextmanager
def stderr_printer() -> Iterator[ProgressPrinter]:
    """A printer on the terminal or file standard error is *now*, for the runs that follow.

    While a step runs, Dagster's compute-log capture points file descriptor 2 at a pipe into its log files,
    so ``sys.stderr`` would be no terminal then (no bar), and every bar update would land in the run's
    stderr log in the UI (which has the lines already, in its event log). A duplicate of the descriptor,
    taken before any run, still writes where standard error went. Streams without a descriptor (a test's
    captured ``sys.stderr``) are used as they are.
    """
    try:
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield ProgressPrinter(sys.stderr)
        return
    with open(fd, "w", encoding=sys.stderr.encoding or "utf-8", errors="replace") as stream:
        printer = ProgressPrinter(stream)
        try:
            yield printer
        finally:
            printer.finish()
