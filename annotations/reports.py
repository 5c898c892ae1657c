"""A campaign's numbers for the dashboard: human agreement per language x question, humans
against each automatic scorer, and for pairwise campaigns the ranking of jobs and the
position-bias report; gold accuracy per annotator.

Every agreement number comes from the platform's one agreement module (toxplatform.agreement);
Bradley-Terry and position bias from annotations.rankings. Only the latest version of each
judgment counts; gold items are left out of agreement and rankings (they are a check on
annotators, not data).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import Avg

from annotations import kinds, rankings
from annotations.kinds.pairwise import FLUENCY
from annotations.models import Campaign, Item
from annotations.selectors import campaign_questions, current_judgments
from evaluation.models import EvaluationJob, Score
from evaluation.scorers.measures import RATING, measure_of
from toxplatform import agreement

BOOTSTRAP = 200
ALL = "all"
PAIRWISE_LABELS = ["a", "tie", "b", "unusable"]


@dataclass(frozen=True)
class AgreementRow:
    language: str
    question: str
    items: int  # items with two or more judgments
    judgments: int
    percent: agreement.AgreementResult
    cohen: agreement.AgreementResult  # mean pairwise Cohen's kappa (weighted for ordinal scales)
    fleiss: agreement.AgreementResult
    alpha_nominal: agreement.AgreementResult
    alpha_ordinal: agreement.AgreementResult | None


@dataclass(frozen=True)
class ScorerRow:
    language: str
    question: str
    scorer: str
    n: int
    spearman: agreement.AgreementResult | None  # rating campaigns
    kappa: agreement.AgreementResult | None  # rating: weighted, for a scorer on the category's scale; pairwise: unweighted
    percent: agreement.AgreementResult | None = None  # pairwise: the scorer picks the higher-scored output


@dataclass(frozen=True)
class JobRow:
    job: EvaluationJob
    ranked: rankings.Ranked
    automatic: dict[str, float | None]  # scorer -> mean score of this job's outputs in the campaign


@dataclass(frozen=True)
class QuestionRanking:
    question: str
    rows: list[JobRow]
    tie_parameter: float
    votes: int
    unusable: int


@dataclass(frozen=True)
class GoldRow:
    annotator_id: int
    username: str
    answered: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None


@dataclass
class CampaignReport:
    judgments: int = 0
    agreement: list[AgreementRow] = field(default_factory=list)
    scorers: list[ScorerRow] = field(default_factory=list)
    rankings: list[QuestionRanking] = field(default_factory=list)
    position_overall: rankings.LeftRate | None = None
    position_annotators: list = field(default_factory=list)
    gold: list[GoldRow] = field(default_factory=list)
    usernames: dict = field(default_factory=dict)


def _with_ci(measure, data, seed, **options):
    try:
        return agreement.with_bootstrap_ci(measure, data, n_resamples=BOOTSTRAP, seed=seed, **options)
    except agreement.AgreementInputError as error:
        return agreement.AgreementResult(None, undefined_reason=error.message)


def _agreement_row(language, question, per_item: dict[int, dict[int, object]], scale, ordinal: bool, seed: int):
    """per_item: {item: {annotator: label}} -> the measures with bootstrap CIs over items."""
    items = [item for item, labels in per_item.items() if len(labels) >= 2]
    annotators = sorted({a for item in items for a in per_item[item]})
    by_annotator = [[per_item[item].get(a) for a in annotators] for item in items]  # items x annotators
    weights = "quadratic" if ordinal else None
    # Fleiss needs the same number of ratings on every item: the items with the most.
    most = max((len(per_item[item]) for item in items), default=0)
    slots = [list(per_item[item].values()) for item in items if len(per_item[item]) == most]
    return AgreementRow(
        language=language, question=question, items=len(items), judgments=sum(len(v) for v in per_item.values()),
        percent=_with_ci(agreement.mean_pairwise_agreement, by_annotator, seed, labels=scale),
        cohen=_with_ci(agreement.mean_pairwise_kappa, by_annotator, seed, weights=weights, labels=scale),
        fleiss=_with_ci(agreement.fleiss_kappa, slots, seed, labels=scale),
        alpha_nominal=_with_ci(agreement.krippendorff_alpha, list(map(list, zip(*by_annotator))) or [[]], seed,
                               level="nominal", values=scale),
        alpha_ordinal=_with_ci(agreement.krippendorff_alpha, list(map(list, zip(*by_annotator))) or [[]], seed,
                               level="ordinal", values=scale) if ordinal else None,
    )


def campaign_report(campaign: Campaign) -> CampaignReport:
    judgments = current_judgments(campaign)
    report = CampaignReport(judgments=len(judgments))
    if not judgments:
        return report
    kind = kinds.get(campaign.kind)
    questions = campaign_questions(campaign)
    items = {item.pk: item for item in Item.objects.filter(campaign=campaign).select_related("generation_a", "generation_b")}
    report.usernames = dict(get_user_model().objects.filter(
        pk__in={j.assignment.annotator_id for j in judgments}).values_list("pk", "username"))

    # {question: {language: {item: {annotator: stored answer}}}}
    labels: dict[str, dict[str, dict[int, dict[int, object]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    gold = defaultdict(lambda: [0, 0])
    for judgment in judgments:
        item = items[judgment.assignment.item_id]
        annotator = judgment.assignment.annotator_id
        if item.is_gold:
            gold[annotator][0] += 1
            gold[annotator][1] += int(kind.gold_matches(judgment.answer, item.gold_answer or {}))
            continue
        for question in questions:
            value = judgment.answer.get(question.name)
            if value is not None:
                labels[question.name][item.language_id][item.pk][annotator] = value
                labels[question.name][ALL][item.pk][annotator] = value
    report.gold = [GoldRow(a, report.usernames.get(a, str(a)), answered, correct) for a, (answered, correct) in sorted(gold.items())]

    ordinal = campaign.kind == Campaign.Kind.RATING
    for q_index, question in enumerate(questions):
        scale = [int(choice.value) for choice in question.choices] if ordinal else PAIRWISE_LABELS
        for language in sorted(labels[question.name], key=lambda code: (code == ALL, code)):
            report.agreement.append(_agreement_row(language, question.name, labels[question.name][language], scale,
                                                   ordinal, seed=campaign.seed + q_index))
    if ordinal:
        report.scorers = _scorer_rows(campaign, questions, labels, items)
    else:
        report.scorers = _pairwise_scorer_rows(campaign, questions, labels, items)
        report.rankings, report.position_overall, report.position_annotators = _pairwise(campaign, questions, judgments, items)
    return report


def _scorer_rows(campaign, questions, labels, items) -> list[ScorerRow]:
    """Each automatic scorer against the human aggregate (majority, then rounded mean) on the
    same outputs: Spearman always; weighted kappa when the scorer rates on the category's scale."""
    jobs = {job.pk: job for job in campaign.jobs.all()}
    rows = []
    for question in questions:
        scale = [int(choice.value) for choice in question.choices]
        for language, per_item in sorted(labels[question.name].items(), key=lambda kv: (kv[0] == ALL, kv[0])):
            item_ids = list(per_item)
            human = dict(zip(item_ids, agreement.aggregate_labels([list(per_item[i].values()) for i in item_ids])))
            generation_of = {i: items[i].generation_a_id for i in item_ids}
            by_scorer: dict[str, dict[int, float]] = defaultdict(dict)
            ratings_on_scale: dict[str, bool] = {}
            for generation_id, scorer, value, job in Score.objects.filter(
                generation_id__in=list(generation_of.values()), category=question.name, value__isnull=False
            ).values_list("generation_id", "scorer", "value", "generation__job_id"):
                by_scorer[scorer][generation_id] = value
                if scorer not in ratings_on_scale:
                    # A scorer that declared a rating on this category's own scale can be read
                    # as a rater (weighted kappa); a probability cannot.
                    measure = measure_of(jobs[job], scorer, question.name)
                    ratings_on_scale[scorer] = measure.kind == RATING and (measure.low, measure.high) == (scale[0], scale[-1])
            for scorer, values in sorted(by_scorer.items()):
                pairs = [(values.get(generation_of[i]), human[i]) for i in item_ids if generation_of[i] in values]
                machine, people = [p[0] for p in pairs], [p[1] for p in pairs]
                on_scale = ratings_on_scale[scorer] and all(float(v).is_integer() for v in machine)
                rows.append(ScorerRow(
                    language, question.name, scorer, len(pairs),
                    _paired_ci(agreement.spearman, machine, people, campaign.seed),
                    _paired_ci(agreement.cohen_kappa, machine, people, campaign.seed, weights="quadratic", labels=scale)
                    if on_scale and machine else None,
                ))
    return rows


