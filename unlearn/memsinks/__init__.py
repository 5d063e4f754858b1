"""MemSinks (Ghosal, Maini, Raghunathan, ICML 2025; spec §2.11): train so that memorization of repeated
sequences collects in per-sequence "sink" units of the MLP, then drop those units to forget."""
