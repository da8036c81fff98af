"""Sizing the `default` profile (issue 10): the book's claims evaluated on one grid point's runs.

A grid point is a profile plus overrides: TrainConfig fields (n_train, epochs, model, fgsm_alpha,
...), chapter 2's single-step ε (`single_step_eps`, the chapter's parameter of that name) and the
evaluation fields of chapter 4 (`EVAL_FIELDS`: n_eval, autoattack, ...). `evaluate_point` trains or
loads the point's runs through `runs.train_or_load`, with the configs the chapters build
(`Point.train_configs`), so the point of the current `default` profile *is* the book's set of runs
and a rerun trains nothing. For each claim it computes the statistic and verdict that the chapter
computes, with the same `energy_lib.verdicts` call on the same inputs:

| claim                    | chapter        | runs                        | verdicts call |
|--------------------------|----------------|-----------------------------|---------------|
| energy_alignment         | 03_trades_ebm  | SAT, TRADES                 | energy_alignment(late_delta_e(...)) |
| robust_overfitting       | 02_at_phases   | SAT                         | robust_overfitting |
| catastrophic_overfitting | 02_at_phases   | FGSM-RS at single_step_eps  | catastrophic_overfitting |
| der_prevents_co          | 02_at_phases   | FGSM-RS, FGSM-RS + DER      | der_prevents_co |
| weat_vs_trades           | 04_weat_der    | WEAT_adv, TRADES (evaluated)| compare_records (compare_accuracy) |

Each row holds: point, claim, statistic, noise (the half-width of its 95 % interval, in the
statistic's units), the chapter's summary verdict (reproduced / not reproduced / inconclusive at
this scale), the verdict function's own verdict, the sentence, and the wall seconds of training of
the claim's runs. A point's cost is read from its runs' records (metrics.jsonl: `time_train_s` +
`time_track_s` per epoch; env.json: torch threads; evaluation records: seconds), never timed here,
so it is the same whether the runs were trained now or by `make book`.

The record of a sweep (`tools/size_default.py`) is `runs/sizing/sizing.json` (tracked in git) and the
appendix page `book/appendix_sizing.ipynb` shows it. Usage without the Makefile:

    PYTHONPATH=. python tools/size_default.py --grid default --dry-run
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Mapping

from . import book_runs, fileio, provenance, verdicts
from .power import mde_from_se
from .book_runs import SINGLE_STEP_EPS  # chapter 2's parameter `single_step_eps` (the CO literature's larger ε)
from .config import ConfigError, TrainConfig, WeatDerConfig, check_eps, resolve_device

EVAL_FIELDS = ("n_eval", "eval_pgd_steps", "autoattack", "aa_iters", "aa_target_classes", "aa_queries")
# every point trains the claims' fixed set of methods; the multi-step runs stay at the paper's ε
# (chapter 4 evaluates at TrainConfig's ε), the single-step ones move with single_step_eps
NOT_AXES = ("method", "name", "profile", "eps")
RECORD_KIND, RECORD_VERSION = "sizing", 1
CO_FRAC = 0.3                   # verdicts.catastrophic_overfitting's `frac`: collapsed = at most 30 % of the peak
Z95 = 1.959963984540054         # two-sided 95 % normal quantile (verdicts.LEVEL)

# label -> (method, uses the single-step ε): chapter 2's runs and chapter 4's WEAT_adv, the chapters' labels
RUN_METHODS = {**book_runs.CHAPTER2_RUNS, "WEAT_adv": ("weat_adv", False)}
# claim -> (chapter, PAPER.md section, claim text, runs it reads)
CLAIMS = {
    "energy_alignment": ("03_trades_ebm", "2.4, 5.2", "TRADES keeps ΔE(x) closer to 0 than SAT", ("SAT", "TRADES")),
    "robust_overfitting": ("02_at_phases", "2.2, 5.3", "Robust overfitting in SAT", ("SAT",)),
    "catastrophic_overfitting": ("02_at_phases", "2.3", "Catastrophic overfitting in single-step AT", ("FGSM-RS",)),
    "der_prevents_co": ("02_at_phases", "2.7, 5.3", "DER prevents catastrophic overfitting",
                        ("FGSM-RS", "FGSM-RS + DER")),
    "weat_vs_trades": ("04_weat_der", "4.1", "WEAT_adv more robust than TRADES", ("WEAT_adv", "TRADES")),
}
# chapter 4 trains more methods than the claims need (SAT + DER in the CPU profiles): the book's
# training cost is estimated with this many more multi-step runs of the point's mean multi-step cost
OTHER_BOOK_RUNS = len(set(WeatDerConfig().methods) - {method for method, _ in RUN_METHODS.values()})


# Named grids of tools/size_default.py: lists of partial points (overrides of the profile).
# `issue10` is the documented sweep: one factor at a time around the default profile (a full product
# would cost days on 2 cores; a ResNet cannot be trained there within the book's budget).
_SUBSET = [{"n_train": n} for n in (500, 1000, 2000)]
_EPOCHS = [{"epochs": e} for e in (30, 60)]
_SINGLE = [{"single_step_eps": e, "fgsm_alpha": a} for e in ("8/255", "12/255", "16/255") for a in (1.0, 1.25)]
# the default point again with other training seeds: the statistics' spread over seeds is the
# training noise that the verdicts' intervals (image sampling only) leave out. Only the training seed
# moves: chapter 4's evaluation seed (its attacks' random starts) stays the profile's, so every
# seed point is evaluated on the same images with the same attack seed: the spread is the training's.
SEEDS = (0, 1, 2)
_SEEDS = [{"seed": s} for s in SEEDS]
GRIDS = {
    "default": [{}],
    "subset": _SUBSET,
    "epochs": _EPOCHS,
    "single_step": _SINGLE,
    "seeds": _SEEDS,
    "model": [{"model": m} for m in ("small_cnn", "preact_resnet18")],
    "issue10": [{}, *_SUBSET, *_EPOCHS, *_SINGLE, *_SEEDS],
}
DOCUMENTED_GRID = "issue10"


class SizingError(ConfigError):
    """A grid point or a sizing record is invalid; the message says which and how to fix it."""


def record_path() -> Path:
    """runs/sizing/sizing.json at the repository root (tracked in git, whatever $ENERGY_RUNS is)."""
    return Path(__file__).resolve().parent.parent / "runs" / "sizing" / "sizing.json"


# ----------------------------------------------------------------------------- grid points
def _clean(value: Any) -> Any:
    """A JSON-friendly value: tuples as lists."""
    if isinstance(value, tuple):
        return [_clean(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Point:
    """One grid point: `profile` plus `values` (TrainConfig fields, `single_step_eps`, EVAL_FIELDS).
    Build it with `Point.make`, which checks every value and stores it normalised."""

    profile: str = "default"
    values: tuple = ()            # sorted (key, value) pairs, normalised by the configs

    @classmethod
    def make(cls, profile: str = "default", values: Mapping[str, Any] | None = None) -> "Point":
        values = dict(values or {})
        train_fields = set(TrainConfig.field_names())
        for key in values:
            if key in NOT_AXES or (key not in train_fields and key not in EVAL_FIELDS and key != "single_step_eps"):
                raise SizingError(f"unknown grid axis {key!r}: use a TrainConfig field (except "
                                  f"{', '.join(NOT_AXES)}), single_step_eps or one of {', '.join(EVAL_FIELDS)}")
        point = cls(profile, tuple(sorted(values.items())))
        base, weat = point.base_config(), point.eval_config()   # checks every value (ConfigError names it)
        if base.epochs < 2:
            raise SizingError(f"epochs={base.epochs}: the claims need at least 2 epochs (catastrophic overfitting "
                              "compares epochs)")
        normal = {}
        for key in values:
            if key == "single_step_eps":
                normal[key] = point.single_step_eps
            else:
                normal[key] = _clean(getattr(weat if key in EVAL_FIELDS else base, key))
        return cls(profile, tuple(sorted(normal.items())))

    @property
    def overrides(self) -> dict:
        return dict(self.values)

    @property
    def name(self) -> str:
        """Human name: the profile, then the overrides (e.g. 'default: epochs=60, n_train=1000')."""
        def show(v):
            if isinstance(v, float) and v < 1 and abs(v * 255 - round(v * 255)) < 1e-9 and v != 0:
                return f"{round(v * 255)}/255"
            return "all" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
        if not self.values:
            return self.profile
        return f"{self.profile}: " + ", ".join(f"{k}={show(v)}" for k, v in self.values)

    @property
    def single_step_eps(self) -> float:
        return check_eps(self.overrides.get("single_step_eps", SINGLE_STEP_EPS), "single_step_eps")

    def base_config(self) -> TrainConfig:
        """What a chapter's `TrainConfig.from_namespace(globals())` gives with these parameters."""
        train = {k: v for k, v in self.values if k not in EVAL_FIELDS and k != "single_step_eps"}
        return TrainConfig.from_profile(self.profile, **train)

    def eval_config(self) -> WeatDerConfig:
        return WeatDerConfig.from_profile(self.profile, **{k: v for k, v in self.values if k in EVAL_FIELDS})

    def train_configs(self) -> dict[str, TrainConfig]:
        """The claims' runs among those the chapters train with these parameters
        (`book_runs.chapter_configs`: chapter 2's, the single-step ones at `single_step_eps`, and
        chapter 4's WEAT_adv), so the default point's runs are `make book`'s."""
        runs = book_runs.chapter_configs(self.profile, {**dict(self.values), "single_step_eps": self.single_step_eps})
        return {label: runs[label] for label in RUN_METHODS}

    def identity(self) -> dict:
        """What defines the point's numbers: its runs' identities and the evaluation settings."""
        from .runs import identity

        weat = self.eval_config()
        return {"runs": {label: identity(cfg.canonical()) for label, cfg in self.train_configs().items()},
                "evaluation": {"settings": weat.eval_settings().identity(), "n_eval": weat.n_eval}}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]

    def run_dirs(self, root: Path | None = None) -> dict[str, Path]:
        from .runs import run_dir

        return {label: run_dir(cfg.canonical(), root) for label, cfg in self.train_configs().items()}


