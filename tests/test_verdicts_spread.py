"""PAPER.md 5.2 item 4, "a robust model's spread of ΔE(x) is at least 5x smaller than the standard
model's", as a measurement (`verdicts.spread_ratio(s)`): planted per-image values whose sample standard
deviations are exact by construction (a fixed-seed draw rescaled to the wanted std), so each ratio is
known and every outcome (reproduced / not reproduced / inconclusive) has a known answer."""
import numpy as np
import pandas as pd
import pytest

from energy_lib import verdicts as V


def planted(n, sd, seed, mean=0.0):
    """n values with sample mean `mean` and sample standard deviation (ddof 1) exactly `sd`."""
    z = np.random.default_rng(seed).standard_normal(n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_ratio_well_above_five_is_reproduced():
    r = V.spread_ratio(planted(400, 10.0, 0), planted(400, 1.0, 1))
    assert r.statistic == pytest.approx(10.0, rel=1e-12) and r.std_reference == pytest.approx(10.0)
    assert r.verdict == V.REPRODUCED and 5 < r.ci[0] < 10 < r.ci[1] < 20
    assert r.n == 400 and r.paired and 1 < r.mde < 1.5
    assert "= 10× [" in r.statistic_text and "detectable" in r.statistic_text and "as the paper expects" in r.sentence
    row = r.summary("robust spread ≥ 5x smaller", "5.2", "at least 5x")
    assert row["verdict"] == V.REPRODUCED and row["this build"] == r.statistic_text


def test_ratio_well_below_five_is_not_reproduced():
    r = V.spread_ratio(planted(400, 2.0, 0), planted(400, 1.0, 1))
    assert r.statistic == pytest.approx(2.0, rel=1e-12)
    assert r.verdict == V.NOT_REPRODUCED and r.ci[1] < 5 and r.ci[0] < 2 < r.ci[1]


@pytest.mark.parametrize("n", [30, 400])
def test_ratio_at_the_threshold_is_inconclusive(n):
    """A measured ratio of exactly 5 can never be told apart from 5, at any sample size."""
    r = V.spread_ratio(planted(n, 5.0, 2), planted(n, 1.0, 3))
    assert r.statistic == pytest.approx(5.0, rel=1e-12)
    assert r.verdict == V.INCONCLUSIVE_SCALE and r.ci[0] < 5 < r.ci[1]
    assert "would have been detected" in r.sentence


def test_too_little_noise_to_decide_is_inconclusive_and_says_its_smallest_effect():
    """Ratio 8 on 12 images: the interval reaches below 5; on 400 images the same ratio is decided."""
    small = V.spread_ratio(planted(12, 8.0, 4), planted(12, 1.0, 5))
    large = V.spread_ratio(planted(400, 8.0, 4), planted(400, 1.0, 5))
    assert small.verdict == V.INCONCLUSIVE_SCALE and small.ci[0] < 5 < small.ci[1]
    assert large.verdict == V.REPRODUCED
    assert large.mde < small.mde          # more images, a smaller detectable factor


def test_the_ratio_is_scale_free_and_the_threshold_is_the_claims():
    a, b = planted(200, 7.0, 6), planted(200, 1.0, 7)
    base = V.spread_ratio(a, b)
    scaled = V.spread_ratio(3.0 * a + 1.0, 3.0 * b - 2.0)       # same images, another energy unit / offset
    assert scaled.statistic == pytest.approx(base.statistic) and scaled.ci == pytest.approx(base.ci)
    assert scaled.verdict == base.verdict == V.REPRODUCED
    assert V.spread_ratio(a, b, threshold=10).verdict == V.NOT_REPRODUCED   # 7x is not 10x
    with pytest.raises(ValueError, match="threshold"):
        V.spread_ratio(a, b, threshold=0)


def test_pairing_by_image_id_and_its_errors():
    a, b = planted(100, 9.0, 8), planted(100, 1.0, 9)
    ids = np.arange(100)
    shuffled = np.random.default_rng(0).permutation(100)
    aligned = V.spread_ratio(pd.Series(a, index=ids), pd.Series(b[shuffled], index=ids[shuffled]))
    assert aligned.ci == pytest.approx(V.spread_ratio(a, b).ci)          # aligned on the image ids
    with pytest.raises(ValueError, match="same images"):
        V.spread_ratio(a, b[:50])
    unpaired = V.spread_ratio(a, b[:50], paired=False)
    assert not unpaired.paired and unpaired.verdict in V.REPRODUCTION


def test_no_spread_or_too_few_values_is_inconclusive():
    flat = V.spread_ratio(planted(50, 3.0, 10), np.zeros(50))
    assert flat.verdict == V.INCONCLUSIVE_SCALE and np.isnan(flat.statistic) and "spread of 0" in flat.sentence
    few = V.spread_ratio([1.0, 2.0], [0.1, 0.2])
    assert few.verdict == V.INCONCLUSIVE_SCALE and "too few" in few.sentence
    assert "not measurable" in few.statistic_text


def test_every_robust_model_must_be_five_times_tighter():
    standard = planted(400, 10.0, 0)
    tight = {"TRADES": planted(400, 1.0, 1), "AWP": planted(400, 1.25, 2)}             # 10x and 8x
    both = V.spread_ratios(standard, tight)
    assert both.verdict == V.REPRODUCED and set(both.ratios) == {"TRADES", "AWP"}
    assert both.statistic_text.startswith("2 of 2 robust models ≥ 5× tighter") and "least: AWP" in both.statistic_text
    wide = V.spread_ratios(standard, {**tight, "SAT": planted(400, 5.0, 3)})          # 2x: below 5
    assert wide.verdict == V.NOT_REPRODUCED and wide.ratios["SAT"].verdict == V.NOT_REPRODUCED
    edge = V.spread_ratios(standard, {**tight, "MART": planted(400, 2.0, 4)})         # exactly 5x: undecided
    assert edge.verdict == V.INCONCLUSIVE_SCALE and "1." not in edge.statistic_text.split(";")[0]
    assert edge.statistic_text.startswith("2 of 3 robust models")
    assert V.spread_ratios(standard, {}).verdict == V.INCONCLUSIVE_SCALE


def test_not_reproduced_over_several_models_is_bonferroni_corrected():
    """A model whose 95 % interval just misses 5 from below is not enough to reject the claim for the
    family of 4 models when its 98.75 % interval reaches 5."""
    standard = planted(60, 3.8, 11)
    close = planted(60, 1.0, 12)
    alone = V.spread_ratio(standard, close)
    strict = V.spread_ratio(standard, close, level=1 - 0.05 / 4)
    assert alone.verdict == V.NOT_REPRODUCED and strict.verdict == V.INCONCLUSIVE_SCALE
    family = V.spread_ratios(standard, {"close": close, **{f"m{i}": planted(60, 0.2, 20 + i) for i in range(3)}})
    assert family.verdict == V.INCONCLUSIVE_SCALE


def test_replicated_over_models_names_models():
    found = V.replicated({"TRADES": V.REPRODUCED, "AWP": V.REPRODUCED}, "mean ΔE(x,y) < 0", expected=V.REPRODUCED,
                         opposite=V.NOT_REPRODUCED, min_runs=1, unit="models")
    assert found.verdict == V.REPRODUCED and found.statistic_text == "2 of 2 models reproduced"
    assert "every one of the 2 models" in found.sentence
    assert V.replicated({"s10": V.PRESENT}, "CO").sentence.startswith("1 run(s) read")
