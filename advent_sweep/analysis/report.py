"""One folder that tells what a sweep found: CSV and Markdown tables, PNG plots and report.html.

report.html refers only to files beside it, so the folder can be copied, zipped or opened
from disk in a browser with no server.
"""

from __future__ import annotations

import html
import posixpath
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from advent_sweep.analysis.ablation import Budget, equal_budget, marginal_effects, method_table, paper_style
from advent_sweep.analysis.best import RULES, select_best
from advent_sweep.analysis.confirmed import read_confirm, summarise_confirm
from advent_sweep.analysis.cost import anytime_curve, hours_to_best, method_costs, random_search_curve, resource_unit
from advent_sweep.analysis.importance import parameter_importance
from advent_sweep.analysis.label_free import label_free_selection
from advent_sweep.analysis.per_class import OURS, per_class_table
from advent_sweep.analysis.qualitative import qualitative_section
from advent_sweep.analysis.markdown import markdown, number
from advent_sweep.analysis.plots import anytime_plot, importance_bars, learning_curves, metric_vs_parameters, validator_scatter
from advent_sweep.analysis.results import KEY, SweepResults, load_results, varying_parameters
from advent_sweep.errors import ResultsError

TRIAL_SUMMARY = ["status", "config.method", "config.backbone", "best_value", "best_iteration", "last_value", "last_iteration", "min_entropy_value",
                 "min_entropy_iteration", "iterations", "wall_time_s"]
STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
         "table.qualitative td,table.qualitative th{text-align:center}"
         "img{max-width:100%}.note{color:#555}")


def analyze(path: str | Path, output_dir: str | Path | None = None, metric: str | None = None, mode: str | None = None,
            rule: str = "best", min_iterations: int = 0, budget: Budget = "common", progress: bool = True) -> Path:
    """Write tables, plots and report.html for the sweep(s) at ``path`` (a folder or a URI) into ``output_dir``.

    The default is ``<path>/analysis``, or for a URI the local ``./<sweep name>-analysis``
    (``<last path component>-analysis`` for several sweeps): report.html is opened in a local
    browser. Methods, marginal effects and importances compare trials at an equal ``budget`` (see
    ``ablation.equal_budget``); a finished ``advent-sweep confirm`` adds its runs over fresh seeds.
    Returns the path of report.html.
    """
    results = load_results(path, progress=progress)
    metric, mode = results.resolve(metric, mode)
    ranked = select_best(results, metric, mode, rule, min_iterations)
    out = Path(output_dir) if output_dir is not None else _default_output(path, results)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(metric=metric, mode=mode, rule=rule, min_iterations=min_iterations)
    at_budget = dict(options, budget=budget)

    body = [f"<h1>advent-sweep analysis: {html.escape(', '.join(results.sweeps))}</h1>", _summary(results, ranked, options)]
    body += ["<h2>Ranking</h2>", _table(out, "ranking", _ranking(ranked, metric))]
    body += ["<h2>Selection rules compared</h2>", _table(out, "selection_rules", _rules(results, options))]
    if set(TRIAL_SUMMARY) <= set(results.trials.columns):
        body += ["<h3>Per trial (trials.parquet: best, last, label-free min-entropy)</h3>",
                 _table(out, "trials", results.trials[[*KEY, *TRIAL_SUMMARY]].rename(columns=lambda c: c.removeprefix("config.")))]
    body += ["<h2>Label-free selection</h2>", _label_free(results, out)]
    body += ["<h2>Methods</h2>", _note(f"Compared at an equal budget: {equal_budget(results, **at_budget).note}; "
                                       "gain: the mean over source-only of the same backbone."),
             _table(out, "methods", paper_style(method_table(results, **at_budget)))]
    body += ["<h2>Per-class IoU (the paper's table)</h2>", _per_class(results, out, at_budget)]
    body += ["<h2>What the models predict</h2>", qualitative_section(path, results, out)]
    body += _confirmed(path, out, metric)
    body.append("<h2>Marginal effects</h2>")
    for marginal in marginal_effects(results, **at_budget):
        body.append(f"<h3>{html.escape(marginal.name)}</h3>{_note(marginal.note)}")
        if marginal.table is not None:
            body.append(_table(out, f"marginal_{marginal.key}", marginal.table))
    body += ["<h2>Parameter importance</h2>", _importance(results, out, at_budget)]
    body += ["<h2>Learning curves</h2>", _image(learning_curves(results, metric, out / "learning_curves.png"))]
    body += ["<h2>Cost</h2>", *_cost(results, out, metric, mode)]
    body += ["<h2>Metric against each parameter</h2>", *map(_image, metric_vs_parameters(ranked, metric, out))]
    report = out / "report.html"
    report.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>advent-sweep analysis</title>"
                      f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    return report


