"""Figures for the book: seaborn energy histograms and kernel-free viewers for the static HTML.

A built book has no kernel, so ipywidgets cannot recompute there. `html_slider` renders every
frame once (PNG, embedded) and switches between them with a few lines of JavaScript, which works
in the published HTML and in a live notebook alike.
"""
from __future__ import annotations

import base64
import io
import itertools
import json
from typing import Sequence


import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

NATURAL_COLOR = "#74a9cf"   # light blue, as in the paper's histograms
ADVERSARIAL_COLOR = "#d7301f"  # red

_ids = itertools.count()


def figure_to_png(fig: plt.Figure, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def html_slider(frames: Sequence[plt.Figure | bytes], labels: Sequence[str], title: str = "",
                close: bool = True):
    """A kernel-free slider over pre-rendered figures (an IPython HTML object).

    frames: matplotlib figures (closed after rendering when `close`) or PNG bytes.
    labels: one caption per frame, shown next to the slider.
    """
    from IPython.display import HTML

    if len(frames) != len(labels) or not frames:
        raise ValueError(f"need one label per frame and at least one frame; got {len(frames)} frames, "
                         f"{len(labels)} labels")
    pngs = []
    for frame in frames:
        if isinstance(frame, (bytes, bytearray)):
            pngs.append(bytes(frame))
        else:
            pngs.append(figure_to_png(frame))
            if close:
                plt.close(frame)
    uid = f"energy-slider-{next(_ids)}-{np.random.randint(1 << 30)}"
    images = "".join(
        f'<img src="data:image/png;base64,{base64.b64encode(p).decode()}" alt="{lab}" '
        f'style="max-width:100%;display:{"block" if i == 0 else "none"}">'
        for i, (p, lab) in enumerate(zip(pngs, labels)))
    html = f"""
<div id="{uid}" class="energy-slider">
  <div style="font-weight:bold">{title}</div>
  <input type="range" min="0" max="{len(pngs) - 1}" value="0" step="1" style="width:60%">
  <span class="energy-slider-label">{labels[0]}</span>
  <div class="energy-slider-frames">{images}</div>
</div>
<script>
(function() {{
  var root = document.getElementById("{uid}");
  var labels = {json.dumps(list(labels))};
  var slider = root.querySelector("input");
  var imgs = root.querySelectorAll(".energy-slider-frames img");
  slider.addEventListener("input", function() {{
    var k = parseInt(slider.value);
    imgs.forEach(function(im, i) {{ im.style.display = (i === k) ? "block" : "none"; }});
    root.querySelector(".energy-slider-label").textContent = labels[k];
  }});
}})();
</script>"""
    return HTML(html)


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
