"""Kernel-free interactive figures for the published book (Vega-Lite, written with Altair).

A built book has no kernel. These figures carry their data (precomputed when the chapter runs, from
the run records: a lens record's per-image energies, a run's tracked samples) and draw in the
reader's browser: choose model / attack / ε / epoch from the drop-downs, zoom and pan, hover a point
to see its image id and energies. The JavaScript (Vega, Vega-Lite, vega-embed) is served by the book
itself (`tools/fetch_web_assets.py` -> `_static/vendor/`), never from a CDN.

* `attack_points`, `epoch_points`: the figure data, one row per image and choice, rounded to
  `DECIMALS` (what the page shows; the full arrays stay in the records).
* `scatter`: E(x) against E(x*) (or any two columns), filtered by bound drop-downs, with tooltips,
  optionally side by side (`column`) for two choices at once; with `attack_pictures`, hovering one of
  the first test images also shows it, its adversarial counterpart and their difference.
* `Figure`: what a chapter cell returns; the static HTML loads the vendored scripts and draws, a live
  Jupyter front end gets Altair's own Vega-Lite output.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

DECIMALS = 3            # energies are shown to 3 decimals (the tracked values carry 5)
# Under the book's `_static/vendor/` (tools/fetch_web_assets.py), loaded in this order.
VENDOR_SCRIPTS = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js",
                  "vega-embed/build/vega-embed.min.js")
FIGURE_CLASS = "energy-figure"   # what tools/check_html.py looks for
# Tooltip titles of the data columns.
TITLES = {"image": "image id", "E_x": "E(x)", "E_adv": "E(x*)", "Ey": "E(x,y)", "Ey_adv": "E(x*,y)",
          "dE": "ΔE(x)", "dEy": "ΔE(x,y)", "model": "model", "attack": "attack", "eps": "ε (×255)",
          "epoch": "epoch", "method": "method", "w": "WEAT weight w(x)", "classified": "classified"}

_ids = itertools.count()


class FigureDataError(ValueError):
    """The input frame lacks what the figure needs; the message names the columns."""


def _need(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FigureDataError(f"{what}: the frame has no column(s) {missing} (it has {list(frame.columns)})")


def attack_points(frame: pd.DataFrame, model: str, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Chapter 1's figure data from a lens frame (`lens.LensResult.frame`: one row per image, attack and
    ε): model, attack (its label), ε in 255ths, image id (the test-set index), E(x), E(x*), ΔE(x) = E(x) −
    E(x*), ΔE(x,y) = E(x,y) − E(x*,y)."""
    _need(frame, ["attack", "eps", "sample", "E_nat", "E_adv", "Exy_nat", "Exy_adv"], "attack_points")
    labels = labels or {}
    out = pd.DataFrame({
        "model": model,
        "attack": frame["attack"].map(lambda a: labels.get(a, a)),
        "eps": np.round(frame["eps"].to_numpy(dtype=float) * 255, 1),
        "image": frame["sample"].astype(int),
        "E_x": frame["E_nat"].astype(float), "E_adv": frame["E_adv"].astype(float),
        "dE": frame["E_nat"].astype(float) - frame["E_adv"].astype(float),
        "dEy": frame["Exy_nat"].astype(float) - frame["Exy_adv"].astype(float),
    })
    return out.round(DECIMALS).reset_index(drop=True)


