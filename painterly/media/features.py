"""Feature-map figures: for each chosen layer, the K most active channels of a backbone on one image.

The tutorials showed "one filter of each VGG feature map"; this generalises it to K channels per layer,
ranked by mean activation, for whichever backbone and weights the run would use."""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor

from painterly.engine.backbone import FeatureExtractor
from painterly.media import layout
from painterly.media.images import fit_size, to_tensor

DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def top_channels(features: Tensor, k: int) -> list[tuple[int, float, Tensor]]:
    """The ``k`` channels with the largest mean activation: [(channel, mean, map (h, w)), ...], most active
    first. ``features``: (1, C, h, w)."""
    means = features[0].mean(dim=(1, 2))  # (C,)
    order = torch.argsort(means, descending=True)[:k]
    return [(int(c), float(means[c]), features[0, c]) for c in order]


def colorize(fmap: Tensor, cmap: str = "viridis") -> Image.Image:
    """A (h, w) map as an RGB image: min-max normalised per map (as ``imshow`` does), then ``cmap``."""
    import matplotlib  # lazily: a second to import

    m = fmap.detach().float().cpu()
    m = (m - m.min()) / (m.max() - m.min()).clamp(min=1e-12)
    rgba = matplotlib.colormaps[cmap](m.numpy(), bytes=True)  # (h, w, 4) uint8
    return Image.fromarray(rgba[..., :3])


def _tile(image: Image.Image, side: int) -> Image.Image:
    """Scale to ``side`` px long side: nearest-neighbour when enlarging, so deep layers show their coarse grid."""
    size = fit_size(*image.size, side)
    method = Image.Resampling.NEAREST if size[0] >= image.width else Image.Resampling.BOX
    return image.resize(size, method)


@torch.no_grad()
def feature_grid(
    extractor: FeatureExtractor,
    image: Image.Image,
    layers: tuple[str, ...] = DEFAULT_LAYERS,
    channels: int = 8,
    tile: int = 96,
) -> Image.Image:
    """One row per layer (canonical names the extractor was built with), ``channels`` columns, each tile
    captioned with its channel index and mean activation. ``image``: RGB, fed at its own size."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    device = extractor.body[0].weight.device
    features = extractor(to_tensor(image.convert("RGB"), device))
    rows, captions, labels = [], [], []
    for name in layers:
        f = features[name]  # (1, C, h, w)
        top = top_channels(f, channels)
        rows.append([_tile(colorize(m), tile) for _, _, m in top] + [None] * (channels - len(top)))
        captions.append([f"ch {c} · {mean:.2g}" for c, mean, _ in top] + [""] * (channels - len(top)))
        labels.append(f"{name}  {f.shape[1]} ch, {f.shape[3]}x{f.shape[2]}")
    return layout.grid(
        [[_tile(image, tile)] + [None] * (channels - 1), *rows],
        ["input", *labels],
        [f"#{i + 1}" for i in range(channels)],
        cell_captions=[[f"{image.width}x{image.height}"] + [""] * (channels - 1), *captions],
        title=f"{extractor.description}: the {channels} most active channels per layer (mean activation)",
        label_px=max(11, tile // 8),
    )
