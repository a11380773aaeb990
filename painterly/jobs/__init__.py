"""Running many inputs: sweeps, file batches (and next: video frames, the Ray executor)."""
