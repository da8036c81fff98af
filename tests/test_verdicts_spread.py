"""PAPER.md 5.2 item 4, "a robust model's spread of ΔE(x) is at least 5x smaller than the standard
model's", as a measurement (`verdicts.spread_ratio(s)`): planted per-image values whose sample standard
deviations are exact by construction (a fixed-seed draw rescaled to the wanted std), so each ratio is
known and every outcome (reproduced / not reproduced / inconclusive) has a known answer."""
import math

import numpy as np
import pandas as pd
import pytest

from energy_lib import regime as R
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
    learned = V.model_regime(0.6, 400, 10, ce=1.2)
    both = V.spread_ratios(standard, tight, regimes=dict.fromkeys(tight, learned))
    assert both.verdict == V.REPRODUCED and set(both.ratios) == {"TRADES", "AWP"}
    assert both.statistic_text.startswith("2 of 2 robust models ≥ 5× tighter") and "least: AWP" in both.statistic_text
    wide = V.spread_ratios(standard, {**tight, "SAT": planted(400, 5.0, 3)},
                           regimes=dict.fromkeys([*tight, "SAT"], learned))          # 2x: below 5
    assert wide.verdict == V.NOT_REPRODUCED and wide.ratios["SAT"].verdict == V.NOT_REPRODUCED
    edge = V.spread_ratios(standard, {**tight, "MART": planted(400, 2.0, 4)},
                           regimes=dict.fromkeys([*tight, "MART"], learned))         # exactly 5x: undecided
    assert edge.verdict == V.INCONCLUSIVE_SCALE and "1." not in edge.statistic_text.split(";")[0]
    assert edge.statistic_text.startswith("2 of 3 robust models")
    assert V.spread_ratios(standard, {}, regimes={}).verdict == V.INCONCLUSIVE_SCALE


def test_not_reproduced_over_several_models_is_bonferroni_corrected():
    """A model whose 95 % interval just misses 5 from below is not enough to reject the claim for the
    family of 4 models when its 98.75 % interval reaches 5."""
    standard = planted(60, 3.8, 11)
    close = planted(60, 1.0, 12)
    alone = V.spread_ratio(standard, close)
    strict = V.spread_ratio(standard, close, level=1 - 0.05 / 4)
    assert alone.verdict == V.NOT_REPRODUCED and strict.verdict == V.INCONCLUSIVE_SCALE
    models = {"close": close, **{f"m{i}": planted(60, 0.2, 20 + i) for i in range(3)}}
    family = V.spread_ratios(standard, models, regimes=dict.fromkeys(models, V.model_regime(0.6, 60, 10, ce=1.2)))
    assert family.verdict == V.INCONCLUSIVE_SCALE


def test_replicated_over_models_names_models():
    found = V.replicated({"TRADES": V.REPRODUCED, "AWP": V.REPRODUCED}, "mean ΔE(x,y) < 0", expected=V.REPRODUCED,
                         opposite=V.NOT_REPRODUCED, min_runs=1, unit="models")
    assert found.verdict == V.REPRODUCED and found.statistic_text == "2 of 2 models reproduced"
    assert "every one of the 2 models" in found.sentence
    assert V.replicated({"s10": V.PRESENT}, "CO").sentence.startswith("CO: 1 run(s) read")


# ----------------------------------------------------------------------------- the robust model's regime
# A network that never learned (a near-constant output: one smoke-build run came out 12,664x tighter than the
# standard model) passes "at least 5x tighter" trivially. Each robust model is read with its regime on the
# same images (verdicts.model_regime, the rule of energy_lib.regime): never learned -> inconclusive at this scale.
LN10 = math.log(10)
LEARNED = dict(clean=0.6, n_images=400, n_classes=10, ce=1.2)                 # 60 % clean, CE 1.1 nats below ln 10
NEVER = dict(clean=0.1, n_images=400, n_classes=10, ce=LN10 - 0.001)         # a constant output: chance, uniform CE


