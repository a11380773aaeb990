"""Optical flow between video frames, its reliability mask, warping, and the warping error.

Conventions: a flow ``f`` from frame A to frame B is an (H, W, 2) float32 array of (dx, dy) in pixels with
A(x) ≈ B(x + f(x)). ``forward`` is prev -> cur and ``backward`` is cur -> prev, so the previous frame seen
from the current one is ``warp(prev, backward)``. Images are (H, W, C) float32 arrays (``cv2.remap``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from painterly.engine.objective import Builder, PixelTerm, Term, TermContext
from painterly.errors import ExitCode, PainterlyError

try:
    import cv2
except ImportError:  # pragma: no cover - the optional extra is missing
    cv2 = None

RAFT_FILE = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"  # torchvision's Raft_Large_Weights.DEFAULT, in torch hub's cache


def warp(image: np.ndarray, flow: np.ndarray, lanczos: bool = False) -> np.ndarray:
    """out(x) = image(x + flow(x)), bilinear (or Lanczos-4, which keeps more of the finest detail when a
    result is warped again and again); samples outside the frame repeat the edge (they are unreliable: see
    ``reliability``)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mode = cv2.INTER_LANCZOS4 if lanczos else cv2.INTER_LINEAR
    out = cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], mode, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def reliability(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) float32 mask of the current frame's pixels whose motion is trusted: 1, else 0.

    Ruder, Dosovitskiy & Brox 2016, sec. 3.2, with w = ``forward`` and ŵ = ``backward``, w̃(x) = w(x + ŵ(x)):
    disoccluded where |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5 (forward and backward flow disagree);
    motion boundary where |∇ŵ_x|² + |∇ŵ_y|² > 0.01 |ŵ|² + 0.002. We also drop pixels whose source
    x + ŵ(x) lies outside the previous frame (uncovered at the border by a pan or zoom)."""
    h, w = backward.shape[:2]
    fw = warp(forward, backward)
    sq = (fw**2).sum(-1) + (backward**2).sum(-1)
    occluded = ((fw + backward) ** 2).sum(-1) > 0.01 * sq + 0.5
    gy_u, gx_u = np.gradient(backward[..., 0])
    gy_v, gx_v = np.gradient(backward[..., 1])
    boundary = gx_u**2 + gy_u**2 + gx_v**2 + gy_v**2 > 0.01 * (backward**2).sum(-1) + 0.002
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    sx, sy = gx + backward[..., 0], gy + backward[..., 1]
    outside = (sx < 0) | (sx > w - 1) | (sy < 0) | (sy > h - 1)
    return (~(occluded | boundary | outside)).astype(np.float32)


class FlowEstimator:
    """Dense flow both ways between two RGB uint8 frames: ``estimator(prev, cur) -> (forward, backward)``.

    ``dis``: OpenCV's DIS (Kroeger et al. 2016), fast on a CPU; ``raft``: torchvision's RAFT large (Teed &
    Deng 2020), used only when its weights are already in torch hub's cache (never downloaded here);
    ``auto``: RAFT on a GPU when its weights are there, else DIS."""

    def __init__(self, method: str = "auto", device: torch.device | str = "cpu"):
        if cv2 is None:
            raise PainterlyError('video needs PyAV and OpenCV: pip install -e ".[video]"', ExitCode.USAGE)
        self.device = torch.device(device)
        weights = Path(torch.hub.get_dir()) / "checkpoints" / RAFT_FILE
        if method == "auto":
            method = "raft" if weights.is_file() and self.device.type == "cuda" else "dis"
        self.method = method
        if method == "raft":
            self._raft = _load_raft(weights, self.device)
        elif method == "dis":
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        else:
            raise PainterlyError(f"unknown flow method {method!r} (auto, dis or raft)", ExitCode.USAGE)

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.method == "raft":
            return self._raft_pair(prev, cur)
        a, b = (cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in (prev, cur))
        return self._dis.calc(a, b, None), self._dis.calc(b, a, None)

    @torch.no_grad()
    def _raft_pair(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = prev.shape[:2]
        x = torch.from_numpy(np.stack([prev, cur])).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(self.device)
        ph, pw = -h % 8, -w % 8  # RAFT needs sizes divisible by 8
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        flows = self._raft(x, x.flip(0))[-1][:, :, :h, :w]  # (2, 2, H, W): prev->cur, cur->prev
        fwd, bwd = flows.permute(0, 2, 3, 1).float().cpu().numpy()
        return np.ascontiguousarray(fwd), np.ascontiguousarray(bwd)


def _load_raft(path: Path, device: torch.device) -> torch.nn.Module:
    """RAFT large from a cached state dict; the file's SHA-256 must start with the hash in its name, as torch
    hub checks it on download."""
    from torchvision.models.optical_flow import raft_large

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(path.stem.rsplit("-", 1)[-1]):
        raise PainterlyError(f"{path}: SHA-256 does not match its name; delete the file", ExitCode.RUNTIME)
    model = raft_large(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().to(device)


def resize_array(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) array to (W, H) = ``size``: area averaging (``cv2.INTER_AREA``); the same array if it fits."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)


def to_array(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor in [0, 1] -> (H, W, 3) float32 array."""
    return np.ascontiguousarray(image[0].detach().float().permute(1, 2, 0).cpu().numpy())


