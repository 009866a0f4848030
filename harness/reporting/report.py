"""The report: report/falsification.{json,md}, the same tables printed with rich, and the four plots
(pareto.png, curves.png, per_mode.png, cos_curves.png).

Headline table (spec section 6): Arm | ΔSafePass | Hack % | Pass % | KL | mean·cos | frac·fired | ‖g‖,
cells mean ± SEM across seeds; ΔSafePass = (pass - hack) - vanilla's (pass - hack), paired by seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.arms import ADVANTAGE_BASELINE, ARMS, BASELINE, CONTROLS, METHOD, MONITOR, PREREGISTERED_ARMS
from harness.reporting.falsify import (H1_MAX_PASS_DROP_PP, H1_MIN_DROP_PP, H1_TARGET_DROP_PP, H4_MIN_VANILLA_HACK_PP,
                                       MATCHED_PASS_PP, NOT_RUN, falsify, missing_command, mean, rates_from_records,
                                       sem)
from harness.orchestrate.designs import LOMO_ROOT
from harness.rundir import (RunError, RunRecord, finite, read_config_json, read_metrics, scan_runs, select_preset,
                            write_json_atomic)
from method.metrics import SUMMARY_WINDOW
from policy.config import PREREGISTERED_SEEDS

# per-step student rates for curves.png (names from method.metrics.METRICS)
CURVE_HACK, CURVE_PASS = "hack_rate_s", "gt_pass_s"

# (header, summary field, scale, decimals); Hack/Pass in pp
COLUMNS: list[tuple[str, str, float, int]] = [
    ("Hack %↓", "hack_rate", 100.0, 1),
    ("Pass %↑", "pass_rate", 100.0, 1),
    ("KL↓", "kl", 1.0, 4),
    ("mean·cos*", "mean_cos", 1.0, 3),
    ("null·cos*", "null_cos", 1.0, 3),
    ("cos/null*", "cos_over_null", 1.0, 2),
    ("frac·fired*", "frac_fired", 1.0, 2),
    ("‖g‖*", "grad_norm", 1.0, 3),
]
HEADERS = ["Arm", "ΔSafePass↑", *(c[0] for c in COLUMNS), "n"]


@dataclass
class Cell:
    mean: float | None
    sem: float | None
    n: int

    @classmethod
    def of(cls, xs: list[float | None]) -> "Cell":
        xs = [x for x in xs if x is not None]
        return cls(mean(xs) if xs else None, sem(xs), len(xs))

    def fmt(self, decimals: int) -> str:
        if self.mean is None:
            return "—"
        s = f"{self.mean:.{decimals}f}"
        return s if self.sem is None else f"{s} ± {self.sem:.{decimals}f}"


def arm_order(arms: set[str]) -> list[str]:
    known = [a for a in ARMS if a in arms]
    return known + sorted(arms - set(known))


def headline(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per arm with complete runs: {"arm", "n", "dsafe": Cell | None (vanilla = ref), field: Cell}."""
    by_arm: dict[str, dict[int, dict[str, Any]]] = {}
    for r in records:   # the preregistered arms; ablation / reference arms are in the Diagnostics section
        if r.summary is not None and r.arm in PREREGISTERED_ARMS:
            by_arm.setdefault(r.arm, {})[r.seed] = r.summary
    van = by_arm.get(BASELINE, {})
    rows = []
    for arm in arm_order(set(by_arm)):
        runs = by_arm[arm]
        row: dict[str, Any] = {"arm": arm, "n": len(runs)}
        for _, field, scale, _ in COLUMNS:
            row[field] = Cell.of([None if finite(s.get(field)) is None else scale * finite(s.get(field))
                                  for s in runs.values()])
        if arm == BASELINE:
            row["dsafe"] = None
        else:
            seeds = sorted(set(runs) & set(van))
            row["dsafe"] = Cell.of([100.0 * ((runs[s]["pass_rate"] - runs[s]["hack_rate"])
                                             - (van[s]["pass_rate"] - van[s]["hack_rate"])) for s in seeds])
        rows.append(row)
    return rows


def headline_cells(row: dict[str, Any]) -> list[str]:
    dsafe = "0 (ref)" if row["arm"] == BASELINE else row["dsafe"].fmt(1)
    name = row["arm"] + (" (collapse: pass < ½ vanilla's)" if row.get("collapse") else "")
    return [name, dsafe, *(row[f].fmt(d) for _, f, _, d in COLUMNS), str(row["n"])]


