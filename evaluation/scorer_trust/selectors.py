"""Read side of scorer trust: evaluation results, the judge leaderboards, trust markers.

Measured agreement of a scorer in a language x category comes from the newest finished
ScorerEvaluation that covers it (on the chosen dataset and aggregate rule); a trained
scorer's own held-out results (its TrainingRun) count where no evaluation covers the cell.

    scorer_trust("lexicon", "de")          -> TrustMarker(measured=True, kappa=0.21, ...)
    trust_markers(["lexicon", "trained:rtp-lx-e5"], ["de", "ar"])   # one query for a table
"""
from __future__ import annotations

from dataclasses import dataclass, field

from evaluation.scorer_trust.labels import DEFAULT_RULE
from evaluation.scorer_trust.models import (
    ImportedScoreSet,
    RunStatus,
    ScorerEvaluation,
    ScorerEvaluationResult,
    TrainingRun,
)
from toxplatform.corpus.models import HarmCategory, Language

DEFAULT_DATASET = "rtp-lx"
HEADLINE_CATEGORY = "toxicity"
# Landis & Koch (1977) bands; "good" starts at moderate agreement, which is also where the
# best judge of the RTP-LX paper sits on average (GPT-4-turbo, mean weighted kappa 0.401).
GOOD_KAPPA = 0.40
BANDS = ((0.80, "almost perfect"), (0.60, "substantial"), (0.40, "moderate"), (0.20, "fair"), (0.0, "slight"))
# Published judge figures of the RTP-LX paper (de Wynter et al., 2024), shown for reference.
PAPER_REFERENCE = {
    "judge": "GPT-4-turbo",
    "mean_weighted_kappa": 0.401,
    "note": "every evaluated model <= 0.08 weighted kappa on microaggression",
}


def band(kappa: float | None) -> str:
    if kappa is None:
        return "undefined"
    for low, name in BANDS:
        if kappa >= low:
            return name
    return "worse than chance"


def evaluation_rows(evaluation: ScorerEvaluation) -> list[dict]:
    """Its results as dicts (the shape agreement_table makes), ordered by language, category, subset."""
    order = {"all": 0, "transcreated": 1, "cultural": 2}
    rows = [
        {"language": r.language_id, "category": r.category, "subset": r.subset, "weighted_kappa": r.weighted_kappa,
         "ci_low": r.ci_low, "ci_high": r.ci_high, "exact_agreement": r.exact_agreement, "spearman": r.spearman,
         "n": r.n, "invalid": r.invalid, "human_ceiling": r.human_ceiling, "human_classes": r.human_classes,
         "scorer_classes": r.scorer_classes, "undefined_reason": r.undefined_reason}
        for r in evaluation.results.all()
    ]
    return sorted(rows, key=lambda row: (row["language"], row["category"], order.get(row["subset"], 9)))


def training_runs():
    return TrainingRun.objects.select_related("dataset").order_by("-created_at")


def scorer_evaluations():
    return ScorerEvaluation.objects.select_related("dataset", "imported").order_by("-created_at")


def imported_sets():
    return ImportedScoreSet.objects.select_related("dataset").order_by("name")


# --- measured cells --------------------------------------------------------------------------
@dataclass
class Cell:
    scorer: str
    language: str
    category: str
    kappa: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    human_ceiling: float | None
    exact_agreement: float | None = None
    spearman: float | None = None
    invalid: int = 0
    source: str = ""  # "evaluation" or "training"
    source_id: int = 0

    @property
    def band(self) -> str:
        return band(self.kappa)

    @property
    def good(self) -> bool:
        return self.kappa is not None and self.kappa >= GOOD_KAPPA


