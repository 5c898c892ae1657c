"""Pairwise results: Bradley-Terry ranking with ties, win rates, position bias. Pure numpy/scipy.

Bradley-Terry with ties is Davidson's (1970) model: for players i, j with strengths
exp(theta_i), exp(theta_j) and a tie parameter nu,
    P(i wins) = e^ti / D,   P(tie) = nu * e^((ti+tj)/2) / D,   D = e^ti + e^tj + nu * e^((ti+tj)/2).
Fitted by maximum likelihood; thetas are centred (mean 0), so a player's score reads "log-odds
against an average player". "Both unusable" votes carry no preference and are left out.
Confidence intervals: percentile bootstrap over comparisons (resampled whole, then refitted).

Position bias: with sides drawn at random per assignment, an unbiased annotator picks the left
output in half of their decisive votes (ties and "both unusable" excluded). The report gives the
left rate with a Wilson interval per annotator, and overall with a bootstrap over annotators
(one annotator's votes are not independent), plus the implied share of votes decided by
position alone: 2 * (left rate - 0.5) (an annotator who picks left with probability b
regardless of content and judges honestly otherwise has left rate 0.5 + b/2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

WIN, TIE = 1.0, 0.5
BOOTSTRAP = 200
RIDGE = 1e-4  # keeps strengths finite for a player that never lost (or never won)


@dataclass(frozen=True)
class Vote:
    """One comparison: `winner` is "a", "b" or "tie" between players a and b."""

    a: object
    b: object
    winner: str


@dataclass(frozen=True)
class Ranked:
    player: object
    score: float
    ci_low: float | None
    ci_high: float | None
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    win_rate_ci: tuple[float, float] | None

    @property
    def comparisons(self) -> int:
        return self.wins + self.losses + self.ties


@dataclass(frozen=True)
class Ranking:
    entries: list[Ranked]  # strongest first
    tie_parameter: float
    n_votes: int


def _counts(index_a: np.ndarray, index_b: np.ndarray, outcome: np.ndarray, n: int):
    """W[i, j]: times i beat j; T[i, j]: ties between i and j (both directions filled)."""
    wins = np.zeros((n, n))
    ties = np.zeros((n, n))
    a_won, b_won, tied = outcome == 0, outcome == 1, outcome == 2
    np.add.at(wins, (index_a[a_won], index_b[a_won]), 1)
    np.add.at(wins, (index_b[b_won], index_a[b_won]), 1)
    np.add.at(ties, (index_a[tied], index_b[tied]), 1)
    np.add.at(ties, (index_b[tied], index_a[tied]), 1)
    return wins, ties


def _fit(wins: np.ndarray, ties: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Maximum likelihood (L-BFGS with the analytic gradient). wins: ordered counts; ties:
    symmetric counts."""
    n = wins.shape[0]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    games = wins + wins.T + ties  # symmetric: comparisons between i and j
    wins_of = wins.sum(axis=1)
    ties_of = ties.sum(axis=1)
    total_ties = ties[upper].sum()

    def objective(params):
        theta, log_nu = params[:n], params[n]
        half = (theta[:, None] + theta[None, :]) / 2
        log_d = np.logaddexp(np.logaddexp(theta[:, None], theta[None, :]), log_nu + half)
        p_win = np.exp(theta[:, None] - log_d)  # P(i beats j)
        p_tie = np.exp(log_nu + half - log_d)
        value = (-(wins_of @ theta) - total_ties * log_nu - (ties[upper] * half[upper]).sum()
                 + (games[upper] * log_d[upper]).sum() + RIDGE * (theta ** 2).sum())
        np.fill_diagonal(p_win, 0.0)
        np.fill_diagonal(p_tie, 0.0)
        grad_theta = -wins_of - ties_of / 2 + (games * (p_win + p_tie / 2)).sum(axis=1) + 2 * RIDGE * theta
        grad_nu = -total_ties + (games[upper] * p_tie[upper]).sum()
        return value, np.append(grad_theta, grad_nu)

    if start is None:
        start = np.zeros(n + 1)
        start[n] = math.log(max(total_ties, 0.5) / max(wins.sum(), 1.0))
    bounds = [(-20, 20)] * n + [(-20, 5)]
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
    theta = result.x[:n] - result.x[:n].mean()
    return theta, float(math.exp(result.x[n]))


def _fit_from(wins, ties, theta, nu):
    """A bootstrap refit started at the point estimate (a few iterations instead of dozens)."""
    return _fit(wins, ties, np.append(theta, math.log(max(nu, 1e-9))))


