"""`harness`: the click CLI reviewers and researchers drive.

    harness run --arm erase,vanilla --seeds 41,42,43 --preset mini      one or more arms over seeds
    harness sweep --preset mini                                          all arms x seeds (skip done, resume partial)
    harness sweep --design ablations|lomo --preset mini                  the ablation / leave-one-mode-out designs
    harness falsify / report                                             the preregistered verdicts (report: + plots,
                                                                         diagnostics.json)
    harness data / build-base / build-pool / extract / grade             pipeline steps
    harness doctor                                                       is this machine ready?

Bad input is one line on stderr and a non-zero exit (2: bad arguments, 1: bad run dir / artifact).
`harness --debug ...` shows the traceback instead.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from harness.arms import ARMS, METHOD, get_arm_spec
from harness.orchestrate.designs import DEFAULT_DESIGN, DESIGNS
from harness.orchestrate.runs import is_artifact_error
from harness.presets import PRESETS, get_preset
from harness.presets import resolve_config
from policy.config import PREREGISTERED_SEEDS, ConfigError, TrainConfig, parse_override
from policy.config import RunError
from sandbox.executors import ALLOW_UNSANDBOXED_ENV, ExecutorError
from sandbox.executors import EXECUTOR_KINDS as SANDBOXES   # TrainConfig.sandbox values (stdlib-only import)

IDENTITY_KEYS = ("preset", "arm", "seed")
DEFAULT_SEEDS = ",".join(map(str, PREREGISTERED_SEEDS))
DEFAULT_PRESET = TrainConfig.preset


class BadInput(click.ClickException):
    """Bad arguments: one line, exit 2 (click.UsageError would add the usage block)."""
    exit_code = 2


class HarnessGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except RunError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(_one_line(e)) from None
        except ConfigError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise BadInput(_one_line(e)) from None
        except ExecutorError as e:   # the grader could not start, or refuses to grade without isolation
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(_one_line(e)) from None
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug") or not is_artifact_error(e):
                raise
            raise click.ClickException(f"{type(e).__name__}: {_one_line(e)} (harness --debug for the traceback)") \
                from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return " ".join(text.split())


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("debug"))


def console():
    from rich.console import Console
    return Console(highlight=False)


# --- parsing ----------------------------------------------------------------------

def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    if not arms:
        raise ConfigError("--arm: give at least one arm")
    for a in arms:
        get_arm_spec(a)
    if len(set(arms)) != len(arms):
        raise ConfigError(f"--arm: duplicate arm in {text!r}")
    return arms


def parse_seeds(text: str) -> list[int]:
    parts = [s.strip() for s in text.split(",")]
    if not parts or any(not p for p in parts):
        raise ConfigError(f"--seeds: expected comma-separated integers like 41,42,43, got {text!r}")
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers like 41,42,43, got {text!r}") from None
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: seeds must be >= 0, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: duplicate seed in {text!r}")
    return seeds


def parse_jobs(text: str) -> int:
    """--jobs: a positive integer, or "auto" (the CPU cores this process may use)."""
    if text.strip().lower() == "auto":
        from harness.orchestrate.sweep import available_cpus
        return available_cpus()
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--jobs: expected a positive integer or auto, got {text!r}")
    return n


def parse_sets(items: tuple[str, ...], sandbox: str | None = None, allow_weak_v: bool = False) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        k, v = parse_override(item)
        if k in IDENTITY_KEYS:
            raise ConfigError(f"--set {k}: use --{k if k != 'seed' else 'seeds'} instead")
        overrides[k] = v
    if sandbox is not None:
        overrides["sandbox"] = sandbox
    if allow_weak_v:
        overrides["allow_weak_v"] = True
    return overrides


def _preset(name: str) -> str:
    get_preset(name)
    return name


# --- shared options -----------------------------------------------------------------

def preset_option(default: str | None = DEFAULT_PRESET, help_extra: str = ""):
    return click.option("--preset", default=default, show_default=default is not None,
                        help=f"one of {', '.join(PRESETS)}{help_extra}")


set_option = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                          help="override a TrainConfig field (repeatable), e.g. --set lr=1e-4")
weak_v_option = click.option("--allow-weak-v", "allow_weak_v", is_flag=True,
                             help="proceed when the real V fails held-out validation (frac_positive <= 0.5, spec "
                                  "step 1c); recorded in config.json and the report (= --set allow_weak_v=true)")
sandbox_option = click.option("--sandbox", type=click.Choice(SANDBOXES), default=None,
                              help="grader executor (default: the config's, auto)")


def _opt_in_unsandboxed(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:   # the env var, not an argument: sweep workers and every executor this process makes see it
        os.environ[ALLOW_UNSANDBOXED_ENV] = "1"
    return value


unsandboxed_option = click.option(
    "--allow-unsandboxed", is_flag=True, expose_value=False, callback=_opt_in_unsandboxed,
    help=f"where neither bubblewrap nor Docker is available, grade model-written programs with plain rlimits "
         f"only (no network or filesystem isolation) instead of refusing; same as {ALLOW_UNSANDBOXED_ENV}=1")


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--debug", is_flag=True, help="show tracebacks instead of one-line errors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Rank-space gradient projection vs GRPO reward hacking: runs, sweeps and the preregistered verdicts."""
    ctx.ensure_object(dict)["debug"] = debug


