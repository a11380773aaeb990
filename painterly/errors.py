"""The one user-facing error type and the process exit codes (STYLE.md pattern 5)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes chosen only in ``cli.main``."""

    OK = 0
    RUNTIME = 1  # the run failed (out of memory, weights unavailable, ...)
    USAGE = 2  # bad input file, bad option value, unknown layer
    INTERRUPTED = 130  # Ctrl-C, after saving the best image so far


class PainterlyError(Exception):
    """An error the user can fix; the CLI prints ``str(err)`` on one line and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
