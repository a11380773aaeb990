"""One painting for the web app: check the uploads against the limits, copy them into the session's run
folder under plain names, drive ``painterly.iterate`` (previews every few steps, Stop through a cancel token),
then save the result as a PNG carrying its metadata and as JSON, with the command line that reproduces it."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from painterly.api import Result, iterate
from painterly.config import RunConfig, build_config
from painterly.errors import PainterlyError
from painterly.events import Step
from painterly.media.images import load_image, resize, split_alpha, to_pil
from painterly.media.outputs import save_image, write_json
from painterly.web.command import command_line
from painterly.web.limits import Deadline, Limits, check_image
from painterly.web.workspace import Workspace

RESULT = "result.png"
PREVIEWS = 25  # previews per optimisation (plus the first step and the result)


@dataclass
class Job:
    """What to paint: image files (uploads, built-in paintings, the shown result for "continue") and the flat
    options from the form or the API."""

    content: str | None
    styles: list[str]
    options: dict[str, Any]
    mask: str | None = None  # white = stylise
    init: str | None = None  # start the optimisation from this picture


@dataclass
class Update:
    """What the page shows: a preview (PIL) while it works, then the saved result's path and the rest."""

    image: Any
    status: str
    done: bool = False
    command: str = ""
    files: list[str] = field(default_factory=list)
    before: str | None = None
    result: str | None = None


class Painter:
    """Runs jobs within ``limits``; ``base`` options (e.g. ``{"weights": "random"}``) lie under every job's."""

    def __init__(self, limits: Limits, workspace: Workspace, base: dict[str, Any] | None = None) -> None:
        self.limits = limits
        self.workspace = workspace
        self.base = dict(base or {})

    def config(self, options: dict[str, Any]) -> RunConfig:
        cfg = build_config("stylize", {**self.base, **options})
        lim = self.limits
        side = max(cfg.size) if isinstance(cfg.size, tuple) else cfg.size
        if side > lim.max_size:
            raise PainterlyError(f"Size: {side} px is over this server's limit of {lim.max_size} px")
        if cfg.fast.work_size is not None and cfg.fast.work_size > 2 * lim.max_size:
            raise PainterlyError(f"Work size: {cfg.fast.work_size} px is over the limit of {2 * lim.max_size} px")
        if cfg.method == "optimize" and cfg.optimize.iterations > lim.max_iterations:
            raise PainterlyError(f"Iterations: {cfg.optimize.iterations} is over the limit of {lim.max_iterations}")
        return cfg

    def stage_photo(self, content: str, composite: str | None, session: str | None, key: str) -> dict[str, str | None]:
        """The editor's photo and brush strokes (``mask_from_strokes``), checked and kept in a new ``photo-N``
        folder of the session: ``{"content", "mask", "key"}``, the state every run of the page reads (so a click
        or a control change sends no image). ``key`` (``photo_key``) tells an unchanged editor."""
        folder = self.workspace.run_dir(session, "photo")
        photo = _copy(check_image(content, "Photo", self.limits), folder / "photo")
        mask = mask_from_strokes(photo, composite, folder / "mask.png") if composite else None
        return {"content": photo, "mask": mask, "key": key}

    def paint(self, job: Job, session: str | None, stop: Deadline | None = None) -> Iterator[Update]:
        """Previews, then the final ``Update`` (``done``). Closing this generator stops the run."""
        cfg = self.config(job.options)
        staged = self._stage(job, self.workspace.run_dir(session))
        style = staged.styles[0] if len(staged.styles) == 1 else staged.styles
        run = iterate(cfg, staged.content, style, mask=staged.mask, init=staged.init, cancel=stop)
        every = max(1, cfg.optimize.iterations // PREVIEWS)
        try:
            for item in run:  # one pass: its picture at once, before the files are written (~0.1 s at 512 px)
                if isinstance(item, Step) and (item.total == 1 or item.step % every == 0 or item.step == 1):
                    yield Update(to_pil(item.image()), progress_line(item))
        finally:
            result = run.close()
        if result is None:
            raise PainterlyError("stopped before the first step: no image")
        yield self._finish(result, staged, stop)

    def _stage(self, job: Job, folder: Path) -> Job:
        """Check every image and copy it into ``folder`` under the name the command line will use."""
        lim = self.limits
        content = _copy(check_image(job.content, "Photo", lim), folder / "photo")
        if not job.styles:
            raise PainterlyError("Painting: choose a built-in painting or upload one")
        styles = [_copy(check_image(s, f"Painting {i}", lim), folder / f"style-{i}")
                  for i, s in enumerate(job.styles, start=1)]  # fmt: skip
        mask = _copy(check_image(job.mask, "Mask", lim, required=False), folder / "mask")
        init = _copy(check_image(job.init, "Start image", lim, required=False), folder / "start")
        return Job(content, styles, job.options, mask, init)

    def _finish(self, result: Result, staged: Job, stop: Deadline | None) -> Update:
        folder = Path(staged.content).parent
        name = {p: Path(p).name for p in [staged.content, *staged.styles, staged.mask, staged.init] if p}
        metadata = dict(result.metadata)
        metadata["inputs"] = {"content": name[staged.content], "style": [name[s] for s in staged.styles],
                              "mask": name.get(staged.mask), "init": name.get(staged.init)}  # fmt: skip
        metadata["command"] = command_line(
            metadata,
            name[staged.content],
            [name[s] for s in staged.styles],
            RESULT,
            mask=name.get(staged.mask),
            init=name.get(staged.init),
        )
        out = folder / RESULT
        save_image(result.image, out, metadata)
        write_json(out.with_suffix(".json"), metadata)
        before = folder / "before.jpg"  # only the slider shows it: JPEG writes in 4 ms where PNG takes 75 (512 px)
        photo = split_alpha(load_image(staged.content))[0]
        resize(photo, result.image.size).save(before, quality=92)
        files = [str(out), str(out.with_suffix(".json")), *name]
        return Update(str(out), final_line(result, stop), True, metadata["command"], files, str(before), str(out))


def _copy(path: str | None, stem: Path) -> str | None:
    """Copy ``path`` to ``stem`` + its suffix (``.png`` when it has none a decoder would recognise)."""
    if path is None:
        return None
    suffix = Path(path).suffix.lower()
    target = stem.with_suffix(suffix if suffix in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff",
                                                   ".gif") else ".png")  # fmt: skip
    if target.suffix == suffix:
        shutil.copyfile(path, target)
    else:
        load_image(path).save(target)  # a decoded copy in a format the command line's loader reads the same
    return str(target)


