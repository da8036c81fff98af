"""Result tables generated from records, never typed by hand (RobustBench style).

Inputs are the robust-evaluation records of `energy_lib.metrics.robust` (one JSON file per
evaluated checkpoint in its run directory) and the paper's published numbers, stored as data in
`runs/paper_reference.json` (PAPER.md 4.1). Accuracies in every table are percentages.

* `records_frame(records)`   one row per (record, metric): the long form of all records;
* `results_table(records)`    methods x (dataset, metric), one record per (method, dataset);
* `comparison_table(records)` this run next to the paper, with the difference, per metric;
* `paper_reference()`         the paper's numbers as a long DataFrame;
* `follows_paper_protocol(rec)` whether a record is the paper's protocol (model, epochs, full test set, AA).
* `eps_text(eps)` / `attack_texts(tracking)`: a budget and a run's attacks (its tracking.json
  record) as readers write them: ε = 8/255, 3 steps of 6.67/255.
* `write_summary` / `read_summaries` / `summary_table` / `book_summary`: each chapter's
  reproduction rows (built by `energy_lib.verdicts`), stored as `<runs>/summary/<profile>/<chapter>.json`,
  and the book's front page that collects them ("not run" for a chapter without a record).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Iterable

import pandas as pd

from .names import METHOD_USES

REFERENCE_PATH = Path(__file__).resolve().parent.parent / "runs" / "paper_reference.json"
METRICS = ("clean", "pgd", "autoattack")
METRIC_LABELS = {"clean": "clean", "pgd": "PGD", "autoattack": "AA"}
METHOD_LABELS = {"sat": "SAT", "trades": "TRADES", "mart": "MART", "mail_trades": "MAIL-TR",
                 "weat_nat": "WEAT_nat", "weat_adv": "WEAT_adv", "sat_der": "SAT + DER",
                 "trades_der": "TRADES + DER", "fgsm": "FGSM-AT", "fgsm_rs": "FGSM-RS",
                 "fgsm_rs_der": "FGSM-RS + DER"}
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "tiny-imagenet": "Tiny-ImageNet"}


def paper_reference(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's numbers: columns method, dataset, metric, paper (%)."""
    path = Path(path) if path is not None else REFERENCE_PATH
    if not path.is_file():
        raise FileNotFoundError(f"paper reference {path} not found: it is part of the repository "
                                "(runs/paper_reference.json); restore it from git")
    ref = json.loads(path.read_text())
    frame = pd.DataFrame(ref["records"]).rename(columns={"accuracy_percent": "paper"})
    return frame[["method", "dataset", "metric", "paper"]]


def protocol(rec: dict) -> str:
    """One line saying where a record's numbers come from."""
    aa = rec.get("autoattack")
    aa_text = ("AA standard" if aa and aa["standard"] else
               f"AA cheap ({aa['n_iter']} it, {aa['n_target_classes']} targets, {aa['n_queries']} queries)"
               if aa else "no AA")
    img = rec["images"]
    return (f"{rec['model']}, {rec['train_epochs']} ep on {rec['n_train'] or 'all'} imgs; {rec['n_images']} test imgs "
            f"[{img['start']}:{img['start'] + img['n']}]; PGD-{rec['pgd']['steps']}; {aa_text}; seed {rec['seed']}")


PAPER_MODEL, PAPER_EPOCHS = "resnet18", 100


def follows_paper_protocol(rec: dict) -> bool:
    """Whether an evaluation record's numbers come from the paper's protocol (PAPER.md 3.3, 3.4):
    ResNet-18 trained 100 epochs on all training images, evaluated on the *whole* test set of its
    dataset (CIFAR-10/100 and Tiny-ImageNet 10,000 images, SVHN 26,032) from the first image, with
    AutoAttack standard. The test-set size comes from `data.dataset_info`, never a fixed 10,000."""
    from .data import dataset_info

    img = rec.get("images", {})
    full_test = (img.get("start", 0) == 0 and rec.get("n_images") == dataset_info(rec["dataset"]).test_size)
    return bool(rec.get("model") == PAPER_MODEL and rec.get("n_train") is None
                and (rec.get("train_epochs") or 0) >= PAPER_EPOCHS and full_test
                and (rec.get("autoattack") or {}).get("standard"))


