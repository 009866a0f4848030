"""The benchmark harness.

Top level: the vocabulary and the entry point (cli, config, presets, arms, metrics, rundir, paths, doctor).
Sub-packages by concern: train/ (the one training loop and its parts), models/ (building and loading
policies), orchestrate/ (one run, sweeps, designs), reporting/ (verdicts, report, diagnostics),
checks/ (the GPU check and the method benchmark).
"""
