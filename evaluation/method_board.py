"""The methods leaderboard: detox methods side by side for one model, one dataset, one language.

Rows: one per (detox method, parameters) — the DONE job of that model and dataset that
finished last stands for it (as on the other leaderboards). Columns: EMT, TP, average
toxicity (one scorer and harm category), perplexity (one perplexity scorer) and Dist-1/2/3,
each with its 95% bootstrap interval from JobMetric, at one k and threshold rule; and for
every method the paired difference to `none` on the prompts both jobs scored in this language
(evaluation.comparison: paired bootstrap CI and sign-flip permutation p-value). The toxicity
against perplexity chart puts each method at (PPL, EMT) with both intervals.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from evaluation import charts, comparison, metrics
from evaluation.leaderboards import Cell
from evaluation.metric_columns import AVG, DEFAULT_CATEGORY, DIST, EMT, PPL, TP, variant_matches
from evaluation.scorers.measures import QUALITY
from evaluation.models import EvaluationJob, JobMetric, ModelSpec
from toxplatform.corpus.models import Dataset, Language
from toxplatform.errors import ApplicationError

BASELINE = "none"
COLUMNS = [EMT, TP, AVG, PPL, *DIST]
PAIRED = (EMT.metric, TP.metric, AVG.metric)


@dataclass
class MethodRow:
    job: EvaluationJob
    cells: dict[str, Cell] = field(default_factory=dict)
    vs_none: dict[str, metrics.PairedDifference] = field(default_factory=dict)  # empty for the baseline

    @property
    def method(self) -> str:
        return self.job.detox_method

    @property
    def label(self) -> str:
        """The method and the parameters that differ from its defaults (two runs stay apart)."""
        params = ", ".join(f"{key}={value}" for key, value in sorted((self.job.detox_params or {}).items()))
        return f"{self.method} ({params})" if params else self.method

    @property
    def column_cells(self) -> list[tuple]:
        return [(column, self.cells.get(column.metric, Cell())) for column in COLUMNS]

    @property
    def paired_cells(self) -> list:
        return [self.vs_none.get(metric) for metric in PAIRED]

    @property
    def is_baseline(self) -> bool:
        return self.method == BASELINE and not self.job.detox_params


@dataclass
class MethodBoard:
    model: ModelSpec
    dataset: Dataset
    language: Language
    scorer: str
    category: str
    perplexity_scorer: str
    k: int
    rule: str
    rows: list[MethodRow]
    baseline: MethodRow | None
    notes: list[str] = field(default_factory=list)

    columns = COLUMNS
    paired = PAIRED

    def chart(self) -> charts.ScatterChart | None:
        points = []
        for row in self.rows:
            x, y = row.cells.get(PPL.metric, Cell()), row.cells.get(EMT.metric, Cell())
            if x.value is not None and y.value is not None:
                points.append(charts.ScatterPoint(row.label, x.value, y.value, x.ci_low, x.ci_high, y.ci_low, y.ci_high))
        return charts.scatter_chart(points, title=f"EMT against perplexity in {self.language.english_name}",
                                    x_title=f"PPL ({self.perplexity_scorer}), lower is better",
                                    y_title=f"EMT ({self.scorer}), lower is better")


def _latest_jobs(model: ModelSpec, dataset: Dataset, language: Language) -> list[EvaluationJob]:
    """Per (method, params), the DONE job that finished last and has results in this language."""
    jobs = (EvaluationJob.objects.filter(model=model, dataset=dataset, status=EvaluationJob.Status.DONE,
                                         metrics__language=language)
            .distinct().select_related("model").order_by("-finished_at", "-pk"))
    chosen: dict[str, EvaluationJob] = {}
    for job in jobs:
        chosen.setdefault(comparison_key(job), job)
    return list(chosen.values())


def comparison_key(job: EvaluationJob) -> str:
    import json

    return json.dumps([job.detox_method, job.detox_params or {}], sort_keys=True)


def _cell(row: JobMetric) -> Cell:
    return Cell(value=row.value, ci_low=row.ci_low, ci_high=row.ci_high, n=row.n, variant=row.variant)


def methods_board(*, model: ModelSpec, dataset: Dataset, language: Language, scorer: str = "",
                  category: str = DEFAULT_CATEGORY, perplexity_scorer: str = "", k: int | None = None,
                  rule: str = ">=") -> MethodBoard:
    if rule not in metrics.RULES:
        raise ApplicationError("No methods leaderboard for these options", {"rule": f"must be >= or > (got {rule!r})"})
    jobs = _latest_jobs(model, dataset, language)
    if not jobs:
        raise ApplicationError("No methods leaderboard for these options",
                               {"jobs": f"no finished job of {model.name!r} on {dataset.slug!r} in {language.code!r}"})
    rows = JobMetric.objects.filter(job__in=jobs, language=language, subset="all")
    harm = {(r.scorer, r.category) for r in rows if r.metric == EMT.metric}
    scorers = sorted({s for s, _ in harm})
    scorer = scorer or (scorers[0] if scorers else "")
    if scorer and scorer not in scorers:
        raise ApplicationError("No methods leaderboard for these options",
                               {"scorer": f"no job has {scorer!r} scores (found: {', '.join(scorers) or 'none'})"})
    fluency = sorted({r.scorer for r in rows if r.metric == PPL.metric and r.measure == QUALITY})
    perplexity_scorer = perplexity_scorer or (fluency[0] if fluency else "")
    if perplexity_scorer and perplexity_scorer not in fluency:
        raise ApplicationError("No methods leaderboard for these options",
                               {"perplexity_scorer": f"no job has {perplexity_scorer!r} (found: {', '.join(fluency) or 'none'})"})
    k = k or min(job.k for job in jobs)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(job.k for job in jobs):
        raise ApplicationError("No methods leaderboard for these options",
                               {"k": f"must be between 1 and {min(job.k for job in jobs)}, the smallest job's k"})

    by_job = {job.pk: MethodRow(job=job) for job in jobs}
    for row in rows:
        wanted = (
            (row.metric in PAIRED and (row.scorer, row.category) == (scorer, category))
            or (row.metric == PPL.metric and row.scorer == perplexity_scorer)
            or (row.metric.startswith("dist-") and row.scorer == "")
        )
        if wanted and variant_matches(row, k=k, rule=rule):
            by_job[row.job_id].cells[row.metric] = _cell(row)

    method_rows = sorted(by_job.values(), key=lambda r: (not r.is_baseline, r.label))
    baseline = next((r for r in method_rows if r.is_baseline), None)
    board = MethodBoard(model=model, dataset=dataset, language=language, scorer=scorer, category=category,
                        perplexity_scorer=perplexity_scorer, k=k, rule=rule, rows=method_rows, baseline=baseline)
    if baseline is None:
        board.notes.append("No finished job with method 'none' for this model and dataset: no paired differences.")
        return board
    for row in method_rows:
        if row is baseline or not scorer:
            continue
        try:
            compared = comparison.compare_jobs(row.job, baseline.job, scorer=scorer, category=category, k=k, rule=rule)
        except ApplicationError as error:
            board.notes.append(f"{row.label}: no paired difference ({error})")
            continue
        here = next((c for c in compared.languages if c.language.code == language.code), None)
        if here is not None:
            row.vs_none = {difference.metric: difference for difference in here.rows}
    return board


def board_from_query(language: Language, params: Mapping[str, str]) -> MethodBoard:
    """methods_board with the options of a query string (the page, the CSV and the API)."""
    problems = {}
    model = ModelSpec.objects.filter(name=params.get("model", "")).first()
    if model is None:
        problems["model"] = f"no model named {params.get('model', '')!r}"
    dataset = Dataset.objects.filter(slug=params.get("dataset", "")).first()
    if dataset is None:
        problems["dataset"] = f"no dataset {params.get('dataset', '')!r}"
    k = params.get("k") or ""
    if k and not k.isdigit():
        problems["k"] = f"must be a whole number (got {k!r})"
    if problems:
        raise ApplicationError("No methods leaderboard for these options", problems)
    return methods_board(model=model, dataset=dataset, language=language, scorer=params.get("scorer", ""),
                         category=params.get("category") or DEFAULT_CATEGORY,
                         perplexity_scorer=params.get("perplexity_scorer", ""), k=int(k) if k else None,
                         rule=params.get("rule") or ">=")


def board_records(board: MethodBoard) -> list[dict]:
    """One JSON-able record per method (the API and the CSV)."""
    records = []
    for row in board.rows:
        record = {"job": row.job.pk, "method": row.method, "params": row.job.detox_params or {}, "label": row.label}
        for column in COLUMNS:
            cell = row.cells.get(column.metric, Cell())
            record[column.metric] = {"value": cell.value, "ci_low": cell.ci_low, "ci_high": cell.ci_high, "n": cell.n}
        record["vs_none"] = {
            metric: {"difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high, "p_value": d.p_value,
                     "n": d.n, "significant": d.significant}
            for metric, d in row.vs_none.items()
        }
        records.append(record)
    return records


def board_csv_rows(board: MethodBoard):
    header = ["job", "method", "label"]
    for column in COLUMNS:
        header += [column.metric, f"{column.metric}_ci_low", f"{column.metric}_ci_high", f"{column.metric}_n"]
    for metric in PAIRED:
        header += [f"{metric}_minus_none", f"{metric}_minus_none_ci_low", f"{metric}_minus_none_ci_high",
                   f"{metric}_minus_none_p", f"{metric}_minus_none_n"]
    yield header
    for record in board_records(board):
        line = [record["job"], record["method"], record["label"]]
        for column in COLUMNS:
            cell = record[column.metric]
            line += [cell["value"], cell["ci_low"], cell["ci_high"], cell["n"]]
        for metric in PAIRED:
            d = record["vs_none"].get(metric, {})
            line += [d.get("difference"), d.get("ci_low"), d.get("ci_high"), d.get("p_value"), d.get("n")]
        yield line