# ----------------------------------------------------------------------------- inputs the chapters compute
# ----------------------------------------------------------------------------- rows
def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _row(claim: str, result, statistic, noise, verdict: str, runs_used: dict, run_seconds: dict) -> dict:
    chapter, section, text, labels = CLAIMS[claim]
    return {"claim": claim, "chapter": chapter, "section": section, "text": text,
            "statistic": _finite(statistic), "noise": _finite(noise), "statistic_text": result.statistic_text,
            "verdict": verdict, "finding": result.verdict, "sentence": result.sentence,
            "runs": [runs_used[label] for label in labels],
            "train_s": round(sum(run_seconds[label] for label in labels), 1)}


def claim_rows(metrics: Mapping[str, Any], samples: Mapping[str, Any], records: Mapping[str, dict],
               n_test_track: int, run_names: Mapping[str, str], run_seconds: Mapping[str, float],
               n_classes: int, n_train_track: int | None = None) -> list[dict]:
    """The claims' rows from the runs' per-epoch metrics (label -> DataFrame), the SAT and TRADES
    tracked samples (label -> long DataFrame, `Run.tracked_samples`), the WEAT_adv and TRADES
    evaluation records (label -> `metrics.robust` record), as the chapters compute them.
    `n_classes`: the dataset's classes (chance level of the single-step runs' divergence check).
    Each existence claim reads its run's regime (`energy_lib.regime`; `n_train_track`: the tracked
    training images, default `n_test_track`), as the chapters do."""
    from .regime import regime_from_metrics

    def regime(label):
        return regime_from_metrics(verdicts.tracked_points(metrics[label]), n_test=n_test_track,
                                   n_train_track=n_train_track or n_test_track, n_classes=n_classes)
    rows = []
    alignment = verdicts.energy_alignment(verdicts.late_delta_e(samples["SAT"]), verdicts.late_delta_e(samples["TRADES"]))
    rows.append(_row("energy_alignment", alignment, alignment.statistic, (alignment.ci[1] - alignment.ci[0]) / 2,
                     alignment.verdict, run_names, run_seconds))
    ro = verdicts.robust_overfitting_of(metrics["SAT"], n_test_track, regime=regime("SAT"))
    rows.append(_row("robust_overfitting", ro, ro.statistic, Z95 * ro.se, verdicts.reproduction(ro.verdict),
                     run_names, run_seconds))
    co = {label: verdicts.catastrophic_overfitting_of(metrics[label], n_test_track, n_classes, regime=regime(label))
          for label in ("FGSM-RS", "FGSM-RS + DER")}
    base = co["FGSM-RS"]
    # statistic: the accuracy after the onset (or the final one) minus CO_FRAC x the peak, the level the
    # verdict calls collapsed; it takes either sign (after − peak would be <= 0 by construction, the
    # peak being the best of noisy epochs); noise: the binomial half-width of that accuracy
    level = base.after - CO_FRAC * base.peak
    level_se = math.sqrt(base.after * (1 - base.after) / base.n_images)
    rows.append(_row("catastrophic_overfitting", base, level, Z95 * level_se, verdicts.reproduction(base.verdict),
                     run_names, run_seconds))
    der = verdicts.der_prevents_co(base, co["FGSM-RS + DER"])
    rows.append(_row("der_prevents_co", der, der.final.statistic, (der.final.ci[1] - der.final.ci[0]) / 2,
                     der.verdict, run_names, run_seconds))
    # noise: the half-width of the comparison's own (Newcombe) interval, paired when both evaluation
    # records hold per-image outcomes, else unpaired; the row's sentence names the test
    weat = verdicts.compare_records(records["WEAT_adv"], records["TRADES"], labels=("WEAT_adv", "TRADES"))
    rows.append(_row("weat_vs_trades", weat, weat.statistic, (weat.ci[1] - weat.ci[0]) / 2, weat.verdict,
                     run_names, run_seconds))
    return rows


