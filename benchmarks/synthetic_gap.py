"""Is the synthetic benchmark a tuning problem worth sweeping at the quickstart budget?

A quickstart sweep (``search_spaces/quickstart.yaml``) only means something if the built-in
synthetic source → target benchmark has a domain gap that ADVENT partly closes, if
hyperparameters move the target mIoU by more than the training seed does, and if the first
ASHA rung ranks configurations as the end of training does (else ASHA stops the wrong
trials). This script measures all of it in one run, with the spec's ``data`` (its data seed
fixed) and ``trainer`` sections, over several TRAINING seeds (``TrainConfig.seed``).

Every run is driven as a sweep trial is: ``build_trainer(config, data, cache_dir)``,
``trainer.step()``, ``trainer.evaluate(data.target_val)`` every ``eval_interval``; the score
is the target mIoU at the end of training. With ``trainer.source_warmup`` every run starts
from the same source-only model, trained here once before the runs (cached in
``--cache-dir``); the oracle is the whole pipeline on the labelled target train split, its
warm-up included. A (config, seed) that several sections need is trained once.

Sections and targets (quickstart budget, 2 cores; means over the seeds):

a. Noise floor and gap (source_only, oracle, advent λ_adv 1e-3, minent λ_ent 1e-3,
   advent_minent both 1e-3): the noise floor, the largest std over seeds of source-only,
   advent and minent, is <= 1.0 point; source-only reaches 30–70 % of the oracle; the best
   of the paper's defaults gains >= 5 points over source-only.
b. λ range (minent over the space's λ_ent range, advent over its λ_adv range,
   ``--grid-points`` log-spaced values): best − worst mean >= 5 × the noise floor, with the
   optimum inside each grid, above the better end by more than the standard error of a
   difference of two means (noise floor × √(2 / seeds)); the per-class IoU at the largest λ_ent
   shows how it degrades.
c. μ at that too-large λ_ent: minent with class_prior_mu in ``--mu`` next to μ = 0.
d. Rung correlation: ``--rung-configs`` configurations drawn from the space (Optuna
   RandomSampler), trained to the end on the first seed: Spearman ρ between target mIoU at
   the first ASHA rung and at the end >= 0.6.
e. Source CE after the warm-up: no run's per-iteration source CE reaches ln C, the CE of
   a uniform prediction (the oracle, whose "source" is the target, is shown apart).

Every run is also scored with its BN statistics re-estimated on the target train split
(AdaBN; "target BN" in sections a and b): a gain over source-only that holds there came
from the losses; one that does not came from target batches moving the running statistics
that the official evaluation uses.

The header names the software and CPU the figures come from: a rerun matches them exactly only
with the same (see :func:`environment`). ``lambda_probe.py`` screens one lever against λ_ent in
minutes, with the training and scoring here.

Exit status 1 with ``--check`` when a target is missed. Time on this 2-core machine
(``--jobs 2 --threads 1``): default, 52 runs, 19.5 min (the README's table); ``--quick``
(3-point grids, no μ section), 35 runs, not timed yet.

    python benchmarks/synthetic_gap.py --json gap.json
    python benchmarks/synthetic_gap.py --quick --check
    python benchmarks/synthetic_gap.py --seeds 0 1 2 3 4 --grid-points 7 --mu 0.25 0.5 1.0
    python benchmarks/synthetic_gap.py --set lr=2.5e-3 --iterations 200
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # before the package imports, for the spawned workers too

from advent_sweep.advent.config import TrainConfig  # noqa: E402
from advent_sweep.errors import ConfigError  # noqa: E402
from advent_sweep.sweep.spec import SweepSpec  # noqa: E402
from advent_sweep.sweep.spec_models import FloatParam  # noqa: E402
from advent_sweep.validation import validate  # noqa: E402

QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "advent-sweep-benchmark-cache"

PAPER_DEFAULTS = (
    "advent:lambda_adv_main=1e-3",
    "minent:lambda_ent_main=1e-3",
    "advent_minent:lambda_ent_main=1e-3,lambda_adv_main=1e-3",
)
GAP_RUNS = ("source_only", "oracle", *PAPER_DEFAULTS)
NOISE_RUNS = ("source_only", "advent:lambda_adv_main=1e-3", "minent:lambda_ent_main=1e-3")  # the noise floor's
LAMBDA_METHOD = {"lambda_ent_main": "minent", "lambda_adv_main": "advent"}  # the λ grids: each with its method
SHORT = {"lambda_adv_main": "λadv", "lambda_ent_main": "λent", "lambda_adv_aux": "λadv_aux",
         "lambda_ent_aux": "λent_aux", "class_prior_mu": "μ"}  # fmt: skip
COST = {"advent_minent": 0, "advent": 1, "minent": 2, "source_only": 3}  # slowest first, so the pool ends together

NOISE_FLOOR_MAX = 1.0
RATIO_TARGET = (30.0, 70.0)
GAIN_TARGET = 5.0
SPREAD_FACTOR = 5.0
RHO_TARGET = 0.6


@dataclasses.dataclass(frozen=True)
class Run:
    """A method, its overrides, and whether it is the target oracle (source_only trained on target labels)."""

    method: str
    params: tuple[tuple[str, Any], ...] = ()
    oracle: bool = False

    @property
    def label(self) -> str:
        if self.oracle:
            return "oracle (target labels)"
        extra = " ".join(f"{SHORT.get(k, k)}={_number(v)}" for k, v in self.params)
        return f"{self.method} {extra}".strip()


def _number(value: Any) -> str:
    """1e-3 rather than 0.001: λ values read best as powers of ten."""
    if isinstance(value, float) and value != 0 and not 0.1 <= abs(value) < 1000:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_run(text: str) -> Run:
    """``source_only`` | ``oracle`` | ``METHOD[:key=value,key=value]``."""
    if text == "oracle":
        return Run("source_only", oracle=True)
    method, _, rest = text.partition(":")
    params = []
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{text!r}: expected key=value after ':', got {item!r}")
        params.append((key.strip(), _value(value)))
    return Run(method, tuple(params))


def _value(text: str) -> Any:
    """A number where it reads as one (YAML alone takes ``1e-3`` for a string), else YAML."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return yaml.safe_load(text)