def measured_cells(dataset: str = DEFAULT_DATASET, aggregate_rule: str = DEFAULT_RULE, *, scorers=None,
                   languages=None, categories=None) -> dict[tuple[str, str, str], Cell]:
    """{(scorer key, language, category): Cell} over the `all` subset, newest measurement first."""
    cells: dict[tuple[str, str, str], Cell] = {}
    results = ScorerEvaluationResult.objects.filter(
        subset="all", evaluation__status=RunStatus.DONE, evaluation__dataset__slug=dataset,
        evaluation__aggregate_rule=aggregate_rule,
    ).select_related("evaluation").order_by("-evaluation__finished_at", "-evaluation_id")
    if scorers is not None:
        results = results.filter(evaluation__scorer_key__in=list(scorers))
    if languages is not None:
        results = results.filter(language_id__in=list(languages))
    if categories is not None:
        results = results.filter(category__in=list(categories))
    for r in results:
        key = (r.evaluation.scorer_key, r.language_id, r.category)
        if key not in cells:
            cells[key] = Cell(r.evaluation.scorer_key, r.language_id, r.category, r.weighted_kappa, r.ci_low,
                              r.ci_high, r.n, r.human_ceiling, r.exact_agreement, r.spearman, r.invalid,
                              "evaluation", r.evaluation_id)
    runs = TrainingRun.objects.filter(status=RunStatus.DONE, dataset__slug=dataset, aggregate_rule=aggregate_rule)
    for run in runs.order_by("-finished_at"):
        if scorers is not None and run.scorer_key not in scorers:
            continue
        for row in run.results_all:
            key = (run.scorer_key, row["language"], row["category"])
            if key in cells or (languages is not None and row["language"] not in languages) or (
                categories is not None and row["category"] not in categories
            ):
                continue
            cells[key] = Cell(run.scorer_key, row["language"], row["category"], row["weighted_kappa"],
                              row["ci_low"], row["ci_high"], row["n"], row["human_ceiling"],
                              row["exact_agreement"], row["spearman"], row["invalid"], "training", run.pk)
    return cells


# --- trust markers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrustMarker:
    scorer: str
    language: str
    category: str
    measured: bool
    kappa: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    human_ceiling: float | None = None

    @property
    def band(self) -> str:
        return band(self.kappa) if self.measured else "not measured"

    @property
    def level(self) -> str:
        """CSS-friendly: good / fair / poor / unmeasured."""
        if not self.measured or self.kappa is None:
            return "unmeasured"
        return "good" if self.kappa >= GOOD_KAPPA else "fair" if self.kappa >= 0.2 else "poor"

    @property
    def text(self) -> str:
        if not self.measured:
            return "not measured"
        if self.kappa is None:
            return "κ undefined"
        return f"κ {self.kappa:.2f}"

    @property
    def title(self) -> str:
        if not self.measured:
            return (f"How far {self.scorer} agrees with human raters in {self.language} ({self.category}) "
                    "has not been measured")
        if self.kappa is None:
            return f"{self.scorer} vs human raters in {self.language}: kappa undefined (n={self.n})"
        ci = f", 95% CI [{self.ci_low:.2f}, {self.ci_high:.2f}]" if self.ci_low is not None else ""
        ceiling = f"; humans among themselves {self.human_ceiling:.2f}" if self.human_ceiling is not None else ""
        return (f"{self.scorer} vs human raters in {self.language} ({self.category}): weighted kappa "
                f"{self.kappa:.2f}{ci}, {band(self.kappa)}, n={self.n}{ceiling}")


def trust_markers(scorer_keys, languages, category: str = HEADLINE_CATEGORY,
                  dataset: str = DEFAULT_DATASET) -> dict[tuple[str, str], TrustMarker]:
    """{(scorer key, language): TrustMarker} for a whole table, in a few queries."""
    scorer_keys, languages = list(scorer_keys), list(languages)
    cells = measured_cells(dataset, scorers=scorer_keys, languages=languages, categories=[category])
    out = {}
    for scorer in scorer_keys:
        for language in languages:
            cell = cells.get((scorer, language, category))
            out[(scorer, language)] = (
                TrustMarker(scorer, language, category, True, cell.kappa, cell.ci_low, cell.ci_high, cell.n,
                            cell.human_ceiling)
                if cell else TrustMarker(scorer, language, category, False)
            )
    return out


def scorer_trust(scorer_key: str, language: str, category: str = HEADLINE_CATEGORY,
                 dataset: str = DEFAULT_DATASET) -> TrustMarker:
    """How far the scorer behind a number can be trusted in this language: its measured
    weighted kappa against human raters (with CI and n), or "not measured"."""
    return trust_markers([scorer_key], [language], category, dataset)[(scorer_key, language)]


# --- judge leaderboards -----------------------------------------------------------------------
@dataclass
class Recommendation:
    language: str
    category: str
    best: Cell | None
    good: bool
    message: str


