"""Hydra multirun support: per-job status, strength knob, W&B grouping (jobs) and the end-of-sweep summary callback."""
