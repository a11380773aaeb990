"""Quality harness (issue 12): candidate settings over photo x painting pairs the default was never tuned on.

    python benchmarks/quality.py [--size 256] [--pairs astronaut:the_scream,...] [--variants old,new,fast]
                                 [--cache /tmp/painterly-quality] [--sheets docs/quality] [--table FILE]
                                 [--per-layer] [--check-seeds 1,2,3,4]

Per run: the wall time of ``painterly.run``, a style distance and a structure measure (below); per pair a
contact sheet (photo, painting, one column per variant) written to ``--sheets``/PAIR.jpg. Results are kept in
``--cache`` so sheets and tables are rebuilt and variants added without repeating runs.

Measures (what they see is explained in docs/quality.md):
- style: mean over relu1_1..relu5_1 of ‖G_l(x) - G_l(s)‖_F / ‖G_l(s)‖_F on a *second* random VGG19
  (seed 1234, not the optimiser's seed 0), with the painting at the result's long side. Lower is better.
- structure: Pearson correlation of the photo's and the result's Sobel edge magnitude on luminance, both blurred
  by σ = long side / 192 px (1.33 px at 256), so pixel speckle counts as noise rather than edges. 1 = the
  photo's edges exactly, ~0 = none of them. Higher is better.

Photos come from ../shared/data/content, scikit-image and Matplotlib sample data, and two composed here (a
night scene, an indoor scene); paintings from ../shared/data/style. Needs the quality extra (scikit-image)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import painterly
from painterly.config import build_config
from painterly.engine.backbone import load_backbone
from painterly.engine.losses import gram
from painterly.engine.structure import luminance
from painterly.media.images import fit_size, to_tensor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STYLES = ("brushstrokes", "mondrian_cropped", "shipwreck", "starry_night", "the_scream")
PAIRS = (  # 12 pairs, 9 photos, every painting at least twice; no Tübingen x Starry Night
    ("astronaut", "the_scream"),
    ("chelsea", "starry_night"),
    ("coffee", "mondrian_cropped"),
    ("rocket", "shipwreck"),
    ("grace_hopper", "brushstrokes"),
    ("night", "mondrian_cropped"),
    ("indoor", "starry_night"),
    ("chicago", "brushstrokes"),
    ("golden_gate", "shipwreck"),
    ("sailboat", "the_scream"),
    ("tubingen", "mondrian_cropped"),
    ("night", "brushstrokes"),
)
RANDOM = {"weights": "random"}  # what a user without the ImageNet weights gets
OLD = dict(  # the default before issue 12, tuned on Tübingen x Starry Night at 192 px
    RANDOM, preset="default", content_layers="relu4_2", style_layers="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
    content_weight=1.0, style_weight=10.0, tv_weight=0.0, structure_weight=0.0, balance="fixed",
    iterations=300, tol=None, init="content",
)  # fmt: skip
VARIANTS: dict[str, dict] = {  # the candidates of docs/quality.md, each a change to the old default
    "old": OLD,
    "new": dict(RANDOM),  # whatever the default preset is now
    "new-photo-start": dict(RANDOM, init="content"),  # the new default started from the photo itself
    "fast": dict(RANDOM, method="fast"),
    "balance": dict(OLD, balance="photo", style_weight=16.0),
    "lap2": dict(OLD, structure_weight=2.0),
    "balance+lap2": dict(OLD, balance="photo", style_weight=16.0, structure_weight=2.0),
    "lap1": dict(OLD, structure_weight=1.0),
    "lap0.5": dict(OLD, structure_weight=0.5),
    "balance+lap0.5": dict(OLD, balance="photo", style_weight=16.0, structure_weight=0.5),
    "lap0.5+tv": dict(OLD, structure_weight=0.5, tv_weight=0.1),
    "lap0.5+s20": dict(OLD, structure_weight=0.5, style_weight=20.0),
    "lap0.5+s40": dict(OLD, structure_weight=0.5, style_weight=40.0),
}
STYLE_SEED = 1234  # the measuring backbone's seed: not the optimiser's (0)
LAYERS = tuple(f"relu{i}_1" for i in range(1, 6))
THUMB = 120  # contact sheet row height, px


# --- photos ---


def _night() -> Image.Image:
    """A low-key scene: dark blue sky with a moon, a black skyline with a few lit windows, a reflecting street."""
    g = np.random.default_rng(3)
    h, w = 384, 512
    y = np.linspace(0, 1, h)[:, None, None]
    img = np.broadcast_to((0.02 + 0.10 * y) * np.array([0.5, 0.6, 1.0]), (h, w, 3)).copy()
    yy, xx = np.mgrid[:h, :w]
    img[(yy - 70) ** 2 + (xx - 400) ** 2 < 28**2] = (0.95, 0.93, 0.8)
    for x0, bw, top in ((20, 90, 150), (120, 70, 90), (200, 110, 180), (320, 60, 120), (390, 100, 200)):
        img[top:300, x0 : x0 + bw] = (0.03, 0.03, 0.04)
        for wy in range(top + 12, 290, 22):
            for wx in range(x0 + 8, x0 + bw - 10, 16):
                if g.random() < 0.35:
                    img[wy : wy + 9, wx : wx + 7] = (1.0, 0.8, 0.35)
    img[300:] = 0.05 + 0.3 * img[299:300] * np.linspace(1, 0.2, h - 300)[:, None, None]
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))


def _indoor() -> Image.Image:
    """An indoor scene: walls, floor, a window with sky, a table and a lamp with its pool of light."""
    h, w = 384, 512
    yy, xx = np.mgrid[:h, :w] / np.array([h, w])[:, None, None]
    img = np.zeros((h, w, 3))
    img[:] = (0.78, 0.72, 0.6)
    img[yy > 0.7] = (0.45, 0.3, 0.2)
    img += 0.0
    win = (yy > 0.15) & (yy < 0.5) & (xx > 0.08) & (xx < 0.35)
    img[win] = np.stack([0.5 + 0.3 * yy, 0.7 + 0.2 * yy, 0.95 + 0 * yy], -1)[win]
    img[(yy > 0.15) & (yy < 0.5) & (np.abs(xx - 0.215) < 0.006)] = (0.95, 0.95, 0.95)
    img[(np.abs(yy - 0.325) < 0.008) & (xx > 0.08) & (xx < 0.35)] = (0.95, 0.95, 0.95)
    img[(yy > 0.58) & (yy < 0.62) & (xx > 0.45) & (xx < 0.9)] = (0.3, 0.18, 0.1)  # table top
    for x0 in (0.48, 0.85):
        img[(yy > 0.62) & (yy < 0.85) & (xx > x0) & (xx < x0 + 0.025)] = (0.25, 0.15, 0.08)
    img[(yy > 0.3) & (yy < 0.58) & (np.abs(xx - 0.7) < 0.008)] = (0.15, 0.15, 0.15)  # lamp stand
    shade = (yy > 0.22) & (yy < 0.3) & (np.abs(xx - 0.7) < 0.02 + 0.4 * (yy - 0.22))
    img[shade] = (0.95, 0.85, 0.5)
    light = np.exp(-(((xx - 0.7) / 0.2) ** 2 + ((yy - 0.45) / 0.25) ** 2))[..., None]
    img = img * (0.6 + 0.6 * light)
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))


def photo(name: str) -> Image.Image:
    if (DATA / "content" / f"{name}.jpg").exists():
        return Image.open(DATA / "content" / f"{name}.jpg").convert("RGB")
    if name == "night":
        return _night()
    if name == "indoor":
        return _indoor()
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return Image.open(f).convert("RGB")
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def painting(name: str) -> Image.Image:
    return Image.open(DATA / "style" / f"{name}.jpg").convert("RGB")


# --- measures ---

_measuring: dict = {}


def layer_distances(result: Image.Image, style: Image.Image, seed: int = STYLE_SEED) -> list[float]:
    """‖G_l(x) - G_l(s)‖_F / ‖G_l(s)‖_F for l = relu1_1..relu5_1 on a random VGG19 seeded ``seed``, the
    painting at x's long side."""
    if seed not in _measuring:
        _measuring[seed] = load_backbone("vgg19", f"random:{seed}", "avg", "torch", LAYERS)
    net = _measuring[seed]
    s = style.resize(fit_size(*style.size, max(result.size)), Image.LANCZOS)
    with torch.no_grad():
        fx, fs = net(to_tensor(result)), net(to_tensor(s))
        return [float((gram(fx[n]) - gram(fs[n])).norm() / gram(fs[n]).norm()) for n in LAYERS]