# ----------------------------------------------------------------------------- cost and machine
def run_cost(run) -> dict:
    """Wall seconds of a run's training and tracking, from its metrics.jsonl, and its torch threads."""
    m = run.metrics
    train = float(m["time_train_s"].sum()) if "time_train_s" in m else 0.0
    track = float(m["time_track_s"].sum()) if "time_track_s" in m else 0.0
    threads = sorted({s.get("threads") for s in run.env.get("sessions", []) if s.get("threads") is not None})
    return {"train_s": round(train, 1), "track_s": round(track, 1), "epochs": int(len(m)), "threads": threads}


def record_seconds(rec: dict) -> float:
    s = rec.get("seconds", {})
    return float(s.get("clean", 0.0) + s.get("pgd", 0.0) + s.get("autoattack", 0.0))


# ----------------------------------------------------------------------------- one point
def evaluate_point(point: Point, *, device: str = "auto", progress: bool = False) -> dict:
    """Train or load the point's runs, evaluate the chapter-4 pair, and return the point's entry:
    identity, rows, cost, machine, date and commit."""
    from . import runs as runs_module
    from .data import dataset_info
    from .metrics import robust

    configs = {label: cfg.replace(device=device) for label, cfg in point.train_configs().items()}
    runs = {label: runs_module.train_or_load(cfg, progress=progress) for label, cfg in configs.items()}
    weat = point.eval_config()
    records = {label: robust.evaluate_run(runs[label], weat.eval_settings(), n_images=weat.n_eval, device=device,
                                          progress=progress) for label in ("WEAT_adv", "TRADES")}
    costs = {label: run_cost(run) for label, run in runs.items()}
    seconds = {label: c["train_s"] + c["track_s"] for label, c in costs.items()}
    names = {label: run.dir.name for label, run in runs.items()}
    rows = claim_rows({label: run.metrics for label, run in runs.items()},
                      {label: runs[label].tracked_samples for label in ("SAT", "TRADES")}, records,
                      runs["SAT"].config.n_test_track, names, seconds,
                      dataset_info(runs["SAT"].config.dataset).num_classes, runs["SAT"].config.n_train_track)
    for row in rows:
        row["point"] = point.name
    multi = [seconds[label] for label, (_, single) in RUN_METHODS.items() if not single]
    train_total = sum(seconds.values())
    eval_total = sum(record_seconds(r) for r in records.values())
    threads = sorted({t for c in costs.values() for t in c["threads"]})
    return {
        "key": point.key(), "name": point.name, "profile": point.profile, "overrides": point.overrides,
        "single_step_eps": point.single_step_eps, "config": runs_module.identity(point.base_config()),
        "evaluation": point.identity()["evaluation"], "runs": names, "rows": rows, "verdicts_read_regime": True,
        "cost": {"per_run": costs, "train_wall_s": round(train_total, 1), "eval_wall_s": round(eval_total, 1),
                 "threads": threads,
                 "book_training_estimate_s": round(train_total + OTHER_BOOK_RUNS * sum(multi) / len(multi), 1),
                 "note": "the sum of each run's own wall seconds from its metrics.jsonl (training + per-epoch "
                         "tracking; runs trained side by side overlap, so this is not elapsed time, and each run's "
                         "torch threads are in per_run) and of the evaluation records; book_training_estimate_s adds "
                         f"chapter 4's {OTHER_BOOK_RUNS} other multi-step method(s) at this point's mean multi-step cost"},
        "machine": provenance.machine(resolve_device(device)),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git": provenance.git_state(),
    }


