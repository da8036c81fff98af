"""Static figures and tables for the book: seaborn energy histograms, quivers, shared axis ranges,
tables fitted to the text column. The interactive figures of the published book are
`energy_lib.figures` (drawn in the browser, no kernel).
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

NATURAL_COLOR = "#74a9cf"   # light blue, as in the paper's histograms
ADVERSARIAL_COLOR = "#d7301f"  # red


def energy_histograms(natural: np.ndarray, adversarial: np.ndarray, *, ax=None, title: str = "",
                      xlabel: str = "E(x)", bins: int = 60, range_: tuple[float, float] | None = None):
    """Overlaid histograms of natural (light blue) and adversarial (red) energies, one panel."""
    ax = ax or plt.gca()
    natural, adversarial = np.asarray(natural), np.asarray(adversarial)
    if range_ is None:
        both = np.concatenate([natural, adversarial])
        lo, hi = np.nanpercentile(both, [0.5, 99.5])
        pad = 0.05 * (hi - lo + 1e-9)
        range_ = (lo - pad, hi + pad)
    edges = np.linspace(*range_, bins + 1)
    sns.histplot(natural, bins=edges, color=NATURAL_COLOR, alpha=0.6, label="natural", ax=ax, stat="count")
    sns.histplot(adversarial, bins=edges, color=ADVERSARIAL_COLOR, alpha=0.5, label="adversarial", ax=ax,
                 stat="count")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("# samples")
    return ax


def shared_range(*arrays, pad: float = 0.05) -> tuple[float, float]:
    """One (low, high) range covering every array (NaNs ignored), padded: the same axis for all
    frames of a slider, so that what moves between frames is the data, not the axis."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    if not values.size:
        return (-1.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return lo - pad * span, hi + pad * span


def readable_ticks(ax, n: int = 5) -> None:
    """At most `n` ticks per axis with short labels (no '-2.3376 2.3376 ...' overlaps)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(n))
    ax.yaxis.set_major_locator(MaxNLocator(n))
    ax.ticklabel_format(axis="both", style="plain", useOffset=False)


def arm_grid(curves: dict, panels: Sequence[tuple[str, str]], *, x: str = "progress", xlabel: str = "epoch",
             dotted: dict | None = None, onsets: dict | None = None, row_height: float = 1.9, width: float = 13.0):
    """Training curves of several arms over seeds, readable at any count: one row per arm, one column
    per quantity, one colour per seed (the same in every row), so no legend grows with the runs.
    `curves`: {arm: {seed: frame}} (frames with column `x` and the panels' columns); `panels`:
    [(column, title)]; `dotted`: {column: (other column, its name)} drawn dotted in the same colour
    (clean accuracy beside PGD accuracy); `onsets`: {arm: {seed: x}} drawn as dashed lines. A column a run lacks
    leaves its panel empty for that run. Returns the figure (constrained layout: labels never clipped)."""
    from matplotlib.lines import Line2D

    seeds = sorted({seed for runs in curves.values() for seed in runs})
    colour = dict(zip(seeds, sns.color_palette("colorblind", max(len(seeds), 1))))
    rows = max(len(curves), 1)
    fig, axes = plt.subplots(rows, len(panels), figsize=(width, row_height * rows + 0.6), sharex=True,
                             squeeze=False, layout="constrained")
    for r, (arm, runs) in enumerate(curves.items()):
        for c, (column, title) in enumerate(panels):
            ax = axes[r, c]
            for seed, frame in runs.items():
                if column in frame:
                    ax.plot(frame[x], frame[column], color=colour[seed], lw=1.2)
                other, _ = (dotted or {}).get(column, (None, None))
                if other and other in frame:
                    ax.plot(frame[x], frame[other], ":", color=colour[seed], lw=1.2)
                onset = (onsets or {}).get(arm, {}).get(seed)
                if onset is not None:
                    ax.axvline(onset, color=colour[seed], ls="--", lw=0.8)
            if r == 0:
                ax.set_title(title, fontsize=10)
            if c == 0:
                ax.set_ylabel(arm, fontsize=9)
            if r == rows - 1:
                ax.set_xlabel(xlabel)
            ax.tick_params(labelsize=8)
    handles = [Line2D([], [], color=colour[s], label=f"seed {s}") for s in seeds]
    handles += [Line2D([], [], color="grey", ls=":", label=f"{name} (dotted)")
                for _, name in (dotted or {}).values()]
    if any(v is not None for seeds_ in (onsets or {}).values() for v in seeds_.values()):
        handles.append(Line2D([], [], color="grey", ls="--", lw=0.8, label="collapse onset"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False)
    return fig


def energy_quiver(ax, natural_e, natural_ey, adversarial_e, adversarial_ey, *, title: str = "",
                  limits: tuple[float, float] | None = None, shift_max: float | None = None):
    """Each sample as an arrow from (E(x), E(x,y)) to (E(x*), E(x*,y)), coloured by the shift's
    length; the diagonal E(x,y) = E(x) is the zero-CE line (PAPER.md 2.2). `limits` (both axes)
    and `shift_max` (colour scale) fixed across a slider's frames."""
    u = np.asarray(adversarial_e) - np.asarray(natural_e)
    v = np.asarray(adversarial_ey) - np.asarray(natural_ey)
    shift = np.hypot(u, v)
    q = ax.quiver(natural_e, natural_ey, u, v, shift, angles="xy", scale_units="xy", scale=1, cmap="viridis",
                  width=0.004)
    q.set_clim(0, shift_max if shift_max is not None else max(float(shift.max()), 1e-9))
    lo, hi = limits if limits is not None else shared_range(natural_e, natural_ey, adversarial_e, adversarial_ey)
    ax.plot([lo, hi], [lo, hi], color="gray", lw=0.8)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="E(x)", ylabel="E(x, y)", title=title)
    readable_ticks(ax)
    return q


def fit_table(frame, font: str = "0.8em"):
    """A DataFrame styled to fit the book's text width: smaller font, wrapped cells."""
    return (frame.style.format(precision=3, na_rep="")
            .set_table_styles([{"selector": "th, td", "props": [("white-space", "normal"), ("font-size", font),
                                                                 ("max-width", "22em")]}]))


def reader_table(frame, *, decimals: int | dict = 2, percent: Sequence[str] = (), percent_decimals: int = 0,
                 caption: str = "", font: str = "0.85em"):
    """A table as a reader gets it (a pandas Styler): numbers rounded to what their noise supports
    (`decimals`: one for every number column, or per column name), the shares named in `percent` as
    percentages, and every column whose value is the same on every row moved into the caption (no
    string repeated on every row); wrapped cells that fit the text column."""
    import pandas as pd

    frame = frame.copy()
    places = (lambda c: decimals.get(c, 2)) if isinstance(decimals, dict) else (lambda c: decimals)

    def show(column, value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if column in percent and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return f"{100 * value:.{percent_decimals}f} %"
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (float, np.floating)):
            return f"{value:.{places(column)}f}"
        return str(value)

    constant = []
    if len(frame) > 1:
        for column in list(frame.columns):
            values = frame[column].map(lambda v, c=column: show(c, v))
            if values.nunique(dropna=False) == 1:
                constant.append(f"{column}: {values.iloc[0]}" if values.iloc[0] else "")
                frame = frame.drop(columns=column)
    constant = [c for c in constant if c]
    text = caption + (("; " if caption else "") + "on every row: " + ", ".join(constant) if constant else "")
    styler = frame.style.format({c: (lambda v, c=c: show(c, v)) for c in frame.columns}, na_rep="")
    styler = styler.format_index(lambda v: show(frame.index.name, v))
    if text:
        styler = styler.set_caption(text)
    return styler.set_table_styles([
        {"selector": "th, td", "props": [("white-space", "normal"), ("font-size", font), ("max-width", "14em")]},
        {"selector": "caption", "props": [("caption-side", "bottom"), ("font-size", font), ("text-align", "left")]}])


def show_plot(fig, *, colors: int = 256, dpi: int = 100):
    """Show a line figure as a palette PNG (at most `colors` colours) and close it: a tall grid of curves
    (chapter 2's suite arms: 1,300 x 2,150 pixels) takes 0.6 MB as the notebook's full-colour PNG, a
    third of that with a palette, at the same resolution and without JPEG's blur around lines.
    Returns the PNG bytes."""
    import io

    from IPython.display import Image as ShownImage, display
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    palette = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=colors,
                                                                           method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    data = out.getvalue()
    display(ShownImage(data=data, format="png"))
    return data


def show_photo(fig, *, quality: int = 85, dpi: int = 100):
    """Show a figure made of photographs (a grid of samples) as a JPEG, not the notebook's PNG, and
    close it: sample images compress badly as PNG (chapter 5's grid: 1.24 MB as PNG at 1,410 x 527
    pixels), which alone would take a quarter of a page's 5 MB budget. Returns the JPEG bytes."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=dpi, pil_kwargs={"quality": quality, "optimize": True})
    plt.close(fig)
    data = buf.getvalue()
    display(Image(data=data, format="jpeg"))
    return data
