"""The page's layout and its events (the handlers live on ``WebApp``)."""

from __future__ import annotations

import inspect
import threading
import time
from typing import TYPE_CHECKING, Any

import gradio as gr

from painterly.presets import PRESETS
from painterly.web import form

if TYPE_CHECKING:
    from painterly.web.app import WebApp

INTRO = """# painterly
Paint a photo in the style of a painting. **One pass** answers at once and follows the controls;
**Optimise** refines it step by step (Stop keeps the best image so far, Continue goes on from the shown one).
Paint on the photo with the brush to stylise only there."""


class RecentBlobs(dict):
    """The photo editor's uploaded pictures by upload id, each kept at most ``seconds``. Gradio keeps them until
    an event reads that id, but its page also reads ids for status updates, with no event: those would stay for
    the server's life (about 1 MB a brush stroke)."""

    def __init__(self, seconds: float = 120.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._born: dict[Any, float] = {}
        self._lock = threading.Lock()

    def __setitem__(self, key: Any, value: Any) -> None:
        now = time.monotonic()
        with self._lock:
            for old in [k for k, born in self._born.items() if now - born > self.seconds]:
                del self._born[old]
                self.pop(old, None)
            self._born.setdefault(key, now)
            super().__setitem__(key, value)


def build(app: WebApp) -> gr.Blocks:
    from painterly.web.app import MAIN, STARTS

    lim = app.limits
    c: dict = {}
    with gr.Blocks(title="painterly", delete_cache=(600, 3600)) as blocks:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=5):
                c["content"] = gr.ImageEditor(
                    label="Photo (brush: where to stylise; no strokes: everywhere)",
                    type="filepath",
                    sources=("upload", "webcam", "clipboard"),
                    format="png",
                    layers=False,
                    transforms=(),
                    eraser=gr.Eraser(default_size=24),
                    brush=gr.Brush(colors=["#ff4060"], default_color="#ff4060", color_mode="fixed", default_size=24),
                    height=420,
                    elem_id="photo",
                )
                c["content"].blob_storage = RecentBlobs()
                example = app.example_photo()
                if example:
                    gr.Examples([[example]], inputs=[c["content"]], label="Example photo")
                with gr.Row():
                    shown = list(zip(app.paintings.values(), app.paintings.keys(), strict=True))
                    gr.Gallery(shown, label="Built-in paintings", columns=4, height=140, allow_preview=False,
                               interactive=False)  # fmt: skip
                    with gr.Column():
                        first = list(app.paintings)[:1]
                        c["builtin"] = gr.CheckboxGroup(list(app.paintings), value=first, label="Use built-in")
                        c["uploads"] = gr.File(label="Your paintings", file_count="multiple", file_types=["image"],
                                               elem_id="uploads", height=90)  # fmt: skip
                c["method"] = gr.Radio([("One pass", "fast"), ("Optimise", "optimize")], value="fast", label="Method",
                                       info=form.option_named("method").help)  # fmt: skip
                with gr.Row():
                    c["size"] = gr.Slider(64, lim.max_size, value=min(512, lim.max_size), step=8, label="Size",
                                          info="Long side of the output in px.")  # fmt: skip
                    c["strength"] = form.control("strength")
                with gr.Row():
                    c["style_scale"] = form.control("style_scale")
                    c["preserve_color"] = form.control("preserve_color")
                with gr.Row():
                    c["style_blend"] = form.control("style_blend")
                    c["seed"] = form.control("seed")
                with gr.Group(visible=True) as fast_group:
                    with gr.Row():
                        c["work_size"] = gr.Slider(0, 2 * lim.max_size, value=0, step=32, label="Work size",
                                                   info=form.option_named("work_size").help + " 0 = auto.")  # fmt: skip
                        c["model"] = form.control(
                            "model",
                            info="One-pass network: magenta (Ghiasi et al. 2017) or adain (Huang & Belongie 2017).",
                        )
                with gr.Group(visible=False) as optimise_group:
                    with gr.Row():
                        c["preset"] = gr.Dropdown(list(PRESETS), value="default", label="Preset",
                                                  info=form.option_named("preset").help)  # fmt: skip
                        c["iterations"] = form.control("iterations", value=min(150, lim.max_iterations), minimum=1,
                                                       maximum=lim.max_iterations, step=1,
                                                       label="Quality (iterations)")  # fmt: skip
                    c["init"] = gr.Radio(STARTS, value="fast", label="Start from", info=form.option_named("init").help)
                    with gr.Accordion("Advanced (empty = the preset's value)", open=False):
                        for name in form.advanced_fields(set(MAIN)):
                            c[name] = form.control(name, preset_default=True)
            with gr.Column(scale=5):
                # previews (PIL) go out as JPEG (1 ms at 512 px, PNG 50 ms); the result as its PNG file
                c["result"] = gr.Image(label="Painting", type="filepath", format="jpeg", interactive=False,
                                       height=420, elem_id="painting")  # fmt: skip
                c["status"] = gr.Markdown(elem_classes="status", elem_id="status")
                with gr.Row():
                    paint = gr.Button("Paint", variant="primary", elem_id="paint")
                    optimise = gr.Button("Optimise", variant="primary", visible=False, elem_id="optimise")
                    stop = gr.Button("Stop", variant="stop", visible=False, elem_id="stop")
                    resume = gr.Button("Continue", visible=False, elem_id="continue")
                c["slider"] = gr.ImageSlider(label="Before / after", type="filepath", interactive=False, height=360)
                c["command"] = gr.Textbox(label="Command line (reproduces this picture; files below)", lines=2,
                                          buttons=["copy"], interactive=False, elem_id="command")  # fmt: skip
                c["files"] = gr.File(label="Downloads: result PNG (with metadata), JSON, inputs as used",
                                     file_count="multiple", interactive=False)  # fmt: skip
                c["last"] = gr.State(None)
                c["photo"] = gr.State(None)  # the staged photo and mask: {"content", "mask", "key"}
        app.c = c
        app.fields = [n for n in c if n in form.SERVER_ONLY or n in {o.name for o in form.options()}]
        _events(app, blocks, c, paint, optimise, stop, resume, fast_group, optimise_group)
        _api(app)
    return blocks


