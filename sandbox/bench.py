"""`make bench-grader`: grading throughput of the fork-server backends vs a naive subprocess-per-program
evaluator (the original benchmark's approach) with the same limits; verdicts must be identical.

Workload: all canonical solutions (gt_correct) + one hand-written hack per problem (a wrong solution plus
the exploit for the problem's own loophole mode). Timing includes starting each backend. The two halves
are also timed apart: canonical solutions carry real compute (five hard problems need ~2.7 CPU-s each,
the same under any backend), hacks are almost pure per-program overhead.
"""
from __future__ import annotations

import argparse
import logging
import time

from sandbox.data import load_problems
from sandbox.executors import ExecutorError, make_executor
from sandbox.exploits import fenced, with_exploit, wrong_solution
from sandbox.grader import Grader


def workload(limit: int | None = None) -> dict[str, list]:
    problems = load_problems("test")[:limit]
    return {
        "canonical": [(p, fenced(p.canonical_solution), None) for p in problems],
        "hacks": [(p, fenced(with_exploit(wrong_solution(p), p.mode)), None) for p in problems],
    }


def run_backend(kind: str, sets: dict[str, list], workers: int):
    """-> ({set: records}, {set: seconds, "all": seconds incl. start-up}, description)"""
    t0 = time.perf_counter()
    records, secs = {}, {}
    with make_executor(kind, workers=workers) as ex:
        ex.run_many([])  # nothing; start-up is timed within the first set
        for name, items in sets.items():
            t = time.perf_counter()
            records[name] = Grader(ex).grade_many(items)
            secs[name] = time.perf_counter() - t
        desc = getattr(ex, "description", "") or kind
    secs["all"] = time.perf_counter() - t0
    return records, secs, desc


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backends", default="process,docker", help="fork-server backends to time (comma-separated)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems (quick check)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sets = workload(a.limit)
    sizes = {k: len(v) for k, v in sets.items()}
    sizes["all"] = sum(sizes.values())
    print(f"workload: {sizes['canonical']} canonical solutions + {sizes['hacks']} hacks, {a.workers} workers")

    def line(label, secs, base=None):
        cells = "  ".join(f"{k} {sizes[k] / secs[k]:6.1f}/s" + (f" (x{base[k] / secs[k]:.2f})" if base else "")
                          for k in ("all", "canonical", "hacks"))
        print(f"{label:<26} {secs['all']:7.1f}s   {cells}")

    base, base_s, _ = run_backend("subprocess", sets, a.workers)
    line("naive subprocess/program", base_s)
    ok = True
    for kind in [k.strip() for k in a.backends.split(",") if k.strip()]:
        try:
            recs, secs, desc = run_backend(kind, sets, a.workers)
        except ExecutorError as e:
            print(f"{kind:<26} skipped: {e}")
            continue
        line(f"{kind} fork server", secs, base_s)
        same = recs == base
        ok &= same
        print(f"{'':<26} speed-up x{base_s['all'] / secs['all']:.2f} overall; verdicts identical to naive: {same}")
        print(f"{'':<26} {desc}")
        for name in sets:
            for i, (r, b) in enumerate(zip(recs[name], base[name])):
                if r != b:
                    print(f"    {name}[{i}] problem {sets[name][i][0].id}: {kind}={r} naive={b}")
    cats = {}
    for recs in base.values():
        for r in recs:
            cats[r.category] = cats.get(r.category, 0) + 1
    print(f"verdicts: {cats}")
    if not ok:
        raise SystemExit("verdicts differ between backends")


if __name__ == "__main__":
    main()
