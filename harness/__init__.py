"""The harness: the top layer (harness -> baselines -> method -> policy -> sandbox).

Top level: the entry point and the registries (cli, presets, arms, rundir, doctor).
Sub-packages by concern: train/ (the one training loop and its parts), orchestrate/ (one run, sweeps, designs),
reporting/ (verdicts, report, diagnostics), checks/ (the GPU check, the benchmarks, the restructure fingerprint).
"""
