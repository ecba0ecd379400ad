"""Does a lever let entropy minimisation win? One λ_ent probe of the synthetic benchmark, scored two ways.

On the default benchmark the best λ_ent under the official evaluation is the smallest (the README's
"No interior optimum"): target batches moving the BN running statistics give the paper's defaults
their gain, and a larger λ_ent loses under the statistics that mix source and target while it
gains a little with target BN statistics. This script measures one lever at a time on a seed or
a few: the spec's trainer with ``--set`` overrides and its data with ``--style`` (the target's
rendering, ``data.synthetic.target_style``) and ``--data`` overrides; minent over ``--lambda-ent``
next to source-only and the oracle. Every run is trained and scored as in ``synthetic_gap.py``
(the same ``train_one``): target mIoU at the end, officially and with every BN layer's statistics
re-estimated on the target train split.

A lever worth a full ``synthetic_gap.py`` run leaves room after target BN statistics (source-only
there well below the oracle) and has a λ_ent above 1e-3 beat 1e-3 in the official column.

    python benchmarks/lambda_probe.py                                   # the default benchmark, seed 0
    python benchmarks/lambda_probe.py --set lr=1e-2 --seeds 0 1 2
    python benchmarks/lambda_probe.py --style '{texture: 1.0, blur: 0.0, noise: 4.0}'
    python benchmarks/lambda_probe.py --data 'size=[128, 128]' --lambda-ent 1e-3 3 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from synthetic_gap import (
    COST, DEFAULT_CACHE, QUICKSTART, Plan, _domain_data, _fmt, _number, mean_std, parse_run,
    environment, interior_margin, parse_setting, percent, print_table, train_jobs,
)  # fmt: skip
from advent_sweep.errors import ConfigError
from advent_sweep.sweep.spec import SweepSpec

PAPER_LAMBDA_ENT = 1e-3


def parse_style(text: str) -> dict[str, Any]:
    """A YAML (or JSON) mapping of target rendering parameters."""
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--style takes a mapping such as '{{texture: 1.0}}', got {text!r}")
    return value


def probe_table(plan: Plan, keys: dict[str, list[str]], seeds: list[int]) -> dict[str, Any]:
    """Print each run's end target mIoU per seed, its mean, and both scores' difference from λ_ent 1e-3."""
    paper = f"minent:lambda_ent_main={PAPER_LAMBDA_ENT}"
    base = {field: mean_std(plan.last(keys[paper], field))[0] for field in ("last", "last_target_bn")}
    rows = [["run", *(f"seed {s}" for s in seeds), "mean ± std", "target BN", "Δ vs λent 1e-3", "target BN Δ"]]
    summary: dict[str, Any] = {}
    for text, run_keys in keys.items():
        official, target_bn = mean_std(plan.last(run_keys)), mean_std(plan.last(run_keys, "last_target_bn"))
        adaptive = text.startswith("minent")
        rows.append([parse_run(text).label, *(_fmt(v) for v in plan.last(run_keys)),
                     f"{_fmt(official[0])} ± {_fmt(official[1])}", _fmt(target_bn[0]),
                     _fmt(official[0] - base["last"], sign=True) if adaptive else "",
                     _fmt(target_bn[0] - base["last_target_bn"], sign=True) if adaptive else ""])  # fmt: skip
        summary[text] = {"last": plan.last(run_keys), "last_target_bn": plan.last(run_keys, "last_target_bn"),
                         "mean": official[0], "std": official[1], "target_bn_mean": target_bn[0]}  # fmt: skip
    print_table("λ_ent probe: target mIoU at the end of training", "  (target BN: the same weights scored with BN "
                "statistics re-estimated on target train; Δ: against the paper's λ_ent 1e-3)", rows)  # fmt: skip
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=QUICKSTART, help="sweep file whose data and trainer to start from (default: quickstart)")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="override a trainer setting, e.g. lr=1e-2 or 'source_warmup={iterations: 720, lr: 5e-3}' (repeatable)")
    parser.add_argument("--style", type=parse_style, default={}, metavar="MAPPING",
                        help="override target rendering parameters (data.synthetic.target_style), e.g. '{blur: 0.0}'")
    parser.add_argument("--data", dest="data_settings", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="override a data.synthetic setting, e.g. 'size=[128, 128]' (repeatable)")
    parser.add_argument("--lambda-ent", type=float, nargs="+", default=[PAPER_LAMBDA_ENT, 1.0, 3.0],
                        help="minent λ_ent values; 1e-3, the paper's, is always added (default 1e-3 1 3)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds, on the spec's data seed (default 0)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle (and its warm-up on target labels)")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help=f"where the warm-ups are cached (default {DEFAULT_CACHE})")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, each in its own process (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1, as a 1-CPU sweep trial)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this file")
    args = parser.parse_args(argv)

    try:
        spec = SweepSpec.from_yaml(args.spec)
        trainer = {**spec.trainer, **dict(args.settings)}
        data = spec.data.model_dump(mode="json")
        synthetic = {**data["synthetic"], **dict(args.data_settings)}
        synthetic["target_style"] = {**(synthetic.get("target_style") or {}), **args.style} or None
        data["synthetic"] = synthetic
        plan = Plan(trainer, data, args.threads)
        runs = ["source_only", *([] if args.no_oracle else ["oracle"])]
        runs += [f"minent:lambda_ent_main={v}" for v in sorted({PAPER_LAMBDA_ENT, *args.lambda_ent})]
        keys = {text: plan.run(parse_run(text), args.seeds) for text in runs}
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    env = environment()
    jobs = sorted(plan.jobs.values(), key=lambda job: COST.get(job.config["method"], 0))
    print(f"λ_ent probe: {args.spec.name}, trainer overrides {dict(args.settings) or 'none'}, data.synthetic "
          f"overrides {dict(args.data_settings) or 'none'}, target_style {synthetic['target_style'] or 'default'}; "
          f"seeds {args.seeds}; {len(jobs)} runs on {args.jobs} processes × {args.threads} thread(s)\n{env}",
          flush=True)  # fmt: skip
    _, total = train_jobs(jobs, _domain_data(data), args.cache_dir, args.jobs)

    summary = probe_table(plan, keys, args.seeds)
    grid = [(parse_run(text).params[0][1], row["mean"]) for text, row in summary.items() if text.startswith("minent")]
    top, margin = interior_margin([mean for _, mean in grid])  # the runs are in λ_ent order
    best_value, best_mean = grid[top]
    where = f"inside the grid, {_fmt(margin, sign=True)} over the better end" if 0 < top < len(grid) - 1 else "an end of the grid"
    print(f"\nbest λ_ent officially: {_number(best_value)} ({where}), {_fmt(best_mean)}")
    if not args.no_oracle:
        oracle = summary["oracle"]["target_bn_mean"]
        print(f"room after target BN statistics: source-only {_fmt(summary['source_only']['target_bn_mean'])}, "
              f"{_fmt(percent(summary['source_only']['target_bn_mean'], oracle))}% of the oracle's {_fmt(oracle)}; "
              f"officially {_fmt(percent(summary['source_only']['mean'], summary['oracle']['mean']))}%")  # fmt: skip
    print(f"probe wall time: {total:.0f} s, {len(jobs)} runs")
    if args.json:
        config = plan.jobs[keys[f"minent:lambda_ent_main={PAPER_LAMBDA_ENT}"][0]].config  # validated, data included
        args.json.write_text(json.dumps({"spec": str(args.spec), "environment": env, "config": config, "seeds": args.seeds, "runs": summary,
                                         "best_lambda_ent": best_value, "wall_s": total}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