def _default_output(path: str | Path, results: SweepResults) -> Path:
    if "://" not in str(path):
        return Path(path) / "analysis"
    sweeps = [*results.sweeps, *results.skipped]
    uri = urlsplit(str(path))
    name = sweeps[0] if len(sweeps) == 1 else posixpath.basename(uri.path.rstrip("/")) or uri.netloc
    return Path(f"{name}-analysis").absolute()


def _summary(results: SweepResults, ranked: pd.DataFrame, options: dict) -> str:
    rule = options["rule"]
    at = f"; only reports at iteration ≥ {options['min_iterations']}" if options["min_iterations"] else ""
    counts = ", ".join(f"{n} {status}" for status, n in results.trials["status"].value_counts().items())
    lines = [
        f"Metric: {options['metric']} ({options['mode']}). Selection rule: {rule} — {RULES[rule]}{at}.",
        f"{len(results.trials)} trials ({counts}), {len(results.reports)} reports; {len(ranked)} trials qualify under the rule.",
        *(f"Sweep {name} left out: {reason}." for name, reason in results.skipped.items()),
    ]
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


def _ranking(ranked: pd.DataFrame, metric: str) -> pd.DataFrame:
    columns = [*KEY, "status", "iteration", metric, "config.method", "config.backbone", *varying_parameters(ranked)]
    return ranked[list(dict.fromkeys(columns))].rename(columns=lambda c: c.removeprefix("config."))


def _rules(results: SweepResults, options: dict) -> pd.DataFrame:
    """The winning trial under each rule, to show how much selection on target labels matters."""
    rows = []
    for rule, meaning in RULES.items():
        try:
            top = select_best(results, options["metric"], options["mode"], rule, options["min_iterations"]).iloc[0]
        except ResultsError as error:
            rows.append({"rule": rule, "meaning": f"{meaning} ({error})"})
            continue
        rows.append({"rule": rule, "meaning": meaning, "sweep": top["sweep"], "trial_id": top["trial_id"],
                     "iteration": top["iteration"], options["metric"]: top[options["metric"]]})
    return pd.DataFrame(rows)


def _label_free(results: SweepResults, out: Path) -> str:
    """Each validator against target mIoU: how well it would pick snapshots without target labels."""
    selection = label_free_selection(results)
    if selection.table.empty:
        return _note(f"No label-free validator has values in these reports ({selection.note}).")
    intro = ("Target labels are missing in unsupervised domain adaptation, so snapshots must be chosen by a label-free validator. "
             f"Each is ranked against target mIoU over all {selection.reports} reports: Spearman and weighted Spearman "
             "(Musgrave et al., 2022, each report weighted by max(r_v, r_a)², so the best reports count most; higher is better, 1 is "
             "the same order), and the regret of its pick in mIoU points (the best target mIoU minus that of the report it ranks best), "
             "over all reports and within each trial (0 is the oracle's pick).")
    images = [_image(validator_scatter(results, name, out / f"validator_{name}.png"), inline=True) for name in selection.table["validator"]]
    table = selection.table
    _table(out, "label_free", table)  # the files keep every column; the page leaves out what is wide or constant
    shown = table.drop(columns=["reference", *(["picked_sweep"] if len(results.sweeps) == 1 else [])])
    references = "; ".join(f"{row.validator}: {row.reference}" for row in table.itertuples())
    return (f"<p>{html.escape(intro)}</p>" + shown.to_html(index=False, na_rep="–", float_format=number, border=0)
            + _note(f"References: {references}.")
            + "<h3>Per trial (regret of each validator's pick)</h3>" + _table(out, "label_free_trials", selection.per_trial)
            + (_note(selection.note) if selection.note else "") + f"<div>{''.join(images)}</div>")


