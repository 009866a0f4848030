"""The benchmark harness.

Top level: the vocabulary and the entry point (cli, config, presets, arms, metrics, paths, doctor).
Sub-packages by concern: train/ (the one training loop and its parts), models/ (building and loading
policies), orchestrate/ (runs, sweeps, designs), reporting/ (verdicts, report, diagnostics),
checks/ (the GPU check and the method benchmark).
"""