def to_tensor(array: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) array (uint8 or float in [0, 1]) -> (1, 3, H, W) float32 tensor in [0, 1]."""
    x = torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float()  # a writable copy
    return (x / 255 if array.dtype == np.uint8 else x).to(device)


def pair_error(out_prev: np.ndarray, out_cur: np.ndarray, backward: np.ndarray, mask: np.ndarray) -> float:
    """Σ_x M(x) ‖O_t(x) − warp(O_{t−1})(x)‖² / (3 Σ_x M(x)) for one pair of float [0, 1] frames (H, W, 3):
    the mean squared difference over reliable pixels and channels. 0 when no pixel is reliable."""
    n = float(mask.sum())
    if n == 0:
        return 0.0
    diff = (out_cur - warp(out_prev, backward)) ** 2
    return float((diff.sum(-1) * mask).sum() / (3 * n))


class WarpingError:
    """Warping error of Lai et al. 2018 (eq. 8), E = mean over t of ``pair_error`` with the flow and mask
    computed on the *input* frames, accumulated frame by frame so clips of any length stream through.

    ``update(inp, out)`` takes an input frame (uint8) and its output (uint8 or float [0, 1]); ``flows`` may
    pass the (forward, backward, mask) the pipeline already computed for this frame."""

    def __init__(self, estimator: FlowEstimator | None = None):
        self.estimator = estimator
        self.values: list[float] = []
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, inp: np.ndarray, out: np.ndarray, flows: tuple | None = None) -> None:
        out = out.astype(np.float32) / 255 if out.dtype == np.uint8 else out.astype(np.float32)
        if self._prev is not None:
            if flows is None:
                fwd, bwd = (self.estimator or FlowEstimator("dis"))(self._prev[0], inp)
                flows = (fwd, bwd, reliability(fwd, bwd))
            self.values.append(pair_error(self._prev[1], out, flows[1], flows[2]))
        self._prev = (inp, out)

    @property
    def value(self) -> float:
        return float(np.mean(self.values)) if self.values else 0.0


def temporal_term(target: torch.Tensor, mask: torch.Tensor, weight: float) -> Builder:
    """A loss-term builder (``engine/objective.register_term``'s ``build``) for the short-term temporal loss of
    Ruder, Dosovitskiy & Brox 2016 (eq. 7): L = W · Σ_x M(x) ‖x − ω(x)‖² / Σ_x M(x), the squared RGB distance
    (summed over channels, [0, 1] pixels) to ω = warp(O_{t−1}) averaged over the reliable pixels M.

    ``target`` (1, 3, H, W) and ``mask`` (1, 1, H, W) in [0, 1] at any size: each coarse-to-fine stage gets
    them area-averaged to its own ``ctx.size``. Where we differ from the paper: it divides by the number of
    pixels D, we by Σ M, so the weight means the same whether few or many pixels are reliable."""

    def build(ctx: TermContext) -> Term | None:
        if weight <= 0 or ctx.size is None:
            return None
        device = ctx.content.device
        t = F.interpolate(target.float(), size=ctx.size, mode="area").to(device)
        m = F.interpolate(mask.float(), size=ctx.size, mode="area").to(device)
        n = m.sum().clamp_min(1e-6)  # no reliable pixel: the term is 0
        return PixelTerm(lambda v: weight * (m * (ctx.pixels.from_net(v) - t).square()).sum() / n)

    return build
