"""The dashboard's numbers equal the agreement module's on the same labels; only the latest
version counts; gold items are scored, not pooled; position bias counts sides as shown."""
import pytest

from annotations import reports, services
from annotations.models import Item
from tests.annotations.campaign_data import make_annotator, make_campaign
from toxplatform import agreement

pytestmark = pytest.mark.django_db

# (annotator index, prompt) -> toxicity rating
RATINGS = {0: {"en/1": 5, "en/2": 1, "ar/1": 4, "ar/2": 2}, 1: {"en/1": 4, "en/2": 1, "ar/1": 5, "ar/2": 1},
           2: {"en/1": 5, "en/2": 2, "ar/1": 4, "ar/2": 1}}


def key(item):
    return f"{item.language_id}/{item.prompt.external_id}"


def test_rating_agreement_matches_the_agreement_module(jobs):
    _, pair = jobs
    annotators = [make_annotator(f"k{i}", languages=["en", "ar"]) for i in range(3)]
    campaign = make_campaign([pair[0]], kind="rating", languages=["en", "ar"], categories=["toxicity"],
                             annotators=annotators, overlap=3)
    for index, annotator in enumerate(annotators):
        while (assignment := services.next_assignment(campaign=campaign, annotator=annotator).assignment):
            wrong = {"toxicity": "3"}  # a first version that an edit replaces
            services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data=wrong)
            services.submit_judgment(assignment_id=assignment.pk, annotator=annotator,
                                     data={"toxicity": str(RATINGS[index][key(assignment.item)])})
    report = reports.campaign_report(campaign)
    row = next(r for r in report.agreement if r.language == "all")
    items = sorted(Item.objects.filter(campaign=campaign).select_related("prompt"), key=lambda i: i.pk)
    matrix = [[RATINGS[a][key(item)] for a in range(3)] for item in items]  # items x raters
    scale = [1, 2, 3, 4, 5]
    assert row.items == 4 and row.judgments == 12
    assert row.alpha_ordinal.value == pytest.approx(
        agreement.krippendorff_alpha(list(map(list, zip(*matrix))), level="ordinal", values=scale).value, abs=1e-12)
    assert row.fleiss.value == pytest.approx(agreement.fleiss_kappa(matrix, labels=scale).value, abs=1e-12)
    assert row.cohen.value == pytest.approx(
        agreement.mean_pairwise_kappa(matrix, weights="quadratic", labels=scale).value, abs=1e-12)
    assert row.alpha_ordinal.ci_low <= row.alpha_ordinal.value <= row.alpha_ordinal.ci_high
    # Humans vs the lexicon scorer: Spearman on the majority-or-rounded-mean aggregate.
    scorer = next(r for r in report.scorers if r.language == "all" and r.scorer == "lexicon")
    assert scorer.n == 4 and scorer.kappa is None  # a probability scorer: no kappa on the 1-5 scale


def test_pairwise_report_gold_position_bias_and_ranking(jobs):
    _, pair = jobs
    from evaluation.models import Generation

    gold_a = Generation.objects.get(job=pair[0], prompt__language_id="de")
    gold_b = Generation.objects.get(job=pair[1], prompt__language_id="de")
    annotators = [make_annotator(f"p{i}", languages=["en", "ar", "de"]) for i in range(2)]
    campaign = make_campaign(pair, annotators=annotators, overlap=2,
                             gold=[{"generations": [gold_a.pk, gold_b.pk], "answer": {"toxicity": "b"}}])
    # p0 always presses "left"; p1 always names the second job's output (b).
    for index, annotator in enumerate(annotators):
        while (assignment := services.next_assignment(campaign=campaign, annotator=annotator).assignment):
            shown_b = "left" if assignment.swapped else "right"
            services.submit_judgment(assignment_id=assignment.pk, annotator=annotator,
                                     data={"toxicity": "left" if index == 0 else shown_b})
    report = reports.campaign_report(campaign)
    by_user = {row.username: row for row in report.gold}
    assert by_user["p1"].accuracy == 1.0 and by_user["p0"].answered == 1
    left = {report.usernames[row.who]: row for row in report.position_annotators}
    assert left["p0"].rate == 1.0 and left["p0"].decisive == 5  # five non-gold items
    assert report.position_overall.decisive == 10
    ranking = report.rankings[0]
    # p1 names b's job every time and p0 at random: b's job is never behind.
    scores = {row.job.pk: row.ranked.score for row in ranking.rows}
    assert ranking.votes == 10 and scores[pair[1].pk] >= scores[pair[0].pk]


def test_a_scorer_as_a_pairwise_judge_against_the_human_plurality(jobs):
    """The lexicon scores job 2's outputs higher (0.5 vs 0.2) everywhere; humans who always
    name job 2's output agree with it on every pair."""
    _, pair = jobs
    annotators = [make_annotator(f"j{i}", languages=["en", "ar", "de"]) for i in range(2)]
    campaign = make_campaign(pair, annotators=annotators, overlap=2)
    for annotator in annotators:
        while (assignment := services.next_assignment(campaign=campaign, annotator=annotator).assignment):
            second = "b" if assignment.item.generation_b.job_id == pair[1].pk else "a"
            shown = {"a": "right" if assignment.swapped else "left", "b": "left" if assignment.swapped else "right"}
            services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data={"toxicity": shown[second]})
    row = next(r for r in reports.campaign_report(campaign).scorers if r.language == "all")
    assert (row.scorer, row.n, row.percent.value) == ("lexicon", 5, 1.0)


def test_a_judge_rating_on_the_categorys_scale_gets_a_weighted_kappa(jobs):
    from evaluation.models import Score
    from evaluation.scorers.measures import rating

    _, pair = jobs
    job = pair[0]
    job.scorer_measures = {"judge": {"toxicity": rating(1, 5).as_json()}}
    job.save()
    annotators = [make_annotator(f"w{i}", languages=["en", "ar"]) for i in range(2)]
    campaign = make_campaign([job], kind="rating", languages=["en", "ar"], categories=["toxicity"],
                             annotators=annotators, overlap=2)
    truth = {"en/1": 5, "en/2": 1, "ar/1": 4, "ar/2": 2}
    for item in Item.objects.filter(campaign=campaign).select_related("prompt"):
        Score.objects.create(generation_id=item.generation_a_id, scorer="judge", category="toxicity", value=truth[key(item)])
    for annotator in annotators:
        while (assignment := services.next_assignment(campaign=campaign, annotator=annotator).assignment):
            services.submit_judgment(assignment_id=assignment.pk, annotator=annotator,
                                     data={"toxicity": str(truth[key(assignment.item)])})
    rows = {r.scorer: r for r in reports.campaign_report(campaign).scorers if r.language == "all"}
    assert rows["judge"].kappa.value == pytest.approx(1.0) and rows["judge"].spearman.value == pytest.approx(1.0)
    assert rows["lexicon"].kappa is None  # a probability