def _recommend(language: str, category: str, cells: list[Cell], ceiling: float | None = None) -> Recommendation:
    defined = [cell for cell in cells if cell.kappa is not None]
    if not defined:
        return Recommendation(language, category, None, False,
                              f"No scorer has a measured {category} agreement in this language.")
    best = max(defined, key=lambda cell: (cell.kappa, cell.n))
    # Raters who barely agree with each other cap what any scorer can show against them.
    capped = (f" The raters themselves agree only at {ceiling:.2f} here, and {best.scorer} reaches that."
              if ceiling is not None and best.kappa >= ceiling else "")
    if best.kappa >= GOOD_KAPPA:
        return Recommendation(language, category, best, True,
                              f"Use {best.scorer}: weighted kappa {best.kappa:.2f} ({best.band}) on {category}.{capped}")
    return Recommendation(
        language, category, best, False,
        f"No scorer agrees well with human raters on {category} here: the best, {best.scorer}, reaches "
        f"weighted kappa {best.kappa:.2f} ({best.band}), below {GOOD_KAPPA:.2f}. Read its numbers with care.{capped}",
    )


@dataclass
class CategoryBoard:
    category: HarmCategory
    cells: list[Cell]  # best first
    human_ceiling: float | None
    recommendation: Recommendation


@dataclass
class LanguageBoard:
    language: Language
    boards: list[CategoryBoard] = field(default_factory=list)

    @property
    def headline(self) -> Recommendation | None:
        for board in self.boards:
            if board.category.slug == HEADLINE_CATEGORY:
                return board.recommendation
        return self.boards[0].recommendation if self.boards else None


def _ceiling(cells: list[Cell]) -> float | None:
    # Every evaluation of one language x category sees the same raters; evaluations of
    # different prompt sets (a trained scorer's held-out groups) differ a little: the
    # ceiling of the largest one is drawn.
    with_ceiling = [cell for cell in cells if cell.human_ceiling is not None]
    return max(with_ceiling, key=lambda cell: cell.n).human_ceiling if with_ceiling else None


def language_board(code: str, dataset: str = DEFAULT_DATASET) -> LanguageBoard:
    language = Language.objects.get(code=code)
    cells = measured_cells(dataset, languages=[code])
    board = LanguageBoard(language)
    for category in HarmCategory.objects.filter(slug__in={key[2] for key in cells}):
        in_category = sorted((cell for key, cell in cells.items() if key[2] == category.slug),
                             key=lambda cell: (cell.kappa is None, -(cell.kappa or 0), cell.scorer))
        ceiling = _ceiling(in_category)
        board.boards.append(CategoryBoard(category, in_category, ceiling,
                                          _recommend(code, category.slug, in_category, ceiling)))
    return board


@dataclass
class OverviewRow:
    language: Language
    cells: dict[str, Cell]  # scorer -> its cell in the chosen category
    human_ceiling: float | None
    recommendation: Recommendation


@dataclass
class Overview:
    category: str
    categories: list[HarmCategory]
    scorers: list[str]
    rows: list[OverviewRow]
    means: dict[str, float | None]  # scorer -> mean kappa over languages


def overview(category: str = HEADLINE_CATEGORY, dataset: str = DEFAULT_DATASET) -> Overview:
    cells = measured_cells(dataset)
    categories = list(HarmCategory.objects.filter(slug__in={key[2] for key in cells}))
    chosen = [cell for key, cell in cells.items() if key[2] == category]
    scorers = sorted({cell.scorer for cell in chosen})
    means = {}
    for scorer in scorers:
        values = [cell.kappa for cell in chosen if cell.scorer == scorer and cell.kappa is not None]
        means[scorer] = sum(values) / len(values) if values else None
    scorers.sort(key=lambda scorer: (means[scorer] is None, -(means[scorer] or 0), scorer))
    rows = []
    for language in Language.objects.filter(code__in={cell.language for cell in chosen}):
        mine = [cell for cell in chosen if cell.language == language.code]
        ceiling = _ceiling(mine)
        rows.append(OverviewRow(language, {cell.scorer: cell for cell in mine}, ceiling,
                                _recommend(language.code, category, mine, ceiling)))
    return Overview(category, categories, scorers, rows, means)
