"""Throughput of the job executors: local loop vs Ray with 1 and 2 workers, images per second.

    python benchmarks/cluster.py [--images 8] [--size 128] [--iterations 20] [--methods optimize,fast]

Each executor paints the same units into a fresh folder (nothing resumed). Ray's start (``ray.init``) is timed
apart from the job: a cluster is started once and serves many jobs. Prints one Markdown table row per run."""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import time
from pathlib import Path

from painterly.config import build_config
from painterly.jobs import ImagePainter, image_units, local_executor, ray_executor, run_job
from painterly.jobs.ray import import_ray

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def photos(folder: Path, n: int) -> list[Path]:
    """``n`` content files (the shared photos, repeated under new names)."""
    source = sorted((DATA / "content").glob("*.jpg"))
    files = []
    for i in range(n):
        files.append(folder / f"{i:03d}_{source[i % len(source)].name}")
        shutil.copy(source[i % len(source)], files[-1])
    return files


def timed(label: str, units_for, executor) -> dict:  # noqa: ANN001
    folder = Path(tempfile.mkdtemp(prefix="painterly-bench-"))
    units = units_for(folder)
    t0 = time.perf_counter()
    summary = run_job(units, folder, executor)
    seconds = time.perf_counter() - t0
    shutil.rmtree(folder)
    assert summary.failed == 0, summary.failures
    return {"executor": label, "images": summary.done, "seconds": seconds, "per_s": summary.done / seconds}


def bench(method: str, args: argparse.Namespace, files: list[Path]) -> list[dict]:
    values = {"size": args.size, "weights": "random", "method": method}
    if method == "optimize":
        values["iterations"] = args.iterations
    cfg = build_config("stylize", values)
    style = str(DATA / "style" / "starry_night.jpg")
    painter = functools.partial(ImagePainter, cfg)

    def units_for(folder: Path) -> list:
        return image_units(files, cfg, style, folder)

    rows = [timed("local", units_for, local_executor(painter))]
    for workers in (1, 2):  # Ray is already connected: the executor joins it and leaves it running
        label = f"ray, {workers} worker{'s' if workers > 1 else ''}"
        rows.append(timed(label, units_for, ray_executor(painter, workers=workers)))
    return rows


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--methods", default="optimize,fast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = photos(Path(tmp), args.images)
        t0 = time.perf_counter()
        ray = import_ray()
        ray.init(include_dashboard=False, logging_level="warning")
        print(f"ray.init: {time.perf_counter() - t0:.1f} s; CPUs: {ray.cluster_resources().get('CPU')}; {load()}")
        print("| method | executor | images | seconds | images/s |\n|---|---|---|---|---|")
        try:
            for method in args.methods.split(","):
                for row in bench(method, args, files):
                    cells = [method, row["executor"], row["images"], f"{row['seconds']:.1f}", f"{row['per_s']:.3f}"]
                    print("| " + " | ".join(map(str, cells)) + " |", flush=True)
        finally:
            ray.shutdown()
            print(f"after: {load()}")


if __name__ == "__main__":
    main()