def style_distance(result: Image.Image, style: Image.Image, seed: int = STYLE_SEED) -> float:
    """The style measure: the mean of ``layer_distances``."""
    return float(np.mean(layer_distances(result, style, seed)))


def _blur(y: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(y)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def edges(image: Image.Image) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance blurred by σ = long side / 192."""
    y = _blur(luminance(to_tensor(image)), max(image.size) / 192)
    sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    gx = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), sx.view(1, 1, 3, 3))
    gy = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), sx.t().reshape(1, 1, 3, 3))
    return (gx.pow(2) + gy.pow(2)).sqrt()


def structure(result: Image.Image, content: Image.Image) -> float:
    """Pearson correlation of ``edges`` of the photo (at the result's size) and of the result."""
    a = edges(content.resize(result.size, Image.LANCZOS)).flatten()
    b = edges(result).flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-12))


# --- runs, sheets, table ---


def run_one(pair: tuple[str, str], variant: str, size: int, cache: Path, iterations: int | None = None) -> dict:
    """One run (or its cached result): the image and {time, style, structure}."""
    options = dict(VARIANTS[variant], size=size) | ({"iterations": iterations} if iterations else {})
    key = f"{pair[0]}__{pair[1]}__{variant}__{size}" + (f"__{iterations}" if iterations else "")
    png, meta = cache / f"{key}.png", cache / f"{key}.json"
    if png.exists() and meta.exists():
        return json.loads(meta.read_text()) | {"image": Image.open(png).convert("RGB")}
    content, style = photo(pair[0]), painting(pair[1])
    cfg = build_config("stylize", options)
    t0 = time.perf_counter()
    image = painterly.run(cfg, content, style).image.convert("RGB")
    record = {"time": time.perf_counter() - t0}
    record |= {"style": style_distance(image, style), "structure": structure(image, content)}
    image.save(png)
    meta.write_text(json.dumps(record))
    return record | {"image": image}


