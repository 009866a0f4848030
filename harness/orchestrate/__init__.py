"""Runs, sweeps and designs: the run directory, the planner and executor of many runs, the named run matrices."""
