"""The Gradio app: a photo (with a mask brush and the webcam), built-in or uploaded paintings, every control
from the config's own fields, a one-pass preview that follows the controls, a live optimisation with Stop and
"continue", before/after, downloads and the exact command line. Public API: ``/fast``, ``/stylize``, ``/stop``.

Runs go through ``painterly.api`` only (backbones and style targets are cached there, shared by all sessions)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import gradio as gr

from painterly.errors import PainterlyError
from painterly.web import form
from painterly.web.limits import Limits
from painterly.web.runs import Job, Painter, Update, photo_key
from painterly.web.workspace import Workspace

TITLES = {"starry_night": "The Starry Night (Vincent van Gogh, 1889)"}
MAIN = ("method", "size", "strength", "style_scale", "style_blend", "preserve_color", "seed", "work_size", "model",
        "preset", "iterations", "init")  # fmt: skip
OPTIMIZE_ONLY = {o.name for o in form.options() if o.block == "optimize"}
STARTS = [("refine the one-pass result", "fast"), ("the photo in the painting's colours", "color"),
          ("the photo (classic)", "content"), ("noise", "noise"), ("the painting", "style")]  # fmt: skip
CSS = "#painting img {object-fit: contain} .status {min-height: 3em}"


class WebApp:
    """One server: its limits, its own temporary files, the painter; ``build()`` makes the page."""

    def __init__(self, limits: Limits | None = None, base: dict[str, Any] | None = None) -> None:
        self.limits = limits or Limits()
        self.workspace = Workspace()
        self.painter = Painter(self.limits, self.workspace, base)
        self.base = dict(base or {})
        self.paintings = self._own_copies()
        self.blocks: gr.Blocks | None = None

    def _own_copies(self) -> dict[str, str]:
        """The built-in paintings and the example photo, copied into the app's folder: the server hands out
        only files of its own folder and Gradio's cache (no allowed_paths into the package)."""
        folder = self.workspace.root / "builtin"
        folder.mkdir()
        found = {}
        for item in sorted(files("painterly").joinpath("data").iterdir(), key=lambda p: p.name):
            if Path(item.name).suffix.lower() in (".jpg", ".jpeg", ".png"):
                stem = Path(item.name).stem
                target = folder / item.name
                target.write_bytes(item.read_bytes())
                found[TITLES.get(stem, stem.replace("_", " ").capitalize())] = str(target)
        return found

    def example_photo(self) -> str | None:
        """Grace Hopper from matplotlib's sample data (the demo's photo), if matplotlib has it."""
        try:
            import matplotlib.cbook

            source = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        except (ImportError, OSError, ValueError):
            return None
        target = self.workspace.root / "builtin" / "grace_hopper.jpg"
        if not target.exists():
            shutil.copyfile(source, target)
        return str(target)

    # --- handlers ------------------------------------------------------------------------------------------

    def _form_job(self, data: dict, request: gr.Request, fast: bool) -> Job:
        """``_job``, with its one-line error shown in the page."""
        try:
            return self._job(data, request, fast)
        except PainterlyError as err:
            raise gr.Error(str(err), print_exception=False) from err

    def _job(self, data: dict, request: gr.Request | None, fast: bool) -> Job:
        """The form's values as a job: the staged photo and brush strokes (``ui_photo``), the chosen paintings."""
        photo = data[self.c["photo"]]
        if not photo:
            raise PainterlyError("Photo: upload a photo (or use the webcam)")
        styles = [self.paintings[t] for t in data[self.c["builtin"]] or []]
        styles += [f if isinstance(f, str) else f.name for f in data[self.c["uploads"]] or []]
        values = {name: data[self.c[name]] for name in self.fields}
        values["method"] = "fast" if fast else "optimize"
        if values.get("work_size") == 0:
            values["work_size"] = None
        if fast:
            values = {k: v for k, v in values.items() if k not in OPTIMIZE_ONLY}
        return Job(photo["content"], styles, form.to_options(values), photo["mask"])

    def _show(self, update: Update) -> dict:
        c = self.c
        shown = {c["result"]: update.image, c["status"]: update.status}
        if update.done:
            shown |= {c["slider"]: (update.before, update.image), c["command"]: update.command,
                      c["files"]: update.files, c["last"]: update.result}  # fmt: skip
        return shown

    def _paint(self, job: Job, request: gr.Request | None, optimise: bool) -> Iterator[dict]:
        session = request.session_hash if request else None
        stop = self.workspace.start(session, self.limits.time_limit) if optimise else None
        try:
            for update in self.painter.paint(job, session, stop):
                yield self._show(update)
        except PainterlyError as err:
            raise gr.Error(str(err), print_exception=False) from err

    def ui_photo(self, editor: dict | None, staged: dict | None, request: gr.Request) -> dict | None:
        """The editor's photo and strokes, staged for every later run when they changed (their new state then
        starts the preview). Only this event uploads the editor's pictures."""
        editor = editor or {}
        content = editor.get("background") or editor.get("composite")
        if not content:
            return None
        composite = editor.get("composite") if editor.get("background") else None
        key = photo_key(content, composite)
        if staged and staged["key"] == key:
            return gr.skip()  # the same picture and strokes (the editor reports more than changes)
        try:
            return self.painter.stage_photo(content, composite, request.session_hash, key)
        except PainterlyError as err:
            raise gr.Error(str(err), print_exception=False) from err

    def ui_preview(self, data: dict, request: gr.Request) -> Iterator[dict]:
        if data[self.c["method"]] != "fast" or not data[self.c["photo"]]:
            yield {self.c["status"]: gr.skip()}  # nothing to paint yet, or the optimiser's turn
            return
        if not data[self.c["builtin"]] and not data[self.c["uploads"]]:
            yield {self.c["status"]: "choose a painting"}
            return
        yield from self._paint(self._form_job(data, request, fast=True), request, optimise=False)

    def ui_optimise(self, data: dict, request: gr.Request) -> Iterator[dict]:
        yield from self._paint(self._form_job(data, request, fast=False), request, optimise=True)

    def ui_continue(self, data: dict, request: gr.Request) -> Iterator[dict]:
        last = data[self.c["last"]]
        if not last or not self.workspace.owns(last) or not Path(last).exists():
            raise gr.Error("Continue: paint a picture first", print_exception=False)
        job = self._form_job(data, request, fast=False)
        job.options.pop("init", None)
        job.init = last
        yield from self._paint(job, request, optimise=True)

    def stop(self, request: gr.Request) -> str:
        """Stop this session's optimisation at its next step; it keeps and returns its best image."""
        return "stopping…" if self.workspace.stop(request.session_hash) else "nothing to stop"

    def end(self, request: gr.Request) -> None:
        self.workspace.end(request.session_hash)

    def api_stylize(
        self,
        content: str,
        style: str,
        size: float = 256,
        iterations: float = 100,
        preset: str = "default",
        strength: float = 0.5,
        preserve_color: str = "none",
        style_scale: float = 1.0,
        seed: float = 0,
        init: str = "fast",
        mask: str | None = None,
        request: gr.Request = None,
    ) -> Iterator[tuple]:
        """Optimise: previews every few steps, then the result PNG (with its metadata), the command line that
        reproduces it, and the files it needs (result PNG and JSON, the inputs as used)."""
        values = dict(size=size, iterations=iterations, preset=preset, strength=strength, init=init,
                      preserve_color=preserve_color, style_scale=style_scale, seed=seed, method="optimize")  # fmt: skip
        yield from self._api(content, style, mask, values, request, optimise=True)

    def api_fast(
        self,
        content: str,
        style: str,
        size: float = 512,
        strength: float = 0.5,
        work_size: float = 0,
        preserve_color: str = "none",
        style_scale: float = 1.0,
        model: str = "magenta",
        mask: str | None = None,
        request: gr.Request = None,
    ) -> Iterator[tuple]:
        """One pass of a trained network (work_size 0 = auto): the result PNG, its command line and files."""
        values = dict(size=size, strength=strength, work_size=work_size or None, preserve_color=preserve_color,
                      style_scale=style_scale, model=model, method="fast")  # fmt: skip
        yield from self._api(content, style, mask, values, request, optimise=False)

    def _api(self, content, style, mask, values, request, optimise) -> Iterator[tuple]:  # noqa: ANN001
        try:
            job = Job(_path(content), [_path(style)] if style else [], form.to_options(values), _path(mask))
        except PainterlyError as err:
            raise gr.Error(str(err), print_exception=False) from err
        c = self.c
        for shown in self._paint(job, request, optimise):
            if optimise or c["command"] in shown:  # /fast answers once, with the result
                yield shown[c["result"]], shown.get(c["command"], ""), shown.get(c["files"], [])

    # --- the page ------------------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        from painterly.web.page import build

        if self.blocks is None:
            self.blocks = build(self)
        return self.blocks

    def launch(self, host: str = "127.0.0.1", port: int | None = 7860, **kwargs: Any) -> str:
        """Start serving (``prevent_thread_lock=True`` returns at once); returns the local URL."""
        blocks = self.build()
        blocks.queue(max_size=self.limits.queue_size, default_concurrency_limit=self.limits.fast_concurrency)
        _, url, _ = blocks.launch(
            server_name=host,
            server_port=port,
            max_file_size=int(self.limits.max_upload_mb * 1e6),
            allowed_paths=[],
            show_error=True,
            ssr_mode=False,
            footer_links=["api"],
            css=CSS,
            **kwargs,
        )
        return url

    def close(self) -> None:
        if self.blocks is not None:
            self.blocks.close()
        self.workspace.close()


def _path(value: Any) -> str | None:
    """A file input's path (Gradio hands a str, or an object with ``.name`` / ``["path"]``)."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return value.get("path")
    return getattr(value, "name", None)