# --- run / sweep ----------------------------------------------------------------------

def _plan_table(jobs) -> Any:
    from rich.table import Table
    t = Table(title="plan", box=None)
    for h in ("arm", "seed", "action", "config", "run dir"):
        t.add_column(h)
    for j in jobs:
        t.add_row(f"{j.fold}:{j.arm}" if j.fold else j.arm, str(j.seed), j.action, j.config.config_hash(), str(j.path))
    return t


def _finish(jobs, con) -> None:
    from rich.table import Table

    from harness.orchestrate.sweep import STATUS_HEADERS, status_rows
    t = Table(title="runs")
    for h in STATUS_HEADERS:
        t.add_column(h, overflow="fold")
    for row in status_rows(jobs):
        t.add_row(*row)
    con.print(t)
    failed = [j for j in jobs if j.status == "failed"]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(jobs)} run(s) failed: "
                                   + "; ".join(f"{j.name}: {j.error}" for j in failed))


def _print_problem_set(name: str) -> None:
    """Which file trains and which evaluates (one line each, never wrapped), the set's note, and what is missing."""
    import sandbox.data as D
    ps = D.get_problem_set(name)
    for k, v in ps.describe().items():
        click.echo(f"problem set {name}: {k} {v}")
    if ps.note:
        click.echo(f"problem set {name}: note: {ps.note}")
    try:
        D.require_problem_set(name)
    except D.DataError as e:
        click.echo(f"problem set {name}: MISSING: {_one_line(e)}")


def _require_data(jobs) -> None:
    """Stop before any model loads when a data file a run needs is not on this machine (one line, exit 1)."""
    from sandbox.data import DataError, require_problem_set
    for name in dict.fromkeys(j.config.problem_set for j in jobs if j.action != "skip"):
        try:
            require_problem_set(name)
        except DataError as e:
            raise RunError(str(e)) from None


