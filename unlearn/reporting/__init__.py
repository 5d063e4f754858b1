"""`python -m unlearn.report`: results.json files of runs and sweeps -> tables, oracle gaps, trade-off plots."""
