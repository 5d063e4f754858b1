"""Files a later step trusts: atomic writes, build locks, results JSON/markdown, and the code hash in every cache key."""