def _print_dry_run(jobs, con) -> None:
    """The resolved config (the first job's in full, the others as differences) and the peak-memory estimate."""
    from rich.table import Table

    from harness.orchestrate.runs import config_diff
    from policy.model_loading import BUILTIN_PREFIX, dry_run
    if not jobs:
        return
    first = jobs[0].config
    con.print(f"resolved config of {jobs[0].name} (config_hash {first.config_hash()}):", markup=False)
    con.print(json.dumps(first.to_dict(), indent=1, sort_keys=True, default=str), markup=False)
    for j in jobs[1:]:
        diff = config_diff(first, j.config)
        con.print(f"{j.name}: same, except " + ", ".join(f"{k}={new!r}" for k, (_, new) in diff.items()), markup=False)
    for name in dict.fromkeys(j.config.problem_set for j in jobs):
        _print_problem_set(name)
    if first.model.startswith(BUILTIN_PREFIX):
        # estimating needs the built model's config.json, and a dry run must not build (mini's build trains)
        con.print(f"memory estimate: skipped for {first.model}, a CPU substrate built on demand "
                  f"(`harness build-base --preset {first.preset}`)", markup=False)
        return
    estimates: dict[str, tuple[dict, list[str]]] = {}   # identical estimates are shown once
    for j in jobs:
        info = dry_run(j.config)
        key = json.dumps(info["memory_gib"], sort_keys=True, default=str)
        estimates.setdefault(key, (info, []))[1].append(j.name)
    for info, names in estimates.values():
        who = f"all {len(names)} run(s)" if len(estimates) == 1 else ", ".join(names)
        con.print(f"this machine: device {info['device']}, dtype {info['dtype']}, attn {info['attn_impl']}",
                  markup=False)
        mem = info["memory_gib"]
        if not isinstance(mem, dict):
            con.print(f"memory estimate ({who}): {mem}", markup=False)
            continue
        con.print(f"peak GPU memory of one training step ({who}): an estimate from the architecture "
                  "(policy.model_loading.estimate_memory), not a measurement", markup=False)
        t = Table(title="peak GPU memory estimate")
        t.add_column("component")
        t.add_column("GiB", justify="right")
        for k, v in mem.items():
            if k not in ("dense_params_billion", "total_gib"):
                t.add_row(k, f"{v:.2f}" if v is not None else "?")
        t.add_row("[b]total_gib[/b]", f"[b]{mem['total_gib']:.2f}[/b]")
        con.print(t)
        con.print(f"dense params: {mem['dense_params_billion']:.2f} B", markup=False)


def _print_config_help(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from policy.config import describe_fields

    for name, typ, default, text in describe_fields():
        click.echo(f"{name} ({typ}, default {default})")
        click.echo(click.wrap_text(text, width=100, initial_indent="    ", subsequent_indent="    "))
    ctx.exit()


@cli.command()
@click.option("--arm", "arm", required=True, help=f"arm or comma-separated arms: {', '.join(ARMS)}")
@click.option("--seeds", default=DEFAULT_SEEDS, show_default=True, help="comma-separated seeds")
@preset_option()
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="runs root")
@sandbox_option
@unsandboxed_option
@click.option("--resume", is_flag=True, help="continue a partial run from its last checkpoint")
@click.option("--force", is_flag=True, help="overwrite a run dir holding another config (or a finished run)")
@set_option
@weak_v_option
@click.option("--dry-run", is_flag=True, help="show the plan, the resolved config and a peak-memory estimate; "
                                              "train nothing")
@click.option("--help-config", is_flag=True, is_eager=True, expose_value=False, callback=_print_config_help,
              help="print every TrainConfig field (the --set keys) with its type, default and meaning, and exit")
def run(arm: str, seeds: str, preset: str, out: str, sandbox: str | None, resume: bool, force: bool,
        sets: tuple[str, ...], allow_weak_v: bool, dry_run: bool) -> None:
    """Train ARM(s) over SEEDS into <out>/<preset>/<arm>/seed<seed>/."""
    from harness.orchestrate.sweep import plan, run_local

    arms, seed_list, preset = parse_arms(arm), parse_seeds(seeds), _preset(preset)
    overrides = parse_sets(sets, sandbox, allow_weak_v)
    jobs = plan(preset, arms, seed_list, out, overrides, resume=resume, force=force)
    if not dry_run:
        _require_data(jobs)
    con = console()
    con.print(_plan_table(jobs))
    if dry_run:
        _print_dry_run(jobs, con)
        return
    run_local(jobs, force=force, progress=True, console=con, tracebacks=_debug())
    _finish(jobs, con)


@cli.command()
@preset_option()
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="runs root")
@click.option("--seeds", default=DEFAULT_SEEDS, show_default=True, help="comma-separated seeds")
@click.option("--design", default=DEFAULT_DESIGN, show_default=True, type=click.Choice(list(DESIGNS)),
              help="which matrix: " + "; ".join(f"{d.name}: {d.description}" for d in DESIGNS.values()))
@click.option("--arm", "arm", default=None, help="subset of the design's arms (default: all of them)")
@sandbox_option
@unsandboxed_option
@set_option
@weak_v_option
@click.option("--force", is_flag=True, help="overwrite run dirs holding another config (and re-run finished ones)")
@click.option("--executor", type=click.Choice(("local", "ray")), default="local", show_default=True,
              help="local: runs on this machine (--jobs at a time); ray: one task per arm x seed")
