"""Result tables and the reproduction summary, exactly: planted records and rows with hand-written
expected frames pin what `energy_lib.tables` computes (`make mutation MODULE=tables`)."""
from __future__ import annotations

import calendar
import json
import time

import numpy as np
import pandas as pd
import pytest

from energy_lib import tables
from energy_lib.verdicts import INCONCLUSIVE_SCALE, NOT_REPRODUCED, NOT_RUN, REPRODUCED

CHEAP_AA = {"standard": False, "n_iter": 10, "n_target_classes": 3, "n_queries": 100}


def _record(method="sat", dataset="cifar10", model="small_cnn", key=None, n=100, start=200, time_utc="2026-01-01T00:00:00Z",
            accuracy=None, **kw) -> dict:
    rec = {"key": key or f"k-{method}-{dataset}-{n}", "method": method, "dataset": dataset, "model": model,
           "train_epochs": 3, "n_train": 500, "checkpoint": {"run": f"{method}-run"},
           "images": {"start": start, "n": n}, "n_images": n, "seed": 4, "pgd": {"steps": 20},
           "accuracy": accuracy or {"clean": 0.4, "pgd": 0.25, "autoattack": 0.2}, "autoattack": CHEAP_AA,
           "time_utc": time_utc}
    rec.update(kw)
    return rec


REFERENCE = pd.DataFrame([
    {"method": "sat", "dataset": "cifar10", "metric": "pgd", "paper": 50.0},
    {"method": "sat", "dataset": "cifar10", "metric": "autoattack", "paper": 45.5},
    {"method": "weat_adv", "dataset": "cifar10", "metric": "autoattack", "paper": 48.25},
    {"method": "trades", "dataset": "cifar100", "metric": "autoattack", "paper": 25.0},
])


# ----------------------------------------------------------------------------- provenance of a record
def test_protocol_says_where_the_numbers_come_from():
    assert tables.protocol(_record()) == ("small_cnn, 3 ep on 500 imgs; 100 test imgs [200:300]; PGD-20; "
                                          "AA cheap (10 it, 3 targets, 100 queries); seed 4")
    assert tables.protocol(_record(n_train=None, autoattack={"standard": True}, start=0, n=10_000)) == (
        "small_cnn, 3 ep on all imgs; 10000 test imgs [0:10000]; PGD-20; AA standard; seed 4")
    assert tables.protocol(_record(autoattack=None)).endswith("; PGD-20; no AA; seed 4")


def _paper(**kw):
    fields = {"model": "resnet18", "train_epochs": 100, "n_train": None, "start": 0, "n": 10_000,
              "autoattack": {"standard": True}}
    return _record(**{**fields, **kw})


@pytest.mark.parametrize("changes, follows", [
    ({}, True), ({"train_epochs": 150}, True), ({"dataset": "svhn", "n": 26_032}, True),
    ({"train_epochs": 99}, False), ({"train_epochs": None}, False), ({"model": "small_cnn"}, False),
    ({"n_train": 49_000}, False), ({"n": 9_999}, False), ({"start": 1}, False), ({"dataset": "svhn"}, False),
    ({"autoattack": {"standard": False}}, False), ({"autoattack": None}, False)])
def test_the_paper_protocol_needs_every_one_of_its_conditions(changes, follows):
    rec = _paper(**{k: v for k, v in changes.items() if k not in ("n", "start")})
    if "n" in changes or "start" in changes:
        start, n = changes.get("start", 0), changes.get("n", 10_000)
        rec.update(images={"start": start, "n": n}, n_images=n)
    assert tables.follows_paper_protocol(rec) is follows


def test_a_record_without_images_counts_from_the_first_image():
    rec = _paper()
    del rec["images"]
    assert tables.follows_paper_protocol(rec) is True


def test_protocol_note_counts_the_records_off_the_protocol():
    assert tables.protocol_note([_paper(), _paper()]) == (
        True, "these records follow the paper's protocol, so their numbers can be set against the paper's")
    flag, text = tables.protocol_note([_paper(), _record(), _record()])
    assert flag is False and text.startswith("2 of 3 evaluation record(s) do not follow the paper's protocol")
    assert tables.protocol_note(iter([_paper(), _record()]))[1].startswith("1 of 2 ")
    assert tables.protocol_note([]) == (False, tables.protocol_note([_record()])[1].replace("1 of 1", "0 of 0"))


