"""Runs, sweeps and designs: planning and executing one run, the planner and executor of many, the named run matrices.

The run directory's on-disk format, which the loop and reporting read too, is harness.rundir."""
