"""Issue 16: a step that blows up is rejected, the optimiser restarts from the best point, and it says so."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from painterly.engine.optimize import MAX_REJECTIONS, PATIENCE, PixelOptimizer

YY, XX = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
TARGET = torch.stack([XX, YY, XX * YY])[None]  # (1, 3, 16, 16), smooth


def _jumping(scale: float):  # noqa: ANN202
    """a·mean((v - T)²) + mean((v - T)⁴): a = 1 on the 8x8 stage, ``scale`` on the 16x16 one, so the curvature
    the coarse stage carries over is ``scale`` times too flat and its first step overshoots by that much."""

    def objective(v: Tensor) -> dict[str, Tensor]:
        t = F.interpolate(TARGET, size=v.shape[-2:], mode="area")
        a = 1.0 if v.shape[-1] == 8 else scale
        return {"total": a * (v - t).pow(2).mean() + (v - t).pow(4).mean()}

    return objective


def _two_stages(scale: float, fine_iterations: int = 20) -> dict[str, PixelOptimizer]:
    """8x8 for 10 iterations, then 16x16 from its best upsampled: warm-started and cold."""
    objective = _jumping(scale)
    coarse = PixelOptimizer(objective, torch.zeros(1, 3, 8, 8), lambda v: v, iterations=10, numbering=(0, 30, 1, 2))
    list(coarse.steps())
    start = F.interpolate(coarse.best, size=(16, 16), mode="bicubic", align_corners=False)
    fine = {}
    for name, warm in (("warm", coarse.curvature_at((16, 16))), ("cold", None)):
        fine[name] = PixelOptimizer(
            objective, start, lambda v: v, iterations=fine_iterations, numbering=(10, 30, 2, 2), warm=warm
        )
        fine[name].events = list(fine[name].steps())
    return fine


def _nan_at(evaluations: set[int] | range, objective):  # noqa: ANN001, ANN202
    """``objective`` whose total is NaN (and so its gradient) at the given 1-based evaluation numbers."""
    count = [0]

    def wrapped(v: Tensor) -> dict[str, Tensor]:
        count[0] += 1
        terms = objective(v)
        if count[0] in evaluations:
            terms["total"] = terms["total"] * math.nan
        return terms

    return wrapped


CURVATURE = torch.logspace(0, 3, 16 * 16).view(1, 1, 16, 16)  # per pixel: condition number 1000


def _quadratic(v: Tensor) -> dict[str, Tensor]:
    """mean(c·(v - T)²), ill-conditioned so that L-BFGS is still improving after 15 iterations."""
    return {"total": (CURVATURE * (v - TARGET).pow(2)).mean()}


def test_a_warm_start_whose_curvature_no_longer_fits_is_caught_and_the_stage_runs_all_its_iterations():
    """The carried pairs are 10⁵x too flat: the first warm step lands at ~10⁹x the loss and, unguarded, the
    stage reached NaN and stopped after 8 of its 20 iterations, its best the upsampled coarse picture (8.4).
    Guarded, once the loss has stayed over 10x the best for PATIENCE more iterations, the step is rejected,
    L-BFGS restarts cold from the best point and ends where the cold start does."""
    fine = _two_stages(1e5)
    warm, cold = fine["warm"], fine["cold"]
    assert len(warm.events) == 20 and warm.ended_early is None
    assert warm.best_loss <= cold.best_loss + 1e-12
    assert warm.best_loss < 1e-6 * warm.events[0].losses["total"]
    first_bad = 12  # the stage's 2nd iteration: the first warm step's point
    assert [i for i, _ in warm.rejected] == [first_bad + PATIENCE]
    rejected = warm.events[1 + PATIENCE]
    assert rejected.note.startswith("step rejected (loss ") and "curvature restarted" in rejected.note
    assert all(e.note is None for e in warm.events[: 1 + PATIENCE])
    assert warm.events[2 + PATIENCE].losses["total"] == warm.events[0].losses["total"]  # back at the best point
    (note,) = warm.notes
    assert note.startswith(f"stage 2/2: rejected 1 step at iteration {first_bad + PATIENCE} (loss ")
    assert cold.notes == [] and cold.rejected == []


def test_a_warm_start_that_fits_is_kept():
    """Same objective without the jump: nothing is rejected and the first warm step covers most of the way,
    where a cold restart's first step is a tiny gradient step."""
    fine = _two_stages(1.0, fine_iterations=2)
    first_step = {name: opt.events[1].losses["total"] / opt.events[0].losses["total"] for name, opt in fine.items()}
    assert fine["warm"].notes == [] and all(p.note is None for p in fine["warm"].events)
    assert first_step["warm"] < 0.7 < 0.99 < first_step["cold"]