@click.option("--address", default=None, help="Ray cluster address (e.g. auto, ray://head:10001); "
                                              "default: start a local Ray instance")
@click.option("--jobs", "n_jobs", default="1", show_default=True, metavar="N|auto",
              help="local executor: runs at a time, each its own process with config.cpu_threads torch threads "
                   "and its output in <run dir>/run.log; auto = the CPU cores available")
@click.option("--fail-fast", is_flag=True, help="stop at the first failed run (local executor)")
@click.option("--dry-run", is_flag=True, help="show the plan; train nothing")
def sweep(preset: str, out: str, seeds: str, design: str, arm: str | None, sandbox: str | None,
          sets: tuple[str, ...], allow_weak_v: bool, force: bool, executor: str, address: str | None, n_jobs: str,
          fail_fast: bool, dry_run: bool) -> None:
    """A design's matrix (default: the preregistered one): every arm x seed; finished runs are skipped,
    interrupted ones resumed."""
    from harness.orchestrate.sweep import plan_design, run_local, run_ray

    arms = parse_arms(arm) if arm else None
    seed_list, preset = parse_seeds(seeds), _preset(preset)
    overrides = parse_sets(sets, sandbox, allow_weak_v)
    if address is not None and executor != "ray":
        raise BadInput("--address only applies to --executor ray")
    workers = parse_jobs(n_jobs)
    if workers != 1 and executor != "local":
        raise BadInput("--jobs only applies to --executor local (Ray schedules its own tasks)")
    jobs = plan_design(design, preset, seed_list, out, overrides, arms, resume=True, force=force)
    if not dry_run:
        _require_data(jobs)
    con = console()
    con.print(_plan_table(jobs))
    if dry_run:
        return
    if executor == "ray":
        run_ray(jobs, address, force=force, console=con)
    else:
        run_local(jobs, force=force, progress=True, console=con, fail_fast=fail_fast, tracebacks=_debug(),
                  n_jobs=workers)
    _finish(jobs, con)


# --- falsify / report -------------------------------------------------------------------

runs_option = click.option("--runs", default="runs", show_default=True, type=click.Path(file_okay=False),
                           help="runs root to read")
report_out_option = click.option("--out", default="report", show_default=True, type=click.Path(file_okay=False),
                                 help="report directory")
allow_mixed_option = click.option("--allow-mixed", is_flag=True,
                                  help="compare runs whose model / data / pool / V hashes or configs (beyond each "
                                       "arm's own overrides) differ; the report says so")


def _check_runs_dir(runs: str) -> None:
    if not Path(runs).is_dir():
        raise RunError(f"runs directory {runs!r} does not exist; run `harness sweep` first")


@cli.command()
@runs_option
@preset_option(default=None, help_extra="; default: the only preset present")
@report_out_option
@allow_mixed_option
def falsify(runs: str, preset: str | None, out: str, allow_mixed: bool) -> None:
    """Apply the preregistered H1/H3/H4/controls rules; write <out>/falsification.{json,md}."""
    from harness.reporting.report import write_falsification
    _check_runs_dir(runs)
    write_falsification(runs, out, preset, console(), allow_mixed=allow_mixed)


@cli.command()
@runs_option
@preset_option(default=None, help_extra="; default: the only preset present")
@report_out_option
@allow_mixed_option
def report(runs: str, preset: str | None, out: str, allow_mixed: bool) -> None:
    """falsify, plus <out>/pareto.png (hack vs pass per arm x seed) and <out>/curves.png (per-step rates)."""
    from harness.reporting.report import write_report
    _check_runs_dir(runs)
    write_report(runs, out, preset, console(), allow_mixed=allow_mixed)


