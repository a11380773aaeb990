"""What a run reports while it works: ``Step`` events, whatever the method (STYLE.md: progress events sent to
the caller, as crowsonkb/style-transfer-pytorch does), and the ``Cancel`` token that stops it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class Step:
    """One step of a run: an optimiser iteration, or the single pass of a one-pass network.

    ``step`` counts from 1 over the whole run (all coarse-to-fine stages); ``losses`` is empty for methods
    without a loss; ``note`` is one line when something out of the ordinary happened at this step (a
    rejected optimiser step, a stage that ended early)."""

    step: int
    total: int
    elapsed: float  # seconds since the run's work started
    _image: Callable[[], Tensor] = field(repr=False)
    losses: dict[str, float] = field(default_factory=dict)
    stage: int = 1  # coarse-to-fine stage (1-based) of ``stages``
    stages: int = 1
    note: str | None = None

    def image(self) -> Tensor:
        """The image at this step, RGB in [0, 1], (1, 3, H, W), detached (computed only when asked)."""
        return self._image()


Cancel = threading.Event  # any object with ``is_set()``: a run stops before its next step once it is set