def test_without_rejections_the_steps_are_plain_lbfgs():
    """The guard changes nothing while it rejects nothing: same losses as torch's L-BFGS driven directly."""
    opt = PixelOptimizer(_quadratic, torch.zeros(1, 3, 16, 16), lambda v: v, iterations=6)
    ours = [p.losses["total"] for p in opt.steps()]
    v = torch.zeros(1, 3, 16, 16, requires_grad=True)
    lbfgs = torch.optim.LBFGS([v], max_iter=1, tolerance_grad=-1, tolerance_change=-1)
    plain = []

    def closure() -> Tensor:
        lbfgs.zero_grad()
        loss = _quadratic(v)["total"]
        loss.backward()
        plain.append(float(loss.detach()))
        return loss

    for _ in range(6):
        lbfgs.step(closure)
    assert ours == plain
    assert opt.notes == [] and opt.ended_early is None


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", 1.0), ("adam", 0.05)])
def test_a_non_finite_loss_at_one_step_is_rejected_and_reported(optimizer, lr):
    """NaN at the 5th evaluation: that step is rejected, the 6th evaluation is the best point again (its loss
    is the 4th's, the best so far), and the run carries on to its 15 iterations with finite losses. Unguarded,
    the stage ended at the NaN (and Adam's moments would have carried the NaN into every later step)."""
    opt = PixelOptimizer(_nan_at({5}, _quadratic), torch.zeros(1, 3, 16, 16), lambda v: v, optimizer, lr, 15)
    events = list(opt.steps())
    losses = [p.losses["total"] for p in events]
    assert len(events) == 15 and opt.ended_early is None
    assert math.isnan(losses[4]) and all(math.isfinite(x) for i, x in enumerate(losses) if i != 4)
    assert losses[5] == min(losses[:4])
    assert opt.best_loss < losses[5]  # it went on improving after the restart
    state = "curvature" if optimizer == "lbfgs" else "moments"
    assert (
        events[4].note
        == f"step rejected (non-finite loss); back to the best point (loss {losses[3]:.4g}), {state} restarted"
    )
    assert [p.note is None for i, p in enumerate(events) if i != 4] == [True] * 14
    assert opt.notes == [f"rejected 1 step at iteration 5 (non-finite loss); back to the best point, {state} restarted"]


def _scaled_at(evaluations: set[int], factor: float, objective):  # noqa: ANN001, ANN202
    """``objective`` whose total (not its gradient) is ``factor`` x larger at the given 1-based evaluations."""
    count = [0]

    def wrapped(v: Tensor) -> dict[str, Tensor]:
        count[0] += 1
        terms = objective(v)
        if count[0] in evaluations:
            terms["total"] = terms["total"] + (factor - 1) * terms["total"].detach()
        return terms

    return wrapped


def test_one_huge_finite_loss_is_given_time_to_come_back_and_a_lasting_one_is_rejected():
    """A single 10⁴x evaluation (L-BFGS leaving a plateau through one huge step) is kept; 10⁴x for longer than
    PATIENCE iterations rejects the step and restarts from the best point."""
    once = PixelOptimizer(_scaled_at({5}, 1e4, _quadratic), torch.zeros(1, 3, 16, 16), lambda v: v, "lbfgs", 1.0, 12)
    assert len(list(once.steps())) == 12 and once.rejected == []
    lasting = set(range(5, 6 + PATIENCE))
    opt = PixelOptimizer(_scaled_at(lasting, 1e4, _quadratic), torch.zeros(1, 3, 16, 16), lambda v: v, "lbfgs", 1.0, 12)
    events = list(opt.steps())
    assert [i for i, _ in opt.rejected] == [5 + PATIENCE] and len(events) == 12
    assert events[5 + PATIENCE].losses["total"] == opt.records[3]["total"]  # back at the best point (the 4th)


def test_a_stage_that_finds_no_finite_point_ends_early_and_says_why():
    """NaN from the 4th evaluation on: every restart from the best point is rejected too; after
    MAX_REJECTIONS (5) the stage stops at 3 + 5 = 8 of its 20 iterations and keeps the 3rd point."""
    opt = PixelOptimizer(
        _nan_at(range(4, 100), _quadratic),
        torch.zeros(1, 3, 16, 16),
        lambda v: v,
        iterations=20,
        numbering=(20, 60, 2, 3),
    )
    events = list(opt.steps())
    assert MAX_REJECTIONS == 5 and len(events) == 8
    assert opt.best_loss == min(p.losses["total"] for p in events[:3])
    assert opt.ended_early.startswith("ended after 8 of 20 iterations: 5 steps rejected without a better point")
    assert events[-1].note == "step rejected (non-finite loss); stage ended"
    assert opt.notes[0].startswith("stage 2/3: rejected 5 steps at iterations 24 (non-finite loss), 25 (")
    assert opt.notes[1] == f"stage 2/3: {opt.ended_early}"


def test_a_non_finite_starting_point_stops_the_stage_at_once():
    opt = PixelOptimizer(_nan_at({1}, _quadratic), torch.zeros(1, 3, 16, 16), lambda v: v, iterations=5)
    assert len(list(opt.steps())) == 1 and opt.best is None
    assert opt.ended_early == "stopped at its first iteration: non-finite loss at the starting point"
