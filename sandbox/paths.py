"""Where things live on disk. Override with RH_DATA_DIR / RH_ARTIFACTS_DIR."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the checkout: used instead of a download when a file's hash matches.
SHARED_DATA_DIR = Path(os.environ.get("RH_SHARED_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
DATA_DIR = Path(os.environ.get("RH_DATA_DIR", REPO_ROOT / "data"))
# content-hash-keyed caches: built base models, tokenizers, SVD factors, teacher pools, V files.
ARTIFACTS_DIR = Path(os.environ.get("RH_ARTIFACTS_DIR", REPO_ROOT / "artifacts"))
