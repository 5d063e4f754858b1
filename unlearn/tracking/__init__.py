"""Where a run reports to: Lightning/W&B loggers, W&B tables, and the run metadata every results.json carries."""