@cli.command()
@runs_option
@preset_option(default=None, help_extra="; default: the only preset present")
def hashes(runs: str, preset: str | None) -> None:
    """Print the model / data / pool / V hashes every complete run recorded, and whether arms agree on them."""
    from rich.table import Table

    from harness.rundir import HASH_KEYS, scan_runs, select_preset
    _check_runs_dir(runs)
    records = scan_runs(runs)
    preset = select_preset(records, preset)
    done = [r for r in records if r.preset == preset and r.complete]
    t = Table(title=f"artifact hashes — preset {preset}")
    for h in ("arm", "seed", *HASH_KEYS):
        t.add_column(h, overflow="fold")
    for r in done:
        hs = r.summary.get("hashes") or {}
        t.add_row(r.arm, str(r.seed), *(str(hs.get(k)) for k in HASH_KEYS))
    con = console()
    con.print(t)
    for k in ("model", "data", "pool"):   # shared by every arm of a preset; V differs by arm (and seed for controls)
        values = {str((r.summary.get("hashes") or {}).get(k)) for r in done}
        con.print(f"{k}: {'one value across runs' if len(values) == 1 else f'{len(values)} DIFFERENT values'}: "
                  f"{', '.join(sorted(values))}", markup=False)


# --- pipeline steps ----------------------------------------------------------------------

def _warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)       # one line each, never wrapped (rich would wrap at 80 columns)


@cli.command()
def data() -> None:
    """Fetch (or reuse ../shared/data) every published LeetCode split and verify it against its pinned git blob id.

    The test split is required. A train split that cannot be fetched (no network) is a warning naming what needs
    it; a file with the wrong id is an error. What was verified is recorded in <data dir>/manifest.json."""
    import sandbox.data as D

    try:
        test = D.ensure_data(("test",))["test"]
    except D.DataError as e:
        raise click.ClickException(f"test split: {_one_line(e)}") from None
    _print_verified(D, "test", test)
    for split, df in D.DATA_FILES.items():
        if split == "test":
            continue
        try:
            path = D.ensure_data((split,))[split]
        except D.DataError as e:
            if not isinstance(e.__cause__, OSError):   # a hash mismatch or a bad file: never skipped quietly
                raise click.ClickException(f"{split}: {_one_line(e)}") from None
            need = [n for n, ps in D.PROBLEM_SETS.items() if split in ps.splits()]
            _warn(f"{split}: {df.filename} not fetched ({type(e.__cause__).__name__}: {_one_line(e.__cause__)}); "
                  f"needed by problem set(s) {', '.join(need) or 'none'}")
            continue
        _print_verified(D, split, path)
    for name, src in D.local_files().items():   # the repository's own problem sets (mini): kept in git, sha256-pinned
        try:
            path, sha = D._source_path(src)
        except D.DataError as e:
            raise click.ClickException(_one_line(e)) from None
        click.echo(f"{name}: {path}  sha256 {sha} (verified; in this repository)")
    click.echo(f"manifest: {Path(D.DATA_DIR) / D.MANIFEST}")


def _print_verified(D, split: str, path: Path) -> None:
    # every row parsed and checked now, on arrival, naming every bad row: never a crash in the middle of a preset
    try:
        n = len(D.load_problems(split))
    except D.DataError as e:
        raise click.ClickException(f"{split}: {_one_line(e)}") from None
    entry = D.read_manifest().get(D.DATA_FILES[split].filename, {})   # one line each (hashes must stay greppable)
    click.echo(f"{split}: {path}  git blob {D.DATA_FILES[split].git_blob}  sha256 {entry.get('sha256')} "
               f"(verified; {n} problems parsed)")


def _builtin_name(model: str) -> str | None:
    from policy.model_loading import BUILTIN_PREFIX
    return model[len(BUILTIN_PREFIX):] if model.startswith(BUILTIN_PREFIX) else None


@cli.command("build-base")
@preset_option()
@set_option
def build_base(preset: str, sets: tuple[str, ...]) -> None:
    """Build (or find cached) the preset's base model + tokenizer (builtin:smoke / builtin:mini)."""
    config = resolve_config(_preset(preset), METHOD, PREREGISTERED_SEEDS[0], parse_sets(sets))
    name = _builtin_name(config.model)
    con = console()
    if name is None:
        con.print(f"preset {preset} uses {config.model!r}: loaded with from_pretrained, nothing to build")
        return
    from policy.substrate import builtin_manifest, ensure_builtin
    path = ensure_builtin(name)
    con.print(f"{config.model}: {path}")
    con.print(json.dumps(builtin_manifest(path), indent=2, sort_keys=True, default=str), markup=False)


