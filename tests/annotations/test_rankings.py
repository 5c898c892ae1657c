"""Bradley-Terry (Davidson ties) recovers a known ranking from simulated votes; the
position-bias estimate recovers a simulated bias."""
import math

import numpy as np
import pytest

from annotations.rankings import Vote, bradley_terry, position_bias, wilson

TRUE = {"job-1": 1.2, "job-2": 0.4, "job-3": -0.3, "job-4": -1.3}
NU = 0.6


def simulate(n_votes, seed):
    rng = np.random.default_rng(seed)
    players = list(TRUE)
    votes = []
    for _ in range(n_votes):
        a, b = rng.choice(players, 2, replace=False)
        ea, eb, tie = math.exp(TRUE[a]), math.exp(TRUE[b]), NU * math.exp((TRUE[a] + TRUE[b]) / 2)
        draw = rng.random() * (ea + eb + tie)
        votes.append(Vote(a, b, "a" if draw < ea else "b" if draw < ea + eb else "tie"))
    return votes


def test_bradley_terry_recovers_a_known_ranking_with_ties():
    ranking = bradley_terry(simulate(3000, seed=1), bootstrap=100, seed=2)
    assert [entry.player for entry in ranking.entries] == ["job-1", "job-2", "job-3", "job-4"]
    centred = {p: v - np.mean(list(TRUE.values())) for p, v in TRUE.items()}
    for entry in ranking.entries:
        assert entry.ci_low <= centred[entry.player] <= entry.ci_high
        assert abs(entry.score - centred[entry.player]) < 0.15
    assert abs(ranking.tie_parameter - NU) < 0.1
    assert ranking.n_votes == 3000
    best = ranking.entries[0]
    assert best.wins + best.losses + best.ties == best.comparisons and best.win_rate > 0.6
    assert best.win_rate_ci[0] < best.win_rate < best.win_rate_ci[1]


def test_unusable_votes_are_left_out_and_a_player_who_never_lost_stays_finite():
    votes = [Vote("x", "y", "a")] * 5 + [Vote("x", "y", "unusable")] * 3
    ranking = bradley_terry(votes, bootstrap=20)
    assert ranking.n_votes == 5
    assert [e.player for e in ranking.entries] == ["x", "y"] and math.isfinite(ranking.entries[0].score)


def test_no_votes_give_an_empty_ranking():
    assert bradley_terry([]).entries == []


@pytest.mark.parametrize("bias", [0.0, 0.3])
def test_position_bias_recovers_a_simulated_bias(bias):
    """Each annotator picks the left side with probability `bias` regardless of content, and
    otherwise the truly worse output, which sits left or right at random."""
    rng = np.random.default_rng(7)
    choices = []
    for annotator in range(20):
        for _ in range(200):
            choices.append((annotator, bool(rng.random() < bias or rng.random() < 0.5)))
    overall, rows = position_bias(choices, seed=3)
    expected = 0.5 + bias / 2
    assert overall.ci_low <= expected <= overall.ci_high
    assert abs(overall.position_share - bias) < 0.06
    assert len(rows) == 20 and all(row.decisive == 200 for row in rows)
    if bias:
        assert overall.p_value < 1e-6
    else:
        assert overall.p_value > 0.01


def test_one_biased_annotator_stands_out():
    rng = np.random.default_rng(0)
    choices = [(who, bool(rng.random() < (0.95 if who == "lefty" else 0.5))) for who in ["lefty", "fair"] for _ in range(100)]
    _, rows = position_bias(choices)
    by = {row.who: row for row in rows}
    assert by["lefty"].ci_low > 0.5 and by["fair"].ci_low < 0.5 < by["fair"].ci_high


def test_wilson_interval_matches_the_textbook_value():
    low, high = wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
