"""Mixed precision on CUDA: the trunk runs under autocast, every loss in float32.

fp16 Gram matrices overflow in other tools: G = F Fᵀ sums H·W products, so at 512 px (65 536 positions) a
mean product of 1 already reaches fp16's maximum of 65 504. We never form a Gram in half precision: the
features leave autocast as float32, and the losses (Gram, content, Wasserstein) run outside it. bf16 has
float32's exponent range, so we prefer it; fp16 is used only where bf16 is not supported."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on CUDA (fp16 on GPUs without bf16), float32 elsewhere (CPU autocast is slower here)."""
    if precision != "auto":
        return PRECISIONS[precision]
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class MixedPrecisionFeatures:
    """Wraps a ``FeatureExtractor``: ``net_features`` under autocast(``dtype``), features out as float32."""

    def __init__(self, extractor, dtype: torch.dtype):  # noqa: ANN001 - a FeatureExtractor or a wrapper of one
        self.extractor, self.dtype = extractor, dtype
        self.pixels, self.body, self.layers = extractor.pixels, extractor.body, extractor.layers
        self.description = f"{extractor.description}, autocast {str(dtype).removeprefix('torch.')}"

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        return self.net_features(self.pixels.to_net(x))

    def net_features(self, v: Tensor, names: Iterable[str] | None = None) -> dict[str, Tensor]:
        with torch.autocast(v.device.type, dtype=self.dtype):
            feats = self.extractor.net_features(v, names)
        return {n: f.float() for n, f in feats.items()}  # Grams and losses in float32: no overflow
