"""Fingerprint what a restructure must not change: base, pool and V hashes, and each arm's smoke-run outputs.

    python -m harness.checks.fingerprint record OUT.json [--mini] [--arms a,b] [--artifacts DIR]
    python -m harness.checks.fingerprint compare A.json B.json      # exit 1 on any difference
    python -m harness.checks.fingerprint rehash OUT.json WORK       # re-hash a record's kept work dir

`record` drives the CLI in subprocesses (so it runs unchanged on a tree whose modules moved), against a fresh
artifacts directory (so every artifact is built, never found in a cache): smoke base, pool and every V kind,
then one smoke run (seed 41, process sandbox) of every arm, hashing its summary.json, metrics.jsonl,
rollouts.jsonl and eval_records.jsonl (wall-clock and memory fields left out: they differ run to run).
With --mini it also builds the mini base, pool and V (minutes on a CPU).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-c", "from harness.cli import main; main()"]


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _tree_sha(root: Path) -> dict[str, str]:
    """sha256 per file; a base's manifest (builtin.json) without its build time (build_s)."""
    return {str(p.relative_to(root)): _manifest_sha(p) if p.name == "builtin.json" else _sha(p)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest_sha(path: Path) -> str:
    return _json_sha({k: v for k, v in json.loads(path.read_text()).items() if k != "build_s"})


def _cli(args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(CLI + args, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def _base_files(artifacts: Path, preset: str) -> dict[str, str]:
    """Every file of the built base(s) of `preset`, by path."""
    return {k: v for k, v in _tree_sha(artifacts / "builtin").items() if k.startswith(preset)}


def _artifacts(preset: str, env: dict[str, str]) -> dict:
    out: dict = {}
    _cli(["build-base", "--preset", preset], env)
    out["base_files"] = _base_files(Path(env["RH_ARTIFACTS_DIR"]), preset)
    text = _cli(["build-pool", "--preset", preset], env)
    out["pool_sha256"] = re.search(r"sha256: (\S+)", text).group(1)
    text = _cli(["extract", "--preset", preset, "--allow-weak-v"], env)
    out["v_digest"] = dict(re.findall(r"^(\w+): \S+\s+digest (\S+)", text, re.M))
    return out


def record(out: Path, mini: bool, arms: str | None, artifacts: str | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="fingerprint-"))
    env = dict(os.environ, RH_ARTIFACTS_DIR=artifacts or str(work / "artifacts"), RH_ALLOW_UNSANDBOXED="1",
               COLUMNS="1000", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), TOKENIZERS_PARALLELISM="false")
    fp: dict = {"smoke": _artifacts("smoke", env)}
    if arms is None:
        arms = _cli_arms(env)
    runs = work / "runs"
    fp["arms"] = {}
    for arm in arms.split(","):
        _cli(["run", "--arm", arm, "--preset", "smoke", "--seeds", "41", "--sandbox", "process",
              "--out", str(runs), "--allow-weak-v"], env)
        fp["arms"][arm] = _run_hashes(runs / "smoke" / arm / "seed41")
    if mini:
        fp["mini"] = _artifacts("mini", env)
    out.write_text(json.dumps(fp, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} (work dir {work})")


# what differs between two runs of the same code on the same machine: wall-clock time and memory
def _timing(key: str) -> bool:
    return key in ("wall_s", "peak_mem_mb", "_t_start") or key.startswith("t_")


def _json_sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _run_hashes(rd: Path) -> dict[str, str | None]:
    """sha256 of a run's outputs, timings left out: summary.json, metrics.jsonl, rollouts.jsonl (bytes as written),
    eval_records.jsonl."""
    out: dict[str, str | None] = {"rollouts.jsonl": _sha(rd / "rollouts.jsonl")}
    summary = rd / "summary.json"
    out["summary.json"] = _json_sha({k: v for k, v in json.loads(summary.read_text()).items() if not _timing(k)}) \
        if summary.is_file() else None
    for name in ("metrics.jsonl", "eval_records.jsonl"):
        f = rd / name
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.is_file() else None
        out[name] = None if rows is None else _json_sha([{k: v for k, v in r.items() if not _timing(k)} for r in rows])
    return out


def rehash(out: Path, work: Path) -> None:
    """Recompute the arms and base files of `out` from a record's kept work dir (runs/, artifacts/)."""
    fp = json.loads(out.read_text())
    fp["arms"] = {arm: _run_hashes(work / "runs" / "smoke" / arm / "seed41") for arm in fp["arms"]}
    for preset in ("smoke", "mini"):
        if preset in fp:
            fp[preset]["base_files"] = _base_files(work / "artifacts", preset)
    out.write_text(json.dumps(fp, indent=1, sort_keys=True) + "\n")


def _cli_arms(env: dict[str, str]) -> str:
    code = "from harness.arms import ARMS; print(','.join(ARMS))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flat(v, f"{prefix}{k}/"))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def compare(a: Path, b: Path) -> int:
    fa, fb = _flat(json.loads(a.read_text())), _flat(json.loads(b.read_text()))
    diffs = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    for k in diffs:
        print(f"DIFF {k}: {fa.get(k)} != {fb.get(k)}")
    print(f"{len(fa)} vs {len(fb)} entries; {len(diffs)} differ")
    return 1 if diffs else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--mini", action="store_true")
    r.add_argument("--arms", default=None, help="comma-separated (default: every arm in harness.arms.ARMS)")
    r.add_argument("--artifacts", default=None, help="artifacts dir (default: a fresh one, so all is built)")
    h = sub.add_parser("rehash")
    h.add_argument("out", type=Path)
    h.add_argument("work", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.cmd == "record":
        record(args.out, args.mini, args.arms, args.artifacts)
    elif args.cmd == "rehash":
        rehash(args.out, args.work)
    else:
        sys.exit(compare(args.a, args.b))


if __name__ == "__main__":
    main()