PAIRWISE_DECISIONS = ["a", "tie", "b"]
SCORE_TIE = 1e-9


def _plurality(labels) -> str | None:
    """The human choice of an item: the strict plurality among a / tie / b ("both unusable"
    left out); None when two choices tie for the most votes."""
    counts = {}
    for label in labels:
        if label in PAIRWISE_DECISIONS:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return None
    ranked = sorted(counts.values(), reverse=True)
    if len(ranked) > 1 and ranked[0] == ranked[1]:
        return None
    return max(counts, key=counts.get)


def _pairwise_scorer_rows(campaign, questions, labels, items) -> list[ScorerRow]:
    """Each scorer as a pairwise judge: it picks the output it scored higher (a tie when equal),
    against the human plurality on the same pair; percent agreement and Cohen's kappa."""
    rows = []
    harm_questions = [q for q in questions if q.name != FLUENCY]
    for question in harm_questions:
        for language, per_item in sorted(labels[question.name].items(), key=lambda kv: (kv[0] == ALL, kv[0])):
            human = {i: _plurality(per_item[i].values()) for i in per_item}
            human = {i: v for i, v in human.items() if v is not None}
            generation_ids = [g for i in human for g in (items[i].generation_a_id, items[i].generation_b_id)]
            by_scorer: dict[str, dict[int, float]] = defaultdict(dict)
            for generation_id, scorer, value in Score.objects.filter(
                generation_id__in=generation_ids, category=question.name, value__isnull=False
            ).values_list("generation_id", "scorer", "value"):
                by_scorer[scorer][generation_id] = value
            for scorer, values in sorted(by_scorer.items()):
                machine, people = [], []
                for i, choice in human.items():
                    a, b = values.get(items[i].generation_a_id), values.get(items[i].generation_b_id)
                    if a is None or b is None:
                        continue
                    machine.append("a" if a > b + SCORE_TIE else "b" if b > a + SCORE_TIE else "tie")
                    people.append(choice)
                rows.append(ScorerRow(
                    language, question.name, scorer, len(machine), None,
                    _paired_ci(agreement.cohen_kappa, machine, people, campaign.seed, labels=PAIRWISE_DECISIONS),
                    _paired_ci(agreement.percent_agreement, machine, people, campaign.seed, labels=PAIRWISE_DECISIONS),
                ))
    return rows