# ----------------------------------------------------------------------------- the record
def load_record(path: Path | None = None) -> dict:
    """The sizing record ({"kind", "version", "points": [...]}); an empty one when the file is missing."""
    path = Path(path) if path is not None else record_path()
    if not path.is_file():
        return {"kind": RECORD_KIND, "version": RECORD_VERSION, "points": []}
    rec = fileio.read_json(path, fix="restore it from git, or delete it and run tools/size_default.py again")
    if not isinstance(rec, dict) or rec.get("kind") != RECORD_KIND or not isinstance(rec.get("points"), list):
        raise fileio.CorruptFileError(f"{path} is not a sizing record; restore it from git, or delete it and run "
                                      "tools/size_default.py again")
    return rec


def save_point(entry: dict, path: Path | None = None) -> dict:
    """Add (or replace, by key) one point's entry and write the record atomically (fileio)."""
    path = Path(path) if path is not None else record_path()
    rec = load_record(path)
    points = [p for p in rec["points"] if p.get("key") != entry["key"]]
    rec = {"kind": RECORD_KIND, "version": RECORD_VERSION, "points": [*points, entry]}
    fileio.make_dir(path.parent)
    fileio.write_json(path, rec)
    return rec


def recorded(rec: dict, point: Point) -> dict | None:
    return next((p for p in rec["points"] if p.get("key") == point.key()), None)


def current_default() -> Point:
    """The point of the `default` profile as config.py defines it now (the book's runs)."""
    return Point.make("default")


# ----------------------------------------------------------------------------- what the appendix shows
ACCURACY_CLAIMS = ("robust_overfitting", "catastrophic_overfitting", "der_prevents_co", "weat_vs_trades")
# the claims whose verdict (and, for robust overfitting, statistic) reads the runs' regime since issue 23
REGIME_CLAIMS = ("robust_overfitting", "catastrophic_overfitting", "der_prevents_co")
NOT_REJUDGED = "not re-judged"


def current_rows(entry: dict) -> list[dict]:
    """The entry's rows as this build reads them. A point recorded before the verdicts read their runs'
    regime (issue 23) keeps its rows in the record, but its rows of `REGIME_CLAIMS` are no verdicts
    any more: a 'not reproduced' there may be a run that never learned, and robust overfitting's
    statistic was computed with another window rule. Those rows get verdict `NOT_REJUDGED` and no
    statistic (the recorded verdict stays in `recorded_verdict`); `tools/size_default.py --recompute`
    judges the point again from its runs."""
    if entry.get("verdicts_read_regime"):
        return list(entry["rows"])
    return [{**r, "verdict": NOT_REJUDGED, "recorded_verdict": r["verdict"], "statistic": None, "noise": None,
             "statistic_text": f"recorded before the regime was read; then {r['verdict']}"}
            if r["claim"] in REGIME_CLAIMS else r for r in entry["rows"]]


def format_statistic(row: dict) -> str:
    """'statistic ± noise' in the claim's units: percentage points for accuracies, energy units for ΔE."""
    stat, noise = row.get("statistic"), row.get("noise")
    if row.get("verdict") == NOT_REJUDGED:
        return "—"
    if stat is None:
        return "n/a (" + row.get("statistic_text", "no statistic") + ")"
    if row["claim"] in ACCURACY_CLAIMS:
        return f"{100 * stat:+.1f} ± {100 * noise:.1f} pt" if noise is not None else f"{100 * stat:+.1f} pt"
    return f"{stat:+.4f} ± {noise:.4f}" if noise is not None else f"{stat:+.4f}"


def point_table(entry: dict):
    """One point's rows: claim → statistic ± noise → verdict (pandas DataFrame)."""
    import pandas as pd

    return pd.DataFrame([{"claim": f"{r['text']} (ch. {int(r['chapter'][:2])})", "statistic ± 95 % noise": format_statistic(r),
                          "statistic as recorded": r["statistic_text"], "verdict": r["verdict"],
                          "training of its runs (min)": round(r["train_s"] / 60, 1)}
                         for r in current_rows(entry)]).set_index("claim")