def photo_record(pair: tuple[str, str], size: int) -> dict:
    """The photo itself as a 'result': structure 1, the style distance a stylisation starts from."""
    content = photo(pair[0])
    image = content.resize(fit_size(*content.size, size), Image.LANCZOS)
    return {"time": 0.0, "style": style_distance(image, painting(pair[1])), "structure": 1.0, "image": image}


def sheet(pair: tuple[str, str], records: dict[str, dict], path: Path) -> None:
    """One row: the photo, the painting, then each variant, labelled with its measures."""
    tiles = [("photo", records["photo"]["image"]), ("painting", painting(pair[1]))]
    tiles += [(f"{v} s{r['style']:.2f} e{r['structure']:.2f} {r['time']:.0f}s", r["image"])
              for v, r in records.items() if v != "photo"]  # fmt: skip
    thumbs = [(label, im.resize(_thumb(im), Image.LANCZOS)) for label, im in tiles]
    width = sum(t.width for _, t in thumbs) + 4 * (len(thumbs) - 1)
    out = Image.new("RGB", (width, THUMB + 14), "white")
    draw, x = ImageDraw.Draw(out), 0
    for label, t in thumbs:
        out.paste(t, (x, 14))
        draw.text((x + 2, 1), label, fill="black")
        x += t.width + 4
    out.save(path, quality=72, optimize=True)


def _thumb(im: Image.Image) -> tuple[int, int]:
    return max(1, round(im.width * THUMB / im.height)), THUMB


