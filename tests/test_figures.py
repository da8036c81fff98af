"""The interactive figures' data match the records they were computed from; the charts carry their
drop-downs, tooltips and the vendored-script loader (drawing is checked in Chromium by test_book.py)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from energy_lib import attack_energies, data, figures, models, runs
from energy_lib.config import AttackEnergyConfig

CFG = AttackEnergyConfig.from_profile("smoke", n_images=6, autoattack=False, device="cpu", eps_grid=(8 / 255,))


def test_attack_points_match_the_lens_record(tmp_path, monkeypatch):
    monkeypatch.setenv("ENERGY_RUNS", str(tmp_path))
    torch.manual_seed(0)
    model = models.build_model("small_cnn").eval()
    result = attack_energies.look(model, CFG, {"kind": "test", "model": "small_cnn", "seed": 0}, progress=False)
    points = figures.attack_points(result.frame, "standard", attack_energies.LABELS)
    # the record's own file, read independently of the lens
    with np.load(result.directory / "energies.npz", allow_pickle=False) as z:
        stored = pd.DataFrame({k: z[k] for k in ("attack", "eps", "sample", "E_nat", "E_adv", "Exy_nat", "Exy_adv")})
    row = stored[(stored.attack == "pgd") & (stored["sample"] == 3)].iloc[0]
    got = points[(points.attack == attack_energies.LABELS["pgd"]) & (points.image == 3)]
    assert len(got) == 1 and got.model.iloc[0] == "standard" and got.eps.iloc[0] == 8.0
    got = got.iloc[0]
    assert got.E_x == pytest.approx(row.E_nat, abs=1e-3) and got.E_adv == pytest.approx(row.E_adv, abs=1e-3)
    assert got.dE == pytest.approx(row.E_nat - row.E_adv, abs=2e-3)
    assert got.dEy == pytest.approx(row.Exy_nat - row.Exy_adv, abs=2e-3)
    # and E(x) is the model's: −logsumexp of its logits on test image 3
    x, _ = data.load_dataset("cifar10", "test", n=CFG.n_images).tensors()
    with torch.no_grad():
        expected = -torch.logsumexp(model(x[3:4]), 1).item()
    assert got.E_x == pytest.approx(expected, abs=2e-3)
    assert len(points) == len(result.frame)


def test_epoch_points_match_the_runs_samples_file():
    run = runs.reference_run()
    assert run is not None, "the committed reference run is missing"
    points = figures.epoch_points(run.tracked_samples, "SAT", epochs=[1, 8])
    assert sorted(points.epoch.unique()) == [1, 8] and set(points.method) == {"SAT"}
    lines = [json.loads(line) for line in (run.dir / "samples.jsonl").read_text().splitlines() if line.strip()]
    rec = next(r for r in lines if r["epoch"] == 8)
    got = points[(points.epoch == 8) & (points.image == 5)].iloc[0]
    assert got.E_x == pytest.approx(rec["E_nat"][5], abs=1e-3)
    assert got.E_adv == pytest.approx(rec["E_adv"][5], abs=1e-3)
    assert got.dE == pytest.approx(rec["E_nat"][5] - rec["E_adv"][5], abs=2e-3)
    assert got.dEy == pytest.approx(rec["Ey_nat"][5] - rec["Ey_adv"][5], abs=2e-3)
    assert len(points[points.epoch == 8]) == len(rec["E_nat"])


def test_missing_columns_are_named():
    with pytest.raises(figures.FigureDataError, match="Exy_adv"):
        figures.attack_points(pd.DataFrame({"attack": [], "eps": [], "sample": [], "E_nat": [], "E_adv": [],
                                            "Exy_nat": []}), "m")


def test_spread_epochs_keeps_first_and_last():
    assert figures.spread_epochs(range(1, 31), 6)[0] == 1 and figures.spread_epochs(range(1, 31), 6)[-1] == 30
    assert len(figures.spread_epochs(range(1, 31), 6)) == 6
    assert figures.spread_epochs([3, 1, 2], 10) == [1, 2, 3]


def _points():
    r = np.random.default_rng(0)
    return pd.DataFrame({"model": "standard", "attack": np.repeat(["PGD", "FAB"], 4), "eps": 8.0,
                         "image": np.tile(np.arange(4), 2), "E_x": r.normal(size=8).round(3),
                         "E_adv": r.normal(size=8).round(3), "dE": 0.1, "dEy": -0.2})


def test_scatter_binds_one_dropdown_per_choice_and_filters_on_all():
    spec = figures.spec(figures.scatter(_points(), select=["model", "attack", "eps"], initial={"attack": "FAB"}))
    bound = {p["name"]: p for p in spec["params"] if "bind" in p and p["bind"] != "scales"}
    assert set(bound) == {"model", "attack", "eps"}
    assert bound["attack"]["bind"]["options"] == ["PGD", "FAB"] and bound["attack"]["value"] == "FAB"
    text = json.dumps(spec)
    assert 'datum[\\"model\\"] == model && datum[\\"attack\\"] == attack && datum[\\"eps\\"] == eps' in text
    assert '"title": "image id"' in text and '"title": "\\u0394E(x,y)"' in text   # hover: id and energies
    with pytest.raises(figures.FigureDataError, match="initial attack"):
        figures.scatter(_points(), select=["attack"], initial={"attack": "CW"})


def test_side_by_side_panels_have_their_own_zoom():
    pts = pd.concat([_points().assign(method="SAT"), _points().assign(method="TRADES")])
    spec = figures.spec(figures.scatter(pts, select=["attack"], column="method"))
    assert len(spec["hconcat"]) == 2
    assert [p["title"] for p in spec["hconcat"]] == ["SAT", "TRADES"]


def test_figure_html_loads_the_vendored_scripts_and_escapes_the_data():
    pts = _points().assign(attack=["</script><b>"] * 8)
    html = figures.Figure(figures.scatter(pts, select=["attack"]), "t").html()
    assert f'class="{figures.FIGURE_CLASS}"' in html and "</script><b>" not in html
    for path in figures.VENDOR_SCRIPTS:
        assert path in html
    assert "cdn" not in html.lower() and "https://" not in html.split("$schema")[0]


def test_weight_points_match_the_runs_samples_file():
    run = runs.reference_run()
    points = figures.weight_points(run.tracked_samples, "SAT", epochs=[8])
    rec = next(json.loads(line) for line in (run.dir / "samples.jsonl").read_text().splitlines()
               if line.strip() and json.loads(line)["epoch"] == 8)
    got = points[points.image == 7].iloc[0]
    energy = rec["E_nat"][7]
    assert got.E_x == pytest.approx(energy, abs=1e-3)
    assert got.w == pytest.approx(1 / np.log1p(np.exp(abs(energy))), abs=1e-3)   # PAPER.md 2.6
    assert got.classified == ("correct" if rec["correct_nat"][7] else "incorrect")


def test_scatter_without_diagonal_has_an_axis_range_each_and_category_colours():
    pts = _points().assign(w=np.linspace(0.1, 1.4, 8), classified=["correct", "incorrect"] * 4)
    spec = figures.spec(figures.scatter(pts, y="w", select=["attack"], diagonal=False, color="classified"))
    layer, = spec["layer"]
    enc = layer["encoding"]
    assert enc["y"]["scale"]["domain"][1] > 1.4 > enc["x"]["scale"]["domain"][1]
    assert enc["color"]["field"] == "classified" and enc["color"]["type"] == "nominal"


def test_an_inline_figure_carries_the_vendored_scripts(tmp_path):
    for path in figures.VENDOR_SCRIPTS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(f"window.{path.split('/')[0].replace('-', '_')} = 1; // </script>")
    text = figures.inline_scripts(tmp_path)
    assert text.count("<script>") == 5 and "window.vega_lite = 1" in text and "</script>\n" in text
    assert "// <\\/script>" in text   # a script's own text cannot end the element
    with pytest.raises(figures.FigureDataError, match="fetch_web_assets"):
        figures.inline_scripts(tmp_path / "nothing")


def test_chain_points_hold_each_frame_and_its_energy():
    import base64
    import io

    import torch as t
    from PIL import Image

    from energy_lib.generate import SGLDResult

    x = t.rand(6, 3, 4, 4)
    res = SGLDResult(x=x, y=t.tensor([0, 0, 1, 1, 2, 2]), energy=t.zeros(6), stopped_at=t.zeros(6),
                     trace=t.arange(3 * 6, dtype=t.float32).reshape(3, 6),
                     frames={0: x[[0, 2, 3]] * 0, 2: x[[0, 2, 3]]}, frame_chains=t.tensor([0, 2, 3]))
    pts = figures.chain_points(res, "robust", "pca", ["plane", "car", "bird"], steps=[0, 2], cell=4)
    # the first framed chain of each class: chain 0 (plane) and chain 2 (car); chain 3 is car's second
    assert list(pts[pts.step == 2]["image"]) == [0, 2] and list(pts[pts.step == 2]["class"]) == ["plane", "car"]
    assert pts[(pts.step == 2) & (pts.image == 2)].Ey.iloc[0] == 14.0   # trace[2, 2]
    sprite = pts.sprite.iloc[0]
    assert sprite.startswith("data:image/jpeg;base64,") and (pts.sprite.iloc[1:] == "").all()
    sheet = Image.open(io.BytesIO(base64.b64decode(sprite.split(",", 1)[1])))
    assert sheet.size == (2 * 4, 2 * 4)    # a column per step, a row per class
    assert np.asarray(sheet.crop((0, 0, 4, 8)).convert("L")).max() < 40   # step 0: the frames were zero
    with pytest.raises(figures.FigureDataError, match="step"):
        figures.chain_points(res, "robust", "pca", ["plane", "car", "bird"], steps=[1])
    spec = json.dumps(figures.spec(figures.image_grid(pts, select=["model", "start"])))
    assert '"type": "image"' in spec and '"title": "E(x,y)"' in spec and '"type": "rect"' in spec


def test_compact_data_is_csv_parsed_back_to_numbers():
    spec = figures.spec(figures.scatter(_points(), select=["attack"]))
    small = figures.compact(spec)
    name = max(spec["datasets"], key=lambda n: len(spec["datasets"][n]))   # the points, not the diagonal
    rows = spec["datasets"][name]
    text = small["datasets"][name]
    assert isinstance(text, str) and text.splitlines()[0].split(",")[:3] == ["model", "attack", "eps"]
    assert len(text.splitlines()) == len(rows) + 1 and len(text) < len(json.dumps(rows)) / 2
    formats = [layer["data"]["format"] for layer in small["layer"] if layer["data"]["name"] == name]
    assert formats == [{"type": "csv", "parse": {c: "number" for c in ("eps", "image", "E_x", "E_adv", "dE", "dEy")}}]
    assert small["params"] == spec["params"]   # nothing else changed


def test_axes_cover_the_bulk_not_a_few_outliers():
    r = np.random.default_rng(1)
    pts = pd.DataFrame({"attack": "PGD", "image": np.arange(1000), "E_x": r.normal(-3, 0.3, 1000),
                        "E_adv": r.normal(-3, 0.3, 1000), "dE": 0.0, "dEy": 0.0})
    pts.loc[0, "E_x"] = -40.0                     # one outlier
    layer = figures.spec(figures.scatter(pts, select=["attack"]))["layer"][-1]
    lo, hi = layer["encoding"]["x"]["scale"]["domain"]
    assert -6 < lo < -3 < hi < 0 and layer["mark"]["clip"] is True


def test_every_layer_shares_the_fixed_axes():
    """The diagonal must not widen the axes (a layer's default scale would add 0 to the shared domain)."""
    layers = figures.spec(figures.scatter(_points(), select=["attack"]))["layer"]
    for axis in ("x", "y"):
        scales = [layer["encoding"][axis]["scale"] for layer in layers]
        assert all(sc["zero"] is False for sc in scales) and len({tuple(sc["domain"]) for sc in scales}) == 1


def test_attack_pictures_show_image_counterpart_and_difference_under_the_points_key():
    """One picture per kept image and attack: image | adversarial | difference (±ε black to white, 0
    grey), keyed as the page computes it from a point (`figures.PICTURE_KEY`: JavaScript's numbers)."""
    import base64
    import io

    from PIL import Image

    from energy_lib import lens

    natural = np.zeros((2, 3, 32, 32), np.uint8)
    natural[1] = 200
    adversarial = natural.copy()
    adversarial[1, :, :16] += 2                 # +2/255 on the top half of image 1: +ε at ε = 2/255
    frame = pd.DataFrame({"attack": ["pgd"] * 3, "eps": [2 / 255] * 3, "sample": [0, 1, 2], "E_nat": [-1.0] * 3,
                          "E_adv": [-2.0] * 3, "Exy_nat": [0.0] * 3, "Exy_adv": [1.0] * 3})
    result = lens.LensResult({"settings": {"start": 40}, "attacks": {"pgd@2.00": {"eps": 2 / 255}}}, frame, None, True,
                             examples={"pgd@2.00": {"natural": natural, "adversarial": adversarial}})
    pictures = figures.attack_pictures(result, "robust", {"pgd": "PGD"}, scale=2)
    assert list(pictures.key) == ["robust|PGD|2|0", "robust|PGD|2|1"]
    # each picture belongs to the point of its image (whatever the record's first test image), the third has none
    points = figures.attack_points(frame, "robust", {"pgd": "PGD"})
    keys = [figures.picture_key(p.model, p.attack, p.eps, p.image) for p in points.itertuples()]
    assert keys[:2] == list(pictures.key) and keys[2] not in set(pictures.key)
    assert figures.picture_key("m", "FAB", 7.8, 3) == "m|FAB|7.8|3"
    uri = pictures.picture.iloc[1]
    assert uri.startswith("data:image/jpeg;base64,")
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"), float)
    assert shown.shape == (64, 192, 3)          # three 32 px panels side by side, twice their size
    image, counterpart, difference = shown[:, :64], shown[:, 64:128], shown[:, 128:]
    assert abs(image.mean() - 200) < 3 and abs(counterpart[:32].mean() - 202) < 3
    assert difference[:32].mean() > 245 and abs(difference[32:].mean() - 128) < 3   # +ε white, 0 grey


def test_scatter_looks_pictures_up_by_key_outside_the_points_data():
    points = pd.DataFrame({"model": ["robust"] * 2, "attack": ["PGD"] * 2, "eps": [8.0] * 2, "image": [0, 1],
                           "E_x": [-5.0, -4.0], "E_adv": [-6.0, -3.0], "dE": [1.0, -1.0], "dEy": [0.5, 0.2]})
    pictures = pd.DataFrame({"key": ["robust|PGD|8|0"], "picture": ["data:image/jpeg;base64,AAAA"]})
    spec = figures.spec(figures.scatter(points, select=["attack"], pictures=pictures))
    text = json.dumps(spec)
    assert figures.PICTURE_KEY in text and '"lookup": "picture_key"' in text
    assert "isValid(datum.picture) ? datum.picture : ''" in text   # a point without one gets "", not "null"
    assert {"field": "picture", "title": "image", "type": "nominal"} in spec["layer"][1]["encoding"]["tooltip"]
    points_set = [rows for rows in spec["datasets"].values() if rows and "E_x" in rows[0]]
    assert points_set and all("picture" not in r for r in points_set[0])     # the CSV download stays energies
    assert "picture" not in json.dumps(figures.spec(figures.scatter(points, select=["attack"])))


def test_a_figure_carries_more_rows_than_altairs_guard_up_to_its_own_limit(monkeypatch):
    """Chapter 2 in the default profile: 4 methods x 30 epochs x 100 tracked images = 12,000 points.
    Altair refuses more than 5,000 rows; the figures' own limit (MAX_ROWS) is the page's."""
    n = 12_000
    pts = pd.DataFrame({"epoch": np.repeat(np.arange(30), n // 30), "image": np.arange(n) % 400,
                        "E_x": np.linspace(-3, -2, n).round(3), "E_adv": np.linspace(-2.5, -1.5, n).round(3)})
    fig = figures.Figure(figures.scatter(pts, select=["epoch"], color=None), "many")
    spec = json.loads(fig.html().split('-spec">', 1)[1].split("</script>", 1)[0])
    lines = sorted(len(v.strip().split("\n")) for v in spec["datasets"].values())
    assert lines == [3, n + 1]                       # the diagonal's 2 points and every point, each with a header
    import altair as alt
    with alt.renderers.enable("mimetype"):                                    # as a live front end renders it
        bundle = fig._repr_mimebundle_()
    assert any(k.startswith("application/vnd.vegalite") for k in bundle)
    with pytest.raises(alt.MaxRowsError):                                     # Altair's guard is back for others
        alt.Chart(pts).mark_point().to_dict()
    monkeypatch.setattr(figures, "MAX_ROWS", n - 1)                          # (12,002: the diagonal too)
    with pytest.raises(figures.FigureDataError, match=r"holds 12,002 rows of data, more than figures\.MAX_ROWS "
                                                      r"\(11,999\).*thin them"):
        fig.html()
