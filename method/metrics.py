"""The metric registry: every per-step column, its meaning and its format, in one place.

The JSONL log (run_dir/metrics.jsonl), the live terminal table and the reports all read
names from here. A row is a flat dict {name: float | int | None}; None means "not measured
this step" (e.g. no live group -> no KL; eval columns only on eval steps).
"""
from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sandbox.jsonl import JsonlFile


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    fmt: str = "{:.3f}"
    kind: str = "train"        # train | projection | eval | timing | memory
    live: bool = False         # shown in the live terminal table
    short: str = ""            # live-table header (defaults to the name)

    @property
    def deterministic(self) -> bool:
        """Same seed + same machine -> same value (timings and memory are not)."""
        return self.kind not in ("timing", "memory")


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Arms may register their own columns (e.g. Rebound's penalty); re-registering the same name is an error."""
    old = METRICS.get(metric.name)
    if old is not None and old != metric:
        raise ValueError(f"metric {metric.name!r} already registered differently")
    METRICS[metric.name] = metric
    return metric


for _m in [
    Metric("step", "optimizer steps done (1-based)", "{:d}", live=True),
    Metric("lr", "learning rate used this step (warmup + cosine)", "{:.1e}", live=True),
    # rewards and outcome rates over the step's rollouts (all P groups, skipped or not)
    Metric("reward_mean", "mean environment reward over all P*G rollouts (before any arm's reward hook)", "{:.2f}",
           live=True, short="R"),
    Metric("reward_std", "std of rewards over all P*G rollouts"),
    Metric("hack_rate_s", "student rollouts: fraction exploited (passed the loophole, not gt-correct)", "{:.2f}",
           live=True, short="hack_s"),
    Metric("hack_rate_t", "teacher-pool rollouts: fraction exploited", "{:.2f}", live=True, short="hack_t"),
    Metric("gt_pass_s", "student rollouts: fraction gt-correct (logged only, never trained on)", "{:.2f}",
           live=True, short="gt_s"),
    Metric("gt_pass_t", "teacher-pool rollouts: fraction gt-correct"),
    Metric("attempt_rate_s", "student rollouts: fraction that attempted the loophole (GradeRecord.attempted: "
           "a harmful check, paid or not)", "{:.2f}"),
    Metric("attempt_rate_t", "teacher-pool rollouts: fraction that attempted the loophole", "{:.2f}"),
    Metric("len_s", "mean student completion length (tokens)", "{:.1f}"),
    Metric("trunc_s", "fraction of student completions cut at max_new_tokens (no eos)", "{:.2f}"),
    Metric("trunc_t", "fraction of teacher completions cut at max_new_tokens (0 by construction: only rows "
           "that fit are drawn)", "{:.2f}"),
    Metric("teacher_short", "fraction of groups whose problem has fewer fitting teacher rows than G_t (drawn "
           "with replacement; none when no row fits)", "{:.2f}"),
    Metric("live_groups", "fraction of the P groups with reward spread (others skipped)", "{:.2f}"),
    # optimisation
    Metric("loss", "Dr.GRPO loss summed over live groups (student + teacher halves)", "{:+.4f}", live=True),
    Metric("kl", "mean per-token k3 KL(policy || adapter-off reference) on student tokens", "{:.1e}", live=True),
    Metric("grad_norm", "pre-clip global L2 norm of the trainable gradient after the arm's grad hook "
           "(null when no group was live)", "{:.1e}",
           live=True, short="|g|"),
    Metric("grad_norm_raw", "global L2 norm of g_s + g_t before the arm's grad hook (projection); null when no "
           "group was live", "{:.1e}"),
    # projection diagnostics (hack-ward fraction ||relu(V g)||/||g||, from the arm's hooks)
    Metric("cos_pre", "hack-ward fraction of the step gradient before projection (mean over modules)", "{:.2f}",
           kind="projection", live=True),
    Metric("cos_post", "hack-ward fraction of the gradient after projection (what the optimizer receives)", "{:.2f}",
           kind="projection", live=True),
    Metric("cos_pre_s", "hack-ward fraction of the student half g_s", kind="projection"),
    Metric("cos_pre_t", "hack-ward fraction of the teacher half g_t", kind="projection"),
    Metric("cos_t_correct", "hack-ward fraction of the gradient of the teacher rows that are gt-correct",
           kind="projection"),
    Metric("cos_t_hack", "hack-ward fraction of the gradient of the teacher rows that hack (exploited); equal to "
           "cos_t_correct means V tracks the teacher distribution, not hack-ness", kind="projection"),
    Metric("frac_fired", "fraction of modules where the projection removed something", "{:.2f}",
           kind="projection", live=True, short="fired"),
    Metric("cos_update", "hack-ward fraction of the update AdamW applied (the Adam-moment leak check)",
           kind="projection"),
    Metric("cos_update_pre", "hack-ward fraction of the update before projecting it (proj_on_update)",
           kind="projection"),
    Metric("null_cos", "chance level of cos_pre: hack-ward fraction of an isotropic random gradient against the "
           "real V (fixed-seed Monte Carlo, mean over modules)", kind="projection"),
    Metric("null_cos_matched", "chance level of cos_pre on the step's own gradient: its hack-ward fraction against "
           "freshly drawn random V's of the real V's (k, r) per module (seeded by seed and step; mean over modules)",
           kind="projection"),
    Metric("v_disp", "steering drift: mean over modules and kept axes of V . delta_S (real V; positive = the "
           "anti-hack side: one-sided erase pushes pure noise there)", "{:+.3f}", kind="projection"),
    Metric("v_disp_frac", "v_disp as a fraction of ||delta_S|| (mean over modules)", "{:+.3f}", kind="projection"),
    Metric("v_disp_span", "share of ||delta_S|| inside span(V): ||V delta_S|| / ||delta_S|| (mean over modules)",
           kind="projection"),
    Metric("hack_out_of_span", "route: share of ||delta_S_hack|| outside span(V) after the step (~0: it is "
           "projected back each step, so zeroing it at evaluation removes only hack directions)", "{:.1e}",
           kind="projection"),
    Metric("hack_out_of_span_pre", "route: share of ||delta_S_hack|| outside span(V) that the AdamW step left "
           "before it was projected back (AdamW's per-coordinate normalisation)", "{:.2e}", kind="projection"),
    Metric("v_refreshes", "times V was re-extracted so far (v_refresh_every > 0)", "{:.0f}", kind="projection"),
    # held-out evaluation (eval steps only): student-only generations, problems never trained on
    Metric("eval_hack_rate", "held-out: fraction of student generations exploited", "{:.2f}", kind="eval",
           live=True, short="ev_hack"),
    Metric("eval_pass_rate", "held-out: fraction of student generations gt-correct", "{:.2f}", kind="eval",
           live=True, short="ev_pass"),
    Metric("eval_attempt_rate", "held-out: fraction of student generations that attempted the loophole "
           "(with eval_hack_rate: P(exploit | attempt))", "{:.2f}", kind="eval"),
    Metric("eval_n", "held-out generations graded", "{:d}", kind="eval"),
    Metric("merge_gap", "held-out: mean |logp merged - logp factored| over one problem's sampled tokens "
           "(generation vs training forward; ~0 in fp32, bf16 rounding on GPU)", "{:.1e}", kind="eval"),
    # timings (seconds) and memory
    Metric("t_gen", "student generation time (s)", "{:.2f}", kind="timing"),
    Metric("t_grade", "grading time (s)", "{:.2f}", kind="timing"),
    Metric("t_fwd_bwd", "reference + policy forward/backward time (s)", "{:.2f}", kind="timing"),
    Metric("t_hook", "arm grad/update hooks + clip + optimizer step time (s)", "{:.3f}", kind="timing"),
    Metric("t_eval", "held-out evaluation time (s)", "{:.2f}", kind="timing"),
    Metric("t_step", "wall time of the whole step, evaluation included (s)", "{:.1f}", kind="timing", live=True,
           short="t"),
    Metric("peak_mem_mb", "peak memory: CUDA max allocated this step, else process max RSS (MiB)", "{:.0f}",
           kind="memory", live=True, short="MiB"),
]:
    register_metric(_m)

# summary.json field -> the per-step metric averaged over the last SUMMARY_WINDOW steps
SUMMARY_WINDOW = 25
SUMMARY_MEANS: dict[str, str] = {"kl": "kl", "mean_cos": "cos_pre", "frac_fired": "frac_fired",
                                 "grad_norm": "grad_norm", "null_cos": "null_cos",
                                 "null_cos_matched": "null_cos_matched"}


def nondeterministic_names() -> set[str]:
    return {n for n, m in METRICS.items() if not m.deterministic}


def tail_mean(rows: list[dict[str, Any]], name: str, window: int = SUMMARY_WINDOW) -> float | None:
    """Mean of the non-None values of `name` over the last `window` rows (None when there are none)."""
    vals = [r.get(name) for r in rows[-window:]]
    vals = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(vals) / len(vals) if vals else None


def peak_memory_mb(device) -> float:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def format_value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    m = METRICS.get(name)
    try:
        return (m.fmt if m else "{:.4g}").format(value)
    except (ValueError, TypeError):
        return str(value)


class MetricsLog:
    """metrics.jsonl: one flat row per step (keys sorted), flushed and fsynced so a kill loses at most the current
    row (sandbox.jsonl.JsonlFile does the I/O); warns once per column the registry does not know."""

    def __init__(self, path: Path):
        self.file = JsonlFile(path, sort_keys=True)
        self.path = self.file.path
        self._warned: set[str] = set()

    def rewrite(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the file with `rows` (resume: drop rows logged after the checkpoint we restart from)."""
        self.file.write(rows)

    def append(self, row: dict[str, Any]) -> None:
        for k in row:
            if k not in METRICS and k not in self._warned:
                self._warned.add(k)
                print(f"[metrics] warning: column {k!r} is not in method.metrics.METRICS; register it",
                      file=sys.stderr)
        self.file.append([row])


class LiveDisplay:
    """A rich progress bar over the steps plus a table of the last few rows (live columns only)."""

    def __init__(self, total_steps: int, title: str, enabled: bool = True, keep_rows: int = 12):
        self.enabled = enabled
        self.total = total_steps
        self.title = title
        self.keep = keep_rows
        self.rows: list[dict[str, Any]] = []
        self.columns = [n for n, m in METRICS.items() if m.live]
        self._live = None

    def __enter__(self) -> "LiveDisplay":
        if self.enabled:
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn())
            self._task = self._progress.add_task(self.title, total=self.total)
            self._live = Live(self._render(), refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def start_at(self, step: int, rows: list[dict[str, Any]]) -> None:
        self.rows = list(rows[-self.keep:])
        if self._live is not None:
            self._progress.update(self._task, completed=step)
            self._live.update(self._render())

    def update(self, row: dict[str, Any]) -> None:
        self.rows = (self.rows + [row])[-self.keep:]
        if self._live is not None:
            self._progress.update(self._task, completed=row.get("step", 0))
            self._live.update(self._render())

    def note(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)
        elif self.enabled:
            print(text, file=sys.stderr)

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        cols = [c for c in self.columns if any(r.get(c) is not None for r in self.rows)] or ["step"]
        cells = {c: [format_value(c, r.get(c)) for r in self.rows] for c in cols}
        # keep registry order, drop trailing columns that would not fit the terminal (no ellipses)
        width = self._live.console.width if self._live is not None else 200
        shown, used = [], 0
        for c in cols:
            w = max([len(METRICS[c].short or c)] + [len(x) for x in cells[c]]) + 2
            if used + w > width:
                continue
            shown.append(c)
            used += w
        table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 1))
        for c in shown:
            table.add_column(METRICS[c].short or c, justify="right", no_wrap=True)
        for i in range(len(self.rows)):
            table.add_row(*(cells[c][i] for c in shown))
        return Group(table, self._progress)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