def test_model_regime_is_the_run_regimes_rule_on_one_point():
    """One point on 1000 images, Wilson at 95 %: 225 right is above 2x chance (lower bound 0.2002), 224
    is not (0.1992); near-uniform predictions never learned, however accurate; the figures are its own."""
    assert V.model_regime(0.225, 1000, 10, ce=1.0).learned
    assert not V.model_regime(0.224, 1000, 10, ce=1.0).learned
    assert not V.model_regime(0.9, 1000, 10, ce=LN10 - 0.05).learned         # within 0.1 ln K of ln K
    frame = pd.DataFrame({"test_acc_nat": [0.225], "test_acc_adv": [np.nan], "test_ce_nat": [1.0]})
    same = R.regime_from_metrics(frame, n_test=1000, n_train_track=0, n_classes=10)
    assert V.model_regime(0.225, 1000, 10, ce=1.0).clean_best_ci == same.clean_best_ci
    never = V.model_regime(**NEVER, steps=32)
    assert not never.learned and not never.diverged
    assert never.never_learned_text == ("the network never learned: its best clean test accuracy is 10.0% "
                                        "[7.4%, 13.3%] on 400 images, not significantly above 2x chance (20%); clean "
                                        "CE is 0.00 nats below the uniform prediction's ln K after 32 optimizer steps")
    with pytest.raises(ValueError, match="clean accuracy"):
        V.model_regime(1.5, 10, 10)


def test_a_learned_tight_model_is_reproduced():
    r = V.spread_ratio(planted(400, 10.0, 0), planted(400, 1.0, 1), labels=("standard", "TRADES"),
                       regime=V.model_regime(**LEARNED))
    assert r.statistic == pytest.approx(10.0, rel=1e-12)
    assert r.verdict == V.REPRODUCED and r.untestable == "" and "as the paper expects" in r.sentence
    assert r.statistic_text.startswith("std ΔE(x) standard / TRADES = 10× [")


def test_a_never_learned_constant_model_is_inconclusive_not_reproduced():
    """A near-constant output 12,664x tighter than the standard model: without its regime the claim
    comes out 'reproduced' (the defect); with it, 'inconclusive at this scale', with the figures."""
    standard, flat = planted(400, 10.0, 0), planted(400, 10.0 / 12664, 1)
    assert V.spread_ratio(standard, flat).verdict == V.REPRODUCED                 # what the book said before
    r = V.spread_ratio(standard, flat, labels=("standard", "smoke SAT"), regime=V.model_regime(**NEVER, steps=4))
    assert r.statistic == pytest.approx(12664, rel=1e-12) and r.ci[0] > 5      # measured, and far above 5 ...
    assert r.verdict == V.INCONCLUSIVE_SCALE                                     # ... but not read
    assert r.untestable.startswith("the network never learned: its best clean test accuracy is 10.0% [7.4%, 13.3%]")
    assert r.statistic_text == "not testable here: the network never learned (n = 400; its 12,664× is not read)"
    assert r.sentence.startswith("the network never learned") and "after 4 optimizer steps" in r.sentence
    assert "12,664x tighter" in r.sentence and r.sentence.endswith("inconclusive at this scale")
    assert r.summary("robust spread ≥ 5x smaller", "5.2", "at least 5x")["verdict"] == V.INCONCLUSIVE_SCALE
    # an exactly constant output has no ratio at all: still the regime's reason first
    zero = V.spread_ratio(standard, np.zeros(400), regime=V.model_regime(**NEVER))
    assert zero.verdict == V.INCONCLUSIVE_SCALE and np.isnan(zero.statistic)
    assert zero.sentence.startswith("the network never learned") and "spread of 0" in zero.sentence
    assert zero.statistic_text == "not testable here: the network never learned (n = 400)"


def test_only_never_learned_models_cannot_reproduce_the_claim():
    standard = planted(400, 10.0, 0)
    flat = {"smoke SAT": planted(400, 10.0 / 12664, 1), "smoke TRADES": planted(400, 0.01, 2)}
    both = V.spread_ratios(standard, flat,
                           regimes={"smoke SAT": V.model_regime(**NEVER), "smoke TRADES": V.model_regime(**NEVER)})
    assert both.verdict == V.INCONCLUSIVE_SCALE and not both.counted and set(both.never_learned) == {"smoke SAT",
                                                                                                     "smoke TRADES"}
    assert both.statistic_text == "not testable here: none of the 2 robust models learned (smoke SAT, smoke TRADES)"
    assert "none of the 2 robust models learned" in both.sentence
    assert "smoke SAT: the network never learned, its 12,664x not read" in both.sentence


