"""Verdicts, the report and diagnostics computed from finished run directories."""
