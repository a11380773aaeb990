"""Speed variants tried for issue 6 (kept only where they measurably help): one objective evaluation
(forward + backward to the image) at one size, alternating variants, best of N each.

    python benchmarks/variants.py [--size 384] [--repeats 3] [--compile]

- channels-last: trunk weights and input in torch.channels_last (oneDNN's preferred layout);
- inference_mode: targets under torch.inference_mode instead of no_grad;
- compile: torch.compile of the trunk (optional: minutes of compilation on 2 cores)."""

from __future__ import annotations

import argparse
import copy
import time

import torch

from painterly.api import backbone_for
from painterly.config import build_config
from painterly.engine.objective import Objective


def _time(fn, repeats: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    cfg = build_config("stylize", {"weights": "random"})
    extractor = backbone_for(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    h, w = args.size * 3 // 4, args.size
    content, style = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
    objective = Objective(extractor, cfg, content, style)
    v0 = extractor.pixels.to_net(torch.rand(1, 3, h, w, generator=g))

    def evaluate(obj: Objective, layout: torch.memory_format) -> None:
        v = v0.contiguous(memory_format=layout).requires_grad_(True)
        obj(v)["total"].backward()

    cl_extractor = copy.deepcopy(extractor).to(memory_format=torch.channels_last)
    cl_objective = Objective(cl_extractor, cfg, content, style)
    variants = {
        "baseline": lambda: evaluate(objective, torch.contiguous_format),
        "channels-last": lambda: evaluate(cl_objective, torch.channels_last),
    }
    if args.compile:
        c_objective = Objective(copy.deepcopy(extractor), cfg, content, style)
        c_objective.extractor.net_features = torch.compile(c_objective.extractor.net_features)
        t0 = time.perf_counter()
        evaluate(c_objective, torch.contiguous_format)
        print(f"compile: first call {time.perf_counter() - t0:.1f} s")
        variants["compile"] = lambda: evaluate(c_objective, torch.contiguous_format)
    results = {k: float("inf") for k in variants}
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits every variant alike
        for name, fn in variants.items():
            results[name] = min(results[name], _time(fn, 1))
    for name, t in results.items():
        print(f"{name}: {t:.3f} s per evaluation at {w}x{h} ({results['baseline'] / t:.2f}x baseline)")
    targets = {
        "no_grad": lambda: Objective(extractor, cfg, content, style),
        "inference_mode": lambda: _in_inference(extractor, cfg, content, style),
    }
    times = {k: float("inf") for k in targets}
    for _ in range(args.repeats):
        for name, fn in targets.items():
            times[name] = min(times[name], _time(fn, 1))
    for name, t in times.items():
        print(f"targets with {name}: {t:.3f} s")


def _in_inference(extractor, cfg, content, style) -> Objective:  # noqa: ANN001
    with torch.inference_mode():
        return Objective(extractor, cfg, content, style)


if __name__ == "__main__":
    main()