def test_a_mix_reads_the_models_that_learned_and_names_the_others():
    standard = planted(400, 10.0, 0)
    tight, flat, wide = planted(400, 1.0, 1), planted(400, 10.0 / 12664, 2), planted(400, 5.0, 3)   # 10x, 12,664x, 2x
    learned, never = V.model_regime(**LEARNED), V.model_regime(**NEVER)
    mix = V.spread_ratios(standard, {"reference": tight, "smoke SAT": flat},
                          regimes={"reference": learned, "smoke SAT": never})
    assert mix.verdict == V.REPRODUCED
    assert list(mix.counted) == ["reference"] and list(mix.never_learned) == ["smoke SAT"]
    assert mix.statistic_text.startswith("1 of 1 learned robust models ≥ 5× tighter beyond the noise; "
                                         "least: reference")
    assert mix.statistic_text.endswith("; 1 never learned, not counted (smoke SAT)")
    assert "every robust model that learned is at least 5x tighter" in mix.sentence
    assert "left out of the claim, because the network never learned" in mix.sentence
    assert "smoke SAT (its best clean test accuracy is 10.0% [7.4%, 13.3%] on 400 images" in mix.sentence
    # the never-learned model's 12,664x can neither carry the claim nor hide a learned model's failure
    failing = V.spread_ratios(standard, {"SAT": wide, "smoke SAT": flat}, regimes={"SAT": learned, "smoke SAT": never})
    assert failing.verdict == V.NOT_REPRODUCED and "Bonferroni over 1 models" in failing.sentence
    assert failing.statistic_text.startswith("0 of 1 learned robust models") and "least: SAT" in failing.statistic_text
    # learned models are read as before: the same verdicts and intervals whatever joins them
    alone = V.spread_ratios(standard, {"reference": tight}, regimes={"reference": learned})
    assert alone.verdict == V.REPRODUCED and alone.ratios["reference"].ci == mix.ratios["reference"].ci
    assert alone.statistic_text.startswith("1 of 1 robust models") and "never learned" not in alone.sentence


def test_spread_ratios_needs_every_robust_models_regime():
    standard = planted(400, 10.0, 0)
    with pytest.raises(ValueError, match=r"regime of every robust model.*\['smoke SAT'\]"):
        V.spread_ratios(standard, {"reference": planted(400, 1.0, 1), "smoke SAT": planted(400, 0.001, 2)},
                        regimes={"reference": V.model_regime(**LEARNED)})
    with pytest.raises(TypeError):
        V.spread_ratios(standard, {"reference": planted(400, 1.0, 1)})              # the regimes are not optional
    assert V.spread_ratios(standard, {}, regimes={}).verdict == V.INCONCLUSIVE_SCALE


# ----------------------------------------------------------------------------- the sign of mean ΔE(x,y), by regime
# Chapter 6's "a robust model's mean ΔE(x,y) is negative" counts models with verdicts.replicated; a model whose
# network never learned (the smoke build's 2-epoch SAT run: 6.2 % clean on 16 images) is left out of the count
# and named with its figures (regimes=, the same verdicts.model_regime objects as spread_ratios').
SMOKE_NEVER = dict(clean=1 / 16, n_images=16, n_classes=10, ce=LN10 - 0.001, steps=8)


def _joint_sign(found, regimes=None, min_runs=1):
    kw = {} if regimes is None else {"regimes": regimes}
    return V.replicated(found, "mean ΔE(x,y) below 0", expected=V.REPRODUCED, opposite=V.NOT_REPRODUCED,
                        min_runs=min_runs, unit="models", **kw)