# ----------------------------------------------------------------------------- tables from records
def test_records_frame_has_one_row_per_record_and_metric_in_percent():
    frame = tables.records_frame([_record(accuracy={"clean": 0.5, "pgd": 0.125}), _record("trades", n=50)])
    assert list(frame.columns) == ["method", "dataset", "model", "metric", "accuracy", "n_images", "time_utc", "key",
                                   "run", "protocol"]
    assert frame[["method", "metric", "accuracy", "n_images", "key", "run"]].values.tolist() == [
        ["sat", "clean", 50.0, 100, "k-sat-cifar10-100", "sat-run"],
        ["sat", "pgd", 12.5, 100, "k-sat-cifar10-100", "sat-run"],
        ["trades", "clean", 40.0, 50, "k-trades-cifar10-50", "trades-run"],
        ["trades", "pgd", 25.0, 50, "k-trades-cifar10-50", "trades-run"],
        ["trades", "autoattack", 20.0, 50, "k-trades-cifar10-50", "trades-run"]]
    assert frame["protocol"].iloc[0] == tables.protocol(_record())
    untimed = _record()
    del untimed["time_utc"]
    assert tables.records_frame([untimed])["time_utc"].tolist() == ["", "", ""]
    assert tables.records_frame([]).empty and list(tables.records_frame([]).columns)[0] == "method"


def test_one_record_per_method_dataset_and_model_most_images_then_newest():
    recs = [_record(key="a", n=100, time_utc="2026-03-01"), _record(key="b", n=1000, time_utc="2026-01-01"),
            _record(key="c", n=1000, time_utc="2026-02-01"), _record(key="d", n=5000, model="resnet18"),
            _record(key="e", n=10, dataset="cifar100"), _record("trades", key="f", n=1)]
    kept = tables._one_per_method(tables.records_frame(recs))
    assert sorted(set(kept["key"])) == ["c", "d", "e", "f"]
    assert len(kept) == 12                                      # every metric row of the kept records


def test_methods_are_ordered_as_the_labels_then_alphabetically():
    assert tables._order(["zeta", "weat_adv", "sat", "alpha", "trades", "sat"]) == [
        "sat", "trades", "weat_adv", "alpha", "zeta"]


def test_results_table_is_methods_by_dataset_and_metric_rounded_to_hundredths():
    recs = [_record("weat_adv", accuracy={"clean": 0.123456, "pgd": 0.2, "autoattack": 0.1}),
            _record("sat", accuracy={"clean": 0.5, "pgd": 0.3, "autoattack": 0.25}),
            _record("sat", dataset="cifar100", accuracy={"pgd": 0.1, "clean": 0.2}),
            _record("mystery", accuracy={"clean": 0.9})]
    table = tables.results_table(recs)
    assert list(table.index) == ["SAT", "WEAT_adv", "mystery"]
    assert list(table.columns) == [("CIFAR-10", "clean"), ("CIFAR-10", "PGD"), ("CIFAR-10", "AA"),
                                   ("CIFAR-100", "clean"), ("CIFAR-100", "PGD")]
    assert table.loc["WEAT_adv", ("CIFAR-10", "clean")] == 12.35
    assert table.loc["SAT"].tolist() == [50.0, 30.0, 25.0, 20.0, 10.0]
    assert np.isnan(table.loc["WEAT_adv", ("CIFAR-100", "PGD")]) and np.isnan(table.loc["mystery", ("CIFAR-10", "AA")])


def test_results_table_shows_the_first_record_given_when_two_models_share_a_cell():
    recs = [_record(key="a", accuracy={"pgd": 0.1}), _record(key="b", model="resnet18", accuracy={"pgd": 0.4})]
    assert tables.results_table(recs).loc["SAT", ("CIFAR-10", "PGD")] == 10.0
    assert tables.results_table(recs[::-1]).loc["SAT", ("CIFAR-10", "PGD")] == 40.0