def protocol_note(records: Iterable[dict]) -> tuple[bool, str]:
    """Whether every evaluation record follows the paper's protocol (`follows_paper_protocol`),
    as (flag, sentence) for a chapter's prose."""
    records = list(records)
    ok = [follows_paper_protocol(r) for r in records]
    if records and all(ok):
        return True, "these records follow the paper's protocol, so their numbers can be set against the paper's"
    off = len(ok) - sum(ok)
    return False, (f"{off} of {len(ok)} evaluation record(s) do not follow the paper's protocol (ResNet-18, 100 epochs "
                   "on all training images, the whole test set, AutoAttack standard), so their numbers do not test "
                   "the paper's claim; the paper profile does")


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Long form: one row per record and metric, accuracy in %."""
    rows = []
    for rec in records:
        for metric, value in rec["accuracy"].items():
            rows.append({"method": rec["method"], "dataset": rec["dataset"], "model": rec["model"],
                         "metric": metric, "accuracy": 100.0 * value, "n_images": rec["n_images"],
                         "time_utc": rec.get("time_utc", ""), "key": rec["key"], "run": rec["checkpoint"]["run"],
                         "protocol": protocol(rec)})
    return pd.DataFrame(rows, columns=["method", "dataset", "model", "metric", "accuracy", "n_images", "time_utc",
                                       "key", "run", "protocol"])


def _one_per_method(frame: pd.DataFrame) -> pd.DataFrame:
    """Several records of one (method, dataset, model): keep the one on most images, then the newest."""
    best = (frame[["method", "dataset", "model", "key", "n_images", "time_utc"]].drop_duplicates("key")
            .sort_values(["n_images", "time_utc"]).groupby(["method", "dataset", "model"]).tail(1)["key"])
    return frame[frame["key"].isin(set(best))]


def _order(methods: Iterable[str]) -> list[str]:
    known = [m for m in METHOD_LABELS if m in set(methods)]
    return known + sorted(set(methods) - set(known))


def results_table(records: Iterable[dict]) -> pd.DataFrame:
    """Methods (rows) x (dataset, metric) accuracy in %, from the records."""
    frame = _one_per_method(records_frame(records))
    if frame.empty:
        raise ValueError("no evaluation records given: run energy_lib.metrics.robust.evaluate_run first")
    table = frame.pivot_table(index="method", columns=["dataset", "metric"], values="accuracy", aggfunc="first")
    cols = [(d, m) for d in DATASET_LABELS for m in METRICS if (d, m) in table.columns]
    table = table.reindex(index=_order(table.index), columns=cols)
    table.index = [METHOD_LABELS.get(m, m) for m in table.index]
    table.columns = pd.MultiIndex.from_tuples([(DATASET_LABELS[d], METRIC_LABELS[m]) for d, m in cols])
    return table.round(2)


def comparison_table(records: Iterable[dict], reference: pd.DataFrame | None = None,
                     include_missing_paper: bool = True) -> pd.DataFrame:
    """This run vs the paper, per (method, dataset, metric): columns this run, paper, difference,
    protocol. `difference` = this run - paper (percentage points); empty where the paper's number
    is unknown (e.g. clean accuracy, DER: PAPER.md 4)."""
    frame = _one_per_method(records_frame(records))
    reference = paper_reference() if reference is None else reference
    merged = frame.merge(reference, on=["method", "dataset", "metric"], how="left")
    if not include_missing_paper:
        merged = merged[merged["paper"].notna()]
    merged["difference"] = merged["accuracy"] - merged["paper"]
    merged["metric"] = pd.Categorical(merged["metric"], METRICS)   # sorting follows the categories
    merged["method"] = pd.Categorical(merged["method"], _order(merged["method"]))
    merged = merged.sort_values(["dataset", "method", "metric"])
    out = pd.DataFrame({
        "dataset": merged["dataset"].map(lambda d: DATASET_LABELS.get(d, d)),
        "method": merged["method"].astype(str).map(lambda m: METHOD_LABELS.get(m, m)),
        "metric": merged["metric"].astype(str).map(METRIC_LABELS),
        "this run (%)": merged["accuracy"].round(2), "paper (%)": merged["paper"],
        "difference (pt)": merged["difference"].round(2), "protocol": merged["protocol"]})
    return out.set_index(["dataset", "method", "metric"])


def paper_table(reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's table itself (methods x (dataset, metric)), from the reference data."""
    ref = paper_reference() if reference is None else reference
    table = ref.pivot_table(index="method", columns=["dataset", "metric"], values="paper", aggfunc="first")
    cols = [(d, m) for d in DATASET_LABELS for m in METRICS if (d, m) in table.columns]
    table = table.reindex(index=_order(table.index), columns=cols)
    table.index = [METHOD_LABELS.get(m, m) for m in table.index]
    table.columns = pd.MultiIndex.from_tuples([(DATASET_LABELS[d], METRIC_LABELS[m]) for d, m in cols])
    return table


# ----------------------------------------------------------------------------- reproduction summary
# The chapters whose verdicts the summary page collects, in book order (file stem -> title).
SUMMARY_CHAPTERS = {
    "01_attack_energies": "Attack energies",
    "02_at_phases": "Phases of adversarial training",
    "03_trades_ebm": "TRADES as an EBM",
    "04_weat_der": "WEAT and DER",
    "05_generation": "Generation",
    "06_smooth_landscape": "Robust models smooth the energy landscape",
}
SUMMARY_COLUMNS = ["claim", "section", "paper", "this build", "verdict", "kind"]
# What a row checks: a reproduction of a paper's claim (counted on the front page), an exact identity
# (holds for any logits: a check of the algebra, not of the paper's finding), or a sanity check (holds
# for any classifier by construction, e.g. SGLD lowers the energy it descends).
REPRODUCTION, IDENTITY, SANITY = "reproduction", "identity", "sanity check"
KINDS = (REPRODUCTION, IDENTITY, SANITY)


