"""`make bench-grader`: grading throughput of the fork-server backends vs a naive subprocess-per-program
evaluator (the original benchmark's approach) with the same limits; verdicts must be identical.

Workload: all canonical solutions (gt_correct) + one hand-written hack per problem (a wrong solution plus
the exploit for the problem's own loophole mode). The canonical half carries real compute (five hard
problems need ~3 CPU-s each under any backend); the hack half is almost pure per-program overhead.
On a shared machine the load drifts, so the backends take turns on chunks of the workload and each
backend's time is the sum over its turns (backend start-up included in its first turn).
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backends", default="process,docker", help="fork-server backends to time (comma-separated)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems (quick check)")
    ap.add_argument("--chunk", type=int, default=20, help="items per turn")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sets = workload(a.limit)
    print(f"workload: {len(sets['canonical'])} canonical solutions + {len(sets['hacks'])} hacks, {a.workers} workers, "
          f"turns of {a.chunk}")

    kinds = ["subprocess"] + [k.strip() for k in a.backends.split(",") if k.strip()]
    executors, desc = {}, {}
    secs = {k: {"canonical": 0.0, "hacks": 0.0} for k in kinds}
    records = {k: {"canonical": [], "hacks": []} for k in kinds}
    try:
        for name, items in sets.items():
            for start in range(0, len(items), a.chunk):
                chunk = items[start:start + a.chunk]
                for kind in list(kinds):
                    t = time.perf_counter()
                    try:
                        if kind not in executors:
                            executors[kind] = make_executor(kind, workers=a.workers)
                        records[kind][name] += Grader(executors[kind]).grade_many(chunk)
                    except ExecutorError as e:
                        print(f"{kind}: skipped ({e})")
                        kinds.remove(kind)
                        continue
                    secs[kind][name] += time.perf_counter() - t
                    desc[kind] = getattr(executors[kind], "description", "") or kind
    finally:
        for ex in executors.values():
            ex.close()

    n = {k: len(v) for k, v in sets.items()}
    base = secs["subprocess"]
    ok = True
    for kind in kinds:
        s = secs[kind]
        tot, btot = sum(s.values()), sum(base.values())
        label = "naive subprocess/program" if kind == "subprocess" else f"{kind} fork server"
        cells = "  ".join(f"{part} {n[part] / s[part]:6.1f}/s" + ("" if kind == "subprocess" else
                          f" (x{base[part] / s[part]:.2f})") for part in ("canonical", "hacks"))
        print(f"{label:<26} {tot:7.1f}s  all {sum(n.values()) / tot:6.1f}/s"
              + ("" if kind == "subprocess" else f" (x{btot / tot:.2f})") + f"   {cells}")
        if kind != "subprocess":
            same = records[kind] == records["subprocess"]
            ok &= same
            print(f"{'':<26} speed-up x{btot / tot:.2f} overall; verdicts identical to naive: {same}")
            for part in sets:
                for i, (r, b) in enumerate(zip(records[kind][part], records["subprocess"][part])):
                    if r != b:
                        print(f"    {part}[{i}] problem {sets[part][i][0].id}: {kind}={r} naive={b}")
        print(f"{'':<26} {desc.get(kind, kind)}")
    cats: dict[str, int] = {}
    for part in records["subprocess"].values():
        for r in part:
            cats[r.category] = cats.get(r.category, 0) + 1
    print(f"verdicts: {cats}")
    if not ok:
        raise SystemExit("verdicts differ between backends")


if __name__ == "__main__":
    main()
