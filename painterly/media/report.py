"""A run report: one self-contained HTML page (inline CSS, images embedded as data URIs).

It opens offline in any browser and can be mailed on its own; the only links are relative ones to the
run's other files, listed at the bottom, and only to files that exist."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Sequence

from PIL import Image

from painterly.media.artifacts import Snapshot
from painterly.media.images import fit_size, resize

EMBED_MAX_SIDE = 768  # the embedded result is scaled down to this; the full-size file is linked
INPUT_MAX_SIDE = 384  # inputs are shown at most 320 px high: a smaller copy keeps the page light
STRIP_MAX_FRAMES = 12

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; background: #fafafa;
       margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin: 0 0 16px; }
.row { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-end; }
figure { margin: 0; background: #fff; padding: 8px; border: 1px solid #e3e3e3; border-radius: 6px; }
figure img { display: block; height: 200px; width: auto; max-width: 100%; object-fit: contain; }
.strip figure img { height: 110px; }
figure.plot img { height: auto; }
figcaption { font-size: 13px; color: #444; text-align: center; margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; background: #fff; }
td, th { border: 1px solid #e3e3e3; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
code { font: 12px ui-monospace, Menlo, Consolas, monospace; }
.warn { color: #a34700; font-weight: 600; }
"""


def data_uri(image: Image.Image, max_side: int = EMBED_MAX_SIDE) -> str:
    """``image`` scaled down to ``max_side`` and encoded as a JPEG (quality 90) data URI."""
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image = resize(image, fit_size(*image.size, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def bytes_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _figure(src: str, caption: str, css_class: str = "") -> str:
    """Images are shown 200 px high (small results enlarged), the loss plot (``plot``) as it is."""
    e, attr = html.escape, f' class="{css_class}"' if css_class else ""
    return f'<figure{attr}><img src="{e(src)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'


def _table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"<code>{v:.6g}</code>"
    if isinstance(v, list | tuple | dict):
        return f"<code>{html.escape(json.dumps(v, default=str))}</code>"
    return f"<code>{html.escape(str(v))}</code>"


def _strip(frames: Sequence[Snapshot]) -> str:
    """At most ``STRIP_MAX_FRAMES`` frames, evenly spaced, always with the first and the last."""
    if len(frames) > STRIP_MAX_FRAMES:
        step = (len(frames) - 1) / (STRIP_MAX_FRAMES - 1)
        frames = [frames[round(i * step)] for i in range(STRIP_MAX_FRAMES)]
    figures = []
    for f in frames:
        loss = f" · loss {f.losses['total']:.3g}" if "total" in f.losses else ""
        figures.append(_figure(data_uri(f.image, 240), f"iteration {f.iteration}{loss}"))
    return f'<div class="row strip">{"".join(figures)}</div>'


def report_html(
    metadata: dict,
    result: Image.Image,
    *,
    title: str,
    inputs: Sequence[tuple[str, Image.Image]] = (),
    frames: Sequence[Snapshot] = (),
    gif: bytes | None = None,
    loss_plot: bytes | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> str:
    """The page for one run. ``metadata``: ``Result.metadata``; ``inputs``: (caption, image) pairs such as
    ("content: tubingen.jpg", im); ``loss_plot``: PNG bytes; ``links``: (caption, relative path) pairs."""
    e = html.escape
    timings = metadata.get("timings", {})
    final = metadata.get("final_losses", {})
    parts = [
        f"<h1>{e(title)}</h1>",
        f'<p class="sub">painterly {e(str(metadata.get("painterly", "")))} · {e(str(metadata.get("mode", "")))} · '
        f"{e(str(metadata.get('backbone', '')))} · {e(str(metadata.get('device', '')))} · "
        f"{timings.get('total_s', 0):.1f} s · generated {e(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>",
    ]
    if metadata.get("interrupted"):
        parts.append('<p class="warn">Interrupted: the result is the best image found before Ctrl-C.</p>')
    panels = [_figure(data_uri(im, INPUT_MAX_SIDE), caption) for caption, im in inputs]
    panels.append(_figure(data_uri(result), f"result · {result.width}×{result.height}"))
    parts += ["<h2>Inputs and result</h2>", f'<div class="row">{"".join(panels)}</div>']
    if gif or frames:
        parts.append("<h2>Evolution</h2>")
        if gif:
            parts.append(f'<div class="row">{_figure(bytes_uri(gif, "image/gif"), "evolution (GIF)")}</div>')
        if frames:
            parts.append(_strip(frames))
    parts.append("<h2>Losses</h2>")
    if loss_plot:
        plot = _figure(bytes_uri(loss_plot, "image/png"), "loss per iteration", "plot")
        parts.append(f'<div class="row">{plot}</div>')
    parts.append(_table(list(final.items())))
    run_rows = [
        ("backbone and weights", metadata.get("backbone")),
        ("device", metadata.get("device")),
        ("iterations run", metadata.get("iterations_run")),
        ("interrupted", metadata.get("interrupted")),
        *((f"inputs: {k}", v) for k, v in metadata.get("inputs", {}).items()),
        *((f"time: {k}", v) for k, v in timings.items()),
        *((f"version: {k}", v) for k, v in metadata.get("versions", {}).items()),
    ]
    parts += ["<h2>Run</h2>", _table(run_rows), "<h2>Options</h2>", _table(list(metadata.get("options", {}).items()))]
    if links:
        items = "".join(f'<li><a href="{e(href)}">{e(caption)}</a></li>' for caption, href in links)
        parts += ["<h2>Files</h2>", f"<ul>{items}</ul>"]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