@cli.command("build-pool")
@preset_option()
@set_option
@unsandboxed_option
def build_pool(preset: str, sets: tuple[str, ...]) -> None:
    """Build (or find cached) the preset's frozen teacher pool and print its path and sha256."""
    from sandbox.pool import load_pool
    config = resolve_config(_preset(preset), METHOD, PREREGISTERED_SEEDS[0], parse_sets(sets))
    if config.teacher_pool == "builtin":
        from sandbox.pool import ensure_pool   # the same resolver the loop uses
        path = ensure_pool(config)
    else:
        path = Path(config.teacher_pool)
        if not path.is_file():
            raise RunError(f"teacher pool {path} not found")
    pool = load_pool(path)
    console().print(f"pool: {path}\nsha256: {pool.sha256}", markup=False)


@cli.command()
@preset_option()
@set_option
@weak_v_option
@click.option("--kind", "kinds", default=None, help="comma-separated V kinds (default: all of method.extract.KINDS: "
                                                   "real and the controls' V)")
def extract(preset: str, sets: tuple[str, ...], allow_weak_v: bool, kinds: str | None) -> None:
    """Extract (or find cached) V per module from the contrastive pairs; print each file and its hash."""
    from method import extract as ex
    wanted = tuple(ex.KINDS) if kinds is None else tuple(k.strip() for k in kinds.split(",") if k.strip())
    bad = [k for k in wanted if k not in ex.KINDS]
    if bad or not wanted:
        raise BadInput(f"--kind: unknown V kind(s) {', '.join(bad) or kinds!r}; choose from {', '.join(ex.KINDS)}")
    config = resolve_config(_preset(preset), METHOD, PREREGISTERED_SEEDS[0],
                            parse_sets(sets, allow_weak_v=allow_weak_v))
    results = ex.extract_for_config(config, wanted)
    con = console()
    for kind, (path, digest) in results.items():
        con.print(f"{kind}: {path}  digest {digest}", markup=False)
    real = ex.VHack.load(results[ex.REAL][0]) if ex.REAL in results else None
    if real is not None and not ex.validation_passed(real):
        val = real.meta.get("validation") or {}
        _warn(f"the real V FAILED held-out validation (frac_positive={val.get('frac_positive')}, random-V null "
              f"95th percentile {val.get('null_frac_positive_p95')}); proceeding only because of "
              "--allow-weak-v / allow_weak_v=true")


@cli.command()
@click.option("--in", "in_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help='completions JSONL: {"id": <problem id>, "completion": "<model text>", "mode"?: <loophole mode>}')
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="graded JSONL: each input row plus every GradeRecord field, in input order")
@click.option("--sandbox", type=click.Choice(SANDBOXES), default="auto", show_default=True)
@unsandboxed_option
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 256))
def grade(in_path: str, out_path: str, sandbox: str, workers: int) -> None:
    """Grade model completions in the sandbox; write graded rows; print counts per loophole mode x category."""
    from sandbox.grade_file import grade_file, summary_table
    summary = grade_file(in_path, out_path, sandbox_kind=sandbox, workers=workers)
    con = console()
    con.print(summary_table(summary))
    reward = summary["mean_reward"]
    con.print(f"mean reward {reward:.3f}" if reward is not None else "no rows", markup=False)
    con.print(f"wrote {summary['output']}", markup=False)


@cli.command()
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="where runs will go (for the disk check)")
def doctor(out: str) -> None:
    """Check Docker, the grader image and its data hashes, GPU, flash-attn, memory and disk; say what to fix."""
    from rich.markup import escape
    from rich.table import Table

    from harness.doctor import FAIL, run_checks
    checks = run_checks(Path(out))
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    t = Table(title="harness doctor")
    for h in ("check", "status", "detail", "fix"):
        t.add_column(h, overflow="fold")
    for c in checks:
        # details and fixes are plain text: `pip install -e '.[ray]'` must not lose [ray] as markup
        t.add_row(escape(c.name), f"[{colour[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix))
    con = console()
    con.print(t)
    failed = [c.name for c in checks if c.status == FAIL]
    if failed:
        raise click.ClickException(f"not ready: {', '.join(failed)}")


def main() -> None:
    cli(prog_name="harness")


if __name__ == "__main__":
    sys.exit(main())