def table(rows: list[tuple[tuple[str, str], dict[str, dict]]], variants: list[str]) -> str:
    head = "| pair | photo style | " + " | ".join(f"{v} style / edges / s" for v in variants) + " |"
    lines = [head, "|" + "---|" * (2 + len(variants))]
    for pair, recs in rows:
        cells = [f"{recs[v]['style']:.3f} / {recs[v]['structure']:.3f} / {recs[v]['time']:.0f}" for v in variants]
        lines.append(f"| {pair[0]} × {pair[1]} | {recs['photo']['style']:.3f} | " + " | ".join(cells) + " |")
    means = [f"{np.mean([r[v]['style'] for _, r in rows]):.3f} / {np.mean([r[v]['structure'] for _, r in rows]):.3f}"
             f" / {np.mean([r[v]['time'] for _, r in rows]):.0f}" for v in variants]  # fmt: skip
    lines.append(f"| **mean** | {np.mean([r['photo']['style'] for _, r in rows]):.3f} | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", default="", help="photo:painting,... (default: all 12)")
    parser.add_argument("--variants", default="old,new,fast")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/painterly-quality"))
    parser.add_argument("--sheets", type=Path, default=None, help="folder for PAIR.jpg contact sheets")
    parser.add_argument("--table", type=Path, default=None, help="write the markdown table here")
    parser.add_argument(
        "--set",
        default="",
        help="extra variants 'NAME=k=v;k=v ...', changes to the current default (e.g. s60=style_weight=60)",
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=None, help="override every variant's iterations")
    parser.add_argument("--per-layer", action="store_true", help="add each variant's per-layer style distances")
    parser.add_argument("--check-seeds", default="", help="add the style distance on other measuring seeds, e.g. 1,2")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for spec in filter(None, args.set.split(" ")):
        name, _, rest = spec.partition("=")
        changes = (kv.partition("=") for kv in rest.split(";"))
        VARIANTS[name] = dict(RANDOM, **{k: _value(v) for k, _, v in changes})
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")] if args.pairs else list(PAIRS)
    variants = args.variants.split(",")
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for pair in pairs:
        recs = {"photo": photo_record(pair, args.size)}
        for v in variants:
            recs[v] = run_one(pair, v, args.size, args.cache, args.iterations)
            print(f"{pair[0]} x {pair[1]} {v}: style {recs[v]['style']:.3f} edges {recs[v]['structure']:.3f} "
                  f"{recs[v]['time']:.1f} s", flush=True)  # fmt: skip
        if args.sheets:
            args.sheets.mkdir(parents=True, exist_ok=True)
            sheet(pair, recs, args.sheets / f"{pair[0]}__{pair[1]}.jpg")
        rows.append((pair, recs))
    text = table(rows, variants)
    if args.per_layer:  # where each variant's style distance comes from (cheap: from the cached pictures)
        text += "\n\n| pair | " + " | ".join(f"{v}: relu1_1..relu5_1" for v in variants) + " |\n"
        text += "|" + "---|" * (1 + len(variants))
        for pair, recs in rows:
            cells = [" / ".join(f"{d:.3f}" for d in layer_distances(recs[v]["image"], painting(pair[1])))
                     for v in variants]  # fmt: skip
            text += f"\n| {pair[0]} × {pair[1]} | " + " | ".join(cells) + " |"
    if args.check_seeds:  # is a lead on the style measure more than the measuring network's own draw?
        seeds = [STYLE_SEED, *map(int, args.check_seeds.split(","))]
        text += "\n\n| pair | " + " | ".join(f"{v}: seeds {', '.join(map(str, seeds))}; mean" for v in variants)
        text += " |\n|" + "---|" * (1 + len(variants))
        for pair, recs in rows:
            cells = []
            for v in variants:
                d = [style_distance(recs[v]["image"], painting(pair[1]), seed) for seed in seeds]
                cells.append(" / ".join(f"{x:.3f}" for x in d) + f"; **{np.mean(d):.3f}**")
            text += f"\n| {pair[0]} × {pair[1]} | " + " | ".join(cells) + " |"
    print(text)
    if args.table:
        args.table.write_text(text + "\n")


def _value(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


if __name__ == "__main__":
    main()
