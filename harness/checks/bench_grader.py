"""`make bench-grader`: grading throughput of the fork-server backends vs a naive subprocess-per-program
evaluator (the original benchmark's approach) with the same limits; verdicts must be identical.

Workloads:
  canonical  all canonical solutions (gt_correct): real compute (five hard problems need ~3 CPU-s each under
             any backend);
  hacks      one hand-written hack per problem (a wrong solution plus the exploit for its loophole mode):
             almost pure per-program overhead;
  rollouts   what the grader serves in training: the student completions mini runs saved
             (<run dir>/rollouts.jsonl under --rollouts), or, when there are none, those of a short
             deterministic mini run (vanilla, seed 41) made once and cached under artifacts/bench/.
Compute floor of a workload: the sum of every program's own CPU time (rusage, reported by the fork server)
divided by the cores the backend may use (min(cores, workers)); no evaluator can finish sooner here.
The naive evaluator runs every program without isolation, by definition of the baseline.
On a shared machine the load drifts, so the backends take turns on chunks of each workload and each
backend's time is the sum over its turns (backend start-up included in its first turn).
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from sandbox.backends import make_executor
from sandbox.data import load_problems, problems_by_id
from sandbox.executors import Executor, ExecutorError
from sandbox.exploits import fenced, with_exploit, wrong_solution
from sandbox.grader import Grader

ROLLOUT_SEED, ROLLOUT_STEPS = 41, 8   # the regenerated workload: 8 steps x 16 student completions (mini)


class _Metered(Executor):
    """Passes jobs through and adds up the programs' own CPU time."""

    def __init__(self, inner: Executor):
        self.inner, self.kind, self.cpu_s = inner, inner.kind, 0.0

    @property
    def description(self) -> str:
        return getattr(self.inner, "description", "") or self.kind

    def run_many(self, jobs):
        results = self.inner.run_many(jobs)
        self.cpu_s += sum(r.cpu_time_s for r in results)
        return results

    def close(self) -> None:
        self.inner.close()


def regenerate_rollouts(steps: int = ROLLOUT_STEPS) -> Path:
    """A short mini run whose student completions are the rollout workload (cached: made once)."""
    from harness.presets import resolve_config
    from harness.rundir import ROLLOUTS_FILE
    from harness.train.loop import train
    from sandbox.paths import ARTIFACTS_DIR

    config = resolve_config("mini", "vanilla", ROLLOUT_SEED, {"steps": steps, "eval_problems": 1})
    run_dir = Path(ARTIFACTS_DIR) / "bench" / f"mini-vanilla-seed{ROLLOUT_SEED}-{config.config_hash()}"
    done = (run_dir / ROLLOUTS_FILE).exists() and (run_dir / "summary.json").exists()
    print(f"rollouts: none saved under --rollouts; {'reusing' if done else 'making'} the {steps}-step mini run "
          f"in {run_dir}", flush=True)
    train(config, run_dir, resume=True, progress=True)
    return run_dir / ROLLOUTS_FILE


def rollout_files(root: str) -> list[Path]:
    from harness.rundir import ROLLOUTS_FILE

    root_path = Path(root)
    if root_path.is_file():
        return [root_path]
    return sorted(root_path.glob(f"**/{ROLLOUTS_FILE}")) if root_path.is_dir() else []