def _paired_ci(measure, a, b, seed, **options):
    try:
        return agreement.with_bootstrap_ci(measure, a, b, n_resamples=BOOTSTRAP, seed=seed, **options)
    except agreement.AgreementInputError as error:
        return agreement.AgreementResult(None, undefined_reason=error.message)


def _pairwise(campaign, questions, judgments, items):
    jobs = {job.pk: job for job in campaign.jobs.select_related("model")}
    rankings_out = []
    for question in questions:
        votes, unusable = [], 0
        for judgment in judgments:
            item = items[judgment.assignment.item_id]
            answer = judgment.answer.get(question.name)
            if item.is_gold or answer is None:
                continue
            if answer == "unusable":
                unusable += 1
            votes.append(rankings.Vote(item.generation_a.job_id, item.generation_b.job_id, answer))
        ranking = rankings.bradley_terry(votes, seed=campaign.seed)
        automatic = _automatic_means(campaign, question.name, items) if question.name != FLUENCY else {}
        rows = [JobRow(jobs[entry.player], entry, automatic.get(entry.player, {})) for entry in ranking.entries]
        rankings_out.append(QuestionRanking(question.name, rows, ranking.tie_parameter, ranking.n_votes, unusable))
    # Position bias on the first question's decisive votes.
    first = questions[0].name
    decisive = []
    for judgment in judgments:
        item = items[judgment.assignment.item_id]
        answer = judgment.answer.get(first)
        if answer in ("a", "b") and not item.is_gold:
            swapped = judgment.order_shown[:1] == [item.generation_b_id]
            chose_left = (answer == "a") != swapped
            decisive.append((judgment.assignment.annotator_id, chose_left))
    overall, per_annotator = rankings.position_bias(decisive, seed=campaign.seed)
    return rankings_out, overall, per_annotator


def _automatic_means(campaign, category: str, items) -> dict[int, dict[str, float]]:
    """{job: {scorer: mean score}} over the outputs this campaign compares."""
    generation_ids = [gid for item in items.values() if not item.is_gold for gid in (item.generation_a_id, item.generation_b_id)]
    means: dict[int, dict[str, float]] = defaultdict(dict)
    for row in (Score.objects.filter(generation_id__in=generation_ids, category=category, value__isnull=False)
                .values("generation__job_id", "scorer").annotate(mean=Avg("value")).order_by()):
        means[row["generation__job_id"]][row["scorer"]] = row["mean"]
    return means


def alpha_chart(report: CampaignReport):
    """Krippendorff's alpha of the first question per language (ordinal for ratings) as the
    evaluation pages' bar chart; negative alphas draw as empty bars with their value."""
    from evaluation.charts import horizontal_bar_chart

    if not report.agreement:
        return None
    first = report.agreement[0].question
    bars = []
    for row in report.agreement:
        if row.question != first:
            continue
        result = row.alpha_ordinal or row.alpha_nominal
        bars.append(("all languages" if row.language == ALL else row.language, result.value, result.ci_low, result.ci_high))
    return horizontal_bar_chart(bars, title=f"Krippendorff's alpha ({first}) by language, 95% CI", maximum=1.0)


def position_rows(report: CampaignReport) -> list[dict]:
    return [{"name": report.usernames.get(row.who, str(row.who)), "rate": row} for row in report.position_annotators]


REPORT_CACHE_SECONDS = 600


def cached_campaign_report(campaign: Campaign) -> CampaignReport:
    """campaign_report, kept while no judgment is added (judgments are only ever added: a count
    and the newest id name the state). The bootstraps take a second or more on a big campaign."""
    from django.core.cache import cache
    from django.db.models import Count, Max

    from annotations.models import Judgment

    state = Judgment.objects.filter(assignment__item__campaign=campaign).aggregate(n=Count("id"), last=Max("id"))
    key = f"annotations:report:{campaign.pk}:{state['n']}:{state['last']}"
    report = cache.get(key)
    if report is None:
        report = campaign_report(campaign)
        cache.set(key, report, REPORT_CACHE_SECONDS)
    return report
