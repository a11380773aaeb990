"""The local executor: every unit in this process, one after another, with one painter (one loaded model)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence

from painterly.jobs.units import Outcome, Unit, attempt


def run_units(units: Sequence[Unit], paint_unit: Callable[[Unit], None], progress: Callable[[Outcome], None]) -> None:
    """``paint_unit(unit)`` for each unit in order; ``progress(outcome)`` after each. Ctrl-C stops the loop
    (the units not reached stay pending in the manifest)."""
    worker = f"{socket.gethostname()}:local"
    for unit in units:
        progress(attempt(paint_unit, unit, worker))


def local_executor(painter: Callable[[], Callable[[Unit], None]]) -> Callable:
    """An executor for ``units.run_job``: builds the painter once (loading its model), then runs the units."""

    def execute(units: Sequence[Unit], progress: Callable[[Outcome], None]) -> None:
        run_units(units, painter(), progress)

    return execute