def overview(rec: dict, default_key: str | None = None, fresh: dict | None = None):
    """Points (rows) × claims (verdicts), with the cost columns; the current default point marked.
    `fresh`: a fresh-build budget record, for the estimated fresh `make book` at each point."""
    import pandas as pd

    rows = []
    for p in rec["points"]:
        row = {"point": p["name"] + (" (current default)" if p["key"] == default_key else "")}
        row.update({r["claim"]: r["verdict"] for r in current_rows(p)})
        row["recorded"] = p.get("date", "")[:10]
        row["training (min)"] = round(p["cost"]["train_wall_s"] / 60, 1)
        row["evaluation (min)"] = round(p["cost"]["eval_wall_s"] / 60, 1)
        row["book training estimate (min)"] = round(p["cost"]["book_training_estimate_s"] / 60, 1)
        if fresh is not None:
            est = fresh_build_estimate(p, fresh)
            row["fresh make book estimate (min)"] = None if est is None else round(est / 60, 1)
        row["threads"] = ", ".join(str(t) for t in p["cost"]["threads"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("point") if rows else pd.DataFrame()


def findings(rec: dict) -> list[str]:
    """Per claim, one sentence: at which recorded points it appeared (reproduced), failed, or stayed
    inconclusive; first, when some points were recorded before the verdicts read their runs' regime,
    a sentence saying which and what their existence verdicts mean."""
    out = []
    old = [p["name"] for p in rec["points"] if not p.get("verdicts_read_regime")]
    if old:
        out.append(f"{len(old)} of {len(rec['points'])} points were recorded before the verdicts read their runs' "
                   "regime (issue 23): their robust-overfitting, catastrophic-overfitting and DER rows did not ask "
                   "whether the run had learned or had a robust train-test gap, so they count as *not re-judged* "
                   "here, not as verdicts; recording a point again (`tools/size_default.py --recompute`) reads its "
                   "runs with their regime, training them first where the run store no longer holds them.")
    for claim, (chapter, section, text, _) in CLAIMS.items():
        by = {}
        for p in rec["points"]:
            for r in current_rows(p):
                if r["claim"] == claim:
                    by.setdefault(r["verdict"], []).append(p["name"])
        if not by:
            out.append(f"{text} (chapter {int(chapter[:2])}): no recorded point evaluates it.")
            continue
        parts = [f"{verdict} at {len(names)} point(s) ({'; '.join(names)})" for verdict, names in sorted(by.items())]
        out.append(f"{text} (chapter {int(chapter[:2])}, PAPER.md {section}): " + ", ".join(parts) + ".")
    return out


def grid_points(grid: str = DOCUMENTED_GRID, profile: str = "default") -> list[Point]:
    """The distinct points of a named grid on `profile` (entries equal to another point are dropped)."""
    points = {}
    for values in GRIDS[grid]:
        point = Point.make(profile, values)
        points.setdefault(point.key(), point)
    return list(points.values())


def missing_points(rec: dict, grid: str = DOCUMENTED_GRID, profile: str = "default") -> list[Point]:
    """The points of a named grid (on `profile`) that the record does not hold yet."""
    return [p for p in grid_points(grid, profile) if recorded(rec, p) is None]


# ----------------------------------------------------------------------------- the choice of the default
# how well a point shows a claim, worst first: undecided, decided against the paper, the paper's
# finding. The issue asks for a default at which each claim *appears* if the physics allows it, so
# the paper's finding ranks above its absence; a point that ranks lower on any claim is no move.
SHOWS = (verdicts.INCONCLUSIVE_SCALE, verdicts.NOT_REPRODUCED, verdicts.REPRODUCED)
# fields a point may change whose cost scales in a known way (n_train, epochs) or not at all
SCALED_FIELDS = ("n_train", "epochs")
COST_FREE_FIELDS = ("seed", "fgsm_alpha", "lr", "momentum", "weight_decay", "pct_start", "schedule", "beta",
                    "der_beta", "der_gamma")


def cost_ratio(entry: dict, base: Point | None = None) -> float | None:
    """How many times longer the claims' runs of `entry` take than at `base` (default: the current
    default point), from the entry's own runs: per run, the training seconds scale with
    n_train x epochs and the tracking seconds (a fixed set of images per epoch) with epochs. Both
    parts come from the same runs, so a slowdown they share (other work on the machine) cancels;
    their split does depend on the torch threads per run (at the default: training/tracking 0.84
    with 2 threads, 0.51 with 1), so the ratio is apt for a build with the runs' layout (`make book`
    on 2 cores: two runs side by side, 1 thread each, as the sweep's `--jobs` trains). None when the
    point changes anything else of the runs' configs (model, attacks, tracked images), whose cost
    has no known scale."""
    from .runs import identity

    base = base or current_default()
    base_cfg, cfg = identity(base.base_config()), entry.get("config") or {}
    fixed = set(base_cfg) | set(cfg)
    if any(cfg.get(k) != base_cfg.get(k) for k in fixed - set(SCALED_FIELDS) - set(COST_FREE_FIELDS)):
        return None
    per_run = entry.get("cost", {}).get("per_run") or {}
    if not per_run:
        return None
    data = cfg["n_train"] * cfg["epochs"] / (base_cfg["n_train"] * base_cfg["epochs"])
    epochs = cfg["epochs"] / base_cfg["epochs"]
    here = sum(r["train_s"] + r["track_s"] for r in per_run.values())
    at_base = sum(r["train_s"] / data + r["track_s"] / epochs for r in per_run.values())
    return here / at_base if at_base > 0 else None


def fresh_build_estimate(entry: dict, fresh: dict, base: Point | None = None) -> float | None:
    """Estimated wall seconds of a fresh `make book` if the default profile were this point: the
    measured fresh build `fresh` (a budget record, `energy_lib.budget`, made at `base`) with its
    run-training phase scaled by `cost_ratio`. None when the ratio is unknown."""
    ratio = cost_ratio(entry, base)
    if ratio is None:
        return None
    return fresh["wall_seconds"] + fresh["runs_seconds"] * (ratio - 1)


def max_cost_ratio(fresh: dict, budget_minutes: float) -> float:
    """The largest `cost_ratio` whose estimated fresh build still fits `budget_minutes`."""
    return 1 + (budget_minutes * 60 - fresh["wall_seconds"]) / fresh["runs_seconds"]


@dataclasses.dataclass(frozen=True)
class DefaultChoice:
    """What the record says about the default profile's size: each candidate point's estimated fresh
    build against the budget, and per claim the points that show it better than the default
    (`SHOWS`) and no claim worse, within the budget and beyond it; `mixed`: points within the budget
    that show some claim better and another worse (no move); `unjudged`: per claim the candidate points
    whose row is not re-judged (`current_rows`), compared on nothing; `stale_at_default`: the claims
    whose row at the default itself is not re-judged (then no choice can be made)."""

    default: str | None                       # the current default point's name (None: not recorded)
    budgeted: bool                            # a fresh-build record gave the estimates
    estimates: dict                           # point name -> estimated fresh build (min), None if unknown
    within: tuple                             # candidate points within the budget
    gains: dict                               # claim -> points within the budget that show it better
    beyond: dict                              # claim -> points over the budget (or of unknown cost) that do
    mixed: tuple                              # points within the budget better on one claim, worse on another
    sentences: tuple
    unjudged: dict = dataclasses.field(default_factory=dict)   # claim -> candidate points not re-judged for it
    stale_at_default: tuple = ()              # claims not re-judged at the default itself

    @property
    def keep(self) -> bool | None:
        """True: stay; False: a size within the budget shows more; None: cannot tell (no default
        point in the record, or no build-time estimate)."""
        if self.default is None or not self.budgeted or self.stale_at_default:
            return None
        return not any(self.gains.values())


def default_choice(rec: dict, fresh: dict | None, budget_minutes: float,
                   base: Point | None = None) -> DefaultChoice:
    """Should the default profile move to another recorded point? A point is a candidate when it
    changes the size (not only the training seed: the seeds measure noise, not a size). It shows
    the claims better than the default when its verdict ranks higher on some claim (`SHOWS`) and
    lower on none; it is worth moving to when, besides, its estimated fresh `make book` fits
    `budget_minutes` (`budget.BUDGET_MINUTES["fresh"]`). Each point is one training per run and
    many points are compared, so such a gain is a lead to confirm with the seeds grid at that point,
    not a finding; the sentences say so. Points that share the default's runs for a claim (the
    single-step grid shares SAT, TRADES and WEAT_adv) cannot differ on it: the sentences say how
    much dearer than the default a point may be at all (`max_cost_ratio`)."""
    base = base or current_default()
    default = recorded(rec, base)
    if default is None:
        return DefaultChoice(None, fresh is not None, {}, (), {}, {}, (), (
            "the current default point is not in the record: run `tools/size_default.py --grid default`",))
    at_default = {r["claim"]: r["verdict"] for r in current_rows(default)}
    seeds_of_default = {e["key"] for e in seed_entries(rec, base)}   # the default itself among them
    estimates, within, mixed = {}, [], []
    gains, beyond = {c: [] for c in at_default}, {c: [] for c in at_default}
    unjudged = {c: [] for c in at_default}
    stale_at_default = tuple(c for c, v in at_default.items() if v == NOT_REJUDGED)
    for p in rec["points"]:
        if p["key"] in seeds_of_default:
            continue
        est = fresh_build_estimate(p, fresh, base) if fresh else None
        estimates[p["name"]] = None if est is None else round(est / 60, 1)
        fits = est is not None and est / 60 <= budget_minutes
        within += [p["name"]] if fits else []
        rows = current_rows(p)
        # a row that is no verdict (not re-judged, here or at the default) shows nothing better or worse
        shown = {r["claim"]: r["verdict"] for r in rows
                 if r["claim"] in at_default and r["verdict"] in SHOWS and at_default[r["claim"]] in SHOWS}
        rank = {c: SHOWS.index(v) - SHOWS.index(at_default[c]) for c, v in shown.items()}
        for r in rows:
            if r["claim"] in unjudged and r["verdict"] == NOT_REJUDGED:
                unjudged[r["claim"]].append(p["name"])
        better = [c for c, d in rank.items() if d > 0]
        if better and any(d < 0 for d in rank.values()):
            if fits:
                mixed.append(p["name"])
            continue
        for c in better:
            (gains if fits else beyond)[c].append(f"{p['name']} ({shown[c]})")
    if fresh is None:
        sentences = [f"{len(estimates)} other size(s) recorded; no fresh-build budget record "
                     "(`tools/book.py record-time`), so no point's build time can be estimated"]
    else:
        sentences = [f"{len(estimates)} other size(s) recorded; within the {budget_minutes:g}-minute budget of a "
                     f"fresh `make book` (estimated): {'; '.join(within) or 'none'}. A size fits only if its runs "
                     f"cost at most {max_cost_ratio(fresh, budget_minutes):.2f}x the default's (the measured fresh "
                     f"build took {fresh['wall_seconds'] / 60:.1f} min, {fresh['runs_seconds'] / 60:.1f} of them "
                     "training runs); points that share the default's runs for a claim cannot differ on it"]
    recompute = "`tools/size_default.py --recompute`"
    for c, verdict in at_default.items():
        head = f"{CLAIMS[c][2]}: {verdict} at the default"
        compared = len(estimates) - len(unjudged[c])
        if c in stale_at_default:
            sentences.append(f"{head} ({recompute} judges it), so it is compared with no other size")
        elif unjudged[c] and not gains[c] and not beyond[c]:
            sentences.append(f"{head}; not re-judged at any of the {len(unjudged[c])} other size(s) ({recompute}), "
                             "so it is compared with none" if not compared else
                             f"{head}; no better at the {compared} other size(s) judged with their runs' regime, "
                             f"and not re-judged at {len(unjudged[c])} ({recompute})")
        elif gains[c]:
            sentences.append(f"{head}; shown better within the budget at {'; '.join(gains[c])}: a lead "
                             "(one training per run) to confirm with seeds there")
        elif beyond[c]:
            sentences.append(f"{head}; shown better only at sizes over the budget or of unknown cost: "
                             f"{'; '.join(beyond[c])}")
        elif verdict != SHOWS[-1]:
            sentences.append(f"{head}, and no better at any other recorded size")
        else:
            sentences.append(head)
    if mixed:
        sentences.append(f"better on one claim but worse on another, so no move: {'; '.join(mixed)}")
    stale_claims = [CLAIMS[c][2] for c in at_default if unjudged[c]]
    if fresh is None:
        sentences.append("**no choice can be made** without a measured fresh build")
    elif stale_at_default:
        sentences.append("**no choice can be made** until the default point is judged again with its runs' regime")
    else:
        sentences.append("**the default stays**: no recorded size within the budget shows a claim better"
                         if not any(gains.values()) else
                         "**a recorded size within the budget shows more**: consider moving the default there, "
                         "after confirming it with seeds")
        if stale_claims and not any(gains.values()):
            sentences[-1] += (f", among the sizes judged with their runs' regime; for {', '.join(stale_claims)} the "
                              "other sizes are not re-judged, so the record cannot say whether one shows it better")
    return DefaultChoice(default["name"], fresh is not None, estimates, tuple(within), gains, beyond, tuple(mixed),
                         tuple(sentences), {c: tuple(v) for c, v in unjudged.items() if v}, stale_at_default)


# ----------------------------------------------------------------------------- training noise (the seeds axis)
def seed_entries(rec: dict, base: Point | None = None) -> list[dict]:
    """The recorded entries of `base` (default: the current default point) with each training seed
    (`SEEDS` and any other seed the record holds), in seed order. Each is looked up by the key of
    `base` with that seed, so only a point with exactly these runs and evaluation counts, whatever
    name it was recorded under ('default: epochs=30' is the default point)."""
    base = base or current_default()
    seeds = set(SEEDS) | {p["config"]["seed"] for p in rec["points"] if isinstance(p.get("config"), dict)
                          and isinstance(p["config"].get("seed"), int)}
    found = [recorded(rec, Point.make(base.profile, {**base.overrides, "seed": s})) for s in sorted(seeds)]
    return [entry for entry in found if entry is not None]


@dataclasses.dataclass(frozen=True)
class TrainingNoise:
    """One claim's statistic over training seeds, against one run's image-sampling noise.

    The training subset, the tracked and evaluated images and the evaluation seed are the same at
    every seed, so the spread over seeds is training noise alone; it adds to the image-sampling
    noise of one run's interval (in quadrature: `combined_halfwidth`)."""

    claim: str
    seeds: tuple                  # the training seeds recorded
    threads: tuple                # torch threads of each seed's runs (they change a run too)
    statistics: tuple             # the claim's statistic at each seed (None where it has none)
    verdicts: tuple               # the summary verdict at each seed
    seed_sd: float | None         # standard deviation over seeds (ddof 1): the training noise
    seed_sd_ci: tuple | None      # its 95 % interval (chi-square, n − 1 degrees of freedom)
    image_halfwidth: float | None  # mean half-width of the per-seed 95 % intervals (image sampling)
    sentence: str

    @property
    def agree(self) -> bool:
        """The same verdict at every seed judged with its runs' regime (not re-judged seeds left out)."""
        return len({v for v in self.verdicts if v != NOT_REJUDGED}) == 1

    @property
    def image_se(self) -> float | None:
        """The image-sampling standard error behind one run's interval (half-width / 1.96)."""
        return None if self.image_halfwidth is None else self.image_halfwidth / Z95

    @property
    def combined_halfwidth(self) -> float | None:
        """One run's 95 % half-width with the training noise added (`with_training_noise`)."""
        if self.image_halfwidth is None or self.seed_sd is None:
            return None
        return with_training_noise(self.image_halfwidth, self.seed_sd)

    @property
    def mde(self) -> float | None:
        """Smallest true effect one run's statistic detects (80 % power, 5 % level) from image
        sampling alone: what the chapters' intervals claim."""
        return None if self.image_se is None else mde_from_se(self.image_se)

    @property
    def mde_with_training_noise(self) -> float | None:
        """The same with the training noise over seeds added in quadrature: what one run can really
        tell apart when another seed could have been trained instead."""
        if self.image_se is None or self.seed_sd is None:
            return None
        return mde_from_se(math.sqrt(self.image_se ** 2 + self.seed_sd ** 2))


def with_training_noise(halfwidth: float, seed_sd: float) -> float:
    """A 95 % half-width of image sampling with the training noise added in quadrature:
    1.96 √(SE_images² + SD_seeds²), SE_images = half-width / 1.96."""
    return Z95 * math.sqrt((halfwidth / Z95) ** 2 + seed_sd ** 2)


def training_noise(rec: dict, base: Point | None = None) -> list[TrainingNoise]:
    """Per claim: the statistic at every recorded seed of `base` (the current default point), its
    standard deviation over seeds with a chi-square interval, and the mean half-width of the per-seed
    intervals (image sampling). Needs at least 2 seeds for a standard deviation; says so otherwise."""
    from scipy import stats as st

    entries = seed_entries(rec, base)
    seeds = tuple(int(e["config"]["seed"]) for e in entries)
    threads = tuple(tuple(e.get("cost", {}).get("threads", ())) for e in entries)
    out = []
    rows_of = [current_rows(e) for e in entries]   # each entry's rows as this build reads them, once
    for claim in CLAIMS:
        rows = [next((r for r in entry_rows if r["claim"] == claim), None) for entry_rows in rows_of]
        values = tuple(None if r is None else r.get("statistic") for r in rows)
        verdict_list = tuple("missing" if r is None else r["verdict"] for r in rows)
        finite = [v for v in values if v is not None]
        noises = [r["noise"] for r in rows if r is not None and r.get("noise") is not None]
        halfwidth = float(sum(noises) / len(noises)) if noises else None
        scale, digits, unit = (100, 1, " pt") if claim in ACCURACY_CLAIMS else (1, 4, "")

        def show(v):
            return f"{scale * v:.{digits}f}{unit}"
        sd = sd_ci = None
        stale = verdict_list.count(NOT_REJUDGED)
        if len(finite) < 2:
            sentence = (f"{len(finite)} seed(s) with a statistic: the training noise needs at least 2 "
                        + (f"(the rows of {stale} seed(s) were recorded before the regime was read: "
                           "`tools/size_default.py --grid seeds --recompute` judges them again)" if stale else
                           "(`tools/size_default.py --grid seeds`)"))
        else:
            k = len(finite) - 1
            sd = statistics.stdev(finite)
            sd_ci = (sd * math.sqrt(k / st.chi2.ppf(0.975, k)), sd * math.sqrt(k / st.chi2.ppf(0.025, k)))
            sentence = (f"over {len(finite)} seeds the statistic ranges from {scale * min(finite):+.{digits}f} to "
                        f"{scale * max(finite):+.{digits}f}{unit}: SD {show(sd)} (95 % interval "
                        f"{show(sd_ci[0])} to {show(sd_ci[1])} with {k} degree(s) of freedom)")
            if halfwidth:
                se_images = halfwidth / Z95
                sentence += (f"; one run's image-sampling SE is {show(se_images)}, so with the training noise "
                             f"its 95 % interval would be ± {show(with_training_noise(halfwidth, sd))} instead of "
                             f"± {show(halfwidth)}, and the smallest effect one run detects (80 % power, 5 % "
                             f"level) {show(mde_from_se(math.hypot(se_images, sd)))} instead of "
                             f"{show(mde_from_se(se_images))}")
            judged = [v for v in verdict_list if v != NOT_REJUDGED]
            sentence += ("; the verdict is the same at every seed" if len(set(judged)) == 1
                         else f"; the verdicts differ ({', '.join(judged)})")
            if stale:
                sentence += f" ({stale} seed(s) not re-judged and left out)"
        out.append(TrainingNoise(claim, seeds, threads, values, verdict_list, sd, sd_ci, halfwidth, sentence))
    return out


def training_noise_table(rec: dict, base: Point | None = None, *, as_text: bool = False):
    """`training_noise` as a table: claim → statistic at each seed, SD over seeds, one run's
    image-sampling half-width and the half-width with both, verdicts. Numbers in the claim's units
    (percentage points for accuracies, energy units for ΔE); `as_text`: written as a reader reads
    them (1 decimal in pt, 4 in energy units), since one column holds both units."""
    import pandas as pd

    rows = []
    for t in training_noise(rec, base):
        scale, digits = (100, 1) if t.claim in ACCURACY_CLAIMS else (1, 4)

        def num(v):
            if v is None:
                return "" if as_text else None
            return f"{scale * v:.{digits}f}" if as_text else round(scale * v, 4)
        row = {"claim": CLAIMS[t.claim][2]}
        row.update({f"seed {s}": num(v) for s, v in zip(t.seeds, t.statistics)})
        row["SD over seeds"] = num(t.seed_sd)
        row["one run's 95 % half-width (images)"] = num(t.image_halfwidth)
        row["95 % half-width with training noise"] = num(t.combined_halfwidth)
        row["smallest detectable effect (images)"] = num(t.mde)
        row["smallest detectable effect with training noise"] = num(t.mde_with_training_noise)
        row["verdicts"] = ", ".join(t.verdicts)
        rows.append(row)
    return pd.DataFrame(rows).set_index("claim")
