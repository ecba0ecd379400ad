"""The ``advent-sweep`` command: parse arguments, call the library, map errors to exit codes.

Exit codes: 0 ok, 2 bad input (a config, space.yaml, dataset or results folder at
fault: the message names it), 1 any other failure. Each command imports only what it
needs, so ``advent-sweep analyze`` never loads torch or Ray.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from advent_sweep import __version__
from advent_sweep.errors import InputError
from advent_sweep.selection import SELECTION_RULES

if TYPE_CHECKING:
    from advent_sweep.sweep.spec import SweepSpec

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
VERBOSE_HELP = ("Ray's own output (status tables, worker logs) instead of one line per trial event; "
                "a resumed run keeps the tables it was started with")
SECONDS_PER_ITERATION_HELP = ("seconds one trainer iteration takes, evaluation included, for the forecast; "
                              "default: a previous sweep of the same settings, else `advent-sweep probe SPACE`")


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``low``; argparse names the flag and exits 2 otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"allowed: an integer >= {low} (got {text!r})")
        return value

    return parse


def _positive_float(text: str) -> float:
    """An argparse type: a float > 0; argparse names the flag and exits 2 otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"allowed: a number > 0 (got {text!r})")
    return value


def _blocking_file(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists, if it is not a folder (so no folder can be made there)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _check_output_folder(flag: str, path: Path) -> None:
    """``path`` must be a folder or creatable as one."""
    blocking = _blocking_file(path)
    if blocking is not None:
        raise InputError(f"{flag} {path}: {blocking} is a file; allowed: a folder, or a path where one can be created")


def _check_output_file(flag: str, path: Path) -> None:
    """``path`` must be a file (new or replaced), not a folder, in a folder that exists or can be created."""
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a folder; allowed: a file path such as {path / 'best.yaml'}")
    _check_output_folder(flag, path.parent)


def cmd_train(args: argparse.Namespace) -> int:
    from advent_sweep.advent.config import TrainConfig
    from advent_sweep.advent.run import train_to_end
    from advent_sweep.data import build_domain_data

    config = TrainConfig.from_yaml(args.config)
    output = Path(args.output) if args.output else Path("runs") / Path(args.config).stem
    _check_output_folder("--output", output)
    cache_dir = output.parent / ".advent-sweep-cache"  # p_s and the source warm-up, shared by runs beside this one
    data = build_domain_data(config.data, cache_dir=cache_dir)
    if config.source_warmup and not args.quiet:
        print(f"source warm-up: {config.source_warmup.iterations} source-only iterations, or read back from {cache_dir}")
    result = train_to_end(config, data, output, resume=args.resume, progress=not args.quiet, cache_dir=cache_dir)
    chosen = result["selection"]
    print(f"done: {config.iterations} iterations in {output}")
    for rule, report in chosen.items():
        if report:
            print(f"  {rule:>15}: target mIoU {report['target_miou']:.2f} at iteration {report['iteration']}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from advent_sweep.sweep.spec import SweepSpec

    spec = SweepSpec.from_yaml(args.space)
    if args.storage is not None:
        spec = spec.with_storage(args.storage)
    print(spec.describe())
    print(_forecast_text(spec, args.seconds_per_iteration))
    return EXIT_OK


def _forecast_text(spec: SweepSpec, seconds_per_iteration: float | None) -> str:
    from advent_sweep.sweep.forecast import forecast

    return forecast(spec, seconds_per_iteration).describe()


def cmd_probe(args: argparse.Namespace) -> int:
    from advent_sweep.sweep.probe import probe
    from advent_sweep.sweep.spec import SweepSpec

    spec = SweepSpec.from_yaml(args.space)
    if args.storage is not None:
        spec = spec.with_storage(args.storage)
    record = probe(spec, steps=args.steps)
    print(f"probe on {record['device']} ({record['threads']} threads), {record['what']}:")
    print(f"  {record['step_seconds']:.3f} s per training step ({record['steps']} timed), evaluation "
          f"{record['evaluation_seconds']:.2f} s every {record['eval_interval']} iterations: "
          f"{record['seconds_per_iteration']:.3f} s per iteration")
    print(_forecast_text(spec, None))
    return EXIT_OK


def cmd_launch(args: argparse.Namespace) -> int:
    from advent_sweep.sweep.launch import launch, prepare
    from advent_sweep.sweep.spec import SweepSpec

    spec = SweepSpec.from_yaml(args.space)
    if args.storage is not None:
        spec = spec.with_storage(args.storage)
    if "://" not in spec.storage:
        _check_output_folder("--storage" if args.storage is not None else "storage", Path(spec.storage))
    if args.dry_run:
        data = prepare(spec, args.resume)
        print(spec.describe())
        print(_forecast_text(spec, args.seconds_per_iteration))
        action = "resume" if args.resume else "start"
        print(f"\nplan: {action} sweep {spec.name!r} in {spec.folder} on {args.address or 'an embedded local Ray (127.0.0.1)'}; "
              f"data: {len(data.source)} source / {len(data.target)} target / {len(data.target_val)} target-val images, "
              f"{data.num_classes} classes. Nothing was started.")
        return EXIT_OK
    outcome = launch(spec, address=args.address, resume=args.resume, verbose=args.verbose)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(outcome.statuses.items()))
    print(f"\nsweep {spec.name!r}: {outcome.trials} trials ({statuses})")
    if outcome.best_trial:
        print(f"best trial {outcome.best_trial}: {spec.metric} {outcome.best_value:.3f} at iteration {outcome.best_iteration}")
        print("  " + ", ".join(f"{k}={v}" for k, v in outcome.best_params.items()))
    print(f"results: {outcome.folder} (reports/ and trials.parquet)")
    if outcome.interrupted:
        print(f"interrupted: continue with advent-sweep launch {args.space} --resume" + (f" --storage {args.storage}" if args.storage else ""))
        return EXIT_FAILURE
    print(f"next: advent-sweep best {outcome.folder} -o best.yaml ; advent-sweep confirm {outcome.folder} ; "
          f"advent-sweep analyze {outcome.folder}")
    return EXIT_OK


def cmd_best(args: argparse.Namespace) -> int:
    from advent_sweep.analysis import export_best, format_top, load_results
    from advent_sweep.analysis.best import export_confirmed

    output = Path(args.output or "best.yaml") if args.output or not args.top else None
    if output is not None:
        _check_output_file("--output", output)
    if args.confirmed:
        print(export_confirmed(args.results, output or Path("best.yaml")))
        return EXIT_OK
    results = load_results(args.results, progress=True)
    options = dict(metric=args.metric, mode=args.mode, rule=args.rule, min_iterations=args.min_iterations)
    if args.top:
        print(format_top(results, args.top, **options))
    if output is not None:
        print(export_best(results, output, **options))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from advent_sweep.advent.checkpoints import evaluate_checkpoints
    from advent_sweep.data.config import DataConfig
    from advent_sweep.storage import write_atomically
    from advent_sweep.validation import read_yaml_mapping, validate

    output = Path(args.output) if args.output else None
    if output is not None:
        _check_output_file("--output", output)
    data = None
    if args.data:
        values = read_yaml_mapping(args.data)  # a run config or a space.yaml: its data section; else a data section alone
        data = validate(DataConfig, values.get("data", values), f"{args.data} (data)")
    result = evaluate_checkpoints(args.checkpoints, args.weights, data, args.split, args.device, progress=not args.quiet)
    print(_scores_text(result))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(output, json.dumps(result, indent=1).encode())
        print(f"written: {output}")
    return EXIT_OK


def _scores_text(result: dict) -> str:
    from advent_sweep.selection import VALIDATORS

    metrics = result["metrics"]
    lines = [f"  {c['weight']:.3f} × {c['location']} ({c['method']}, {c['backbone']}, iteration {c['iteration']})"
             for c in result["checkpoints"]]
    lines.append(f"target {result['split']} ({result['images']} images): mIoU {metrics['target_miou']:.2f}"
                 + (f", mIoU* (13 classes) {metrics['target_miou_13']:.2f}" if "target_miou_13" in metrics else ""))
    lines += [f"  {name:>16} {metrics[name]:.4f} ({VALIDATORS[name].mode})" for name in VALIDATORS if name in metrics]
    lines += [f"  {name.removeprefix('iou.'):>16} {value:6.2f}" for name, value in metrics.items() if name.startswith("iou.")]
    return "\n".join(lines)


def cmd_confirm(args: argparse.Namespace) -> int:
    from advent_sweep.analysis.confirmed import format_confirm
    from advent_sweep.sweep.confirm import confirm

    summary = confirm(args.sweep, args.top, args.seeds, args.rule, address=args.address, resume=args.resume,
                      verbose=args.verbose)
    print(format_confirm(summary))
    print(f"written: {args.sweep.rstrip('/')}/confirm/summary.md and rules.md; "
          f"export the best confirmed configuration with: advent-sweep best {args.sweep} --confirmed -o best.yaml")
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from advent_sweep.analysis import analyze

    if args.output is not None:
        _check_output_folder("--output", Path(args.output))
    report = analyze(args.results, args.output, metric=args.metric, rule=args.rule, min_iterations=args.min_iterations,
                     budget=args.budget)
    print(f"report: {report}")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    from advent_sweep.sweep.study_journal import open_sweep_journal

    with open_sweep_journal(args.sweep) as storage:
        print(f"optuna-dashboard for {args.sweep}: http://127.0.0.1:{args.port} (this machine only; Ctrl-C stops it)", flush=True)
        optuna_dashboard.run_server(storage, host="127.0.0.1", port=args.port)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="advent-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"advent-sweep {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="run one ADVENT training from a config YAML")
    train.add_argument("config", help="a TrainConfig YAML (what `advent-sweep best` writes)")
    train.add_argument("--output", "-o", help="run folder (default: runs/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=cmd_train)

    validate = commands.add_parser("validate", help="check a space.yaml and print the resolved spec")
    validate.add_argument("space", help="a sweep space YAML (see search_spaces/)")
    validate.add_argument("--storage", help="override the file's storage (folder or URI)")
    validate.add_argument("--seconds-per-iteration", type=_positive_float, help=SECONDS_PER_ITERATION_HELP)
    validate.set_defaults(handler=cmd_validate)

    probe = commands.add_parser("probe", help="time a few iterations of a space's costliest configuration on this machine")
    probe.add_argument("space", help="a sweep space YAML (see search_spaces/)")
    probe.add_argument("--storage", help="override the file's storage: the timing is kept in its .cache for the forecast")
    probe.add_argument("--steps", type=_int_at_least(1), default=5, help="timed training steps, after one untimed")
    probe.set_defaults(handler=cmd_probe)

    launch = commands.add_parser("launch", help="run (or resume) a sweep on Ray Tune")
    launch.add_argument("space", help="a sweep space YAML (see search_spaces/)")
    launch.add_argument("--address", help="an existing Ray cluster: auto or HOST:PORT (default: RAY_ADDRESS, else a local Ray)")
    launch.add_argument("--storage", help="override the file's storage (a shared folder or s3:// / gs:// URI on a cluster)")
    launch.add_argument("--resume", action="store_true", help="continue an interrupted sweep; finished trials are not rerun")
    launch.add_argument("--dry-run", action="store_true", help="validate spec and data, print the plan, start nothing")
    launch.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    launch.add_argument("--seconds-per-iteration", type=_positive_float, help=SECONDS_PER_ITERATION_HELP)
    launch.set_defaults(handler=cmd_launch)

    best = commands.add_parser("best", help="export the best trial's config as a YAML that `train` reruns")
    best.add_argument("results", help="a sweep folder or URI (s3://, gs://, file://): <storage>/<name>, or a folder of sweeps")
    best.add_argument("--metric", help="metric column (default: the sweep's metric)")
    best.add_argument("--mode", choices=["max", "min"], help="default: the sweep's mode")
    best.add_argument("--rule", choices=SELECTION_RULES, default="best",
                      help="each trial's best report, its last one, or the one a label-free validator ranks best")
    best.add_argument("--min-iterations", type=_int_at_least(0), default=0,
                      help="ignore reports (and trials) before this trainer iteration")
    best.add_argument("--top", type=_int_at_least(1), help="print the K best trials as a table")
    best.add_argument("--confirmed", action="store_true",
                      help="export the configuration with the best mean over seeds of `advent-sweep confirm` instead")
    best.add_argument("--output", "-o", help="where to write the config (default best.yaml, unless only --top is given)")
    best.set_defaults(handler=cmd_best)

    analyze = commands.add_parser("analyze", help="ablation tables, importances, plots and report.html from Parquet results")
    analyze.add_argument("results", help="a sweep folder or URI (s3://, gs://, file://): <storage>/<name>, or a folder of sweeps")
    analyze.add_argument("--output", "-o", help="output folder (default: RESULTS/analysis; for a URI, a local ./<sweep name>-analysis)")
    analyze.add_argument("--metric", help="metric column (default: the sweep's metric)")
    analyze.add_argument("--rule", choices=SELECTION_RULES, default="best")
    analyze.add_argument("--min-iterations", type=_int_at_least(0), default=0)
    analyze.add_argument("--budget", choices=["common", "completed"], default="common",
                         help="compare trials at the largest iteration all reached (default), or completed trials only")
    analyze.set_defaults(handler=cmd_analyze)

    confirm = commands.add_parser("confirm", help="retrain a sweep's top configurations on fresh seeds: mean ± std, optimism")
    confirm.add_argument("sweep", help="a sweep folder (<storage>/<name>); results go to <sweep>/confirm/")
    confirm.add_argument("--top", type=_int_at_least(1), default=3, help="how many configurations (default 3)")
    confirm.add_argument("--seeds", type=_int_at_least(2), default=3, help="fresh training seeds per configuration (default 3)")
    confirm.add_argument("--rule", choices=SELECTION_RULES, default="best", help="how the top configurations are chosen")
    confirm.add_argument("--address", help="an existing Ray cluster: auto or HOST:PORT (default: RAY_ADDRESS, else a local Ray)")
    confirm.add_argument("--resume", action="store_true", help="continue an interrupted confirm run; finished seeds are not rerun")
    confirm.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    confirm.set_defaults(handler=cmd_confirm)

    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard on a sweep's Optuna study, on 127.0.0.1")
    dashboard.add_argument("sweep", help="a sweep folder or URI (<storage>/<name>); for a URI, its journal as of the last trial end")
    dashboard.add_argument("--port", type=_int_at_least(1), default=8080, help="default 8080")
    dashboard.set_defaults(handler=cmd_dashboard)

    evaluate = commands.add_parser("evaluate", help="score checkpoints alone or as a weighted ensemble (the paper's AdvEnt+MinEnt)")
    evaluate.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                          help="a run folder, a checkpoint.pt / trainer.pt, or a sweep trial's checkpoint folder; local or s3:// gs:// file://")
    evaluate.add_argument("--weights", type=float, nargs="+", help="one per checkpoint, normalised to sum 1 (default: equal)")
    evaluate.add_argument("--data", help="score on this YAML's data section (a run config or space.yaml) instead of the checkpoints' own")
    evaluate.add_argument("--split", choices=["val", "train"], default="val", help="the target split (default val)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    evaluate.add_argument("--output", "-o", help="write the scores as JSON here")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"advent-sweep {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"advent-sweep {args.command}: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - any failure of ours is exit 1, with its traceback
        traceback.print_exc()
        print(f"advent-sweep {args.command}: failed: {error}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