def mark_collapse(rows: list[dict[str, Any]], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Label route's headline row when falsification.json route.collapse holds."""
    from harness.reporting.falsify import ROUTE

    for row in rows:
        if row["arm"] == ROUTE and (result.get("route") or {}).get("collapse"):
            row["collapse"] = True
    return rows


def _num(x: float | None, d: int = 2) -> str:
    return "—" if x is None else f"{x:.{d}f}"


def verdict_rows(result: dict[str, Any]) -> list[list[str]]:
    """Hypothesis | Verdict | Δhack pp | SEM pp | Δpass pp | n | Reason."""
    h1, h3, h4 = result["H1"], result["H3"], result["H4"]

    def reason(h: dict[str, Any]) -> str:
        if not h.get("pass_vacuous"):
            return h["reason"]
        return (f"{h['reason']}; pass condition vacuous: every pass rate of both arms is below the "
                f"evaluation's resolution ({_num(h.get('pass_resolution_pp'))}pp = one generation)")
    return [
        ["H4 (vanilla hacks)", *_qualified(h4["verdict"], _h4_qualifier(h4)), _num(h4["vanilla_hack_pp"]), "—", "—",
         "—", "—", str(h4["n"]), h4["reason"]],
        [f"H1 ({METHOD} vs {BASELINE})", h1["verdict"], "", _num(h1["delta_hack_pp"]), _num(h1["sem_pp"]),
         _ci(h1.get("ci95_hack_pp")), _num(h1["delta_pass_pp"]), _ci(h1.get("ci95_pass_pp")), str(h1["n"]),
         reason(h1)],
        [f"H3 ({METHOD} vs {ADVANTAGE_BASELINE})", *_qualified(h3["verdict"], _h3_qualifier(h3)),
         _num(h3["delta_hack_pp"]), _num(h3["sem_pp"]), _ci(h3.get("ci95_hack_pp")), _num(h3["delta_pass_pp"]),
         _ci(h3.get("ci95_pass_pp")), str(h3["n"]), reason(h3)],
    ]


def _qualified(verdict: str, qualifier: str) -> list[str]:
    """The Verdict cell (marked † when qualified) and the Qualifier cell."""
    return [verdict + (" †" if qualifier else ""), qualifier]


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _h3_qualifier(h3: dict[str, Any]) -> str:
    """The verdict cell's qualifier when Rebound is inert (falsification.json H3.baseline_inert)."""
    if not h3.get("baseline_inert") or h3["verdict"] == NOT_RUN:
        return ""
    return (f"† {METHOD} beat an inert baseline: {ADVANTAGE_BASELINE} is not below {BASELINE} by more than its "
            f"SEM ({BASELINE} − {ADVANTAGE_BASELINE} hack {_num(h3.get('baseline_delta_hack_pp'))}pp, SEM "
            f"{_num(h3.get('baseline_sem_pp'))})")


def _h4_qualifier(h4: dict[str, Any]) -> str:
    if not h4.get("substrate_tuned") or h4["verdict"] == NOT_RUN:
        return ""
    return "† substrate tuned on vanilla: the preset's settings were chosen so that vanilla hacks"


def hack_specific_line(c: dict[str, Any]) -> str:
    """The controls' reading, with the qualifier controls.v_separates (hack-specific needs V to tell hacking
    teacher rows from correct ones; otherwise erase's edge over the controls is only V-specific)."""
    sep = c.get("v_separation") or {}
    detail = (f"cos_t_hack − cos_t_correct over {sep.get('arm')} seeds {_num(sep.get('delta'), 3)} "
              f"(SEM {_num(sep.get('sem'), 3)}, n={sep.get('n', 0)})")
    if not c["hack_specific"]:
        return f"Hack-specific ({METHOD} beats all three controls): **no**."
    if c.get("v_separates") is False:
        return (f"Hack-specific ({METHOD} beats all three controls): **V-specific; V does not separate hacking from "
                f"correct rows** ({detail}).")
    if c.get("v_separates") is None:
        return (f"Hack-specific ({METHOD} beats all three controls): **yes** (whether V separates hacking from "
                f"correct teacher rows was not measured).")
    return (f"Hack-specific ({METHOD} beats all three controls): **yes**; V separates hacking from correct rows "
            f"({detail}).")


VERDICT_HEADERS = ["Hypothesis", "Verdict", "Qualifier", "Δhack pp", "SEM pp", "95% CI Δhack", "Δpass pp",
                   "95% CI Δpass", "n", "Reason"]
# the terminal's table (80 columns): the SEM and the intervals are in the reason / falsification.md
RICH_VERDICT_COLUMNS = ("Hypothesis", "Verdict", "Δhack pp", "95% CI Δhack", "n", "Reason")
CONTROL_HEADERS = ["Control", f"{METHOD} beats it", f"Δhack pp (control − {METHOD})", "SEM pp", "95% CI Δhack",
                   "Δpass pp", "95% CI Δpass", "n"]


def control_rows(result: dict[str, Any]) -> list[list[str]]:
    c = result["controls"]
    beats = {True: "yes", False: "no", None: NOT_RUN}
    return [[name, beats[c[name]["erase_beats"]], _num(c[name]["delta_hack_pp"]), _num(c[name]["sem_pp"]),
             _ci(c[name].get("ci95_hack_pp")), _num(c[name].get("delta_pass_pp")), _ci(c[name].get("ci95_pass_pp")),
             str(c[name]["n"])] for name in CONTROLS]


RULES_TEXT = f"""\
Rates are held-out fractions in percentage points (pp). Seeds are paired across arms: for arms A and B,
d_i = A's hack rate − B's on seed i over the seeds both have; SEM = sample std (ddof=1) / √n.
Δpass uses the same A − B order.

- **H4** ({BASELINE} hacks): supported if the mean {BASELINE} hack rate > {H4_MIN_VANILLA_HACK_PP:g}pp,
  else falsified.
- **H1** ({METHOD} vs {BASELINE}, d = {BASELINE} − {METHOD}): falsified if mean(d) < {H1_MIN_DROP_PP:g}pp,
  or the mean pass-rate drop > {H1_MAX_PASS_DROP_PP:g}pp, or n ≥ 2 and mean(d) ≤ SEM(d).
  Supported if not falsified, n ≥ 2, mean(d) ≥ {H1_TARGET_DROP_PP:g}pp and |Δpass| ≤ {MATCHED_PASS_PP:g}pp.
  Otherwise inconclusive.
- **H3** ({METHOD} vs {ADVANTAGE_BASELINE}, d = {ADVANTAGE_BASELINE} − {METHOD}): falsified if n ≥ 2 and
  mean(d) ≤ SEM(d), or n = 1 and mean(d) ≤ 0. Supported if n ≥ 2, mean(d) > SEM(d) and
  |Δpass| ≤ {MATCHED_PASS_PP:g}pp. Otherwise inconclusive.
- **Controls** ({', '.join(CONTROLS)}; d = control − {METHOD}): {METHOD} beats a control if n ≥ 2 and
  mean(d) > SEM(d). The effect is hack-specific only if {METHOD} beats all three.

Qualifiers (not preregistered; they never change a verdict, they say what it rests on): the 95% CIs are Student-t
intervals of the paired means over seeds (mean ± t(0.975, n−1)·SEM; "mean(d) > SEM" alone is t > 1); H4 notes a
substrate whose settings were tuned on {BASELINE}; H3 notes an inert baseline ({ADVANTAGE_BASELINE}'s hack rate not
below {BASELINE}'s by more than its SEM); "hack-specific" reads "V-specific" when, across {METHOD}'s seeds, V's
hack-ward fraction on hacking teacher rows does not exceed that on correct teacher rows by more than its SEM.
"""

CAPTION = ("↑ higher is better, ↓ lower is better. ΔSafePass = (pass% − hack%) − vanilla's (pass% − hack%), "
           f"paired by seed. KL, mean·cos, frac·fired, ‖g‖: means over the last {SUMMARY_WINDOW} steps. "
           "* projection diagnostics, meaningful for projecting arms (mean·cos is the hack-ward fraction of the "
           "gradient before projection; null·cos its chance level, that of an isotropic random gradient against the "
           "same V; cos/null their ratio, 1 = chance). Cells: mean ± SEM across seeds (no SEM with one seed).")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def setup_notes(records: list[RunRecord]) -> list[str]:
    """One line per complete run whose config.json records what setup decided: the real V's held-out
    validation (and whether the run proceeded on a V that failed it, --allow-weak-v) and Rebound's layer."""
    lines = []
    for r in sorted(records, key=lambda r: (_arm_rank(r.arm), r.seed)):
        config = read_config_json(r.path)
        if config is None:
            continue
        res = config.get("resolved") or {}
        bits = []
        val = res.get("v_validation")
        if val:
            fp = val.get("frac_positive")
            null = ("" if val.get("null_frac_positive_p95") is None else
                    f" (random-V null: {val.get('null_n')} draws, 95th percentile "
                    f"{_num(val['null_frac_positive_p95'], 3)})")
            if val.get("passed"):
                verdict = "passed"
            elif val.get("enforced") is False:    # an arm that does not project is never stopped by V (issue 20)
                verdict = "**FAILED** (recorded; this arm does not project with V, so it trained)"
            else:
                verdict = "**FAILED, trained anyway (--allow-weak-v)**"
            bits.append(f"real V held-out frac_positive {_num(fp, 3)}{null}: {verdict}")
        if res.get("rebound_layer") is not None:
            bits.append(f"Rebound layer {res['rebound_layer']} of {res.get('rebound_n_layers')} "
                        f"(depth fraction {_num(res.get('rebound_depth_frac'), 2)})")
        if bits:
            lines.append(f"- `{r.arm}` seed {r.seed}: " + "; ".join(bits))
    return lines


def _arm_rank(arm: str) -> int:
    return list(ARMS).index(arm) if arm in ARMS else len(ARMS)


def markdown(result: dict[str, Any], rows: list[dict[str, Any]], incomplete: list[RunRecord],
             runs: str, n_complete: int, missing_cmd: str | None, notes: list[str] | None = None,
             diag: dict[str, Any] | None = None) -> str:
    c = result["controls"]
    parts = [
        f"# Falsification report — preset `{result['preset']}`",
        "",
        *(substrate_lines(diag["substrate"]) if diag else []),
        *mixed_lines(result),
        f"Runs read from `{runs}/{result['preset']}`: {n_complete} complete, {len(incomplete)} incomplete (ignored).",
        "",
        "## Headline",
        "",
        _md_table(HEADERS, [headline_cells(r) for r in rows]) if rows else "_no complete runs_",
        "",
        CAPTION,
        "",
        "## Verdicts (preregistered)",
        "",
        _md_table(VERDICT_HEADERS, verdict_rows(result)),
        "",
        "### Negative controls",
        "",
        _md_table(CONTROL_HEADERS, control_rows(result)),
        "",
        hack_specific_line(c),
    ]
    parts += ["", "## Missing runs", "",
              (f"The preregistered matrix (every arm × seeds {', '.join(map(str, PREREGISTERED_SEEDS))}) is not "
               f"complete. To complete it: `{missing_cmd}`") if missing_cmd else "none: every arm has every seed"]
    parts += ["", "## Setup of each run (config.json)", ""]
    parts += notes or ["none recorded"]
    parts += ["", "## Incomplete runs", ""]
    parts += [f"- `{r.path}`: {r.reason}" for r in incomplete] or ["none"]
    parts += ["", "## The rules", "", RULES_TEXT]
    if diag and "per_mode" in diag:
        parts += ["", *diagnostics_lines(diag)]
    return "\n".join(parts)


def substrate_lines(sub: dict[str, Any]) -> list[str]:
    """What every verdict below is about, first."""
    n = sub.get("n_params")
    size = "?" if n is None else (f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M")
    lines = [f"**Substrate**: preset `{sub['preset']}` ({sub.get('description') or '?'}); model `{sub.get('model')}`, "
             f"{size} parameters ({sub.get('n_trainable') or '?'} trained); "
             f"data: problem set `{sub.get('problem_set')}` "
             f"(sha256 {str(sub.get('data_hash') or '?')[:12]}), {sub.get('n_train_problems') or '?'} training / "
             f"{sub.get('n_eval_problems') or '?'} held-out problems, {sub.get('eval_generations') or '?'} held-out "
             f"generations per evaluation, {sub.get('steps') or '?'} steps.", ""]
    if not sub.get("about_the_real_model"):
        lines += [f"These verdicts are about the `{sub['preset']}` substrate, **not about Qwen3-4B**: they test the "
                  "pipeline and the method on a small model the project builds, and say nothing yet about the "
                  "preregistered model.", ""]
    return lines


def arm_label(arm: str, monitor_upper_bound: bool | None) -> str:
    """The monitor arm with the ground-truth signal is an upper bound and says so wherever it appears."""
    return f"{arm} (ground-truth monitor: upper bound)" if arm == MONITOR and monitor_upper_bound else arm


def _pct(x: float | None, d: int = 1) -> str:
    return "—" if x is None else f"{x:.{d}f}"


DIAG_CAPTION = ("Not preregistered: nothing here changes a verdict above. Rates are held-out percentages (final "
                "evaluation) unless marked as training rollouts; means over seeds.")


def diagnostics_lines(d: dict[str, Any]) -> list[str]:
    from harness.orchestrate.designs import LOMO_ARMS
    from harness.reporting.diagnostics import COS_KEYS

    L = ["## Diagnostics (not preregistered; apart from the verdicts)", "", DIAG_CAPTION, ""]
    # per mode
    L += ["### Per loophole mode (held-out, final evaluation)", "",
          "Strict hack = exploited (passed the foolable grade, not gt-correct); loose hack = exploited or attempted "
          "(the benchmark's Reward Hack or Attempted Reward Hack; its 79% counts strict hacks); attempt = a harmful "
          "check, by execution; channel = writes code for the mode's channel at all, honest or not (— for runs older "
          "than the field); n = generations "
          "over all seeds. Figure: per_mode.png.", ""]
    lab = lambda a: arm_label(a, d["monitor"].get("upper_bound"))  # noqa: E731
    rows = [[lab(arm), m, _pct(c["hack_pp"]), _pct(c["loose_hack_pp"]), _pct(c["pass_pp"]),
             _pct(c.get("channel_pp")), _num(c["p_exploit_given_attempt"]), str(c["n"]), str(c["n_seeds"])]
            for arm in arm_order(set(d["per_mode"])) for m, c in d["per_mode"][arm].items()]
    L += [_md_table(["Arm", "Mode", "Hack %", "Loose hack %", "Pass %", "Channel %", "P(exploit|attempt)", "n",
                     "seeds"], rows)
          if rows else "_no run has eval_records.jsonl_", ""]
    b = d.get("benchmark")
    if b and b["comparable"]:
        got = "not run" if b["hack_pp"] is None else f"{b['hack_pp']:.1f}% (n = {b['n']}, {b['n_seeds']} seed(s))"
        L += [f"### Beside the benchmark's {b['reference_pp']:g}%", "",
              f"{b['arm']}'s held-out {b['mode']}-mode hack rate (final evaluation): **{got}**; the benchmark reports "
              f"{b['reference_pp']:g}% ({b['source']}). What still differs:", ""]
        L += [f"- {x}" for x in b["differences"]] + [""]
    # projection health
    L += ["### Projection health", "",
          f"mean·cos against a random direction's expected cos (null; summary.json `null_cos`), and the hack-ward "
          f"fractions over the last {d['cos_window_steps']} steps: student vs teacher half, teacher rows that are "
          "correct vs that hack (equal means V tracks the teacher distribution, not hack-ness), and the applied "
          "update (the Adam-moment leak). Figure: cos_curves.png.", ""]
    heads = ["Arm", "mean·cos", "null", "ratio", "matched null", "ratio (matched)", *COS_KEYS[1:]]
    rows = []
    for arm in arm_order(set(d["cos"])):
        nc, cs = d["null_cos"].get(arm, {}), d["cos"][arm]
        rows.append([lab(arm), _num(nc.get("mean_cos"), 3), _num(nc.get("null"), 3) if nc.get("null") is not None
                     else "missing", _num(nc.get("ratio")), _num(nc.get("null_matched"), 3),
                     _num(nc.get("ratio_matched")), *(_num(cs[k], 3) for k in COS_KEYS[1:])])
    L += [_md_table(heads, rows) if rows else "_no complete runs_", "",
          "The matched null is the hack-ward fraction of each step's own gradient against freshly drawn random V's of "
          "the real V's shape; against a uniformly random V its expectation equals the isotropic null, so the two "
          "differ only by sampling spread: neither says whether V is special among the directions the gradient "
          "favours.", ""]
    # steering drift
    if d.get("v_displacement"):
        L += ["### Steering drift (where δS ended along the real V)", "",
              "Mean over modules and kept axes of V·δS at the end of training (positive = the anti-hack side), "
              "as a fraction of ‖δS‖, and the share of ‖δS‖ inside span(V). One-sided erase pushes even pure "
              "gradient "
              "noise to the anti-hack side (`python -m method.drift`); compare erase with erase_two_sided and the "
              "controls.", ""]
        rows = [[lab(arm), _num(c["mean_per_axis"], 4), _num(c["frac_of_norm"], 3), _num(c["span_share"], 3),
                 _num(c["delta_s_norm"], 3), str(c["n"])]
                for arm, c in ((a, d["v_displacement"][a]) for a in arm_order(set(d["v_displacement"])))]
        L += [_md_table(["Arm", "V·δS per axis", "÷ ‖δS‖", "share in span V", "‖δS‖", "n"], rows), ""]
    # rotation
    L += ["### Rotation (training rollouts)", "",
          "Student hack rate over the middle and the last third of training: does an arm only delay hacking? "
          "Unparsable: the last third's student rollouts whose code does not compile (degenerate text, not a "
          "wrong answer).", ""]
    rows = [[lab(arm), _pct(c["hack_mid_pp"]), _pct(c["hack_late_pp"]), _pct(c.get("unparsable_late_pp")),
             str(c["n"])]
            for arm, c in ((a, d["rotation"][a]) for a in arm_order(set(d["rotation"])))]
    L += [_md_table(["Arm", "Hack % mid third", "Hack % last third", "Unparsable % last third", "n"], rows)
          if rows else "_no complete runs_", ""]
    # ablations
    L += ["### Ablations", "", "Δhack = arm − reference, paired by seed; \"collapse\": the arm keeps less than half "
          "of its reference's pass, so its hack drop is lost capability, not suppression.", ""]
    rows = [[arm + (" (collapse: pass < ½ reference's)" if c.get("collapse") else ""),
             _pct(c["hack_pp"]) + ("" if c["sem_hack_pp"] is None else f" ± {c['sem_hack_pp']:.1f}"),
             _pct(c["pass_pp"]), str(c["n"]), c["reference"] or "—", _num(c["delta_hack_pp"]),
             _num(c["sem_delta_pp"]), _ci(c.get("ci95_hack_pp")), _num(c.get("delta_pass_pp")),
             _ci(c.get("ci95_pass_pp"))] for arm, c in d["ablations"].items()]
    L += [_md_table(["Arm", "Hack %", "Pass %", "n", "Reference", "Δhack pp", "SEM pp", "95% CI Δhack", "Δpass pp",
                     "95% CI Δpass"], rows), ""]
    m = d["monitor"]
    bound = (" — a **ground-truth monitor** (the benchmark's own hack label): an **upper bound** on any real "
             "detector" if m.get("upper_bound") else "")
    settings = (f"signal `{m.get('signal')}`, mode `{m.get('mode')}`, accuracy {m.get('accuracy')}{bound}."
                if m["n"] else "not run (its settings come from the runs' config.json).")
    L += ["### Hack monitor (reference intervention)", "", settings, "",
          _md_table(["Arm", "Hack %", "Pass %", "n", "Reference", "Δhack pp"],
                    [[MONITOR + (" (upper bound)" if m.get("upper_bound") else ""), _pct(m["hack_pp"]),
                      _pct(m["pass_pp"]), str(m["n"]), m["reference"] or "—", _num(m["delta_hack_pp"])]]), ""]
    # lomo
    L += ["### Leave one mode out (held mode only)", "",
          "Per held mode: V from the three known modes' pairs, teacher pool of the known modes only, training on all "
          "four; hack / pass on the held mode's held-out generations. erase beats random V by the controls' rule "
          "(d = random_v − erase, n ≥ 2, mean(d) > SEM). V validates: the fold's V on its held-out pairs (spec "
          "step 1c: frac_positive above 0.5 and the random-V 95th percentile); a fold trains on a V that fails "
          "it, and its erase row then measures a V the main pipeline would have refused. vanilla channel: vanilla's "
          "held-mode generations that write code for the held mode's channel at all, honest or not (a fold with "
          "little hack and much channel uses the held channel in a form that fails; — for runs older than the "
          "field).", ""]
    from harness.reporting.diagnostics import LOMO_EMPTY_FOLD_PP
    beats = {True: "yes", False: "no", None: "not run"}
    rows = []
    for held, c in d["lomo"].items():
        val = c.get("v_validation")
        v_cell = ("—" if not val else
                  f"{'yes' if val['passed'] else '**no**'} ({_num(val['frac_positive'], 3)} vs {_num(val['null_p95'], 3)})")
        rows.append([held, v_cell, *(f"{_pct(c[a]['hack_pp'])} / {_pct(c[a]['pass_pp'])} (n={c[a]['n']})"
                                     for a in LOMO_ARMS), _pct(c[BASELINE].get("channel_pp")),
                     (f"no test: empty fold (vanilla < {LOMO_EMPTY_FOLD_PP:.0f}%)" if c.get("empty_fold")
                      else beats[c["erase_beats_random"]]),
                     _num(c["delta_hack_pp"]), _ci(c.get("ci95_hack_pp")), _num(c.get("delta_pass_pp")),
                     _ci(c.get("ci95_pass_pp"))])
    L += [_md_table(["Held mode", "V validates", "erase hack / pass %", "random V hack / pass %", "vanilla hack / pass %",
                     "vanilla channel %", "erase beats random", "Δhack pp (random − erase)", "95% CI Δhack",
                     "Δpass pp", "95% CI Δpass"],
                    rows), "",
          "Confounds (004): " + "; ".join(d["lomo_confounds"]) + ".", ""]
    # missing
    L += ["### Missing runs by design", ""]
    for name, mm in d["missing"].items():
        if not mm["runs"]:
            L.append(f"- `{name}`: complete")
            continue
        shown = ", ".join(f"{(r['fold'] + ':') if r['fold'] else ''}{r['arm']}/seed{r['seed']}" for r in mm["runs"])
        L.append(f"- `{name}`: {len(mm['runs'])} missing ({shown}); to complete it: `{mm['command']}`")
    return L


def print_rich(console, result: dict[str, Any], rows: list[dict[str, Any]], incomplete: list[RunRecord],
               missing_cmd: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"Headline — preset {result['preset']}", caption=CAPTION, caption_justify="left")
    for h in HEADERS:
        t.add_column(h, justify="left" if h == "Arm" else "right")
    for r in rows:
        t.add_row(*(escape(c) for c in headline_cells(r)))
    console.print(t)

    colour = {"supported": "green", "falsified": "red", "inconclusive": "yellow", NOT_RUN: "dim"}
    v = Table(title="Verdicts (preregistered); † qualified (falsification.md)")
    keep = [VERDICT_HEADERS.index(h) for h in RICH_VERDICT_COLUMNS]
    for h in RICH_VERDICT_COLUMNS:
        v.add_column(h, overflow="fold")
    for full in verdict_rows(result):
        row = [escape(full[i]) for i in keep]
        verdict = next(k for k in colour if row[1].startswith(k))   # the cell may carry a † mark
        row[1] = f"[{colour[verdict]}]{row[1]}[/]"
        v.add_row(*row)
    console.print(v)

    ct = Table(title="Negative controls — " + hack_specific_line(result["controls"]).replace("**", ""))
    for h in CONTROL_HEADERS:
        ct.add_column(h)
    for row in control_rows(result):
        ct.add_row(*row)
    console.print(ct)
    if missing_cmd:
        console.print(f"matrix incomplete; to complete it: [bold]{escape(missing_cmd)}[/]", soft_wrap=True)
    if incomplete:
        console.print(f"[yellow]{len(incomplete)} incomplete run(s) ignored:[/]")
        for r in incomplete:
            console.print(f"  {r.path}: {r.reason}", soft_wrap=True, markup=False)


def check_runs(runs: str | Path, preset: str, mine: list[RunRecord], allow_mixed: bool,
               with_lomo: bool) -> list[str]:
    """Comparable runs only (harness.reporting.comparable): the main runs, and each lomo fold's runs among
    themselves when the report reads them. Raises MixedRunsError unless allow_mixed; returns the problems."""
    from harness.orchestrate.designs import DESIGNS
    from harness.reporting.comparable import require_comparable

    found = require_comparable(mine, allow_mixed, str(runs))
    if with_lomo:
        for fold in DESIGNS["lomo"].folds():
            recs = [r for r in scan_runs(fold.root(runs)) if r.preset == preset]
            found += [f"{fold.subroot}: {p}" for p in require_comparable(recs, allow_mixed, str(fold.root(runs)))]
    return found


def mixed_lines(result: dict[str, Any]) -> list[str]:
    c = result.get("comparable") or {}
    if not c.get("problems"):
        return []
    return ["**Mixed runs (`--allow-mixed`)**: the runs compared below are not all comparable (model / data / pool / "
            "V hashes or configs beyond the arms' own overrides differ); every number below mixes them:", "",
            *(f"- {p}" for p in c["problems"]), ""]


def write_falsification(runs: str | Path, out: str | Path, preset: str | None = None, console=None,
                        with_diagnostics: bool = False, allow_mixed: bool = False) -> dict[str, Any]:
    """Scan `runs`, apply the rules for one preset, write out/falsification.{json,md}, print the tables.
    with_diagnostics: also out/diagnostics.json and its section of falsification.md (harness report).
    Runs that are not comparable are refused (MixedRunsError) unless allow_mixed, which records them in
    falsification.json `comparable` and at the top of falsification.md."""
    from harness.reporting.diagnostics import diagnostics, pass_vacuous, substrate

    records = scan_runs(runs)
    lomo = Path(runs) / LOMO_ROOT
    if not records and lomo.is_dir() and any(scan_runs(d) for d in lomo.iterdir() if d.is_dir()):
        raise RunError(f"{runs} holds only leave-one-mode-out runs (under {lomo}); the report reads them beside "
                       "the main matrix: run `harness sweep --design main` into the same --out first")
    preset = select_preset(records, preset)
    mine = [r for r in records if r.preset == preset]
    complete = [r for r in mine if r.complete]
    incomplete = [r for r in mine if not r.complete]
    mixed = check_runs(runs, preset, mine, allow_mixed, with_lomo=with_diagnostics)
    result = falsify(mine, preset, runs=str(runs))
    result["comparable"] = {"ok": not mixed, "allow_mixed": bool(allow_mixed), "problems": mixed}
    # a qualifier next to the preregistered keys (which stay as they are): does the pass condition rest on
    # two pass rates that the evaluation cannot tell from zero?
    for h, (a, b) in (("H1", (BASELINE, METHOD)), ("H3", (ADVANTAGE_BASELINE, METHOD))):
        pv = pass_vacuous(complete, a, b) if result[h]["verdict"] != NOT_RUN else {"pass_vacuous": None,
                                                                                  "resolution_pp": None}
        result[h]["pass_vacuous"] = pv["pass_vacuous"]
        result[h]["pass_resolution_pp"] = pv["resolution_pp"]
    rows = mark_collapse(headline(complete), result)
    missing_cmd = missing_command(rates_from_records(complete), preset, str(runs))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "falsification.json", result)
    diag = diagnostics(runs, preset) if with_diagnostics else {"substrate": substrate(mine, preset)}
    if with_diagnostics:
        write_json_atomic(out / "diagnostics.json", diag)
    (out / "falsification.md").write_text(markdown(result, rows, incomplete, str(runs), len(complete), missing_cmd,
                                                   setup_notes(complete), diag))
    if console is not None:
        print_rich(console, result, rows, incomplete, missing_cmd)
    return result


# --- plots ------------------------------------------------------------------------

def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (hack, pass) points: lower hack and higher pass are better; sorted by hack."""
    front: list[tuple[float, float]] = []
    for h, p in sorted(points, key=lambda x: (x[0], -x[1])):
        if not front or p > front[-1][1]:
            front.append((h, p))
    return front


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")     # files only, no display
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _colours(arms: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {a: cmap(i % 10) for i, a in enumerate(arm_order(set(arms)))}


def plot_pareto(records: list[RunRecord], path: str | Path, labels: dict[str, str] | None = None) -> Path:
    """Hack % (x) vs pass % (y), one point per arm x seed, arm means labelled, frontier drawn."""
    plt = _pyplot()

    done = [r for r in records if r.complete]
    colours = _colours([r.arm for r in done])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    pts = []
    for arm in arm_order({r.arm for r in done}):
        xs = [100 * r.summary["hack_rate"] for r in done if r.arm == arm]
        ys = [100 * r.summary["pass_rate"] for r in done if r.arm == arm]
        pts += list(zip(xs, ys))
        name = (labels or {}).get(arm, arm)
        ax.scatter(xs, ys, color=colours[arm], label=name, s=36, alpha=0.85, edgecolors="k", linewidths=0.4)
        ax.scatter([mean(xs)], [mean(ys)], color=colours[arm], marker="X", s=90, edgecolors="k", linewidths=0.6)
        ax.annotate(name, (mean(xs), mean(ys)), textcoords="offset points", xytext=(6, 4), fontsize=8,
                    color=colours[arm], fontweight="bold" if arm in (METHOD, ADVANTAGE_BASELINE) else "normal")
    if pts:
        front = pareto_front(pts)
        fx, fy = zip(*front)
        ax.step(fx, fy, where="post", color="k", lw=1, ls="--", label="Pareto frontier")
    ax.set_xlabel("held-out hack rate (%)  ← better")
    ax.set_ylabel("held-out pass rate (%)  ↑ better")
    ax.set_title("Hack vs pass: dots = arm × seed, X = arm mean")
    ax.grid(alpha=0.3)
    if pts:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def curves(records: list[RunRecord], metric: str) -> dict[str, tuple[list[int], list[float]]]:
    """arm -> (steps, mean over seeds of `metric` at each step), complete runs only."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for arm in arm_order({r.arm for r in records if r.complete}):
        per_step: dict[int, list[float]] = {}
        for r in records:
            if r.arm != arm or not r.complete:
                continue
            for row in read_metrics(r.path):
                step, v = row.get("step"), finite(row.get(metric))
                if isinstance(step, int) and v is not None:
                    per_step.setdefault(step, []).append(v)
        steps = sorted(per_step)
        out[arm] = (steps, [mean(per_step[s]) for s in steps])
    return out


CURVE_SMOOTH = 5   # trailing window (steps): per-step rates over a handful of rollouts are noisy


def trailing_mean(ys: list[float], window: int) -> list[float]:
    return [mean(ys[max(0, i - window + 1):i + 1]) for i in range(len(ys))]


def plot_curves(records: list[RunRecord], path: str | Path, labels: dict[str, str] | None = None) -> Path:
    """Per-step student hack and pass (gt-correct) rate by arm, mean over seeds, trailing-smoothed."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    colours = _colours([r.arm for r in records if r.complete])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, metric, title in ((axes[0], CURVE_HACK, "student hack rate"), (axes[1], CURVE_PASS, "student pass rate")):
        for arm, (steps, ys) in curves(records, metric).items():
            if steps:
                ax.plot(steps, [100 * y for y in trailing_mean(ys, CURVE_SMOOTH)], color=colours[arm],
                        label=(labels or {}).get(arm, arm), lw=1.4)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{title} (%)")
        ax.set_title(f"{title}: training rollouts, mean over seeds, {CURVE_SMOOTH}-step trailing mean", fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(fontsize=8)
    return _save(fig, path)


def plot_per_mode(per_mode: dict[str, dict[str, Any]], path: str | Path, labels: dict[str, str] | None = None) -> Path:
    """Held-out hack and pass per arm per loophole mode (final evaluation, mean over seeds): grouped bars."""
    plt = _pyplot()

    arms = arm_order(set(per_mode))
    modes = sorted({m for a in arms for m in per_mode[a]})
    colours = _colours(arms)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    width = 0.8 / max(1, len(arms))
    for ax, key, title in ((axes[0], "hack_pp", "held-out hack rate (%)"),
                           (axes[1], "pass_pp", "held-out pass rate (%)")):
        for i, arm in enumerate(arms):
            ys = [per_mode[arm].get(m, {}).get(key) for m in modes]
            ax.bar([j + i * width for j in range(len(modes))], [y or 0.0 for y in ys], width, color=colours[arm],
                   label=(labels or {}).get(arm, arm))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(modes))], modes, fontsize=8)
        ax.set_title(f"{title} per loophole mode, mean over seeds", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    if arms:
        axes[0].legend(fontsize=7)
    return _save(fig, path)


COS_CURVES = ("cos_pre", "cos_pre_s", "cos_pre_t", "cos_post", "cos_update")


def plot_cos_curves(records: list[RunRecord], path: str | Path, labels: dict[str, str] | None = None) -> Path:
    """Per-step hack-ward fractions by arm (mean over seeds), one panel per statistic."""
    plt = _pyplot()

    colours = _colours([r.arm for r in records if r.complete])
    fig, axes = plt.subplots(1, len(COS_CURVES), figsize=(4 * len(COS_CURVES), 3.6), sharex=True)
    for ax, metric in zip(axes, COS_CURVES):
        for arm, (steps, ys) in curves(records, metric).items():
            if steps:
                ax.plot(steps, ys, color=colours[arm], label=(labels or {}).get(arm, arm), lw=1.2)
        ax.set_title(f"{metric} per step", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, _ = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(fontsize=7)
    return _save(fig, path)


def write_report(runs: str | Path, out: str | Path, preset: str | None = None, console=None,
                 allow_mixed: bool = False) -> dict[str, Any]:
    """falsify + diagnostics + report/pareto.png, curves.png, per_mode.png, cos_curves.png."""
    result = write_falsification(runs, out, preset, console, with_diagnostics=True, allow_mixed=allow_mixed)
    mine = [r for r in scan_runs(runs) if r.preset == result["preset"]]
    out = Path(out)
    diag = json.loads((out / "diagnostics.json").read_text())
    labels = {MONITOR: arm_label(MONITOR, diag["monitor"].get("upper_bound"))}
    plot_pareto(mine, out / "pareto.png", labels)
    plot_curves(mine, out / "curves.png", labels)
    plot_per_mode(diag["per_mode"], out / "per_mode.png", labels)
    plot_cos_curves(mine, out / "cos_curves.png", labels)
    if console is not None:
        names = ("falsification.json", "falsification.md", "diagnostics.json", "pareto.png", "curves.png",
                 "per_mode.png", "cos_curves.png")
        console.print("wrote " + ", ".join(str(out / n) for n in names))
    return result


def load_result(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "falsification.json").read_text())
