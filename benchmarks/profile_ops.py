"""Where one objective evaluation (forward + backward to the image) spends its time, by operator.

python benchmarks/profile_ops.py [--size 512] [--repeats 2]"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from painterly.api import backbone_for
from painterly.config import build_config
from painterly.engine.objective import Objective


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cfg = build_config("stylize", {"weights": "random"})
    extractor = backbone_for(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    h, w = args.size * 3 // 4, args.size
    objective = Objective(extractor, cfg, torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g))
    v = extractor.pixels.to_net(torch.rand(1, 3, h, w, generator=g)).requires_grad_(True)
    objective(v)["total"].backward()  # warm-up: oneDNN primitives for these shapes
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.repeats):
            v.grad = None
            objective(v)["total"].backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40))


if __name__ == "__main__":
    main()
