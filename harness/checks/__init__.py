"""The GPU check and the method benchmark (make gpu-check, make bench-method)."""
