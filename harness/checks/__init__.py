"""The GPU check, the benchmarks (make gpu-check, make bench-method / bench-step / bench-grader), the fingerprint."""
