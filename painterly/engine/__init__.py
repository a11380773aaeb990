"""The optimisation engine: VGG backbone, pure losses, the objective, the pixel optimiser, tiling, memory."""

from painterly.engine import structure  # noqa: E402,F401 - registers the "structure" term and the style balance