def test_comparison_table_is_this_run_minus_the_paper_sorted_by_dataset_method_metric():
    recs = [_record("weat_adv", accuracy={"clean": 0.5, "pgd": 0.3, "autoattack": 0.50004}),
            _record("sat", accuracy={"autoattack": 0.4, "pgd": 0.456789, "clean": 0.6}),
            _record("trades", dataset="cifar100", accuracy={"autoattack": 0.2})]
    comp = tables.comparison_table(recs, REFERENCE)
    assert list(comp.index) == [("CIFAR-10", "SAT", "clean"), ("CIFAR-10", "SAT", "PGD"), ("CIFAR-10", "SAT", "AA"),
                                ("CIFAR-10", "WEAT_adv", "clean"), ("CIFAR-10", "WEAT_adv", "PGD"),
                                ("CIFAR-10", "WEAT_adv", "AA"), ("CIFAR-100", "TRADES", "AA")]
    assert list(comp.columns) == ["this run (%)", "paper (%)", "difference (pt)", "protocol"]
    assert comp.loc[("CIFAR-10", "SAT", "PGD")][["this run (%)", "paper (%)", "difference (pt)"]].tolist() == [
        45.68, 50.0, -4.32]
    assert comp.loc[("CIFAR-10", "WEAT_adv", "AA")][["this run (%)", "difference (pt)"]].tolist() == [50.0, 1.75]
    assert comp.loc[("CIFAR-100", "TRADES", "AA"), "difference (pt)"] == -5.0
    assert comp.loc[("CIFAR-10", "SAT", "clean")][["paper (%)", "difference (pt)"]].isna().all()
    # methods in the labels' order (TRADES before MART, not alphabetical); unknown names shown as they are
    more = [_record("mart", accuracy={"pgd": 0.1}), _record("trades", accuracy={"pgd": 0.2}),
            _record("mystery", dataset="mnist", accuracy={"pgd": 0.3})]
    assert list(tables.comparison_table(more, REFERENCE).index) == [
        ("CIFAR-10", "TRADES", "PGD"), ("CIFAR-10", "MART", "PGD"), ("mnist", "mystery", "PGD")]
    only = tables.comparison_table(recs, REFERENCE, include_missing_paper=False)
    assert list(only.index) == [("CIFAR-10", "SAT", "PGD"), ("CIFAR-10", "SAT", "AA"), ("CIFAR-10", "WEAT_adv", "AA"),
                                ("CIFAR-100", "TRADES", "AA")]


def test_paper_table_and_reference_read_the_data_file(tmp_path):
    table = tables.paper_table(REFERENCE)
    assert list(table.index) == ["SAT", "TRADES", "WEAT_adv"]
    extra = pd.DataFrame([{"method": m, "dataset": "cifar10", "metric": "pgd", "paper": v}
                          for m, v in (("mart", 1.0), ("trades", 2.0), ("mystery", 3.0), ("trades", 4.0))])
    odd = tables.paper_table(extra)
    assert list(odd.index) == ["TRADES", "MART", "mystery"] and odd[("CIFAR-10", "PGD")].tolist() == [2.0, 1.0, 3.0]
    assert tables.paper_table().equals(tables.paper_table(tables.paper_reference()))
    assert list(table.columns) == [("CIFAR-10", "PGD"), ("CIFAR-10", "AA"), ("CIFAR-100", "AA")]
    assert table.loc["SAT"].tolist()[:2] == [50.0, 45.5] and table.loc["WEAT_adv", ("CIFAR-10", "AA")] == 48.25
    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"records": [{"method": "sat", "dataset": "svhn", "metric": "pgd",
                                             "accuracy_percent": 53.5, "note": "x"}]}))
    assert tables.paper_reference(path).to_dict("records") == [
        {"method": "sat", "dataset": "svhn", "metric": "pgd", "paper": 53.5}]
    assert tables.paper_reference(str(path)).equals(tables.paper_reference(path))
    with pytest.raises(FileNotFoundError, match=r"paper reference .*missing\.json not found: .*restore it from git"):
        tables.paper_reference(tmp_path / "missing.json")
    assert len(tables.paper_reference()) == 33                # the repository's own file by default


# ----------------------------------------------------------------------------- the reproduction summary
def _row(claim="CO", verdict=REPRODUCED, **kw):
    row = {"claim": claim, "section": "2.5", "paper": "collapse", "this build": "0 %", "verdict": verdict}
    row.update(kw)
    return row