def workload(limit: int | None = None, rollouts: str = "runs/mini", rollout_limit: int | None = None
             ) -> tuple[dict[str, list], str]:
    from sandbox.jsonl import JsonlFile

    problems = load_problems("test")
    by_id = problems_by_id()     # rollouts come from any problem set (mini's ids are its own)
    files = rollout_files(rollouts) or [regenerate_rollouts()]
    rows = [r for f in files for r in JsonlFile(f).read()][:rollout_limit]
    source = f"{len(rows)} student completions from {len(files)} file(s): {', '.join(map(str, files[:3]))}" + \
        (" ..." if len(files) > 3 else "")
    return {
        "canonical": [(p, fenced(p.canonical_solution), None) for p in problems[:limit]],
        "hacks": [(p, fenced(with_exploit(wrong_solution(p), p.mode)), None) for p in problems[:limit]],
        "rollouts": [(by_id[r["id"]], r["completion"], r.get("mode")) for r in rows],
    }, source


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backends", default="process,docker", help="fork-server backends to time (comma-separated)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems (quick check)")
    ap.add_argument("--rollouts", default="runs/mini", help="a rollouts.jsonl, or a directory searched for them")
    ap.add_argument("--rollout-limit", type=int, default=None, help="only the first N rollouts")
    ap.add_argument("--chunk", type=int, default=20, help="items per turn")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sets, source = workload(a.limit, a.rollouts, a.rollout_limit)
    cores = min(_cores(), a.workers)
    print(f"workload: {', '.join(f'{len(v)} {k}' for k, v in sets.items())}; {a.workers} workers on {_cores()} "
          f"core(s), turns of {a.chunk}\nrollouts: {source}")

    kinds = ["subprocess"] + [k.strip() for k in a.backends.split(",") if k.strip()]
    executors: dict[str, _Metered] = {}
    secs = {k: dict.fromkeys(sets, 0.0) for k in kinds}
    cpu = {k: dict.fromkeys(sets, 0.0) for k in kinds}
    records = {k: {part: [] for part in sets} for k in kinds}
    try:
        for name, items in sets.items():
            for start in range(0, len(items), a.chunk):
                chunk = items[start:start + a.chunk]
                for kind in list(kinds):
                    t = time.perf_counter()
                    try:
                        if kind not in executors:
                            # the naive baseline isolates nothing by definition: opted in here, for it only
                            opt_in = {"allow_unsandboxed": True} if kind == "subprocess" else {}
                            executors[kind] = _Metered(make_executor(kind, workers=a.workers, **opt_in))
                        cpu0 = executors[kind].cpu_s
                        records[kind][name] += Grader(executors[kind]).grade_many(chunk)
                    except ExecutorError as e:
                        print(f"{kind}: skipped ({e})")
                        kinds.remove(kind)
                        continue
                    secs[kind][name] += time.perf_counter() - t
                    cpu[kind][name] += executors[kind].cpu_s - cpu0
        desc = {k: ex.description for k, ex in executors.items()}
    finally:
        for ex in executors.values():
            ex.close()

    n = {k: len(v) for k, v in sets.items()}
    base = secs["subprocess"]
    ok = True
    print(f"\n{'backend':<26} {'workload':<10} {'programs/s':>10} {'wall s':>8} {'vs naive':>9} {'floor s':>8} "
          f"{'wall/floor':>10}")
    for kind in kinds:
        label = "naive subprocess/program" if kind == "subprocess" else f"{kind} fork server"
        for part in (*sets, "all"):
            s = sum(secs[kind].values()) if part == "all" else secs[kind][part]
            b = sum(base.values()) if part == "all" else base[part]
            c = sum(cpu[kind].values()) if part == "all" else cpu[kind][part]
            count = sum(n.values()) if part == "all" else n[part]
            if not count:
                continue
            floor = c / cores
            vs = "" if kind == "subprocess" else f"x{b / s:.2f}"
            ratio = f"x{s / floor:.2f}" if kind != "subprocess" and floor > 0 else ""
            print(f"{label:<26} {part:<10} {count / s:10.1f} {s:8.1f} {vs:>9} "
                  f"{'' if kind == 'subprocess' else f'{floor:.3f}':>8} {ratio:>10}")
        if kind != "subprocess":
            same = records[kind] == records["subprocess"]
            ok &= same
            print(f"{'':<26} verdicts identical to naive: {same}")
            for part in sets:
                for i, (r, b) in enumerate(zip(records[kind][part], records["subprocess"][part])):
                    if r != b:
                        print(f"    {part}[{i}] problem {sets[part][i][0].id}: {kind}={r} naive={b}")
        print(f"{'':<26} {desc.get(kind, kind)}")
    print("floor = the programs' own CPU seconds (fork-server rusage) / min(cores, workers); "
          "vs naive = naive wall / backend wall")
    for part, recs in records["subprocess"].items():
        cats: dict[str, int] = {}
        for r in recs:
            cats[r.category] = cats.get(r.category, 0) + 1
        print(f"verdicts {part}: {cats}")
    if not ok:
        raise SystemExit("verdicts differ between backends")


if __name__ == "__main__":
    main()