def _events(app, blocks, c, paint, optimise, stop, resume, fast_group, optimise_group) -> None:  # noqa: ANN001
    lim = app.limits
    inputs = {v for k, v in c.items() if k not in ("content", "result", "status", "slider", "command", "files")}
    outputs = [c[k] for k in ("result", "status", "slider", "command", "files", "last")]

    def switch(method: str) -> list:
        fast = method == "fast"
        return [gr.update(visible=fast), gr.update(visible=not fast), gr.update(visible=not fast),
                gr.update(visible=not fast), gr.update(visible=fast), gr.update(visible=not fast)]  # fmt: skip

    c["method"].change(switch, c["method"], [paint, optimise, stop, resume, fast_group, optimise_group],
                       queue=False, api_visibility="private")  # fmt: skip
    triggers = [paint.click, c["photo"].change, c["builtin"].change,
                c["uploads"].change, c["method"].change,
                c["size"].release, c["strength"].release, c["style_scale"].release, c["work_size"].release,
                c["preserve_color"].change, c["style_blend"].submit, c["seed"].submit, c["model"].change]  # fmt: skip
    gr.on(triggers, app.ui_preview, inputs, outputs, trigger_mode="always_last", concurrency_id="fast",
          concurrency_limit=lim.fast_concurrency, api_visibility="private", show_progress="minimal")  # fmt: skip
    # The editor sends its pictures only when they change: staged once, every run reads the state (so a click or a
    # control change sends no image: the editor's export and upload of its pictures takes 1-2 s in a browser). One
    # listener per event: Gradio's page reports a stroke ("change") only to a listener whose first trigger it is.
    for event in (c["content"].upload, c["content"].change):
        event(app.ui_photo, [c["content"], c["photo"]], c["photo"], trigger_mode="always_last",
              api_visibility="private", show_progress="hidden")  # fmt: skip
    optimise.click(app.ui_optimise, inputs, outputs, concurrency_id="optimize", concurrency_limit=lim.concurrency,
                   api_visibility="private")  # fmt: skip
    resume.click(app.ui_continue, inputs, outputs, concurrency_id="optimize", concurrency_limit=lim.concurrency,
                 api_visibility="private")  # fmt: skip
    stop.click(app.stop, None, c["status"], queue=False, api_name="stop")
    blocks.unload(app.end)


def _api(app) -> None:  # noqa: ANN001
    """The public endpoints ``/stylize`` and ``/fast``: hidden inputs made from the handlers' signatures (files
    for the images, numbers and text with the handler's defaults), so a client sends plain files and values."""
    lim = app.limits
    with gr.Column(visible=False):
        outputs = [gr.Image(type="filepath", format="png"), gr.Textbox(), gr.File(file_count="multiple")]
        for fn, kind, limit in (
            (app.api_stylize, "optimize", lim.concurrency),
            (app.api_fast, "fast", lim.fast_concurrency),
        ):
            inputs = [_hidden(p) for p in inspect.signature(fn).parameters.values() if p.name != "request"]
            name = fn.__name__.removeprefix("api_")
            gr.Button().click(fn, inputs, outputs, api_name=name, concurrency_id=kind, concurrency_limit=limit)


def _hidden(param: inspect.Parameter) -> gr.components.Component:
    if param.name in ("content", "style", "mask"):
        return gr.File(label=param.name)
    default = None if param.default is inspect.Parameter.empty else param.default
    return gr.Textbox(default, label=param.name) if isinstance(default, str) else gr.Number(default, label=param.name)