def test_write_summary_stores_the_rows_with_their_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "XYZ-5:30")                  # a local time 5.5 h from UTC: the stamp must not follow it
    time.tzset()
    try:
        start = time.time()
        path = tables.write_summary("02_at_phases", [_row(), _row("ΔE ids", kind=tables.IDENTITY)], "default",
                                    root=tmp_path)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert path == tmp_path / "summary" / "default" / "02_at_phases.json"
    rec = json.loads(path.read_text())
    assert {k: rec[k] for k in ("chapter", "title", "profile")} == {
        "chapter": "02_at_phases", "title": "Phases of adversarial training", "profile": "default"}
    stamp = calendar.timegm(time.strptime(rec["time_utc"], "%Y-%m-%dT%H:%M:%SZ"))
    assert start - 2 <= stamp <= time.time() + 1
    assert rec["rows"] == [{"kind": tables.REPRODUCTION, **_row()}, _row("ΔE ids", kind=tables.IDENTITY)]
    # readable in a diff: indented by 2, non-ASCII as it is, one newline at the end
    assert path.read_text(encoding="utf-8") == json.dumps(rec, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("chapter, rows, problem", [
    ("07_other", [_row()], "unknown chapter '07_other'; add it to energy_lib.tables.SUMMARY_CHAPTERS"),
    ("02_at_phases", [{"claim": "x"}], r"need exactly the keys .*got \['claim', 'kind'\]"),
    ("02_at_phases", [_row(extra=1)], "need exactly the keys"),
    ("02_at_phases", [_row(kind="vibes")], r"kind 'vibes' is not one of \('reproduction', 'identity', 'sanity check'\)")])
def test_write_summary_refuses_what_it_cannot_file(tmp_path, chapter, rows, problem):
    with pytest.raises(ValueError, match=problem):
        tables.write_summary(chapter, rows, "default", root=tmp_path)
    assert not (tmp_path / "summary").exists() or not any((tmp_path / "summary").rglob("*.json"))


def test_the_summary_lives_in_the_run_store_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    assert tables.summary_dir("smoke") == tmp_path / "summary" / "smoke"
    assert tables.write_summary("01_attack_energies", [_row()], "smoke") == tmp_path / "summary" / "smoke" / \
        "01_attack_energies.json"
    assert tables.read_summaries("smoke")["01_attack_energies"]["rows"][0]["claim"] == "CO"


def test_read_summaries_has_every_chapter_in_book_order(tmp_path):
    tables.write_summary("04_weat_der", [_row()], "default", root=tmp_path)
    tables.write_summary("04_weat_der", [_row(verdict=NOT_REPRODUCED)], "smoke", root=tmp_path)
    read = tables.read_summaries("default", root=tmp_path)
    assert list(read) == list(tables.SUMMARY_CHAPTERS)
    assert [c for c, r in read.items() if r is not None] == ["04_weat_der"]
    assert read["04_weat_der"]["rows"][0]["verdict"] == REPRODUCED


def test_a_chapter_table_names_each_claim_with_its_section():
    table = tables.summary_table([_row(), _row("phases", section="2.2", kind=tables.SANITY)])
    assert list(table.index) == ["CO (PAPER.md 2.5)", "phases (PAPER.md 2.2)"]
    assert list(table.columns) == ["paper", "this build", "verdict", "kind"]
    assert table["kind"].tolist() == [tables.REPRODUCTION, tables.SANITY]


def test_the_front_page_collects_every_chapter_and_counts_reproductions_apart(tmp_path):
    tables.write_summary("02_at_phases", [_row(), _row("RO", verdict=INCONCLUSIVE_SCALE),
                                          _row("KL", kind=tables.IDENTITY)], "default", root=tmp_path)
    tables.write_summary("05_generation", [_row("SGLD", kind=tables.SANITY)], "default", root=tmp_path)
    front = tables.book_summary("default", root=tmp_path)
    assert list(front.index.names) == ["chapter", "claim"]
    assert list(front.columns) == ["paper", "this build", "verdict", "kind", "run"]
    chapters = front.index.get_level_values("chapter").tolist()
    assert chapters == ["Attack energies", "Phases of adversarial training", "Phases of adversarial training",
                        "Phases of adversarial training", "TRADES as an EBM", "WEAT and DER", "Generation",
                        "Robust models smooth the energy landscape"]
    assert front.loc[("Attack energies", "—")].tolist() == ["—", "—", NOT_RUN, tables.REPRODUCTION, "—"]
    row = front.loc[("Phases of adversarial training", "CO (PAPER.md 2.5)")]
    assert row[["paper", "this build", "verdict", "kind"]].tolist() == ["collapse", "0 %", REPRODUCED,
                                                                        tables.REPRODUCTION]
    assert row["run"].endswith("Z")
    assert tables.verdict_counts(front) == {NOT_RUN: 4, REPRODUCED: 1, INCONCLUSIVE_SCALE: 1}
    assert tables.verdict_counts(front, tables.IDENTITY) == {REPRODUCED: 1}
    assert tables.verdict_counts(front, tables.SANITY) == {REPRODUCED: 1}
    # a record written before rows had a kind counts its rows as reproductions
    path = tables.summary_dir("default", tmp_path) / "03_trades_ebm.json"
    path.write_text(json.dumps({"time_utc": "2026-01-01T00:00:00Z", "rows": [
        {k: v for k, v in _row("old").items()}]}))
    assert tables.book_summary("default", root=tmp_path).loc[("TRADES as an EBM", "old (PAPER.md 2.5)"), "kind"] == \
        tables.REPRODUCTION
    # a table without a kind column counts every row
    assert tables.verdict_counts(pd.DataFrame({"verdict": [REPRODUCED, REPRODUCED, NOT_RUN]})) == {
        REPRODUCED: 2, NOT_RUN: 1}


def test_budgets_and_attacks_are_written_as_readers_write_them():
    """The reader's form of tracking.json: ε and steps in /255 (3 significant figures), a single-step
    method's step as a multiple of ε, restarts counted; built from the record's own values."""
    assert [tables.eps_text(v) for v in (8 / 255, 0.026143790849673203, 0.5 / 255, 16 / 255)] == \
        ["8/255", "6.67/255", "0.5/255", "16/255"]
    values = {"eps": 8 / 255, "train_step_size": 0.026143790849673203, "attack_steps": 3, "fgsm_alpha": 1.25,
              "test_step_size": 0.01568627450980392, "test_attack_steps": 5, "test_attack_restarts": 1}
    sat = {"train": "sat training attack: PGD-CE, uniform start, 3 steps of 0.0261438, eval mode, eps=0.0313725",
           "values": values}
    assert tables.attack_texts(sat) == {"train": "PGD-CE, 3 steps of 6.67/255, ε = 8/255",
                                        "test": "PGD-CE, 5 steps of 4/255, 1 restart, ε = 8/255"}
    trades = {"train": "trades training attack: TRADES-KL PGD, start x+0.001·N(0,1), 3 steps of 0.0261438",
              "values": {**values, "test_attack_restarts": 10, "test_attack_steps": 50}}
    assert tables.attack_texts(trades) == {"train": "TRADES-KL PGD, 3 steps of 6.67/255, ε = 8/255",
                                           "test": "PGD-CE, 50 steps of 4/255, 10 restarts, ε = 8/255"}
    rs = {"train": "fgsm_rs_der training attack: FGSM-RS, uniform start, one step of 1.25·eps",
          "values": {**values, "eps": 16 / 255}}
    assert tables.attack_texts(rs)["train"] == "FGSM-RS, one step of 1.25·ε, ε = 16/255"
    nfgsm = {"train": "n_fgsm training attack: N-FGSM, start x+U[-2·eps, 2·eps], one step of 1·eps, not projected",
             "values": {**values, "fgsm_alpha": 1.0, "eps": 16 / 255}}
    assert tables.attack_texts(nfgsm)["train"] == "N-FGSM, start x + U[−2ε, 2ε], one step of 1·ε, ε = 16/255"


def test_every_methods_recorded_attack_reads_as_a_reader_writes_it():
    """Every method's tracking.json, as training writes it (`train.tracking_attack_description`), reads
    back in /255 units with no raw long float: a change of the recorded format fails here."""
    import re

    from energy_lib.config import TrainConfig
    from energy_lib.names import METHOD_USES
    from energy_lib.train import tracking_attack_description

    for method in METHOD_USES:
        cfg = TrainConfig.from_profile("smoke", method=method)
        texts = tables.attack_texts(tracking_attack_description(cfg))
        assert texts["train"].endswith(f", ε = {tables.eps_text(cfg.eps)}"), (method, texts)
        assert texts["test"].startswith(f"PGD-CE, {cfg.track_attack_steps} steps of "), (method, texts)
        assert not re.search(r"\d\.\d{4,}", texts["train"] + texts["test"]), (method, texts)
        assert ("one step of" in texts["train"]) == ("fgsm_alpha" in METHOD_USES[method]), (method, texts)
        # the record splits at its one ' training attack: ' (what makes the split's maxsplit and side
        # irrelevant: tools/mutation_equivalent.json)
        assert tracking_attack_description(cfg)["train"].count(" training attack: ") == 1, method