def parse_setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set takes key=value, got {text!r}")
    return key.strip(), _value(value)


def lambda_grid(param: FloatParam, points: int) -> list[float]:
    """``points`` values from low to high inclusive at 2 significant digits: log-spaced, as the space samples λ
    (linear if the range starts at 0)."""
    low, high = param.low, param.high
    if low > 0:
        values = [low * (high / low) ** (i / (points - 1)) for i in range(points)]
    else:
        values = [low + (high - low) * i / (points - 1) for i in range(points)]
    return list(dict.fromkeys(float(f"{v:.1e}") for v in values))


# --- one training run (in a worker process) -------------------------------------------------------

_DATA_CACHE: dict[str, Any] = {}


def _domain_data(data_config: dict[str, Any]) -> Any:
    """The sweep's DomainData, built once per process."""
    from advent_sweep.data import DataConfig, build_domain_data

    key = json.dumps(data_config, sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = build_domain_data(DataConfig.model_validate(data_config))
    return _DATA_CACHE[key]


def oracle_data(data: Any) -> Any:
    """The oracle's domain pair: the labelled target train split in the source's place."""
    from advent_sweep.data.priors import source_class_prior

    return dataclasses.replace(data, source=data.target, class_prior=source_class_prior(data.target, data.num_classes))


def oracle_cache(cache_dir: str) -> str:
    """The oracle's warm-up is trained on target labels too: cached apart, since its settings equal the source one's."""
    return str(Path(cache_dir) / "oracle")


def train_one(config_dict: dict[str, Any], oracle: bool, cache_dir: str) -> dict[str, Any]:
    """Train one config to the end as a sweep trial does: every evaluation and every iteration's source CE."""
    from advent_sweep.advent.run import build_trainer
    from advent_sweep.errors import TrainingDiverged

    config = TrainConfig.model_validate(config_dict)
    data = _domain_data(config.data.model_dump(mode="json"))
    if oracle:
        data, cache_dir = oracle_data(data), oracle_cache(cache_dir)
    started = time.perf_counter()
    trainer = build_trainer(config, data, cache_dir)
    evaluations: list[dict[str, float]] = []
    source_ce: list[float] = []
    loss_sums: dict[str, float] = {}
    train_s, steps, diverged = 0.0, 0, None
    try:
        while trainer.iteration < config.iterations:
            tick = time.perf_counter()
            step_losses = trainer.step()
            train_s += time.perf_counter() - tick
            source_ce.append(step_losses["loss_seg_src_main"])
            for name, value in step_losses.items():
                loss_sums[name] = loss_sums.get(name, 0.0) + value
            steps += 1
            if trainer.iteration % config.eval_interval == 0 or trainer.iteration == config.iterations:
                metrics = trainer.evaluate(data.target_val)  # losses: means since the last evaluation, as a trial reports
                evaluations.append({"iteration": trainer.iteration, **{k: v / steps for k, v in loss_sums.items()}, **metrics})
                loss_sums, steps = {}, 0
    except TrainingDiverged as err:
        diverged = err.iteration
    return {"last": evaluations[-1]["target_miou"] if evaluations and diverged is None else math.nan,
            "last_target_bn": target_bn_miou(trainer, data) if evaluations and diverged is None else math.nan,
            "evaluations": evaluations, "loss_seg_src_main": source_ce, "diverged_at": diverged,
            "wall_s": time.perf_counter() - started, "s_per_it": train_s / max(len(source_ce), 1)}  # fmt: skip


def target_bn_miou(trainer: Any, data: Any) -> float:
    """Target mIoU of the trained weights with every BN layer's statistics re-estimated on target train (AdaBN).

    The trainer evaluates, as the official code does, with running statistics that both domains'
    batches updated. Re-estimating them on target images alone puts every run on the same footing:
    what an adaptive run gains over source-only here came from its losses; what it gains only in
    the reported mIoU came from its target batches moving the running statistics. The trainer's
    statistics are restored afterwards.
    """
    import torch
    from torch.utils.data import DataLoader

    norms = [m for m in trainer.segmenter.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    kept = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: every target batch counts the same
        with torch.no_grad():
            for images, _ in DataLoader(data.target, batch_size=trainer.config.eval_batch_size):
                trainer.segmenter(images.to(trainer.device))  # train mode: statistics of target batches
        return trainer.evaluate(data.target_val)["target_miou"]
    finally:
        for norm, (momentum, mean, var, batches) in zip(norms, kept):
            norm.momentum = momentum
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
            norm.num_batches_tracked.copy_(batches)


# --- the plan: every (config, seed) the sections need, each trained once ---------------------------


@dataclasses.dataclass
class Job:
    label: str
    seed: int
    oracle: bool
    config: dict[str, Any]
    result: dict[str, Any] | None = None


class Plan:
    """The runs of every section, keyed by their full config JSON (and the oracle flag), so a shared one trains once."""

    def __init__(self, trainer: dict[str, Any], data: dict[str, Any], threads: int) -> None:
        self.trainer, self.data, self.threads = trainer, data, threads
        self.jobs: dict[str, Job] = {}

    def add(self, values: dict[str, Any], oracle: bool, label: str) -> str:
        """Validate a config (before any training starts) and register it; its key."""
        config = validate(TrainConfig, {**values, "threads": self.threads, "data": self.data}, f"run {label}")
        dumped = config.model_dump(mode="json")
        key = json.dumps({"oracle": oracle, "config": dumped}, sort_keys=True)
        self.jobs.setdefault(key, Job(label, config.seed, oracle, dumped))
        return key

    def run(self, run: Run, seeds: list[int]) -> list[str]:
        """The keys of ``run`` on each training seed."""
        values = {**self.trainer, "method": run.method, **dict(run.params)}
        return [self.add({**values, "seed": seed}, run.oracle, run.label) for seed in seeds]

    def result(self, key: str) -> dict[str, Any]:
        return self.jobs[key].result  # type: ignore[return-value]

    def last(self, keys: list[str], field: str = "last") -> list[float]:
        """Each key's end target mIoU (``field="last_target_bn"``: with target BN statistics)."""
        return [self.result(k)[field] for k in keys]


def train_jobs(jobs: list[Job], domain: Any, cache_dir: str, processes: int) -> tuple[dict[str, dict[str, Any]], float]:
    """Train every job, ``processes`` at a time, each result into its job; the source warm-ups and their wall time.

    Each distinct warm-up (the oracle's on target labels apart) is trained here first, once, so that no two
    workers train the same one; the workers then read it from ``cache_dir``.
    """
    from advent_sweep.advent.warmup import load_or_train_warmup, warmup_path

    started = time.perf_counter()
    warmups: dict[str, dict[str, Any]] = {}  # one per distinct warm-up: one unless the space searches a setting it inherits
    for job in jobs:
        config = TrainConfig.model_validate(job.config)
        if config.source_warmup and job.oracle:  # not a source CE curve: kept out of the records
            load_or_train_warmup(config, oracle_data(domain), oracle_cache(cache_dir))
        elif config.source_warmup and warmup_path(config, cache_dir) not in warmups:
            record = load_or_train_warmup(config, domain, cache_dir)
            record.pop("segmenter")
            warmups[warmup_path(config, cache_dir)] = record
            done = "read from the cache" if record["reused"] else f"trained in {record['seconds']:.0f} s"
            print(f"source warm-up ({config.source_warmup}): {done}; {warmup_path(config, cache_dir)}", flush=True)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = {pool.submit(train_one, job.config, job.oracle, cache_dir): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            job.result = result = future.result()
            evals = " ".join(_fmt(e["target_miou"]) for e in result["evaluations"])
            print(f"  [{time.perf_counter() - started:6.0f} s] {job.label} seed {job.seed}: last {_fmt(result['last'])} "
                  f"(target BN {_fmt(result['last_target_bn'])}; {result['s_per_it']:.3f} s/it, {result['wall_s']:.0f} s; "
                  f"evals {evals})" + (f" DIVERGED at {result['diverged_at']}" if result["diverged_at"] is not None else ""),
                  flush=True)  # fmt: skip
    return warmups, time.perf_counter() - started


def environment() -> str:
    """What the figures depend on besides the code: a rerun matches them exactly only with the same software and CPU
    type (torch picks its CPU kernels, and so the float summation order, by the CPU's instruction set)."""
    import platform

    import numpy
    import scipy
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")] if cpuinfo.exists() else []
    cpu = models[0] if models else platform.machine()
    return (f"torch {torch.__version__} (CPU kernels: {torch.backends.cpu.get_cpu_capability()}), numpy {numpy.__version__}, "
            f"scipy {scipy.__version__}, Python {platform.python_version()}, {cpu}")  # fmt: skip


# --- statistics and printing ----------------------------------------------------------------------


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std over seeds; NaN when a run diverged (or, for the std, with one seed)."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def class_iou(plan: Plan, keys: list[str], class_names: tuple[str, ...]) -> list[float]:
    """Per-class IoU at the end of training, the mean over seeds (a diverged seed left out)."""
    finals = [plan.result(k)["evaluations"][-1] for k in keys if not math.isnan(plan.result(k)["last"])]
    values = [[f[f"iou.{name}"] for f in finals if not math.isnan(f[f"iou.{name}"])] for name in class_names]
    return [statistics.fmean(v) if v else math.nan for v in values]


def interior_margin(means: list[float]) -> tuple[int, float]:
    """The index of the best mean along a λ grid (NaN, a diverged run, never best) and its margin over the better
    end of the grid: a tie with an end is no interior optimum."""
    top = max(range(len(means)), key=lambda i: -math.inf if math.isnan(means[i]) else means[i])
    return top, means[top] - max(means[0], means[-1])


def percent(part: float, whole: float) -> float:
    """``part`` as % of ``whole``; NaN for a whole of 0 (an oracle that learnt nothing)."""
    return 100 * part / whole if whole else math.nan


def _fmt(value: float, sign: bool = False) -> str:
    return "nan" if math.isnan(value) else (f"{value:+.1f}" if sign else f"{value:.1f}")


def _pm(mean: float, std: float) -> str:
    return f"{_fmt(mean)} ± {_fmt(std)}"


def print_table(title: str, note: str, rows: list[list[str]], text_columns: int = 1) -> None:
    """A titled table: the first ``text_columns`` columns left-aligned, the numbers right-aligned."""
    print(f"\n{title}\n{note}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(w) if i < text_columns else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        print("  " + "  ".join(cells))


class Verdicts:
    """The targets' outcomes, printed under their section and collected for --check and --json."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    def add(self, name: str, ok: bool, text: str) -> bool:
        self.outcomes[name] = {"met": ok, "text": text}
        print(f"  {name}: {text}: {'MET' if ok else 'MISSED'}")
        return ok


# --- the sections ------------------------------------------------------------------------------------


def gap_section(plan: Plan, keys: dict[Run, list[str]], seeds: list[int], verdicts: Verdicts) -> dict[str, Any]:
    """a. Per-seed end mIoU of source-only, the oracle and the paper's defaults; noise floor, ratio and gain."""
    base = parse_run("source_only")
    base_mean = mean_std(plan.last(keys[base]))[0]
    oracle_mean = mean_std(plan.last(keys[parse_run("oracle")]))[0]
    base_bn = mean_std(plan.last(keys[base], "last_target_bn"))[0]
    rows = [["run", *(f"seed {s}" for s in seeds), "mean", "std", "Δ vs source-only", "% oracle", "target BN", "Δ", "s/it"]]
    summary: dict[str, Any] = {"runs": {}}
    for run, run_keys in keys.items():
        last = plan.last(run_keys)
        mean, std = mean_std(last)
        last_bn = plan.last(run_keys, "last_target_bn")
        bn_mean = mean_std(last_bn)[0]
        s_it = statistics.fmean(plan.result(k)["s_per_it"] for k in run_keys)
        compared = run not in (base, parse_run("oracle"))
        rows.append([run.label, *map(_fmt, last), _fmt(mean), _fmt(std),
                     _fmt(mean - base_mean, sign=True) if compared else "", _fmt(percent(mean, oracle_mean)) + "%",
                     _fmt(bn_mean), _fmt(bn_mean - base_bn, sign=True) if compared else "", f"{s_it:.3f}"])  # fmt: skip
        summary["runs"][run.label] = {"last": last, "mean": mean, "std": std, "gain": mean - base_mean,
                                      "pct_oracle": percent(mean, oracle_mean), "s_per_it": s_it,
                                      "last_target_bn": last_bn, "target_bn_mean": bn_mean,
                                      "target_bn_gain": bn_mean - base_bn}  # fmt: skip
    print_table("a. Noise floor and gap", "target mIoU at the end of training, per training seed (same data); "
                "target BN: the mean with BN statistics re-estimated on target train, and its Δ vs source-only there "
                "(the gain of the losses themselves)", rows)  # fmt: skip

    stds = {r: summary["runs"][parse_run(r).label]["std"] for r in NOISE_RUNS}
    floor = math.nan if any(math.isnan(s) for s in stds.values()) else max(stds.values())
    summary["noise_floor"] = floor
    verdicts.add("noise floor", floor <= NOISE_FLOOR_MAX,
                 f"max std of {', '.join(f'{parse_run(r).label} {_fmt(s)}' for r, s in stds.items())} = {_fmt(floor)} "
                 f"(target <= {NOISE_FLOOR_MAX})")  # fmt: skip
    ratio = percent(base_mean, oracle_mean)
    verdicts.add("gap: source-only / oracle", RATIO_TARGET[0] <= ratio <= RATIO_TARGET[1],
                 f"{_fmt(ratio)}% (target {RATIO_TARGET[0]:.0f}–{RATIO_TARGET[1]:.0f}%)")  # fmt: skip
    gains = {parse_run(r).label: summary["runs"][parse_run(r).label]["gain"] for r in PAPER_DEFAULTS}
    best = max(gains, key=lambda label: -math.inf if math.isnan(gains[label]) else gains[label])
    verdicts.add("gain of the paper's defaults", gains[best] >= GAIN_TARGET,
                 f"best {best}: {_fmt(gains[best], sign=True)} points (target >= +{GAIN_TARGET:.0f})")
    summary.update(source_only_pct_oracle=ratio, best_default=best, best_default_gain=gains[best])
    return summary


def lambda_section(plan: Plan, grids: dict[str, list[tuple[float, Run, list[str]]]], base_keys: list[str],
                   seeds: list[int], floor: float, class_names: tuple[str, ...], verdicts: Verdicts) -> dict[str, Any]:
    """b. Mean ± std over seeds along each λ grid; spread against the noise floor, interior optimum, per-class IoU at the top λ_ent."""
    base_mean = mean_std(plan.last(base_keys))[0]
    base_bn = mean_std(plan.last(base_keys, "last_target_bn"))[0]
    rows = [["method λ", *(f"seed {s}" for s in seeds), "mean ± std", "Δ vs source-only", "target BN", "Δ"]]
    summary: dict[str, Any] = {"grids": {}}
    points: list[tuple[float, str]] = []  # (mean, label) of every grid point
    for param, grid in grids.items():
        means, bn_means = [], []
        for value, run, keys in grid:
            mean, std = mean_std(plan.last(keys))
            bn_means.append(mean_std(plan.last(keys, "last_target_bn"))[0])
            means.append(mean)
            points.append((mean, run.label))
            rows.append([run.label, *map(_fmt, plan.last(keys)), _pm(mean, std), _fmt(mean - base_mean, sign=True),
                         _fmt(bn_means[-1]), _fmt(bn_means[-1] - base_bn, sign=True)])  # fmt: skip
        summary["grids"][param] = {"values": [v for v, _, _ in grid], "means": means,
                                   "stds": [mean_std(plan.last(k))[1] for _, _, k in grid], "target_bn_means": bn_means}  # fmt: skip
    print_table("b. λ range", f"target mIoU at the end per seed; {len(grids)} grids over the space's λ ranges, "
                f"source-only {_fmt(base_mean)} ({_fmt(base_bn)} with target BN statistics)", rows)  # fmt: skip

    finite = [p for p in points if not math.isnan(p[0])]
    if finite:
        (best, best_label), (worst, worst_label) = max(finite), min(finite)
        spread = best - worst
        times = spread / floor if floor > 0 else math.inf if floor == 0 else math.nan
        verdicts.add("λ matters", spread >= SPREAD_FACTOR * floor,
                     f"best {best_label} {_fmt(best)} − worst {worst_label} {_fmt(worst)} = {_fmt(spread)} points = "
                     f"{times:.1f}× the noise floor {_fmt(floor)} (target >= {SPREAD_FACTOR:.0f}×)")  # fmt: skip
        summary.update(best=best_label, worst=worst_label, spread=spread)
    for param, grid in grids.items():
        means = summary["grids"][param]["means"]
        top, margin = interior_margin(means)
        needed = floor * math.sqrt(2 / len(seeds))  # the standard error of a difference of two means over the seeds
        verdicts.add(f"interior optimum of {param}", 0 < top < len(means) - 1 and margin > needed,
                     f"argmax {grid[top][1].label} ({top + 1} of {len(means)}), {_fmt(margin, sign=True)} over the better "
                     f"end (target > noise floor × √(2 / seeds) = {needed:.1f})")  # fmt: skip
        summary["grids"][param]["argmax"] = grid[top][0]

    if "lambda_ent_main" in grids:
        _, run, keys = grids["lambda_ent_main"][-1]
        base_iou, top_iou = class_iou(plan, base_keys, class_names), class_iou(plan, keys, class_names)
        rows = [["class", "source_only", run.label, "Δ"]]
        rows += [[name, _fmt(b), _fmt(t), _fmt(t - b, sign=True)] for name, b, t in zip(class_names, base_iou, top_iou)]
        print_table("per-class target IoU at the largest λ_ent (mean over seeds; the metrics give no prediction share)",
                    "too large a λ_ent shows as classes falling to 0 while frequent ones hold", rows)  # fmt: skip
        summary["class_iou"] = {"source_only": dict(zip(class_names, base_iou)), run.label: dict(zip(class_names, top_iou))}
    return summary


def mu_section(plan: Plan, lambda_ent: float, runs: dict[float, list[str]], base_keys: list[str], seeds: list[int],
               class_names: tuple[str, ...]) -> dict[str, Any]:
    """c. What the class-ratio prior μ does at the too-large λ_ent (``runs`` by μ, μ = 0 from the λ range)."""
    zero = mean_std(plan.last(runs[0.0]))[0]
    rows = [["minent λent=" + _number(lambda_ent), *(f"seed {s}" for s in seeds), "mean ± std", "Δ vs μ = 0"]]
    summary: dict[str, Any] = {"lambda_ent_main": lambda_ent, "runs": {}}
    for mu, keys in runs.items():
        mean, std = mean_std(plan.last(keys))
        rows.append([f"μ={_number(mu)}", *map(_fmt, plan.last(keys)), _pm(mean, std), _fmt(mean - zero, sign=True)])
        summary["runs"][mu] = {"last": plan.last(keys), "mean": mean, "std": std,
                               "class_iou": dict(zip(class_names, class_iou(plan, keys, class_names)))}  # fmt: skip
    print_table("c. μ at too-large λ_ent", "target mIoU at the end per seed", rows)
    ious = [class_iou(plan, base_keys, class_names), *(class_iou(plan, keys, class_names) for keys in runs.values())]
    rows = [["class", "source_only", *(f"μ={_number(mu)}" for mu in runs)]]
    rows += [[name, *(_fmt(iou[c]) for iou in ious)] for c, name in enumerate(class_names)]
    print_table("per-class target IoU (mean over seeds)", f"minent at λent={_number(lambda_ent)}", rows)
    return summary


def rung_section(plan: Plan, configs: list[tuple[dict[str, Any], str]], rung: int, verdicts: Verdicts) -> dict[str, Any]:
    """d. Spearman ρ between target mIoU at the first ASHA rung and at the end, over sampled configurations."""
    from scipy.stats import spearmanr

    def miou_at(key: str, iteration: int) -> float:
        """Target mIoU of the first evaluation at or after ``iteration`` (NaN if the run never got there)."""
        return next((e["target_miou"] for e in plan.result(key)["evaluations"] if e["iteration"] >= iteration), math.nan)

    rows = [["#", "params", f"at rung (it {rung})", "end"]]
    at_rung, at_end, listed = [], [], []
    for i, (params, key) in enumerate(configs, 1):
        result = plan.result(key)
        early = miou_at(key, rung)
        at_rung.append(early)
        at_end.append(result["last"])
        text = " ".join(f"{SHORT.get(k, k)}={_number(v)}" for k, v in params.items())
        rows.append([str(i), text, _fmt(early), _fmt(result["last"])])
        listed.append({"params": params, "rung": early, "end": result["last"]})
    print_table("d. Rung correlation", f"{len(configs)} configurations (Optuna RandomSampler), FIFO to the end, "
                f"seed {plan.jobs[configs[0][1]].seed}", rows, text_columns=2)  # fmt: skip

    def rho(early: list[float]) -> tuple[float, int]:
        pairs = [(a, b) for a, b in zip(early, at_end) if not (math.isnan(a) or math.isnan(b))]
        constant = len(pairs) < 3 or any(len(set(values)) == 1 for values in zip(*pairs))
        return (math.nan if constant else float(spearmanr(*zip(*pairs)).statistic)), len(pairs)

    by_iteration: dict[int, float] = {}  # ρ(evaluation at it, end) for every evaluation before the end: where a rung could go
    for iteration in [e["iteration"] for e in plan.result(configs[0][1])["evaluations"][:-1]]:
        by_iteration[iteration] = rho([miou_at(key, iteration) for _, key in configs])[0]
    print("  Spearman ρ(evaluation at iteration i, end): " + ", ".join(f"i={i}: {r:.2f}" for i, r in by_iteration.items()))
    value, count = rho(at_rung)
    verdicts.add("rungs carry signal", value >= RHO_TARGET,
                 f"Spearman ρ(rung, end) = {value:.2f} over {count} configurations"
                 + (" (undefined: fewer than 3, or one side constant)" if math.isnan(value) else "") + f" (target >= {RHO_TARGET})")
    return {"rung": rung, "configs": listed, "spearman": value, "spearman_by_iteration": by_iteration}


def ce_section(plan: Plan, warmups: list[dict[str, Any]], num_classes: int, verdicts: Verdicts) -> dict[str, Any]:
    """e. The source CE: the warm-up's curve, then every run's per-iteration CE against ln C."""
    start = math.log(num_classes)
    rows = [["phase", "runs", "first-iteration CE", "max CE", "at (run, seed, iteration)", "last-10 mean"]]
    for warm in warmups:
        ce = warm["loss_seg_src_main"]
        rows.append([f"source warm-up ({len(ce)} it, {'read from the cache' if warm['reused'] else 'trained here'})",
                     "1", f"{ce[0]:.3f}", f"{max(ce):.3f}", f"it {ce.index(max(ce)) + 1}", f"{statistics.fmean(ce[-10:]):.3f}"])  # fmt: skip
    groups: dict[str, list[Job]] = {}
    for job in plan.jobs.values():
        groups.setdefault("oracle (CE on target labels)" if job.oracle else job.config["method"], []).append(job)
    summary: dict[str, Any] = {"ln_num_classes": start, "groups": {}}
    for name, jobs in sorted(groups.items(), key=lambda item: item[0].startswith("oracle")):
        curves = [(j, j.result["loss_seg_src_main"]) for j in jobs if j.result["loss_seg_src_main"]]
        peak, where = max((max(c), (j.label, j.seed, c.index(max(c)) + 1)) for j, c in curves)
        rows.append([f"runs: {name}", str(len(jobs)), f"{statistics.fmean(c[0] for _, c in curves):.3f}",
                     f"{peak:.3f}", f"{where[0]}, seed {where[1]}, it {where[2]}",
                     f"{statistics.fmean(statistics.fmean(c[-10:]) for _, c in curves):.3f}"])  # fmt: skip
        summary["groups"][name] = {"max": peak, "at": where}
    print_table("e. Source CE after the warm-up",
                f"per-iteration loss_seg_src_main; starting value ln C = ln {num_classes} = {start:.3f} (uniform prediction)"
                + ("" if warmups else "; no trainer.source_warmup: runs start from scratch"), rows)  # fmt: skip
    source_peaks = [g["max"] for name, g in summary["groups"].items() if not name.startswith("oracle")]
    peak = max(source_peaks)
    summary["max_after_warmup"] = peak
    verdicts.add("no loss explosion", peak < start,
                 f"max source CE of the runs after the warm-up {peak:.3f} (target < ln C = {start:.3f})")
    return summary


# --- main ---------------------------------------------------------------------------------------------


def sample_configs(spec: SweepSpec, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` distinct parameter sets drawn from the spec's space as a sweep's searcher would (RandomSampler).

    A repeat (source_only has no λ, so it is drawn again and again) would be one configuration
    counted twice in the rank correlation: it is drawn past instead.
    """
    import optuna

    from advent_sweep.sweep.searchers import DefineByRun

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space, drawn = DefineByRun(spec), []
    for _ in range(100 * count):
        trial = study.ask()
        space(trial)
        if trial.params not in drawn:
            drawn.append(dict(trial.params))
        if len(drawn) == count:
            return drawn
    raise ConfigError(f"--rung-configs {count}: the space holds only {len(drawn)} distinct configurations")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=QUICKSTART, help="sweep file whose data, trainer, space and scheduler to use (default: quickstart)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds, on the spec's data seed (default 0 1 2)")
    parser.add_argument("--grid-points", type=int, default=None, help="λ values per λ grid, log-spaced over the space's range (default 5; --quick: 3)")
    parser.add_argument("--mu", type=float, nargs="+", default=None, help="class_prior_mu values at the largest λ_ent (default 0.5 1.0; --quick: none)")
    parser.add_argument("--rung-configs", type=int, default=8, help="configurations sampled for the rung correlation (default 8)")
    parser.add_argument("--rung-seed", type=int, default=0, help="seed of their RandomSampler (default 0)")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (default: the spec's; sets the poly horizon too)")
    parser.add_argument("--eval-interval", type=int, default=None, help="evaluate every N iterations (default: the spec's)")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="override a trainer setting for every run, e.g. lr=5e-3 batch_size_source=8 (repeatable)")
    parser.add_argument("--quick", action="store_true", help="the cheapest run that prints every section: 3-point λ grids, no μ runs unless --mu")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help=f"where the source warm-up is cached (default {DEFAULT_CACHE})")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, each in its own process (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1, as a 1-CPU sweep trial)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number, every evaluation included, to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    grid_points = args.grid_points or (3 if args.quick else 5)
    mus = args.mu if args.mu is not None else ([] if args.quick else [0.5, 1.0])
    if args.rung_configs < 3:
        parser.error("--rung-configs must be at least 3 for a rank correlation (the target asks for 8)")
    if grid_points < 3:
        parser.error("--grid-points must be at least 3 (an interior optimum needs an inside)")
    if len(args.seeds) < 2 or len(set(args.seeds)) < len(args.seeds):
        parser.error("--seeds needs at least 2 distinct training seeds for a std (the targets ask for 3)")

    try:
        spec = SweepSpec.from_yaml(args.spec)
        trainer = {**spec.trainer, **dict(args.settings)}
        if args.iterations is not None:
            trainer["iterations"] = args.iterations
            trainer["poly_horizon"] = max(args.iterations, int(dict(args.settings).get("poly_horizon", 0)))
        if args.eval_interval is not None:
            trainer["eval_interval"] = args.eval_interval
        data = spec.data.model_dump(mode="json")
        plan = Plan(trainer, data, args.threads)

        gap_keys = {parse_run(r): plan.run(parse_run(r), args.seeds) for r in GAP_RUNS}
        grids = {}
        for param, method in LAMBDA_METHOD.items():
            if isinstance(spec.space.get(param), FloatParam):
                runs = [Run(method, ((param, v),)) for v in lambda_grid(spec.space[param], grid_points)]
                grids[param] = [(run.params[0][1], run, plan.run(run, args.seeds)) for run in runs]
        mu_runs: dict[float, list[str]] = {}
        if mus and "lambda_ent_main" in grids:
            top_value, _, top_keys = grids["lambda_ent_main"][-1]
            mu_runs = {0.0: top_keys} | {
                mu: plan.run(Run("minent", (("lambda_ent_main", top_value), ("class_prior_mu", mu))), args.seeds) for mu in mus
            }
        run_spec = spec.model_copy(update={"trainer": trainer})  # the trials' configs with the overrides
        rung_configs = []
        for i, params in enumerate(sample_configs(spec, args.rung_configs, args.rung_seed), 1):
            values = {**run_spec.train_config(params).model_dump(mode="json"), "seed": args.seeds[0]}
            rung_configs.append((params, plan.add(values, False, f"rung config {i}")))
        base = validate(TrainConfig, {**trainer, "threads": args.threads, "data": data}, "trainer")
        rung = (spec.scheduler.rungs() or [min(base.eval_interval, base.iterations)])[0]
        if rung > base.iterations:
            raise ConfigError(f"the first ASHA rung ({rung}) is past the runs' {base.iterations} iterations")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    env = environment()
    jobs = sorted(plan.jobs.values(), key=lambda job: COST.get(job.config["method"], 0))
    shown = {k: trainer[k] for k in ("backbone", "lr", "iterations", "eval_interval", "batch_size_source", "batch_size_target", "source_warmup") if k in trainer}
    synthetic = data["synthetic"]
    print(f"synthetic gap: {args.spec.name} trainer {shown}, data {synthetic['size']} {synthetic['num_train']} train / "
          f"{synthetic['num_val']} val (data seed {synthetic['seed']}), training seeds {args.seeds}; "
          f"{len(jobs)} runs on {args.jobs} processes × {args.threads} thread(s)\n{env}", flush=True)  # fmt: skip
    domain = _domain_data(data)
    warmups, total = train_jobs(jobs, domain, args.cache_dir, args.jobs)

    verdicts = Verdicts()
    base_keys = gap_keys[parse_run("source_only")]
    sections: dict[str, Any] = {"gap": gap_section(plan, gap_keys, args.seeds, verdicts)}
    floor = sections["gap"]["noise_floor"]
    sections["lambda"] = lambda_section(plan, grids, base_keys, args.seeds, floor, domain.class_names, verdicts)
    if mu_runs:
        sections["mu"] = mu_section(plan, grids["lambda_ent_main"][-1][0], mu_runs, base_keys, args.seeds, domain.class_names)
    else:
        print("\nc. μ at too-large λ_ent\n  not run (" + ("--quick; pass --mu to run it)" if args.quick else "the space has no float lambda_ent_main)"))
    sections["rungs"] = rung_section(plan, rung_configs, rung, verdicts)
    sections["source_ce"] = ce_section(plan, list(warmups.values()), domain.num_classes, verdicts)

    all_met = all(v["met"] for v in verdicts.outcomes.values())
    missed = [name for name, v in verdicts.outcomes.items() if not v["met"]]
    print(f"\ntargets: {'all met' if all_met else 'missed: ' + ', '.join(missed)}")
    print(f"benchmark wall time: {total:.0f} s ({total / 60:.1f} min), {len(jobs)} runs")
    if args.json:
        summary = {"spec": str(args.spec), "trainer": base.model_dump(mode="json", exclude={"data"}), "data": data, "seeds": args.seeds, "cache_dir": args.cache_dir, "environment": env,
                   "sections": sections, "verdicts": verdicts.outcomes, "all_met": all_met, "wall_s": total,
                   "warmups": list(warmups.values()),
                   "runs": [dataclasses.asdict(job) for job in jobs]}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=1, default=str))
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