def _per_class(results: SweepResults, out: Path, options: dict) -> str:
    """Source-only and each method's best trial, one column per class, mIoU last; the published rows with their source."""
    table = per_class_table(results, **options)
    table.to_parquet(out / "per_class.parquet", index=False)
    sources = sorted(set(table["source"]) - {OURS})
    shown = table.drop(columns=["source", *(["sweep"] if len(results.sweeps) == 1 else [])])
    _table(out, "per_class", table)  # the files keep every column, the source of each row included
    return (_note("Each method's best trial at the equal budget of the methods table, the report the rule picks; IoU in %. "
                  "Our AdvEnt+MinEnt trains both losses jointly; the paper's is an ensemble of two models "
                  "(advent-sweep evaluate A B scores one).")
            + shown.to_html(index=False, na_rep="–", float_format=number, border=0)
            + (_note("Published rows: " + "; ".join(sources) + ".") if sources else ""))


def _confirmed(path: str | Path, out: Path, metric: str) -> list[str]:
    """The confirm run's tables, when ``advent-sweep confirm`` has run on this sweep: configurations over fresh seeds."""
    try:
        plan, summary = read_confirm(path)
        confirmed = load_results(f"{str(path).rstrip('/')}/confirm")
    except ResultsError:
        return []
    rules = summarise_confirm(confirmed, plan).rules
    return [f"<h3>Confirmed on fresh seeds (advent-sweep confirm: top {len(plan['candidates'])}, seeds {plan['seeds']})</h3>",
            _note("Each configuration retrained on seeds the sweep never used, at the full budget; optimism: what the "
                  "sweep reported minus the confirmed mean (the winner's curse)."),
            _table(out, "confirmed", summary),
            _table(out, "confirmed_methods", paper_style(method_table(confirmed, metric, budget="completed"))),
            "<h3>Selection rules on the confirm runs</h3>", _table(out, "confirmed_rules", rules)]


def _cost(results: SweepResults, out: Path, metric: str, mode: str) -> list[str]:
    """Resource-hours per method and in total, the hours until the eventual best, and the anytime plot."""
    unit = resource_unit(results.trials)
    curve = anytime_curve(results, metric, mode)
    found = hours_to_best(curve, mode)
    random_search = {sweep: random_search_curve(results, metric, mode, sweep) for sweep in results.sweeps}
    missing = [sweep for sweep, expected in random_search.items() if expected is None]
    notes = [f"Sweep {row.sweep}: its best trial {row.best_trial} first reported {metric} {row.best_value:.4g} (iteration "
             f"{row.at_iteration}) after {row.resource_hours_until_then:.3g} of its {row.resource_hours_total:.3g} "
             f"{unit.upper()}-hours ({row.share_of_total:.0%})." for row in found.itertuples()]
    if missing:
        notes.append(f"Random search's expected curve needs every trial trained to the end; not so in: {', '.join(missing)}.")
    return [_note("Resource-hours: each trial's wall time × the CPUs and GPUs it held."),
            _table(out, "cost_by_method", method_costs(results)), *map(_note, notes),
            _image(anytime_plot(curve, {k: v for k, v in random_search.items() if v is not None}, metric, unit,
                                out / "anytime.png"))]


def _importance(results: SweepResults, out: Path, options: dict) -> str:
    try:
        importances = parameter_importance(results, **options)
    except (ResultsError, ImportError) as error:
        return _note(f"not computed: {error}")
    table = importances.values.rename("importance").rename_axis("parameter").reset_index()
    left_out = f"; left out as conditional: {', '.join(importances.left_out)}" if importances.left_out else ""
    return (_note(f"{importances.evaluator} over {importances.trials} trials ({importances.budget}){left_out}")
            + _table(out, "importance", table) + _image(importance_bars(importances, out / "importance.png")))


def _table(out: Path, name: str, frame: pd.DataFrame) -> str:
    """Write name.csv and name.md; return the table as HTML."""
    frame.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.md").write_text(markdown(frame))
    return frame.to_html(index=False, na_rep="–", float_format=number, border=0)


def _image(path: Path, inline: bool = False) -> str:
    """The image beside report.html; ``inline`` images sit three to a row."""
    tag = f"<img src='{html.escape(path.name)}' alt='{html.escape(path.stem)}'"
    return f"{tag} style='width:32%'>" if inline else f"<p>{tag}></p>"


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"