def summary_dir(profile: str, root: Path | None = None) -> Path:
    """`<run store>/summary/<profile>/`: one record per chapter and profile."""
    from .config import runs_root

    return Path(root if root is not None else runs_root()) / "summary" / profile


def write_summary(chapter: str, rows: list[dict], profile: str, root: Path | None = None) -> Path:
    """Write a chapter's reproduction rows (from `verdicts.Result.summary`) as its record;
    returns the path. A later execution of the same chapter and profile replaces it."""
    from .runs import atomic_write_text

    if chapter not in SUMMARY_CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; add it to energy_lib.tables.SUMMARY_CHAPTERS")
    rows = [{"kind": REPRODUCTION, **r} for r in rows]
    bad = [r for r in rows if set(r) != set(SUMMARY_COLUMNS)]
    if bad:
        raise ValueError(f"summary rows need exactly the keys {SUMMARY_COLUMNS}; got {sorted(bad[0])}: build them "
                         "with verdicts.Result.summary(...)")
    odd = [r["kind"] for r in rows if r["kind"] not in KINDS]
    if odd:
        raise ValueError(f"a summary row's kind {odd[0]!r} is not one of {KINDS}")
    path = summary_dir(profile, root) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"chapter": chapter, "title": SUMMARY_CHAPTERS[chapter], "profile": profile,
              "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path


def read_summaries(profile: str, root: Path | None = None) -> dict[str, dict | None]:
    """Every chapter's record for `profile` (None where the chapter has not been run)."""
    folder = summary_dir(profile, root)
    out = {}
    for chapter in SUMMARY_CHAPTERS:
        path = folder / f"{chapter}.json"
        out[chapter] = json.loads(path.read_text()) if path.is_file() else None
    return out


def summary_table(rows: list[dict]) -> pd.DataFrame:
    """A chapter's reproduction table: claim (PAPER.md section), the paper's finding, this build's
    statistic with its noise, verdict."""
    frame = pd.DataFrame([{"kind": REPRODUCTION, **r} for r in rows], columns=SUMMARY_COLUMNS)
    frame["claim"] = frame["claim"] + " (PAPER.md " + frame["section"] + ")"
    return frame.drop(columns="section").set_index("claim")


def book_summary(profile: str, root: Path | None = None) -> pd.DataFrame:
    """All chapters' rows for the front page; a chapter without a record shows one row "not run"."""
    from .verdicts import NOT_RUN

    rows = []
    for chapter, record in read_summaries(profile, root).items():
        title = SUMMARY_CHAPTERS[chapter]
        if record is None:
            rows.append({"chapter": title, "claim": "—", "paper": "—", "this build": "—", "verdict": NOT_RUN,
                         "kind": REPRODUCTION, "run": "—"})
            continue
        for row in record["rows"]:
            rows.append({"chapter": title, "claim": f"{row['claim']} (PAPER.md {row['section']})",
                         "paper": row["paper"], "this build": row["this build"], "verdict": row["verdict"],
                         "kind": row.get("kind", REPRODUCTION), "run": record["time_utc"]})
    return pd.DataFrame(rows).set_index(["chapter", "claim"])


def verdict_counts(table: pd.DataFrame, kind: str = REPRODUCTION) -> dict[str, int]:
    """How many rows of one kind have each verdict (the summary page counts reproductions apart from
    identities and sanity checks); "not run" chapters count with the reproductions."""
    rows = table[table["kind"] == kind] if "kind" in table else table
    return {k: int(v) for k, v in rows["verdict"].value_counts().items()}


def eps_text(value: float) -> str:
    """A perturbation size (or attack step) in the /255 units readers know: 8/255, 6.67/255, 0.5/255."""
    return f"{value * 255:.3g}/255"


def attack_texts(tracking: dict) -> dict[str, str]:
    """A run's training and test attacks in the reader's form, from its tracking.json record
    (`Run.tracking_attack`), which keeps the full description with every value to 6 digits:
    {"train": "PGD-CE, 3 steps of 6.67/255, ε = 8/255", "test": "PGD-CE, 5 steps of 4/255,
    1 restart, ε = 8/255"}. The attack's name is the first field of the recorded description."""
    values = tracking["values"]
    method, description = tracking["train"].split(" training attack: ", 1)
    name = description.split(",")[0]
    eps = eps_text(values["eps"])
    if "fgsm_alpha" in METHOD_USES[method]:       # a single-step method
        step = f"one step of {values['fgsm_alpha']:g}·ε"
        noise = re.search(r"start x\+U\[-([\d.]+)·eps", description)   # N-FGSM's noisy start defines it
        step = f"start x + U[−{noise.group(1)}ε, {noise.group(1)}ε], {step}" if noise else step
    else:
        step = f"{values['attack_steps']} steps of {eps_text(values['train_step_size'])}"
    restarts = values["test_attack_restarts"]
    return {"train": f"{name}, {step}, ε = {eps}",
            "test": f"PGD-CE, {values['test_attack_steps']} steps of {eps_text(values['test_step_size'])}, "
                    f"{restarts} restart{'s' if restarts != 1 else ''}, ε = {eps}"}
