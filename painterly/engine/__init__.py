"""The optimisation engine: VGG backbone, pure losses, the objective, the pixel optimiser, tiling, memory."""
