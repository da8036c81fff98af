"""Figure helpers: one axis range across a slider's frames, readable ticks, fitted tables."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from energy_lib import plots  # noqa: E402


def test_shared_range_covers_every_frame_and_ignores_nan():
    lo, hi = plots.shared_range([1.0, 2.0, np.nan], np.array([-3.0, 0.5]))
    assert lo < -3.0 and hi > 2.0
    assert plots.shared_range([np.nan]) == (-1.0, 1.0)
    lo, hi = plots.shared_range([2.0, 2.0])          # a constant still gets a non-empty range
    assert lo < 2.0 < hi


def test_quiver_frames_share_axes_and_colour_scale():
    r = np.random.default_rng(0)
    frames = [r.normal(-5 * k, 1, (4, 20)) for k in (1, 2)]
    limits = plots.shared_range(*frames)
    seen = []
    for e, ey, ea, eya in frames:
        fig, ax = plt.subplots()
        q = plots.energy_quiver(ax, e, ey, ea, eya, limits=limits, shift_max=9.0)
        seen.append((ax.get_xlim(), ax.get_ylim(), q.get_clim()))
        assert len(ax.get_xticks()) <= 7       # MaxNLocator(5): no crowded labels
        plt.close(fig)
    assert seen[0] == seen[1] and seen[0][0] == limits and seen[0][2] == (0, 9.0)


def test_fit_table_wraps_cells():
    html = plots.fit_table(pd.DataFrame({"a": [1.23456], "b": ["long text " * 5]})).to_html()
    assert "white-space: normal" in html and "1.235" in html


def test_reader_table_rounds_and_moves_constant_columns_to_the_caption():
    frame = pd.DataFrame({"method": ["SAT", "TRADES"], "accuracy": [0.94, 0.8712], "E": [-3.14159, 2.0],
                          "dataset": ["cifar10", "cifar10"], "n": [16, 16]}).set_index("method")
    html = plots.reader_table(frame, decimals={"E": 2}, percent=["accuracy"]).to_html()
    assert "94 %" in html and "87 %" in html and "-3.14" in html and "2.00" in html
    assert "94.000000" not in html and "3.1416" not in html
    # a value repeated on every row is said once, in the caption, not on every row
    assert html.count("cifar10") == 1 and "on every row: dataset: cifar10, n: 16" in html
    assert ">SAT<" in html   # the index stays
    single = plots.reader_table(frame.iloc[:1]).to_html()
    assert "cifar10" in single and "on every row" not in single   # one row: nothing to move


def test_arm_grid_has_a_row_per_arm_a_colour_per_seed_and_a_legend_that_does_not_grow_with_runs():
    import warnings

    def curve(level, with_share=True):
        frame = pd.DataFrame({"progress": [0.5, 1.0, 2.0], "acc": [level, level / 2, 0.0], "clean": [0.3, 0.3, 0.3]})
        return frame.assign(share=[0.0, 0.5, 1.0]) if with_share else frame

    curves = {"FGSM": {10: curve(0.2), 11: curve(0.1)}, "N-FGSM": {11: curve(0.15, with_share=False), 12: curve(0.25)}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # a clipped layout warns: it must not happen
        fig = plots.arm_grid(curves, [("acc", "PGD accuracy"), ("share", "share")], dotted={"acc": ("clean", "clean")},
                             onsets={"FGSM": {10: 1.0, 11: None}})
        fig.canvas.draw()
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["FGSM", "N-FGSM"]
    assert [ax.get_title() for ax in axes[0]] == ["PGD accuracy", "share"]
    solid = {ax: [line for line in ax.get_lines() if line.get_linestyle() == "-"] for ax in axes.ravel()}
    # seed 11 has the same colour in both rows; each seed its own
    colour = {(r, i): line.get_color() for r in range(2) for i, line in enumerate(solid[axes[r, 0]])}
    assert colour[(0, 1)] == colour[(1, 0)] and len({colour[(0, 0)], colour[(0, 1)], colour[(1, 1)]}) == 3
    assert len(solid[axes[1, 1]]) == 1                    # N-FGSM seed 11 has no share column: not drawn
    assert len([line for line in axes[0, 0].get_lines() if line.get_linestyle() == ":"]) == 2
    assert len([line for line in axes[0, 1].get_lines() if line.get_linestyle() == "--"]) == 1   # one onset
    legend, = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["seed 10", "seed 11", "seed 12", "clean (dotted)",
                                                          "collapse onset"]
    plt.close(fig)


def test_a_grid_of_photographs_is_shown_as_a_jpeg_a_fraction_of_its_png(monkeypatch):
    import io

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.imshow(rng.random((96, 320, 3)), interpolation="nearest")    # noise-like samples, as SGLD draws them
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    data = plots.show_photo(fig)
    assert data[:3] == b"\xff\xd8\xff" and not plt.fignum_exists(fig.number)      # a JPEG; the figure closed
    assert len(shown) == 1 and shown[0].format == "jpeg" and shown[0].data == data
    assert len(data) < len(png.getvalue()) / 2


def test_a_grid_of_curves_is_shown_as_a_palette_png_of_the_same_size(monkeypatch):
    """The suite's arm grid as a palette PNG: the same pixels' size, at most 256 colours, the figure
    closed, and smaller than the full-colour PNG it replaces."""
    import io

    import pandas as pd
    from PIL import Image

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    x = np.linspace(0, 12, 25)
    curves = {f"arm {a}": {s: pd.DataFrame({"progress": x, "acc": np.sin(x + a + s) / 4 + 0.5}) for s in (10, 11)}
              for a in range(4)}
    fig = plots.arm_grid(curves, [("acc", "accuracy")])
    full = io.BytesIO()
    fig.savefig(full, format="png", dpi=100)
    data = plots.show_plot(fig)
    assert data[:4] == b"\x89PNG" and not plt.fignum_exists(fig.number)
    assert len(shown) == 1 and shown[0].format == "png" and shown[0].data == data
    image, original = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(full.getvalue()))
    assert image.mode == "P" and len(image.getcolors(256) or ()) <= 256 and image.size == original.size
    assert len(data) < len(full.getvalue())
