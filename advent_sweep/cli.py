"""The ``advent-sweep`` command: parse arguments, call the library, map errors to exit codes.

Each command imports only what it needs, so ``advent-sweep analyze`` never loads torch or Ray.
Conventions, the same in every command: a sweep folder is the positional SWEEP (local or URI);
``-o/--output`` names a file the command writes, ``--output-dir`` a folder; ``--quiet`` drops
progress output; defaults and exit codes are in every help.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from advent_sweep import __version__
from advent_sweep.errors import InputError
from advent_sweep.selection import SELECTION_RULES

if TYPE_CHECKING:
    from advent_sweep.sweep.spec import SweepSpec

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells report it
DESCRIPTION = ("Tune and ablate ADVENT (adversarial entropy minimisation for domain adaptation in semantic "
               "segmentation) with Ray Tune, Optuna and ASHA; every report lands in Parquet.")
EXIT_CODES = """exit codes:
  0    done (launch: at least one trial completed or was stopped by the scheduler)
  1    failure (launch: every trial failed or diverged); the message or traceback says why
  2    bad input: the message names the field, file or value and what is allowed; nothing was written
  130  interrupted by SIGINT (Ctrl-C); launch and confirm print the --resume command that continues
  143  interrupted by SIGTERM; as 130"""
SWEEP_HELP = "a sweep folder or URI (s3://, gs://, file://): <storage>/<name>"
ADDRESS_HELP = "an existing Ray cluster: auto or HOST:PORT (default: RAY_ADDRESS, else an embedded Ray on 127.0.0.1)"
VERBOSE_HELP = ("Ray's own output (status tables, worker logs) instead of one line per trial event; "
                "a resumed run keeps the tables it was started with")
QUIET_HELP = "no progress output: only the result"
SECONDS_PER_ITERATION_HELP = ("seconds one trainer iteration takes, evaluation included, for the forecast; "
                              "default: a previous sweep of the same settings, else `advent-sweep probe SPACE`")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (when it has one worth showing) and keeps the exit-code epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class DeprecatedSpelling(argparse.Action):
    """An old option name that still works for one release, saying which name replaces it."""

    def __init__(self, option_strings: list[str], dest: str, replacement: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.replacement = replacement

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated and goes in the next release; use {self.replacement}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


class Interrupted(Exception):
    """A sweep or confirm run stopped by a signal; Ray saved its state, so ``resume_command`` continues it."""

    def __init__(self, signal_number: int, resume_command: str) -> None:
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}; continue with: {resume_command}")
        self.signal_number = signal_number


@contextmanager
def stop_signals(resume_command: str) -> Iterator[list[int]]:
    """Collects SIGTERM and handles it as Ray Tune handles Ctrl-C: a graceful stop that saves the run for --resume.

    Inside ``Tuner.fit`` Ray has its own SIGUSR1 handler (the same stop as its SIGINT one), which SIGTERM is
    passed to; before or after it, SIGTERM raises KeyboardInterrupt as Ctrl-C does, and a KeyboardInterrupt
    leaves as :class:`Interrupted`. Yields the signals seen, for a run that Ray stopped and returned from.
    """
    received: list[int] = []

    def on_sigterm(number: int, frame: object) -> None:
        received.append(number)
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if not callable(tune_stop):
            raise KeyboardInterrupt
        tune_stop(number, frame)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    except KeyboardInterrupt:
        raise Interrupted(received[-1] if received else signal.SIGINT, resume_command) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    output = Path(args.output_dir) if args.output_dir else Path("runs") / Path(args.config).stem
    _check_output_folder("--output-dir", output)
    _check_trackers(args.mlflow, args.wandb)
    cache_dir = output.parent / ".advent-sweep-cache"  # p_s and the source warm-up, shared by runs beside this one
    data = build_domain_data(config.data, cache_dir=cache_dir)
    if config.source_warmup and not args.quiet:
        print(f"source warm-up: {config.source_warmup.iterations} source-only iterations, or read back from {cache_dir}")
    result = train_to_end(config, data, output, resume=args.resume, progress=not args.quiet, cache_dir=cache_dir,
                          mlflow_uri=args.mlflow, wandb_mode=args.wandb)
    chosen = result["selection"]
    print(f"done: {config.iterations} iterations in {output}")
    for rule, report in chosen.items():
        if report:
            print(f"  {rule:>15}: target mIoU {report['target_miou']:.2f} at iteration {report['iteration']}")
    for rule, snapshot in result["snapshots"].items():
        print(f"  snapshot kept for rule {rule}: {snapshot} (advent-sweep evaluate {snapshot})")
    return EXIT_OK


def _check_trackers(mlflow_uri: str | None, wandb_mode: str | None) -> None:
    """The trackers `train` was asked for are installed, and the MLflow URI is one."""
    from advent_sweep.advent.trackers import check_installed, check_tracking_uri

    try:
        if mlflow_uri is not None:
            check_installed("mlflow")
            check_tracking_uri(mlflow_uri)
        if wandb_mode is not None:
            check_installed("wandb")
    except ValueError as error:
        flag = "--wandb" if wandb_mode is not None and "wandb" in str(error) else "--mlflow"
        raise InputError(f"{flag}: {error}") from None


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


def _resume_command(args: argparse.Namespace, *words: str) -> str:
    """The command line that continues an interrupted run: the same arguments with --resume."""
    options = [f"--{name} {getattr(args, name)}" for name in ("storage", "address") if getattr(args, name, None)]
    return " ".join(["advent-sweep", args.command, *words, *options, "--resume"])


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
    resume_command = _resume_command(args, args.space)
    with stop_signals(resume_command) as received:
        outcome = launch(spec, address=args.address, resume=args.resume, verbose=args.verbose, quiet=args.quiet)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(outcome.statuses.items()))
    print(f"\nsweep {spec.name!r}: {outcome.trials} trials ({statuses})")
    if outcome.best_trial:
        print(f"best trial {outcome.best_trial}: {spec.metric} {outcome.best_value:.3f} at iteration {outcome.best_iteration}")
        print("  " + ", ".join(f"{k}={v}" for k, v in outcome.best_params.items()))
    print(f"results: {outcome.folder} (reports/ and trials.parquet)")
    if outcome.interrupted:
        raise Interrupted(received[-1] if received else signal.SIGINT, resume_command)
    if not outcome.succeeded:
        print(f"advent-sweep launch: failed: no trial completed or was stopped by the scheduler ({statuses}); "
              f"each failed trial's traceback is in its error.txt under {outcome.folder}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"next: advent-sweep best {outcome.folder} -o best.yaml ; advent-sweep confirm {outcome.folder} ; "
          f"advent-sweep analyze {outcome.folder}")
    return EXIT_OK


def cmd_best(args: argparse.Namespace) -> int:
    from advent_sweep.analysis import export_best, format_top, load_results
    from advent_sweep.analysis.confirmed import export_confirmed

    output = Path(args.output or "best.yaml") if args.output or not args.top else None
    if output is not None:
        _check_output_file("--output", output)
    if args.confirmed:
        print(export_confirmed(args.sweep, output or Path("best.yaml")))
        return EXIT_OK
    results = load_results(args.sweep, progress=not args.quiet)
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

    from advent_sweep.advent.predictions import check_predictions_folder

    output = Path(args.output) if args.output else None
    if output is not None:
        _check_output_file("--output", output)
    predictions = Path(args.save_predictions) if args.save_predictions else None
    if predictions is not None:
        check_predictions_folder(predictions)
    data = None
    if args.data:
        values = read_yaml_mapping(args.data)  # a run config or a space.yaml: its data section; else a data section alone
        data = validate(DataConfig, values.get("data", values), f"{args.data} (data)")
    result = evaluate_checkpoints(args.checkpoints, args.weights, data, args.split, args.device, progress=not args.quiet,
                                  save_predictions=predictions, limit=args.limit)
    print(_scores_text(result))
    for kind, folder in result.get("predictions", {}).items():
        print(f"predictions ({kind}): {folder}")
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
    from advent_sweep.sweep.confirm import CONFIRM, confirm
    from advent_sweep.sweep.launch import trial_statuses

    resume_command = _resume_command(args, args.sweep)
    with stop_signals(resume_command) as received:
        summary = confirm(args.sweep, args.top, args.seeds, args.rule, address=args.address, resume=args.resume,
                          verbose=args.verbose, quiet=args.quiet)
    print(format_confirm(summary))
    if trial_statuses(f"{args.sweep.rstrip('/')}/{CONFIRM}").get("running", 0):
        raise Interrupted(received[-1] if received else signal.SIGINT, resume_command)
    print(f"written: {args.sweep.rstrip('/')}/confirm/summary.md and rules.md; "
          f"export the best confirmed configuration with: advent-sweep best {args.sweep} --confirmed -o best.yaml")
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from advent_sweep.analysis import analyze

    if args.output_dir is not None:
        _check_output_folder("--output-dir", Path(args.output_dir))
    report = analyze(args.sweep, args.output_dir, metric=args.metric, mode=args.mode, rule=args.rule,
                     min_iterations=args.min_iterations, budget=args.budget, progress=not args.quiet)
    print(f"report: {report}")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    from advent_sweep.sweep.study_journal import open_sweep_journal

    with open_sweep_journal(args.sweep) as storage:
        print(f"optuna-dashboard for {args.sweep}: http://127.0.0.1:{args.port} (this machine only; Ctrl-C stops it)", flush=True)
        optuna_dashboard.run_server(storage, host="127.0.0.1", port=args.port)
    return EXIT_OK


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from advent_sweep.tensorboard_view import serve

    serve(args.folder, args.port)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from advent_sweep.storage import write_atomically
    from advent_sweep.sweep.config_schema import markdown_reference, schema_text

    text = markdown_reference() if args.markdown else schema_text(args.kind)
    if args.output is None:
        print(text, end="")
        return EXIT_OK
    output = Path(args.output)
    _check_output_file("--output", output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(output, text.encode())
    print(f"written: {output}")
    return EXIT_OK


def _command(commands: argparse._SubParsersAction, name: str, summary: str, description: str | None = None,
             ) -> argparse.ArgumentParser:
    """A sub-command whose help shows defaults and the exit codes."""
    return commands.add_parser(name, help=summary, description=description or summary, epilog=EXIT_CODES,
                               formatter_class=HelpFormatter)


def _add_sweep(parser: argparse.ArgumentParser, extra: str = "") -> None:
    parser.add_argument("sweep", metavar="SWEEP", help=SWEEP_HELP + extra)


def _add_progress(parser: argparse.ArgumentParser, verbose_help: str | None = None) -> None:
    """--quiet everywhere progress is printed; --verbose where there is more to show."""
    parser.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    if verbose_help:
        parser.add_argument("--verbose", "-v", action="store_true", help=verbose_help)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    """How a trial's reports are read: the metric, its direction, the snapshot rule and the earliest iteration."""
    parser.add_argument("--metric", help="metric column (default: the sweep's metric)")
    parser.add_argument("--mode", choices=["max", "min"], help="whether larger or smaller is better (default: the sweep's mode)")
    parser.add_argument("--rule", choices=SELECTION_RULES, default="best",
                        help="each trial's best report, its last one, or the one a label-free validator ranks best")
    parser.add_argument("--min-iterations", type=_int_at_least(0), default=0,
                        help="ignore reports (and trials) before this trainer iteration")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="advent-sweep", description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"advent-sweep {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = _command(commands, "train", "run one ADVENT training from a config YAML, with checkpoints and exact resume")
    train.add_argument("config", help="a TrainConfig YAML (what `advent-sweep best` writes)")
    train.add_argument("--output-dir", help="the run folder (default: runs/<config name>)")
    train.add_argument("--output", "-o", dest="output_dir", action=DeprecatedSpelling, replacement="--output-dir")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    _add_progress(train)
    train.add_argument("--mlflow", metavar="TRACKING_URI",
                       help="also log to MLflow at this URI (http://host:5000, sqlite:////abs/mlflow.db), "
                            "experiment advent-sweep-train, run named after the run folder; needs advent-sweep[mlflow]")
    train.add_argument("--wandb", choices=["online", "offline"],
                       help="also log to Weights & Biases (project advent-sweep, group advent-sweep-train); "
                            "offline keeps the run in the run folder; needs advent-sweep[wandb]")
    train.set_defaults(handler=cmd_train)

    validate = _command(commands, "validate", "check a space.yaml in full and print the resolved spec, or every error")
    validate.add_argument("space", help="a sweep space YAML (see search_spaces/ and docs/space-yaml.md)")
    validate.add_argument("--storage", help="override the file's storage (a folder or s3:// / gs:// URI)")
    validate.add_argument("--seconds-per-iteration", type=_positive_float, help=SECONDS_PER_ITERATION_HELP)
    validate.set_defaults(handler=cmd_validate)

    probe = _command(commands, "probe", "time a few iterations of a space's costliest configuration on this machine")
    probe.add_argument("space", help="a sweep space YAML (see search_spaces/ and docs/space-yaml.md)")
    probe.add_argument("--storage", help="override the file's storage: the timing is kept in its .cache for the forecast")
    probe.add_argument("--steps", type=_int_at_least(1), default=5, help="timed training steps, after one untimed")
    probe.set_defaults(handler=cmd_probe)

    launch = _command(commands, "launch", "run (or resume) a sweep on Ray Tune")
    launch.add_argument("space", help="a sweep space YAML (see search_spaces/ and docs/space-yaml.md)")
    launch.add_argument("--address", help=ADDRESS_HELP)
    launch.add_argument("--storage", help="override the file's storage (a shared folder or s3:// / gs:// URI on a cluster)")
    launch.add_argument("--resume", action="store_true", help="continue an interrupted sweep; finished trials are not rerun")
    launch.add_argument("--dry-run", action="store_true", help="validate spec and data, print the plan, start nothing")
    launch.add_argument("--seconds-per-iteration", type=_positive_float, help=SECONDS_PER_ITERATION_HELP)
    _add_progress(launch, VERBOSE_HELP)
    launch.set_defaults(handler=cmd_launch)

    best = _command(commands, "best", "export the best trial's config as a YAML that `train` reruns")
    _add_sweep(best, ", or a folder of sweeps")
    _add_selection(best)
    best.add_argument("--top", type=_int_at_least(1), help="print the K best trials as a table")
    best.add_argument("--confirmed", action="store_true",
                      help="export the configuration with the best mean over seeds of `advent-sweep confirm` instead")
    best.add_argument("--output", "-o", help="the YAML file to write (default: best.yaml, unless only --top is given)")
    _add_progress(best)
    best.set_defaults(handler=cmd_best)

    analyze = _command(commands, "analyze", "ablation tables, importances, plots and report.html from Parquet results")
    _add_sweep(analyze, ", or a folder of sweeps")
    analyze.add_argument("--output-dir",
                         help="the folder to write (default: SWEEP/analysis; for a URI, a local ./<sweep name>-analysis)")
    analyze.add_argument("--output", "-o", dest="output_dir", action=DeprecatedSpelling, replacement="--output-dir")
    _add_selection(analyze)
    analyze.add_argument("--budget", choices=["common", "completed"], default="common",
                         help="compare trials at the largest iteration all reached, or completed trials only")
    _add_progress(analyze)
    analyze.set_defaults(handler=cmd_analyze)

    confirm = _command(commands, "confirm", "retrain a sweep's top configurations on fresh seeds: mean ± std, optimism")
    _add_sweep(confirm, "; results go to SWEEP/confirm/")
    confirm.add_argument("--top", type=_int_at_least(1), default=3, help="how many configurations")
    confirm.add_argument("--seeds", type=_int_at_least(2), default=3, help="fresh training seeds per configuration")
    confirm.add_argument("--rule", choices=SELECTION_RULES, default="best", help="how the top configurations are chosen")
    confirm.add_argument("--address", help=ADDRESS_HELP)
    confirm.add_argument("--resume", action="store_true", help="continue an interrupted confirm run; finished seeds are not rerun")
    _add_progress(confirm, VERBOSE_HELP)
    confirm.set_defaults(handler=cmd_confirm)

    dashboard = _command(commands, "dashboard", "serve optuna-dashboard on a sweep's Optuna study, on 127.0.0.1 only")
    _add_sweep(dashboard, "; for a URI, its journal as of the last trial end")
    dashboard.add_argument("--port", type=_int_at_least(1), default=8080, help="the port on 127.0.0.1")
    dashboard.set_defaults(handler=cmd_dashboard)

    tensorboard = _command(commands, "tensorboard", "serve TensorBoard on a sweep's or a run's losses and image panels, on 127.0.0.1 only")
    tensorboard.add_argument("folder", metavar="SWEEP_OR_RUN",
                             help="a sweep folder or URI (s3://, gs://, file://): <storage>/<name>; or a run folder of `train`")
    tensorboard.add_argument("--port", type=_int_at_least(1), default=6006, help="the port on 127.0.0.1")
    tensorboard.set_defaults(handler=cmd_tensorboard)

    evaluate = _command(commands, "evaluate", "score checkpoints alone or as a weighted ensemble (the paper's AdvEnt+MinEnt)")
    evaluate.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                          help="a run folder, a checkpoint.pt / trainer.pt, a kept snapshot (snapshots/iteration_N.pt), or a "
                               "sweep trial's checkpoint folder; local or s3:// gs:// file://")
    evaluate.add_argument("--weights", type=float, nargs="+", help="one per checkpoint, normalised to sum 1 (default: equal)")
    evaluate.add_argument("--data", help="score on this YAML's data section (a run config or space.yaml) instead of the checkpoints' own")
    evaluate.add_argument("--split", choices=["val", "train"], default="val", help="the target split")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    evaluate.add_argument("--output", "-o", help="the JSON file to write the scores to")
    evaluate.add_argument("--save-predictions", metavar="DIR",
                          help="write each image's colourised prediction, entropy map and, for Cityscapes, the "
                               "official *_labelIds.png (DIR/labelIds: what cityscapesScripts' evaluator scores) here")
    evaluate.add_argument("--limit", type=_int_at_least(1), metavar="N",
                          help="score (and save) only the split's first N images, for a quick look")
    _add_progress(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    schema = _command(commands, "schema", "print the JSON Schema of a space.yaml or a training config, generated from the models")
    schema.add_argument("kind", nargs="?", choices=["space", "train"], default="space",
                        help="space: a sweep's space.yaml; train: a training config (what `train` reads and `best` writes)")
    schema.add_argument("--markdown", action="store_true",
                        help="print the space.yaml reference (docs/space-yaml.md, training config included) as Markdown instead")
    schema.add_argument("--output", "-o", help="the file to write it to, instead of printing it")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"advent-sweep {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as stop:
        print(f"advent-sweep {args.command}: {stop}", file=sys.stderr)
        return EXIT_ON_SIGNAL[stop.signal_number]
    except KeyboardInterrupt:
        print(f"advent-sweep {args.command}: interrupted by SIGINT", file=sys.stderr)
        return EXIT_ON_SIGNAL[signal.SIGINT]
    except Exception as error:  # noqa: BLE001 - any failure of ours is exit 1, with its traceback
        traceback.print_exc()
        print(f"advent-sweep {args.command}: failed: {error}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
