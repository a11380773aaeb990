"""Units of work and the manifest that makes a job resumable: nothing lost, nothing done twice.

A unit is one input (an image, a sweep cell, a video segment) + its config + its output path. The manifest,
``painterly-manifest.jsonl`` beside the outputs, holds one JSON record per unit: its input, the config hash,
status (pending | done | failed), the one-line error, the output. Only the driver writes it: at the start one
atomic rewrite (compacted: the last record of each unit), then one appended line per finished unit, so a job
killed at any moment leaves a manifest whose last, possibly torn, line is simply ignored on reading."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from painterly.config import RunConfig
from painterly.errors import ExitCode, PainterlyError
from painterly.media.outputs import atomic_write_bytes

MANIFEST_NAME = "painterly-manifest.jsonl"
Status = Literal["pending", "done", "failed"]


@dataclass(frozen=True)
class Unit:
    """One piece of work: ``content``/``style``/``mask`` painted with ``cfg`` into ``output``, starting from
    ``init`` (a picture) when given.

    ``name`` is the unit's key in the manifest (unique in the job); ``params`` carries what else defines the
    work and must change its hash, e.g. a video segment's frame range."""

    name: str
    cfg: RunConfig
    output: Path
    content: str | None = None
    style: str | tuple[str, ...] | None = None
    mask: tuple[str, ...] | None = None
    params: dict = field(default_factory=dict)
    init: str | None = None

    def inputs(self) -> list[str]:
        return [p for p in (self.content, *_paths(self.style), *_paths(self.mask), self.init) if p is not None]


@dataclass(frozen=True)
class Outcome:
    """What became of one unit: ``done``, or ``failed`` with a one-line ``error`` (and, for a bug, its trace)."""

    name: str
    status: Status
    error: str | None = None
    seconds: float = 0.0
    worker: str | None = None
    trace: str | None = None


