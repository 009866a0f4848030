"""Shared fixtures. Append-only across areas: add a fixture with a short docstring; don't rename others'."""
from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
