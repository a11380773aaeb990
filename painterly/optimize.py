"""Pixel optimisation with L-BFGS or Adam, reporting every iteration as a Progress event."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

Objective = Callable[[Tensor], dict[str, Tensor]]


@dataclass(frozen=True)
class Progress:
    """One iteration: the loss terms at the image evaluated, and that image on request."""

    iteration: int  # 1-based
    total: int
    losses: dict[str, float]  # content, style, tv, total (weighted)
    elapsed: float  # seconds since the run's optimisation started
    _image: Callable[[], Tensor] = field(repr=False)
    scale: int = 1  # coarse-to-fine: which scale (1-based) of ``scales`` this iteration belongs to
    scales: int = 1

    def image(self) -> Tensor:
        """The image this iteration evaluated, RGB in [0, 1], (1, 3, H, W), detached and clamped."""
        return self._image()


class PixelOptimizer:
    """Minimises ``objective(v)`` over the pixels v (network space) and keeps the best image seen.

    ``best`` survives an exception or Ctrl-C raised while iterating ``steps()``."""

    def __init__(
        self,
        objective: Objective,
        init: Tensor,
        to_image: Callable[[Tensor], Tensor],
        optimizer: str = "lbfgs",
        lr: float = 1.0,
        iterations: int = 300,
        tol: float | None = None,
        window: int = 20,
        *,
        numbering: tuple[int, int, int, int] | None = None,
        start: float | None = None,
        history_size: int = 100,
    ) -> None:
        """``numbering`` = (iterations done before this stage, run total, scale, scales) for the events of a
        coarse-to-fine run; ``start`` = its ``time.perf_counter()`` origin; ``history_size``: L-BFGS pairs kept
        (memory.py shortens it for very large images: one pair is two image-sized vectors)."""
        self.objective, self.to_image = objective, to_image
        self.numbering = numbering or (0, iterations, 1, 1)
        self.start = start
        self.v = init.detach().clone().requires_grad_(True)
        self.iterations, self.tol, self.window = iterations, tol, window
        if optimizer == "lbfgs":
            # max_iter=1: one evaluation per step() so every evaluation is reported. History persists across
            # calls. Negative tolerances: never stop on L-BFGS's own tests (a complaint about other tools).
            self.opt = torch.optim.LBFGS(
                [self.v], lr=lr, max_iter=1, history_size=history_size, tolerance_grad=-1, tolerance_change=-1
            )
        else:
            self.opt = torch.optim.Adam([self.v], lr=lr)
        self.best: Tensor | None = None  # network space
        self.best_loss = math.inf
        self.history: list[dict[str, float]] = []

    def best_image(self) -> Tensor | None:
        return None if self.best is None else self.to_image(self.best)

    def _evaluate(self) -> Tensor:
        self.opt.zero_grad(set_to_none=True)
        terms = self.objective(self.v)
        terms["total"].backward()
        self._terms = {k: float(t.detach()) for k, t in terms.items()}
        total = self._terms["total"]
        self._evaluated = self.v.detach().clone()
        if total < self.best_loss:
            self.best_loss, self.best = total, self._evaluated
        return terms["total"]

    def steps(self) -> Iterator[Progress]:
        start = self.start if self.start is not None else time.perf_counter()
        done, total, scale, scales = self.numbering
        for i in range(done + 1, done + self.iterations + 1):
            self.opt.step(self._evaluate)
            losses, evaluated, elapsed = self._terms, self._evaluated, time.perf_counter() - start
            self.history.append({"iteration": i, **losses, "elapsed": elapsed, "scale": scale})
            yield Progress(i, total, losses, elapsed, lambda e=evaluated: self.to_image(e), scale, scales)
            if not math.isfinite(losses["total"]) or self._converged():
                return

    def _converged(self) -> bool:
        """Relative improvement of the best loss over the last ``window`` iterations is below ``tol``."""
        if self.tol is None or len(self.history) <= self.window:  # history of this stage only
            return False
        before = min(h["total"] for h in self.history[: -self.window])
        return before - self.best_loss < self.tol * abs(before)
