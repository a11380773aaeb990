"""Pixel optimisation with L-BFGS or Adam, reporting every iteration as a ``Step`` event."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from painterly.events import Step

LossFunction = Callable[[Tensor], dict[str, Tensor]]  # v -> named loss terms, with "total"

# A step is rejected when its loss is non-finite or above REJECT_FACTOR x the best loss of the stage. Measured
# (docs/benchmarks.md, "Blow-up guard", 256 px): accepted steps rise to at most 1.4x the best on default runs
# and 7.6x with a Laplacian term; the rejected steps rose 17x to 3·10⁴x (unguarded, three such runs hit inf).
REJECT_FACTOR = 10.0
MAX_REJECTIONS = 5  # rejections without a new best loss in between before a stage gives up
PATIENCE = 3  # iterations a finite loss may stay over REJECT_FACTOR x the best before the step is rejected


class PixelOptimizer:
    """Minimises ``objective(v)`` over the pixels v (network space) and keeps the best image seen.

    Guard against blow-ups (L-BFGS here runs without a line search, so nothing else catches a bad step): an
    evaluation whose loss is non-finite or above ``REJECT_FACTOR`` x the stage's best rejects the step that led
    there. The optimiser goes back to the best point and restarts from fresh state: L-BFGS drops its curvature
    pairs (a warm start's carried ones too, which is what misbehaves when a term's scale changes between
    stages) and takes a short gradient step; Adam drops its moments. A stage that makes ``MAX_REJECTIONS``
    rejections without finding a better point stops there and says why in ``ended_early``. ``notes`` has one
    line per thing worth telling (rejected steps, an early end); the iteration's ``Step.note`` says it too.

    ``best`` survives an exception or Ctrl-C raised while iterating ``steps()``."""

    def __init__(
        self,
        objective: LossFunction,
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
        warm: dict | None = None,
    ) -> None:
        """``numbering`` = (iterations done before this stage, run total, stage, stages) for the events of a
        coarse-to-fine run; ``start`` = its ``time.perf_counter()`` origin; ``history_size``: L-BFGS pairs kept
        (memory.py shortens it for very large images: one pair is two image-sized vectors); ``warm``: the previous
        stage's ``curvature_at(size)``."""
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
            if warm is not None:  # n_iter 1 and a zero last step: the first step() uses the pairs, stores none
                n = self.v.numel()
                zeros = torch.zeros(n, dtype=self.v.dtype, device=self.v.device)
                self.opt.state[self.v].update(
                    func_evals=0, n_iter=1, d=zeros, t=0.0, prev_flat_grad=zeros.clone(), **warm
                )
        else:
            self.opt = torch.optim.Adam([self.v], lr=lr)
        self.best: Tensor | None = None  # network space
        self.best_loss = math.inf
        self.records: list[dict[str, float]] = []  # per iteration: the loss terms, elapsed, stage
        self.rejected: list[tuple[int, str]] = []  # (iteration, why) of every rejected step
        self.ended_early: str | None = None  # why this stage stopped before its iterations (no stage prefix)
        self._stalled = 0  # rejections since the best loss last improved
        self._above = 0  # consecutive iterations with a finite loss over REJECT_FACTOR x the best

    def _evaluate(self) -> Tensor:
        self.opt.zero_grad(set_to_none=True)
        terms = self.objective(self.v)
        terms["total"].backward()
        self._terms = {k: float(t.detach()) for k, t in terms.items()}
        total = self._terms["total"]
        self._evaluated = self.v.detach().clone()
        if total < self.best_loss:
            self.best_loss, self.best, self._stalled = total, self._evaluated, 0
        return terms["total"]

    def steps(self) -> Iterator[Step]:
        """One evaluation per iteration; the step it leads to is taken, or rejected (see the class)."""
        start = self.start if self.start is not None else time.perf_counter()
        done, total, stage, stages = self.numbering
        for i in range(done + 1, done + self.iterations + 1):
            loss = self._evaluate()
            losses, evaluated, elapsed = self._terms, self._evaluated, time.perf_counter() - start
            why = self._rejects(losses["total"])
            if why is None:
                self.opt.step(lambda loss=loss: loss)  # the closure's evaluation is the one just made
            else:
                self._reject(i, why)
            note = None if why is None else f"step rejected ({why}); {self._restart_note()}"
            self.records.append({"iteration": i, **losses, "elapsed": elapsed, "stage": stage})
            yield Step(i, total, elapsed, lambda e=evaluated: self.to_image(e), losses, stage, stages, note)
            if self.ended_early or self._converged():
                return

    def _rejects(self, loss: float) -> str | None:
        """Why the step that led to a point with this loss is rejected, or None to keep it. A finite loss over
        ``REJECT_FACTOR`` x the best is given ``PATIENCE`` iterations to come back under it: L-BFGS without a
        line search sometimes leaves a plateau through one huge step (night x Mondrian at 128 px: a 1750x step
        at iteration 5, then 0.62 after 100 iterations; rejected at once, the stage crept from 27.7 to 25)."""
        if not math.isfinite(loss):
            return "non-finite loss"
        self._above = self._above + 1 if loss > REJECT_FACTOR * self.best_loss else 0
        if self._above > PATIENCE:
            return f"loss {loss / self.best_loss:.3g}x the best for {self._above} iterations"
        return None

    def _reject(self, iteration: int, why: str) -> None:
        """Go back to the best point with fresh optimiser state, or end the stage when that is hopeless."""
        self.rejected.append((iteration, why))
        self._stalled, self._above = self._stalled + 1, 0
        done = iteration - self.numbering[0]
        if self.best is None:
            self.ended_early = f"stopped at its first iteration: {why} at the starting point"
        elif self._stalled >= MAX_REJECTIONS:
            self.ended_early = (
                f"ended after {done} of {self.iterations} iterations: {self._stalled} steps "
                f"rejected without a better point (last: {why}); keeping its best, loss {self.best_loss:.4g}"
            )
        if self.best is not None:
            with torch.no_grad():
                self.v.copy_(self.best)
            self.opt.state.clear()  # L-BFGS: no pairs, n_iter 0 (a short gradient step next); Adam: no moments

    def _restart_note(self) -> str:
        if self.ended_early:
            return "stage ended"
        state = "curvature" if isinstance(self.opt, torch.optim.LBFGS) else "moments"
        return f"back to the best point (loss {self.best_loss:.4g}), {state} restarted"

    def _stage(self) -> str:
        _, _, stage, stages = self.numbering
        return f"stage {stage}/{stages}: " if stages > 1 else ""

    @property
    def notes(self) -> list[str]:
        """One line per thing worth telling about this stage: its rejected steps, an early end."""
        notes = []
        if self.rejected:
            shown = ", ".join(f"{i} ({why})" for i, why in self.rejected[:6])
            more = f" and {len(self.rejected) - 6} more" if len(self.rejected) > 6 else ""
            state = "curvature" if isinstance(self.opt, torch.optim.LBFGS) else "moments"
            notes.append(
                f"{self._stage()}rejected {len(self.rejected)} step{'s' * (len(self.rejected) > 1)} at "
                f"iteration{'s' * (len(self.rejected) > 1)} {shown}{more}; back to the best point, {state} restarted"
            )
        if self.ended_early:
            notes.append(f"{self._stage()}{self.ended_early}")
        return notes

    def curvature_at(self, size: tuple[int, int], history_size: int = 100) -> dict | None:
        """L-BFGS's curvature pairs carried to the next, larger coarse-to-fine stage (a multigrid warm start),
        so that stage's first steps are quasi-Newton steps rather than a restart's short gradient steps.

        With U the bicubic upsampling to ``size`` and k = fine / coarse pixel count (UᵀU ≈ kI): s' = U s and
        y' = U y / k, so Uᵀy' ≈ y (the coarse gradient is Uᵀ of the fine one) and y'·s' ≈ y·s. The initial
        inverse-Hessian scale is carried unchanged: the k times larger value the pairs imply overshot in the
        high frequencies the coarse stage never saw. Measured at 256 px (16 + 16 iterations from noise, full
        resolution loss): 0.127 restarted, 0.112 scaled, 0.110 unchanged. Only the newest ``history_size`` pairs
        are upsampled (the next stage's memory plan). None for Adam or with no pairs yet."""
        state = self.opt.state.get(self.v, {}) if isinstance(self.opt, torch.optim.LBFGS) else {}
        if not state.get("old_dirs"):
            return None
        shape, k = self.v.shape, size[0] * size[1] / (self.v.shape[-1] * self.v.shape[-2])

        def up(x: Tensor) -> Tensor:
            return F.interpolate(x.view(shape), size=(size[1], size[0]), mode="bicubic", align_corners=False).flatten()

        warm = {"old_dirs": [], "old_stps": [], "ro": [], "H_diag": state["H_diag"]}
        for y, s in list(zip(state["old_dirs"], state["old_stps"], strict=True))[-history_size:]:
            y, s = up(y) / k, up(s)
            ys = float(y.dot(s))
            if ys > 1e-10:  # positive curvature only, as L-BFGS itself keeps
                warm["old_dirs"].append(y)
                warm["old_stps"].append(s)
                warm["ro"].append(1.0 / ys)
        return warm if warm["ro"] else None

    def _converged(self) -> bool:
        """Relative improvement of the best loss over the last ``window`` iterations is below ``tol``."""
        if self.tol is None or len(self.records) <= self.window:  # this stage's records only
            return False
        before = min(h["total"] for h in self.records[: -self.window])
        return before - self.best_loss < self.tol * abs(before)