def _encode(votes: list[Vote]):
    players = sorted({vote.a for vote in votes} | {vote.b for vote in votes}, key=str)
    index = {player: i for i, player in enumerate(players)}
    kept = [vote for vote in votes if vote.winner in ("a", "b", "tie") and vote.a != vote.b]
    a = np.array([index[v.a] for v in kept], dtype=int)
    b = np.array([index[v.b] for v in kept], dtype=int)
    outcome = np.array([{"a": 0, "b": 1, "tie": 2}[v.winner] for v in kept], dtype=int)
    return players, a, b, outcome


def bradley_terry(votes: list[Vote], *, bootstrap: int = BOOTSTRAP, seed: int = 0, confidence: float = 0.95) -> Ranking:
    players, a, b, outcome = _encode(votes)
    n = len(players)
    if n < 2 or not len(outcome):
        return Ranking([], 0.0, 0)
    wins, ties = _counts(a, b, outcome, n)
    theta, nu = _fit(wins, ties)
    rng = np.random.default_rng(seed)
    thetas, rates = [], []
    for _ in range(bootstrap):
        sample = rng.integers(0, len(outcome), len(outcome))
        w, t = _counts(a[sample], b[sample], outcome[sample], n)
        thetas.append(_fit_from(w, t, theta, nu)[0])
        rates.append(_win_rates(w, t))
    alpha = (1 - confidence) / 2
    low, high = (np.quantile(thetas, [alpha, 1 - alpha], axis=0) if bootstrap else (None, None))
    rate_low, rate_high = (np.nanquantile(rates, [alpha, 1 - alpha], axis=0) if bootstrap else (None, None))
    rates_point = _win_rates(wins, ties)
    entries = []
    for i, player in enumerate(players):
        rate = None if math.isnan(rates_point[i]) else float(rates_point[i])
        entries.append(Ranked(
            player=player, score=float(theta[i]),
            ci_low=float(low[i]) if bootstrap else None, ci_high=float(high[i]) if bootstrap else None,
            wins=int(wins[i].sum()), losses=int(wins[:, i].sum()), ties=int(ties[i].sum()),
            win_rate=rate,
            win_rate_ci=(float(rate_low[i]), float(rate_high[i])) if bootstrap and rate is not None else None,
        ))
    entries.sort(key=lambda entry: -entry.score)
    return Ranking(entries, nu, int(len(outcome)))


def _win_rates(wins: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """(wins + ties / 2) / comparisons per player; NaN for a player without comparisons."""
    played = wins.sum(axis=1) + wins.sum(axis=0) + ties.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (wins.sum(axis=1) + TIE * ties.sum(axis=1)) / played


# --- position bias ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeftRate:
    who: object  # an annotator id, or "all"
    left: int
    decisive: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None  # two-sided binomial test against 0.5

    @property
    def position_share(self) -> float | None:
        """Share of votes decided by side alone, under the model in the module docstring."""
        return None if self.rate is None else 2 * (self.rate - 0.5)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    if not n:
        return None, None
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _left_rate(who, left: int, decisive: int) -> LeftRate:
    low, high = wilson(left, decisive)
    p_value = float(stats.binomtest(left, decisive, 0.5).pvalue) if decisive else None
    return LeftRate(who, left, decisive, left / decisive if decisive else None, low, high, p_value)


def position_bias(choices: list[tuple[object, bool]], *, bootstrap: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> tuple[LeftRate, list[LeftRate]]:
    """choices: (annotator, chose_left) for each decisive vote. Returns (overall, per annotator)."""
    per: dict[object, list[int]] = {}
    for who, chose_left in choices:
        per.setdefault(who, []).append(1 if chose_left else 0)
    rows = [_left_rate(who, sum(v), len(v)) for who, v in sorted(per.items(), key=lambda kv: str(kv[0]))]
    left = sum(row.left for row in rows)
    decisive = sum(row.decisive for row in rows)
    overall = _left_rate("all", left, decisive)
    if decisive and len(per) > 1 and bootstrap:
        # Cluster bootstrap: resample annotators, keep each one's votes together.
        lefts = np.array([row.left for row in rows], dtype=float)
        totals = np.array([row.decisive for row in rows], dtype=float)
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(rows), (bootstrap, len(rows)))
        rates = lefts[draws].sum(axis=1) / totals[draws].sum(axis=1)
        alpha = (1 - confidence) / 2
        low, high = np.quantile(rates, [alpha, 1 - alpha])
        overall = LeftRate("all", left, decisive, overall.rate, float(low), float(high), overall.p_value)
    return overall, rows