@dataclass
class Summary:
    """The whole job: counts, wall time and the failures as (unit name, error)."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0  # done by an earlier run with the same config and inputs
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        skipped = f", {self.skipped} already done" if self.skipped else ""
        return f"{self.done} done, {self.failed} failed{skipped} of {self.total} in {self.seconds:.1f} s ({rate:.2f}/s)"


def absolute(path: str | os.PathLike | None) -> str | None:
    """``path`` made absolute against this (the driver's) working directory: a worker may run elsewhere."""
    return None if path is None else os.path.abspath(path)


def _paths(value: str | Sequence[str] | None) -> list[str | None]:
    if value is None or isinstance(value, str | os.PathLike):
        return [value]
    return list(value)


class FileHashes:
    """sha256 of file contents, each file read once per job (the style image is shared by every unit)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int, int], str] = {}

    def __call__(self, path: str | os.PathLike) -> str:
        try:
            st = os.stat(path)
        except OSError:
            return "missing"  # the unit fails when it runs, with the reader's own message
        key = (os.fspath(path), st.st_size, st.st_mtime_ns)
        if key not in self._seen:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self._seen[key] = h.hexdigest()
        return self._seen[key]


def unit_hash(unit: Unit, file_hash: Callable[[str], str]) -> str:
    """sha256 of a canonical JSON of ``asdict(cfg)``, the inputs' content hashes and ``params``."""
    canonical = {
        "init": file_hash(unit.init) if unit.init is not None else None,
        "config": dataclasses.asdict(unit.cfg),
        "content": file_hash(unit.content) if unit.content is not None else None,
        "style": [file_hash(p) for p in _paths(unit.style) if p is not None],
        "mask": [file_hash(p) for p in _paths(unit.mask) if p is not None],
        "params": unit.params,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Manifest:
    """The job's record, read at the start (last record per unit wins) and appended to as units finish."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / MANIFEST_NAME
        self.records: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise PainterlyError(f"{self.path}: cannot read the manifest ({exc.strerror})") from exc
        records = {}
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash mid-append: that unit is simply not recorded as done
            if isinstance(record, dict) and "unit" in record:
                records[record["unit"]] = record
        return records

    def is_done(self, unit: Unit, config_hash: str) -> bool:
        record = self.records.get(unit.name, {})
        return record.get("status") == "done" and record.get("config_hash") == config_hash and unit.output.exists()

    def start(self, units: Iterable[Unit], hashes: dict[str, str], todo: Iterable[Unit]) -> None:
        """Rewrite the manifest atomically: every unit of this job, ``todo`` ones as pending."""
        for unit in todo:
            self.records[unit.name] = _record(unit, hashes[unit.name], "pending")
        names = {u.name for u in units}
        kept = [r for name, r in self.records.items() if name in names]
        kept += [r for name, r in self.records.items() if name not in names]  # other jobs' units in this folder
        text = "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in kept)
        atomic_write_bytes(self.path, text.encode("utf-8"))

    def record(self, unit: Unit, config_hash: str, outcome: Outcome) -> None:
        """Append the unit's outcome as one line (flushed to disk: a crash after it cannot undo it)."""
        record = _record(unit, config_hash, outcome.status, outcome)
        self.records[unit.name] = record
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _record(unit: Unit, config_hash: str, status: Status, outcome: Outcome | None = None) -> dict:
    inputs = {"content": unit.content, "style": unit.style, "mask": unit.mask}
    if unit.init is not None:
        inputs["init"] = unit.init
    record = {
        "unit": unit.name,
        "input": {**inputs, **unit.params},
        "config_hash": config_hash,
        "status": status,
        "error": outcome.error if outcome else None,
        "output": str(unit.output),
    }
    if outcome is not None:
        record.update(seconds=round(outcome.seconds, 3), worker=outcome.worker, finished=time.time())
        if outcome.trace:
            record["trace"] = outcome.trace
    return record


def attempt(paint: Callable[[Unit], None], unit: Unit, worker: str | None = None) -> Outcome:
    """Run ``paint(unit)``; a bad input (``PainterlyError``) or a bug becomes a failed ``Outcome``.

    A bug is recorded too, with its traceback, so one odd file does not stop a night's batch. An interrupted
    run (``PainterlyError`` with ``ExitCode.INTERRUPTED``), Ctrl-C and a dying process are not caught: the
    unit stays pending and the job stops (or the executor retries the unit elsewhere)."""
    t0 = time.perf_counter()
    try:
        paint(unit)
    except PainterlyError as err:
        if err.exit_code == ExitCode.INTERRUPTED:
            raise
        return Outcome(unit.name, "failed", _one_line(str(err)), time.perf_counter() - t0, worker)
    except Exception as exc:  # noqa: BLE001 - recorded with its trace, see the docstring
        error = f"internal error: {type(exc).__name__}: {_one_line(str(exc))}"
        return Outcome(unit.name, "failed", error, time.perf_counter() - t0, worker, traceback.format_exc())
    return Outcome(unit.name, "done", None, time.perf_counter() - t0, worker)


def _one_line(text: str) -> str:
    return " ".join(text.split())


Executor = Callable[[Sequence[Unit], Callable[[Outcome], None]], None]


def run_job(
    units: Sequence[Unit],
    folder: str | os.PathLike,
    executor: Executor,
    *,
    force: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> Summary:
    """Run the units not already done (all with ``force``) through ``executor``, recording each outcome.

    ``executor(todo, report)`` calls ``report(outcome)`` once per unit, in the driver; ``on_plan(todo,
    skipped)`` is told the counts before anything runs (for a progress bar)."""
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)  # e.g. a.jpg and a.png, or the same name in two folders
        raise PainterlyError(f"two units of the job share one output name: {twice} (rename one of the inputs)")
    Path(folder).mkdir(parents=True, exist_ok=True)
    manifest, file_hash = Manifest(folder), FileHashes()
    hashes = {u.name: unit_hash(u, file_hash) for u in units}
    todo = [u for u in units if force or not manifest.is_done(u, hashes[u.name])]
    summary = Summary(total=len(units), skipped=len(units) - len(todo))
    if on_plan is not None:
        on_plan(len(todo), summary.skipped)
    manifest.start(units, hashes, todo)
    by_name = {u.name: u for u in todo}
    t0 = time.perf_counter()

    def report(outcome: Outcome) -> None:
        manifest.record(by_name[outcome.name], hashes[outcome.name], outcome)
        if outcome.status == "done":
            summary.done += 1
        else:
            summary.failed += 1
            summary.failures.append((outcome.name, outcome.error or "failed"))
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        if todo:
            executor(todo, report)
    finally:
        summary.seconds = time.perf_counter() - t0
    return summary