def progress_line(step: Step) -> str:
    """``step 40/100 · stage 2/3 · 12.3 s · about 18 s left · loss 0.123``; a one-pass step: ``one pass: 95 ms``."""
    if step.total == 1:
        return f"one pass: {step.elapsed * 1000:.0f} ms · saving…"
    eta = step.elapsed / step.step * (step.total - step.step)
    parts = [f"step {step.step}/{step.total}"]
    if step.stages > 1:
        parts.append(f"stage {step.stage}/{step.stages}")
    parts += [f"{step.elapsed:.1f} s", f"about {eta:.0f} s left"]
    if "total" in step.losses:
        parts.append(f"loss {step.losses['total']:.4g}")
    return " · ".join(parts)


def final_line(result: Result, stop: Deadline | None) -> str:
    meta = result.metadata
    seconds = meta["timings"]["total_s"]
    if meta["method"] == "fast":
        text = f"one pass: {seconds * 1000:.0f} ms"
    elif result.interrupted and stop is not None and stop.timed_out:
        text = f"time limit reached after {meta['iterations_run']} steps ({seconds:.1f} s): kept the best image"
    elif result.interrupted:
        text = f"stopped after {meta['iterations_run']} steps ({seconds:.1f} s): kept the best image"
    else:
        text = f"done: {meta['iterations_run']} steps in {seconds:.1f} s"
    return "  \n".join([text, *meta.get("notes", [])])


def photo_key(content: str, composite: str | None) -> str:
    """SHA-256 of the photo's and the composite's bytes: the same editor picture and strokes give the same key."""
    digest = hashlib.sha256()
    for path in (content, composite):
        digest.update(Path(path).read_bytes() if path else b"")
        digest.update(b"\0")
    return digest.hexdigest()


def mask_from_strokes(photo: str, composite: str, path: Path) -> str | None:
    """The brush strokes as a mask (white where painted), or None if unpainted: the pixels where the editor's
    composite differs from its photo (in alpha, or in colour where visible). Not the editor's layers: Gradio's
    editor (6.x) exports them a stroke late on a change, its composite is current; the brush has one colour."""
    with Image.open(photo) as a, Image.open(composite) as b:
        before = np.asarray(a.convert("RGBA"))
        after = b.convert("RGBA")
    if after.size != (before.shape[1], before.shape[0]):
        after = after.resize((before.shape[1], before.shape[0]), Image.Resampling.NEAREST)
    after = np.asarray(after)
    painted = (before[..., 3] != after[..., 3]) | ((before[..., :3] != after[..., :3]).any(-1) & (after[..., 3] > 0))
    if not painted.any():
        return None
    Image.fromarray(painted.astype(np.uint8) * 255).save(path)
    return str(path)