def test_a_never_learned_model_cannot_flip_the_sign_row():
    learned, never = V.model_regime(**LEARNED), V.model_regime(**SMOKE_NEVER)
    # measured verdicts (mean_shift on planted values): the learned model's ΔE(x,y) clearly below 0, the
    # never-learned one's clearly above: counted together the models disagree (inconclusive)
    below, above = V.mean_shift(planted(400, 0.3, 1, mean=-0.5), -1), V.mean_shift(planted(16, 0.01, 2, mean=0.02), -1)
    assert (below.verdict, above.verdict) == (V.REPRODUCED, V.NOT_REPRODUCED)
    found = {"reference": below.verdict, "smoke SAT": above.verdict}
    assert _joint_sign(found).verdict == V.INCONCLUSIVE_SCALE                       # what the book said before
    kept = _joint_sign(found, {"reference": learned, "smoke SAT": never})
    assert kept.verdict == V.REPRODUCED and kept.counted == {"reference": V.REPRODUCED}
    assert kept.never_learned == {"smoke SAT": never.never_learned_text}
    assert kept.statistic_text == "1 of 1 learned models reproduced; 1 never learned, not counted (smoke SAT)"
    assert kept.sentence.startswith("mean ΔE(x,y) below 0 in every one of the 1 models that learned (reference: "
                                    "reproduced, smoke SAT: not reproduced, not read (the network never learned))")
    assert kept.sentence.endswith("; left out of the claim, because the network never learned: smoke SAT (its best "
                                  "clean test accuracy is 6.2% [1.1%, 28.3%] on 16 images, not significantly above 2x "
                                  "chance (20%); clean CE is 0.00 nats below the uniform prediction's ln K after 8 "
                                  "optimizer steps)")
    # ... nor carry it: a learned model above 0 is "not reproduced" whatever a never-learned one shows
    against = _joint_sign({"SAT": V.NOT_REPRODUCED, "smoke SAT": V.REPRODUCED}, {"SAT": learned, "smoke SAT": never})
    assert against.verdict == V.NOT_REPRODUCED and against.statistic_text.startswith("0 of 1 learned models")
    alone = _joint_sign({"smoke SAT": V.REPRODUCED})
    assert alone.verdict == V.REPRODUCED                                           # what the book said before
    assert _joint_sign({"smoke SAT": V.REPRODUCED}, {"smoke SAT": never}).verdict == V.INCONCLUSIVE_SCALE


def test_the_sign_row_over_a_mix_and_with_none_learned():
    learned, never = V.model_regime(**LEARNED), V.model_regime(**SMOKE_NEVER)
    mix = _joint_sign({"reference": V.REPRODUCED, "TRADES": V.REPRODUCED, "smoke SAT": V.REPRODUCED},
                      {"reference": learned, "TRADES": learned, "smoke SAT": never})
    assert mix.verdict == V.REPRODUCED and list(mix.counted) == ["reference", "TRADES"]
    assert mix.statistic_text == "2 of 2 learned models reproduced; 1 never learned, not counted (smoke SAT)"
    assert "every one of the 2 models that learned" in mix.sentence and "6.2% [1.1%, 28.3%] on 16 images" in mix.sentence
    # all learned: exactly the old texts
    same = _joint_sign({"reference": V.REPRODUCED, "TRADES": V.REPRODUCED}, {"reference": learned, "TRADES": learned})
    plain = _joint_sign({"reference": V.REPRODUCED, "TRADES": V.REPRODUCED})
    assert (same.verdict, same.statistic_text, same.sentence) == (plain.verdict, plain.statistic_text, plain.sentence)
    assert same.statistic_text == "2 of 2 models reproduced" and not same.never_learned
    # none learned: inconclusive at this scale, the models named with their figures
    none = _joint_sign({"smoke SAT": V.REPRODUCED, "smoke TRADES": V.REPRODUCED},
                       {"smoke SAT": never, "smoke TRADES": never})
    assert none.verdict == V.INCONCLUSIVE_SCALE and not none.counted
    assert none.statistic_text == "not testable here: none of the 2 models learned (smoke SAT, smoke TRADES)"
    assert none.sentence.startswith("none of the 2 models learned, so mean ΔE(x,y) below 0 cannot be read in this "
                                    "build: inconclusive at this scale")
    assert "smoke TRADES (its best clean test accuracy is 6.2%" in none.sentence
    assert none.summary("mean ΔE(x,y) < 0", "5.2", "negative")["verdict"] == V.INCONCLUSIVE_SCALE
    # fewer learned models than a replication needs
    few = _joint_sign({"s10": V.REPRODUCED, "s11": V.REPRODUCED}, {"s10": learned, "s11": never}, min_runs=2)
    assert few.verdict == V.INCONCLUSIVE_SCALE
    assert few.sentence.startswith("mean ΔE(x,y) below 0: only 1 of the 2 models learned, fewer than the 2 a "
                                   "replication needs")


def test_the_sign_row_needs_every_models_regime():
    with pytest.raises(ValueError, match=r"regime of every one of the models.*\['smoke SAT'\]"):
        _joint_sign({"reference": V.REPRODUCED, "smoke SAT": V.REPRODUCED}, {"reference": V.model_regime(**LEARNED)})
    empty = _joint_sign({}, {})
    assert empty.verdict == V.INCONCLUSIVE_SCALE and empty.statistic_text == "0 of 0 models reproduced"
