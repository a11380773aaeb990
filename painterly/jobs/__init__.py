"""Many inputs as one job: units of work, a resumable manifest, and executors that run them here or on Ray.

A job is a list of ``Unit`` (a photo, a sweep cell, a video segment: inputs + config + output path) run by
``run_job(units, folder, executor)``. The manifest ``folder/painterly-manifest.jsonl`` records each unit's
input, config hash, status and one-line error, so running the same job again does only what is missing
(``force=True`` redoes all); a unit that fails is recorded and the rest go on. An executor is built around a
*painter factory*: a picklable callable that, once per worker, loads the model and returns ``paint(unit)``::

    import functools

    from painterly import build_config
    from painterly.jobs import ImagePainter, image_units, local_executor, ray_executor, run_job

    cfg = build_config("stylize", {"size": 512})
    units = image_units(["a.jpg", "b.jpg"], cfg, "starry_night.jpg", "out/")
    summary = run_job(units, "out/", local_executor(functools.partial(ImagePainter, cfg)))
    summary = run_job(units, "out/", ray_executor(functools.partial(ImagePainter, cfg), workers=2))
    print(summary.line())  # "2 done, 0 failed of 2 in 41.3 s (0.05/s)"

``ray_executor`` needs the cluster extra (``pip install "painterly[cluster]"``); sweep cells are in
``jobs.sweep_cells`` and long-video segments in ``jobs.segments`` (the video extra). See docs/scaling.md."""

from painterly.jobs.batch import ImagePainter, image_units
from painterly.jobs.local import local_executor
from painterly.jobs.ray import ray_executor
from painterly.jobs.units import MANIFEST_NAME, Manifest, Outcome, Summary, Unit, run_job

__all__ = [
    "MANIFEST_NAME",
    "ImagePainter",
    "Manifest",
    "Outcome",
    "Summary",
    "Unit",
    "image_units",
    "local_executor",
    "ray_executor",
    "run_job",
]
