"""The Ray executor: a pool of long-lived actors, each holding its model, fed one unit at a time.

Why Ray core actors and not Ray Data's ``map_batches``: our units are not rows of one table. They are
images of any size, sweep cells with different configs, video segments; each writes its own files and
ends in its own outcome (done, or failed with a one-line error) that the driver records as it arrives.
Actors give exactly that: ``__init__`` loads the backbone once (Ray Data's callable-class pattern),
``max_restarts``/``max_task_retries`` make Ray restart a dead worker's process (on another node when
its own is gone) and re-send the unit it held, and ``ray.wait`` on our own futures tells the driver which
unit each result or loss belongs to (``ray.util.ActorPool`` hides that, which is why we keep our own
20-line dispatch loop). It also needs only ``ray`` itself, not Ray Data's pyarrow and pandas.

Workers read their inputs and write their outputs by path: on several machines the input and output
folders must be on storage every node sees (NFS, a mounted bucket)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence

from painterly.errors import ExitCode, PainterlyError
from painterly.jobs.units import Outcome, Unit, attempt

RETRIES = 3  # restarts of one worker process, and re-sends of the unit it held when it died
IN_FLIGHT = 2  # units queued per worker: the next one is already there when one finishes


def import_ray():  # noqa: ANN201 - the ray module, whose type we cannot name without importing it
    try:
        import ray
    except ImportError as exc:
        raise PainterlyError(
            'the ray executor needs the cluster extra: pip install "painterly[cluster]"', ExitCode.USAGE
        ) from exc
    return ray


class Worker:
    """One Ray actor: builds its painter (loading the model) once, then paints the units it is sent."""

    def __init__(self, painter: Callable[[], Callable[[Unit], None]], threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)  # its share of the node's cores, not all of them
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.paint, self.error = None, None
        try:
            self.paint = painter()
        except PainterlyError as err:  # e.g. a style image or weights file that cannot be read
            self.error = str(err)
        except Exception as exc:  # noqa: BLE001 - reported by ready() with its type, as the local loop would show
            self.error = f"internal error: {type(exc).__name__}: {exc}"

    def ready(self) -> str | None:
        """None, or why this worker could not build its painter (the same for every unit: stop the job)."""
        return self.error

    def run(self, unit: Unit) -> Outcome:
        return attempt(self.paint, unit, self.name)


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://host:10001``, ``host:6379``) or, without one,
    start a local Ray (or join the one RAY_ADDRESS names). True if this call started the connection."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local instance"
        raise PainterlyError(f"cannot start or join Ray at {where}: {' '.join(str(exc).split())}") from exc
    return True


def ray_executor(
    painter: Callable[[], Callable[[Unit], None]], *, address: str | None = None, workers: int | None = None
) -> Callable[[Sequence[Unit], Callable[[Outcome], None]], None]:
    """An executor for ``units.run_job`` on Ray workers: joins Ray at ``address`` (see ``connect``; the
    instance already connected, if any), paints on ``workers`` actors (``worker_options``), and shuts down
    a Ray instance it started itself when the job ends."""

    def execute(units: Sequence[Unit], progress: Callable[[Outcome], None]) -> None:
        started = connect(address)
        try:
            run_units(units, painter, progress, workers=workers)
        finally:
            if started:
                import_ray().shutdown()

    return execute


def worker_options(workers: int | None) -> tuple[int, dict, int | None]:
    """(workers, actor options, torch threads): one GPU each when the cluster has GPUs (default: one worker
    per GPU), else an equal share of the CPUs (default: one worker per node, all its cores)."""
    ray = import_ray()
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus:
        n = workers or gpus
        return n, {"num_gpus": min(1.0, gpus / n), "num_cpus": 1}, None
    n = workers or max(1, len([node for node in ray.nodes() if node.get("Alive")]))
    share = max(1, cpus // n)
    return n, {"num_cpus": share}, share


def run_units(
    units: Sequence[Unit],
    painter: Callable[[], Callable[[Unit], None]],
    progress: Callable[[Outcome], None],
    *,
    workers: int | None = None,
) -> None:
    """Paint ``units`` on a pool of Ray actors (Ray must be connected, see ``connect``); ``progress`` runs in
    the driver as each outcome arrives. A unit whose worker died more than ``RETRIES`` times is failed."""
    ray = import_ray()
    n, options, threads = worker_options(workers)
    n = min(n, len(units))
    actor = ray.remote(Worker).options(max_restarts=RETRIES, max_task_retries=RETRIES, **options)
    pool = [actor.remote(painter, threads) for _ in range(n)]
    queue, pending, replacements = list(reversed(units)), {}, {}

    def send(worker) -> None:  # noqa: ANN001 - a Ray actor handle
        unit = queue.pop()
        pending[worker.run.remote(unit)] = (unit, worker)

    def replace(dead):  # noqa: ANN001, ANN202 - Ray actor handles
        """A fresh actor for one that is out of restarts (once, however many of its units come back)."""
        key = dead._actor_id.hex()
        if key not in replacements:
            replacements[key] = actor.remote(painter, threads)
            pool.append(replacements[key])
        return replacements[key]

    try:
        for error in ray.get([worker.ready.remote() for worker in pool]):
            if error is not None:
                raise PainterlyError(f"a worker could not start: {' '.join(error.split())}", ExitCode.RUNTIME)
        for worker in pool:
            for _ in range(IN_FLIGHT):
                if queue:
                    send(worker)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            unit, worker = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                error = f"worker died {RETRIES + 1} times on this unit: {' '.join(str(exc).split())[:200]}"
                outcome = Outcome(unit.name, "failed", error)
                worker = replace(worker)
            except ray.exceptions.RayTaskError as exc:  # only what ``attempt`` lets through: an interrupted run
                if isinstance(exc.cause, PainterlyError):
                    raise PainterlyError(str(exc.cause), exc.cause.exit_code) from None
                raise
            progress(outcome)
            if queue:
                send(worker)
    finally:
        for worker in pool:
            ray.kill(worker)
