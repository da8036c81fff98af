"""Tables are generated from the records on disk and from the paper's numbers stored as data."""
import json
import re
from pathlib import Path

import pytest

from energy_lib import tables
from energy_lib.metrics import robust

PAPER_MD = Path(__file__).resolve().parent.parent.parent / "shared" / "PAPER.md"


def _record(method: str, clean: float, pgd: float, aa: float, n: int = 100, key: str | None = None) -> dict:
    """A record in the format written by metrics.robust.evaluate (the fields the tables read)."""
    return {"kind": "robust_eval", "version": robust.RECORD_VERSION, "key": key or f"k-{method}-{n}",
            "complete": True, "method": method, "dataset": "cifar10", "model": "small_cnn", "train_epochs": 3,
            "n_train": 500, "checkpoint": {"run": f"{method}-run", "which": "best", "epoch": 3},
            "images": {"dataset": "cifar10", "split": "test", "start": 200, "n": n}, "n_images": n, "seed": 0,
            "pgd": {"steps": 20}, "accuracy": {"clean": clean, "pgd": pgd, "autoattack": aa},
            "autoattack": {"standard": False, "n_iter": 10, "n_target_classes": 3, "n_queries": 100},
            "time_utc": "2026-01-01T00:00:00Z"}


@pytest.fixture
def store(tmp_path):
    for method, accs in {"sat": (0.40, 0.25, 0.20), "weat_adv": (0.42, 0.27, 0.21)}.items():
        rec = _record(method, *accs)
        (tmp_path / rec["checkpoint"]["run"]).mkdir()
        robust.record_path(tmp_path / rec["checkpoint"]["run"], rec["key"]).write_text(json.dumps(rec))
    return tmp_path


def test_table_follows_the_records_on_disk(store):
    before = tables.results_table(robust.load_records(store))
    assert before.loc["WEAT_adv", ("CIFAR-10", "AA")] == pytest.approx(21.0)
    path = next(store.glob("weat_adv-run/robust_eval-*.json"))
    rec = json.loads(path.read_text())
    rec["accuracy"]["autoattack"] = 0.1234
    path.write_text(json.dumps(rec))
    after = tables.results_table(robust.load_records(store))
    assert after.loc["WEAT_adv", ("CIFAR-10", "AA")] == pytest.approx(12.34)
    assert after.loc["SAT"].equals(before.loc["SAT"])


def test_comparison_is_this_run_minus_paper(store):
    comp = tables.comparison_table(robust.load_records(store))
    ref = tables.paper_reference().set_index(["method", "dataset", "metric"])["paper"]
    row = comp.loc[("CIFAR-10", "WEAT_adv", "AA")]
    assert row["paper (%)"] == ref[("weat_adv", "cifar10", "autoattack")]
    assert row["difference (pt)"] == pytest.approx(21.0 - ref[("weat_adv", "cifar10", "autoattack")])
    # the paper has no clean accuracies (PAPER.md 4.1): no invented reference, no difference
    assert comp.loc[("CIFAR-10", "SAT", "clean")][["paper (%)", "difference (pt)"]].isna().all()
    assert "PGD-20" in row["protocol"] and "AA cheap" in row["protocol"]


def test_most_images_wins_when_a_method_has_several_records(store):
    rec = _record("sat", 0.5, 0.3, 0.29, n=1000)
    robust.record_path(store / "sat-run", rec["key"]).write_text(json.dumps(rec))
    table = tables.results_table(robust.load_records(store))
    assert table.loc["SAT", ("CIFAR-10", "clean")] == pytest.approx(50.0)


def test_most_images_beats_newest_and_newest_breaks_a_tie(store):
    """An older record on 1,000 images beats a newer one on 100; between two on 1,000, the newer."""
    old_big = _record("weat_adv", 0.5, 0.3, 0.29, n=1000, key="k-old-big")
    old_big["time_utc"] = "2025-06-01T00:00:00Z"                     # older than the fixture's 100-image record
    robust.record_path(store / "weat_adv-run", old_big["key"]).write_text(json.dumps(old_big))
    assert tables.results_table(robust.load_records(store)).loc["WEAT_adv", ("CIFAR-10", "clean")] == 50.0
    new_big = _record("weat_adv", 0.6, 0.3, 0.29, n=1000, key="k-new-big")
    new_big["time_utc"] = "2025-07-01T00:00:00Z"
    robust.record_path(store / "weat_adv-run", new_big["key"]).write_text(json.dumps(new_big))
    assert tables.results_table(robust.load_records(store)).loc["WEAT_adv", ("CIFAR-10", "clean")] == 60.0


def test_reference_holds_the_papers_table():
    """Every number of PAPER.md 4.1 is in the reference data, and nothing else."""
    ref = tables.paper_reference()
    text = PAPER_MD.read_text()
    section = text[text.index("### 4.1"):text.index("### 4.2")]
    names = {"SAT": "sat", "TRADES": "trades", "MAIL-TR": "mail_trades", "WEAT_nat": "weat_nat",
             "WEAT_adv": "weat_adv"}
    cols = [("cifar10", "pgd"), ("cifar10", "autoattack"), ("cifar100", "pgd"), ("cifar100", "autoattack"),
            ("svhn", "pgd"), ("svhn", "autoattack")]
    expected = {}
    for line in section.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in names:
            expected.update({(names[cells[0]], d, m): float(v) for (d, m), v in zip(cols, cells[1:])})
    tiny = re.search(r"WEAT_adv \*\*(\d+\.\d+)\*\*, MART (\d+\.\d+), TRADES (\d+\.\d+)", section)
    for method, value in zip(("weat_adv", "mart", "trades"), tiny.groups()):
        expected[(method, "tiny-imagenet", "autoattack")] = float(value)
    got = {(r.method, r.dataset, r.metric): r.paper for r in ref.itertuples()}
    assert got == expected and len(got) == 33


def test_no_records_is_a_clear_error():
    with pytest.raises(ValueError, match="evaluate_run"):
        tables.results_table([])
