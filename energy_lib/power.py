"""What a comparison could have detected, and intervals for differences of accuracies.

A verdict that says "inconclusive" must say what it rules out: the smallest effect its data could
have detected (the minimum detectable effect, MDE: at 80 % power and the 5 % two-sided level) and,
beside a paper's effect, how many images that effect would need. Formulas:

* paired proportions (two models on the same images, McNemar): with discordance ψ = (b + c) / n and
  difference δ, n = [z_{α/2}·√ψ + z_β·√(ψ − δ²)]² / δ² (Connor 1987); the MDE solves it for δ;
* two independent proportions at a common level p: δ = (z_{α/2} + z_β)·√(2p(1 − p)/n);
* any statistic with a standard error: δ = (z_{α/2} + z_β)·SE.

Intervals of an accuracy difference: Newcombe's hybrid score intervals (Newcombe 1998; method 10
for paired and for independent proportions), built from the Wilson intervals of the two
accuracies (and, paired, the φ correlation of the 2x2 table). They stay inside [-1, 1] and behave
at 0 or n successes, unlike the Wald interval.

Equivalence (`equivalent`): two one-sided tests at level α, i.e. the (1 − 2α) interval of the
difference lies inside (−margin, +margin). "No difference was detected" is not equivalence.

A low module: numpy and scipy only.
"""
from __future__ import annotations

import math

from scipy import optimize, stats

ALPHA = 0.05      # two-sided level of every test whose power is stated
POWER = 0.80


def _z(p: float) -> float:
    return float(stats.norm.ppf(p))


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy.stats.binomtest)."""
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def mde_from_se(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true effect a test with this standard error detects with probability `power`."""
    return (_z(1 - alpha / 2) + _z(power)) * float(se)


def correlation_mde(n: int, alpha: float = ALPHA, power: float = POWER, one_sided: bool = True) -> float:
    """Smallest |ρ| a rank correlation over `n` points detects with probability `power` (Fisher's z
    approximation, |ρ| = tanh((z_α + z_power) / √(n − 3)); approximate for small n); nan for n ≤ 3."""
    if n <= 3:
        return float("nan")
    z_alpha = _z(1 - alpha) if one_sided else _z(1 - alpha / 2)
    return math.tanh((z_alpha + _z(power)) / math.sqrt(n - 3))


def paired_n_needed(delta: float, discordance: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Images a paired comparison needs to detect a difference `delta` of accuracies when a share
    `discordance` of the images is classified differently by the two models (Connor 1987).
    inf when the difference cannot arise at that discordance (δ² ≥ ψ) or δ = 0."""
    d, psi = abs(float(delta)), float(discordance)
    if d == 0 or psi <= 0 or d >= psi:   # |b − c| / n can never exceed (b + c) / n
        return math.inf
    za, zb = _z(1 - alpha / 2), _z(power)
    return (za * math.sqrt(psi) + zb * math.sqrt(psi - d * d)) ** 2 / (d * d)


def paired_mde(n: int, discordance: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest accuracy difference a paired comparison of `n` images at this discordance detects
    (`paired_n_needed` solved for δ ≤ ψ); nan without discordance (nothing to plan from), inf when no
    possible difference would be detected with `n` images."""
    psi = float(discordance)
    if n < 1 or psi <= 0:
        return float("nan")
    top = psi * (1 - 1e-9)               # the difference can be at most the discordance
    if paired_n_needed(top, psi, alpha, power) > n:   # even the largest possible difference is not enough
        return math.inf
    return float(optimize.brentq(lambda d: paired_n_needed(d, psi, alpha, power) - n, 1e-9, top, xtol=1e-10))


def unpaired_mde(n: int, p: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest difference between two accuracies near `p`, each on `n` independent images."""
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return (_z(1 - alpha / 2) + _z(power)) * math.sqrt(2 * p * (1 - p) / n)


def newcombe_paired(both: int, only_a: int, only_b: int, neither: int,
                    level: float = 0.95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval of acc_a − acc_b from the paired 2x2 table: `both`
    right, `only_a` right, `only_b` right, `neither` right."""
    n = both + only_a + only_b + neither
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson(both + only_a, n, level)
    l2, u2 = wilson(both + only_b, n, level)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    # φ of the 2x2 table with Newcombe's continuity correction: a positive association counts
    # only beyond n/2, a negative one in full
    cross = both * neither - only_a * only_b
    corrected = cross - n / 2 if cross > n / 2 else cross if cross < 0 else 0.0
    phi = corrected / math.sqrt(denom) if denom > 0 else 0.0
    theta = p1 - p2
    lower = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    upper = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return theta - lower, theta + upper


def newcombe_unpaired(k_a: int, n_a: int, k_b: int, n_b: int, level: float = 0.95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) hybrid score interval of k_a/n_a − k_b/n_b (independent samples)."""
    p1, p2 = k_a / n_a, k_b / n_b
    l1, u1 = wilson(k_a, n_a, level)
    l2, u2 = wilson(k_b, n_b, level)
    theta = p1 - p2
    return theta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), theta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def equivalent(interval_90: tuple[float, float], margin: float) -> bool:
    """TOST at the 5 % level: the 90 % interval of the difference lies inside (−margin, +margin)."""
    return -margin < interval_90[0] and interval_90[1] < margin


def unpaired_n_needed(delta: float, p: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Images per group two independent accuracies near `p` need to detect a difference `delta`."""
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.inf if delta == 0 else (_z(1 - alpha / 2) + _z(power)) ** 2 * 2 * p * (1 - p) / float(delta) ** 2


def mde_text(mde: float, scale: float = 100.0, unit: str = " pt") -> str:
    """'4.2 pt' / 'not estimable' (no discordant image) / 'none with this many images' (inf: even the
    largest difference the discordance allows would be missed)."""
    if math.isnan(mde):
        return "not estimable (no discordant image)"
    if math.isinf(mde):
        return "none with this many images (even the largest difference the discordance allows would be missed)"
    return f"{scale * mde:.1f}{unit}"