def _js_number(value: float) -> str:
    """A number as JavaScript's String() writes it, for the values the figures carry (ε in 255ths to one
    decimal, image ids): 8.0 -> "8", 7.8 -> "7.8"."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


PICTURE_KEY = "datum.model + '|' + datum.attack + '|' + datum.eps + '|' + datum.image"   # the same, in Vega


def picture_key(model: str, attack: str, eps: float, image: int) -> str:
    """The key a point of `attack_points` finds its picture by (`PICTURE_KEY` computes it in the page)."""
    return f"{model}|{attack}|{_js_number(eps)}|{int(image)}"


def attack_pictures(result, model: str, labels: dict[str, str] | None = None, scale: int = 1,
                    quality: int = 80) -> pd.DataFrame:
    """The hover pictures of `attack_points`: for each stored (attack, ε) of a lens result
    (`lens.LensResult.examples`: its first images) one JPEG per image of the image, its adversarial
    counterpart and their difference scaled so that ±ε spans black to white (0 is grey), side by side
    and enlarged `scale` times (the book's CSS enlarges them on screen: about 3 KB each at scale 1).
    Keyed like the points of `attack_points` of the same record: its attack label, ε in 255ths to one
    decimal (the record's ε) and the image's position in the record (`sample`). Columns: key
    (`picture_key`), picture (a data URI)."""
    labels = labels or {}
    rows = []
    for job, pair in result.examples.items():
        attack = job.partition("@")[0]
        eps = float(result.record["attacks"][job]["eps"])
        nat = pair["natural"].astype(np.float32) / 255
        adv = pair["adversarial"].astype(np.float32) / 255
        for i in range(len(nat)):
            diff = np.clip(0.5 + (adv[i] - nat[i]) / (2 * max(eps, 1e-9)), 0, 1)
            panel = np.concatenate([nat[i], adv[i], diff], axis=2)
            panel = panel.repeat(scale, axis=1).repeat(scale, axis=2)
            rows.append({"key": picture_key(model, labels.get(attack, attack), round(eps * 255, 1), i),
                         "picture": image_uri(panel, quality=quality)})
    return pd.DataFrame(rows, columns=["key", "picture"])


def epoch_points(samples: pd.DataFrame, method: str, epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """Chapter 2's figure data from a run's tracked samples (`runs.Run.tracked_samples`): method, epoch,
    image (position in the tracked training subset), E(x), E(x*), ΔE(x), ΔE(x,y);
    `epochs` keeps only those epochs (a page budget)."""
    _need(samples, ["epoch", "sample", "E_nat", "E_adv", "Ey_nat", "Ey_adv"], "epoch_points")
    if epochs is not None:
        samples = samples[samples["epoch"].isin(list(epochs))]
    out = pd.DataFrame({
        "method": method, "epoch": samples["epoch"].astype(int), "image": samples["sample"].astype(int),
        "E_x": samples["E_nat"].astype(float), "E_adv": samples["E_adv"].astype(float),
        "dE": samples["E_nat"].astype(float) - samples["E_adv"].astype(float),
        "dEy": samples["Ey_nat"].astype(float) - samples["Ey_adv"].astype(float),
    })
    return out.round(DECIMALS).reset_index(drop=True)


def weight_points(samples: pd.DataFrame, method: str, epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """Chapter 4's figure data from a run's tracked samples: method, epoch, image, E(x), the WEAT weight
    w(x) (`energy.weat_weights` of E(x)) and whether the natural image is classified correctly."""
    import torch

    from .energy import weat_weights

    _need(samples, ["epoch", "sample", "E_nat", "correct_nat"], "weight_points")
    if epochs is not None:
        samples = samples[samples["epoch"].isin(list(epochs))]
    energy = samples["E_nat"].to_numpy(dtype=float)
    out = pd.DataFrame({
        "method": method, "epoch": samples["epoch"].astype(int), "image": samples["sample"].astype(int),
        "E_x": energy, "w": weat_weights(torch.tensor(energy)).numpy(),
        "classified": np.where(samples["correct_nat"].astype(int) == 1, "correct", "incorrect"),
    })
    return out.round(DECIMALS).reset_index(drop=True)


def image_uri(image, quality: int = 85) -> str:
    """One (C, H, W) image in [0, 1] as a JPEG data URI (small enough to carry hundreds in a page)."""
    import base64
    import io

    from PIL import Image

    array = np.asarray(image, dtype=np.float32)
    array = np.clip(np.rint(np.moveaxis(array, 0, -1) * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def chain_points(result, model: str, start: str, class_names: Sequence[str], steps: Sequence[int],
                 cell: int = 32) -> pd.DataFrame:
    """Chapter 5's figure data from one SGLD result (`generate.SGLDResult` with frames): the first framed
    chain of each class at each of `steps` (snapshot steps), with its joint energy E(x, y) =
    trace[step, chain]. Columns: model, start, class, image (the chain's index among the result's chains),
    step, Ey, and `sprite`: one JPEG (`image_uri`) of all of them, a row per class and a column per step
    in the rows' order (`cell` pixels each), on the first row only (one picture instead of one per image:
    a JPEG's header is most of a 32 x 32 one)."""
    if not result.frames or result.frame_chains is None or result.trace is None:
        raise FigureDataError("chain_points: the SGLD result has no frames or trace (run it with "
                              "trace=True and snapshot steps)")
    missing = [s for s in steps if s not in result.frames]
    if missing:
        raise FigureDataError(f"chain_points: no frame at step(s) {missing}; frames at {sorted(result.frames)}")
    labels = result.y.tolist()
    picked, seen = [], set()
    for position, chain in enumerate(result.frame_chains.tolist()):
        if labels[chain] not in seen:
            seen.add(labels[chain])
            picked.append((position, chain, labels[chain]))
    picked.sort(key=lambda p: p[2])
    rows, tiles = [], []
    for position, chain, cls in picked:
        row = []
        for step in steps:
            rows.append({"model": model, "start": start, "class": class_names[cls], "image": int(chain),
                         "step": int(step), "Ey": round(float(result.trace[step, chain]), DECIMALS)})
            row.append(np.asarray(result.frames[step][position], dtype=np.float32))
        tiles.append(np.concatenate(row, axis=2))            # C, H, W * steps
    sheet = np.concatenate(tiles, axis=1)                     # C, H * classes, W * steps
    if sheet.shape[1] != cell * len(picked):                  # frames of another size: scale to the cell
        import torch
        import torch.nn.functional as F

        sheet = F.interpolate(torch.tensor(sheet)[None], size=(cell * len(picked), cell * len(steps)),
                              mode="nearest")[0].numpy()
    out = pd.DataFrame(rows)
    out["sprite"] = ""
    out.loc[0, "sprite"] = image_uri(sheet)
    return out


def image_grid(points: pd.DataFrame, *, select: Sequence[str], initial: dict | None = None, title: str = "",
               cell: int = 40):
    """An Altair chart of the pictures of `chain_points`: for the rows that match every drop-down of
    `select`, their sheet (a row per class, a column per step, `cell` pixels each), with one invisible
    cell per image to hover for its class, chain, step and E(x, y)."""
    import altair as alt

    _need(points, ["sprite", "step", "class", "image", "Ey", *select], "image_grid")
    initial = initial or {}
    params, tests = [], []
    for field in select:
        options = _options(points[field])
        value = initial.get(field, options[0])
        params.append(alt.param(name=field, value=value,
                                bind=alt.binding_select(options=options, name=TITLES.get(field, field) + " ")))
        tests.append(f"datum[{json.dumps(field)}] == {field}")
    steps, classes = _options(points["step"]), _options(points["class"])
    width, height = cell * len(steps), cell * len(classes)
    chosen = " && ".join(tests)
    base = alt.Chart(points).transform_filter(chosen)
    sheet = base.transform_filter("datum.sprite != ''").mark_image(width=width, height=height).encode(
        x=alt.value(width / 2), y=alt.value(height / 2), url="sprite:N")
    cells = base.mark_rect(opacity=0, fill="white").encode(
        x=alt.X("step:O", title="SGLD step", sort=steps, scale=alt.Scale(paddingInner=0, paddingOuter=0)),
        y=alt.Y("class:N", title=None, sort=classes, scale=alt.Scale(paddingInner=0, paddingOuter=0)),
        tooltip=[alt.Tooltip("class:N", title="class"), alt.Tooltip("image:Q", title="chain", format="d"),
                 alt.Tooltip("step:Q", title="step", format="d"),
                 alt.Tooltip("Ey:Q", title="E(x,y)", format=f".{DECIMALS}f")])
    chart = alt.layer(sheet, cells).properties(width=width, height=height).add_params(*params)
    return chart.properties(title=title) if title else chart


def spread_epochs(epochs: Sequence[int], at_most: int) -> list[int]:
    """At most `at_most` of `epochs`, evenly spread, first and last always kept."""
    epochs = sorted(set(int(e) for e in epochs))
    if len(epochs) <= at_most:
        return epochs
    picks = np.unique(np.round(np.linspace(0, len(epochs) - 1, at_most)).astype(int))
    return [epochs[i] for i in picks]


def _options(values) -> list:
    """Drop-down options in a stable order, as plain Python values (JSON-serialisable)."""
    uniq = pd.unique(pd.Series(list(values)))
    return [v.item() if hasattr(v, "item") else v for v in uniq]


def scatter(points: pd.DataFrame, *, x: str = "E_x", y: str = "E_adv", select: Sequence[str] = (),
            initial: dict | None = None, column: str | None = None, title: str = "",
            tooltip: Sequence[str] | None = None, width: int = 300, height: int = 260, diagonal: bool = True,
            color: str | None = "dE", pictures: pd.DataFrame | None = None):
    """An Altair chart: `y` against `x` for the rows that match every drop-down of `select` (one per
    column, bound to a <select>; `initial` sets their first values), side by side per value of `column`,
    a tooltip with the image id and its energies, zoom and pan. `diagonal`: the line y = x
    (E(x*) = E(x): above it the attack raised the energy), both axes on one range; without it each axis
    has its own. `color`: a number column (a diverging scale around 0) or a text column (categories).
    `pictures` (`attack_pictures`, for points with model, attack, eps and image columns): a separate
    dataset looked up by key, so the figure's CSV download holds the energies only; the tooltip of a
    point that has one shows it (vega-tooltip draws the field titled "image" as a picture)."""
    import altair as alt

    _need(points, [x, y, *select, *([column] if column else []), *(tooltip or [])], "scatter")
    initial = initial or {}
    params, tests = [], []
    for field in select:
        options = _options(points[field])
        value = initial.get(field, options[0])
        if value not in options:
            raise FigureDataError(f"scatter: initial {field}={value!r} is not among its values {options}")
        params.append(alt.param(name=field, value=value,
                                bind=alt.binding_select(options=options, name=TITLES.get(field, field) + " ")))
        tests.append(f"datum[{json.dumps(field)}] == {field}")
    tooltip = list(tooltip or [c for c in ("image", "E_x", "E_adv", "dE", "dEy") if c in points.columns])
    # fixed axes for every choice: what moves is the data
    domain = _domain(points[[x, y]]) if diagonal else None
    x_domain, y_domain = (domain, domain) if diagonal else (_domain(points[[x]]), _domain(points[[y]]))
    if color is None or color not in points.columns:
        encode_color = alt.value("#d7301f")
    elif pd.api.types.is_numeric_dtype(points[color]):
        encode_color = alt.Color(f"{color}:Q", title=TITLES.get(color, color),
                                 scale=alt.Scale(scheme="redblue", domainMid=0))
    else:
        encode_color = alt.Color(f"{color}:N", title=TITLES.get(color, color))

    with_pictures = pictures is not None and len(pictures) > 0

    def panel(extra_test: str | None, panel_title: str | None, k: int):
        checks = tests + ([extra_test] if extra_test else [])
        base = alt.Chart(points)
        if with_pictures:
            base = base.transform_calculate(picture_key=PICTURE_KEY).transform_lookup(
                lookup="picture_key", from_=alt.LookupData(pictures, "key", ["picture"])).transform_calculate(
                picture="isValid(datum.picture) ? datum.picture : ''")   # a miss is "": no <img>, not "null"
        if checks:
            base = base.transform_filter(" && ".join(checks))
        dots = base.mark_circle(size=28, opacity=0.8, clip=True, stroke="#555555", strokeWidth=0.4).encode(
            x=alt.X(f"{x}:Q", title=TITLES.get(x, x), scale=alt.Scale(domain=x_domain, zero=False)),
            y=alt.Y(f"{y}:Q", title=TITLES.get(y, y), scale=alt.Scale(domain=y_domain, zero=False)),
            color=encode_color,
            tooltip=[_tooltip(points, c) for c in tooltip] + (
                [alt.Tooltip("picture:N", title="image")] if with_pictures else []),
        ).add_params(alt.selection_interval(bind="scales", name=f"zoom_{k}"))   # zoom and pan
        layers = [dots]
        if diagonal:
            line = alt.Chart(pd.DataFrame({x: domain, y: domain})).mark_line(
                color="gray", strokeWidth=0.8).encode(   # the same fixed scales (else 0 joins the domain)
                x=alt.X(f"{x}:Q", scale=alt.Scale(domain=x_domain, zero=False)),
                y=alt.Y(f"{y}:Q", scale=alt.Scale(domain=y_domain, zero=False)))
            layers = [line, dots]
        out = alt.layer(*layers).properties(width=width, height=height)
        return out.properties(title=panel_title) if panel_title else out

    if column:   # side by side, one panel per value, sharing the drop-downs and the axes
        chart = alt.hconcat(*[panel(f"datum[{json.dumps(column)}] == {json.dumps(v)}", str(v), k)
                              for k, v in enumerate(_options(points[column]))])
    else:
        chart = panel(None, None, 0)
    chart = chart.add_params(*params) if params else chart
    return chart.properties(title=title) if title else chart


def _domain(values: pd.DataFrame) -> list[float]:
    """[low, high] padded by 3 %: over every value, or from 200 values on the 0.5-99.5 percentiles (a few
    outliers of one choice must not squeeze every other choice into a corner; zoom out to see them)."""
    arr = values.to_numpy(dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size >= 200:
        lo, hi = (float(v) for v in np.percentile(arr, [0.5, 99.5]))
    else:
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (-1.0, 1.0)
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    return [round(lo - pad, DECIMALS), round(hi + pad, DECIMALS)]


def _tooltip(points: pd.DataFrame, column: str):
    """A tooltip line: integers as they are, other numbers to `DECIMALS` decimals, text as text."""
    import altair as alt

    values = points[column]
    if pd.api.types.is_integer_dtype(values):
        return alt.Tooltip(f"{column}:Q", title=TITLES.get(column, column), format="d")
    if pd.api.types.is_numeric_dtype(values):
        return alt.Tooltip(f"{column}:Q", title=TITLES.get(column, column), format=f".{DECIMALS}f")
    return alt.Tooltip(f"{column}:N", title=TITLES.get(column, column))


# Rows of one figure's inline datasets together: about 2 MB as CSV (`compact`), within a page's 5 MB
# (tools/check_html.py). Altair's own guard (5,000 rows) is lifted for these figures: their size is
# chosen where their data are thinned (`spread_epochs`, the images kept per run), and checked here.
MAX_ROWS = 50_000


def spec(chart) -> dict:
    """The chart's Vega-Lite specification (the data inline, as Altair writes it: one object per row);
    more than `MAX_ROWS` rows is a `FigureDataError` that says how to thin them."""
    import altair as alt

    with alt.data_transformers.disable_max_rows():
        out = chart.to_dict()
    rows = sum(len(v) for v in (out.get("datasets") or {}).values() if isinstance(v, list))
    if rows > MAX_ROWS:
        raise FigureDataError(f"the figure holds {rows:,} rows of data, more than figures.MAX_ROWS ({MAX_ROWS:,}) a "
                              "page can carry; thin them (fewer epochs with spread_epochs, fewer images)")
    return out


def compact(spec_: dict) -> dict:
    """The same specification with each inline dataset as CSV text (about a third of the bytes of one
    object per row), its numeric columns parsed back to numbers by Vega-Lite (`format.parse`)."""
    import copy
    import csv
    import io

    out = copy.deepcopy(spec_)
    formats = {}
    for name, rows in (out.get("datasets") or {}).items():
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            continue
        columns = list(dict.fromkeys(k for r in rows for k in r))
        numeric = [c for c in columns if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                                             for r in rows)]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        out["datasets"][name] = text.getvalue()
        formats[name] = {"type": "csv", "parse": {c: "number" for c in numeric}}

    def attach(node):
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and data.get("name") in formats and "values" not in data:
                data["format"] = formats[data["name"]]
            for value in node.values():
                attach(value)
        elif isinstance(node, list):
            for value in node:
                attach(value)

    attach({k: v for k, v in out.items() if k != "datasets"})
    return out


# Loads the vendored Vega scripts once per page (relative to the page's own `_static/`), then draws.
# The view is kept on the element (`energyView`) so that the page check can read what is drawn.
_LOADER = """(function () {
  var el = document.getElementById(%(uid)s);
  var spec = JSON.parse(document.getElementById(%(uid)s + "-spec").textContent);
  function fail(err) {
    el.dataset.error = String(err);
    el.textContent = "This interactive figure could not be drawn (" + err + "); the static figure above shows the same data.";
  }
  function draw() {
    window.vegaEmbed(el, spec, {actions: false, renderer: "svg"}).then(function (r) {
      el.energyView = r.view; el.dataset.drawn = "1";
      offerData();
    }, fail);
  }
  function offerData() {   // the figure's rows (CSV) one click away, made in the browser
    var sets = spec.datasets || {}, name = null;
    var rows = function (k) { return sets[k].split("\\n").length; };   // the points, not the pictures
    Object.keys(sets).forEach(function (k) {
      if (typeof sets[k] === "string" && (!name || rows(k) > rows(name))) name = k;
    });
    if (!name) return;
    var link = document.createElement("a");
    link.textContent = "Download the data of this figure (CSV)";
    link.href = URL.createObjectURL(new Blob([sets[name]], {type: "text/csv"}));
    link.download = el.dataset.figure + ".csv";
    link.className = "energy-figure-data";
    link.style.display = "block"; link.style.fontSize = "0.85em";
    el.appendChild(link);
  }
  if (window.vegaEmbed) { draw(); return; }
  var anchor = document.querySelector('script[src*="_static/"]');
  if (!anchor) { fail("the book's _static folder was not found"); return; }
  var base = anchor.src.slice(0, anchor.src.indexOf("_static/") + 8) + "vendor/";
  if (!window.__energyVegaLoading) {
    window.__energyVegaLoading = %(scripts)s.reduce(function (ready, path) {
      return ready.then(function () {
        return new Promise(function (resolve, reject) {
          var amd = window.define; window.define = undefined;   // the UMD bundles must set globals
          var s = document.createElement("script");
          s.src = base + path;
          s.onload = function () { window.define = amd; resolve(); };
          s.onerror = function () { window.define = amd; reject(new Error("cannot load " + path)); };
          document.head.appendChild(s);
        });
      });
    }, Promise.resolve());
  }
  window.__energyVegaLoading.then(draw, fail);
})();"""


VENDOR_DIR = Path(__file__).resolve().parent.parent / "book" / "_assets" / "vendor"


def inline_scripts(vendor: Path = VENDOR_DIR) -> str:
    """The vendored Vega scripts as inline <script> elements, for a page outside the book (the lens
    report, rendered by nbconvert): one file to open offline. Loaded as globals even where require.js
    is on the page."""
    missing = [p for p in VENDOR_SCRIPTS if not (Path(vendor) / p).is_file()]
    if missing:
        raise FigureDataError(f"{[str(Path(vendor) / p) for p in missing]} not found: run "
                              "`python tools/fetch_web_assets.py` (make assets) first")
    parts = ["<script>window.__energyAmd = window.define; window.define = undefined;</script>"]
    for path in VENDOR_SCRIPTS:
        code = (Path(vendor) / path).read_text(encoding="utf-8").replace("</script", "<\\/script")
        parts.append(f"<script>{code}</script>")
    parts.append("<script>window.define = window.__energyAmd;</script>")
    return "\n".join(parts)


class Figure:
    """A chart as a cell's output: static HTML that draws with the book's vendored Vega (the built
    book; `inline`: the scripts inside the HTML, for a page outside the book) and Altair's Vega-Lite
    output (a live Jupyter front end)."""

    def __init__(self, chart, name: str, inline: bool = False):
        self.chart = chart
        self.name = name
        self.inline = inline

    def html(self) -> str:
        uid = f"energy-figure-{self.name}-{next(_ids)}"
        data = json.dumps(compact(spec(self.chart)), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        loader = _LOADER % {"uid": json.dumps(uid), "scripts": json.dumps(list(VENDOR_SCRIPTS))}
        scripts = inline_scripts() + "\n" if self.inline else ""
        return scripts + (f'<div class="{FIGURE_CLASS}" id="{uid}" data-figure="{self.name}"></div>\n'
                f'<script type="application/json" id="{uid}-spec">{data}</script>\n<script>{loader}</script>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/html": self.html(), "text/plain": f"<interactive figure {self.name}>"}
        import altair as alt

        try:
            with alt.data_transformers.disable_max_rows():   # the size was checked by html() (`spec`)
                native = self.chart._repr_mimebundle_(include, exclude)
        except Exception:   # a front end without Altair's renderer still gets the HTML
            native = None
        if isinstance(native, tuple):
            native = native[0]
        for mime, value in (native or {}).items():
            if mime.startswith("application/vnd.vegalite"):
                bundle[mime] = value
        return bundle
