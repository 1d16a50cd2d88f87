"""The frontier's plot: worst-case robust accuracy under the deployed vote of K, with its 95% interval, against
each method's knob, one row of panels per eps, from the rows of `studies.frontier_report.rows`.

Left panel: MimicDiffusion against its guidance scale on a log2 axis, one series per variant (the paper's window,
`-wide` the authors' window, `-up` H as an upsampling), each series slightly shifted so that intervals at the
same scale do not hide each other. Right panel: DiffPure against t*, on the same accuracy axis. Clean accuracy
is close to full for every point, so it is left to the table. A screen (the cascade's first attacks only) is a
hollow marker with an arrow down: its robust accuracy is only an upper bound.
"""

import io

# variant -> (legend label, marker, line style, shift along the log2 axis so intervals stay apart)
MIMIC_SERIES = {
    "": ("MimicDiffusion, the paper's window", "o", "-", 0.0),
    "wide": ("MimicDiffusion -wide, the authors' window", "v", "--", -0.1),
    "up": ("MimicDiffusion -up, H an upsampling", "^", ":", 0.1),
}
COLORS = {"": "tab:blue", "wide": "tab:purple", "up": "tab:green", "diffpure": "tab:orange"}
RIVAL = "the most robust DiffPure t*"


def series(table: list, eps: float, method: str) -> dict:
    """{variant: rows} of one method's complete points and screens at eps, each list in knob order."""
    out = {}
    for r in sorted(table, key=lambda r: r["knob"]):
        if r["eps"] == eps and r["method"] == method and (r["complete"] or r.get("screen")):
            out.setdefault(r["variant"], []).append(r)
    return out


def robust(row: dict) -> dict:
    """The worst case under the vote of K of a complete point, or the upper bound of a screen."""
    return (row if row["complete"] else row["screen"])["vote"]["robust"]


def _draw(ax, rows: list, xs: list, label: str, marker: str, line: str, color: str) -> None:
    """One series: complete points joined in knob order with their 95% intervals; screens hollow, arrow down."""
    done = [(x, robust(r)) for x, r in zip(xs, rows) if r["complete"]]
    if done:
        ys = [a["accuracy"] for _, a in done]
        yerr = [[y - a["ci95"][0] for y, (_, a) in zip(ys, done)], [a["ci95"][1] - y for y, (_, a) in zip(ys, done)]]
        style = dict(marker=marker, linestyle=line, color=color, capsize=3, elinewidth=0.8, label=label)
        ax.errorbar([x for x, _ in done], ys, yerr=yerr, **style)
    labelled = bool(done)  # one legend entry per series
    for x, r in ((x, r) for x, r in zip(xs, rows) if not r["complete"]):
        y = robust(r)["accuracy"]
        ax.plot([x], [y], marker, mfc="none", color=color, label=None if labelled else label)
        ax.annotate("", (x, max(y - 0.08, 0)), (x, y), arrowprops=dict(arrowstyle="->", color=color))
        labelled = True


def plot(table: list, shipped: str) -> bytes:
    """The PNG bytes of the frontier plot (byte-for-byte reproducible: no timestamp in the metadata)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    eps_values = sorted({r["eps"] for r in table}) or [None]
    size, ratios = (10, 3.4 * len(eps_values) + 0.9), {"width_ratios": [3, 2]}
    fig, axes = plt.subplots(len(eps_values), 2, figsize=size, squeeze=False, sharey=True, gridspec_kw=ratios)
    scales = sorted({r["knob"] for r in table if r["method"] == "mimic"})
    starts = sorted({r["knob"] for r in table if r["method"] == "diffpure"})
    for (left, right), eps in zip(axes, eps_values):
        for variant, rows in series(table, eps, "mimic").items():
            label, marker, line, shift = MIMIC_SERIES[variant]
            _draw(left, rows, [r["knob"] * 2**shift for r in rows], label, marker, line, COLORS[variant])
            for r in (r for r in rows if r["point"] == shipped and r["complete"]):
                xy, color = (r["knob"], robust(r)["accuracy"]), COLORS[variant]
                left.annotate("shipped", xy, textcoords="offset points", xytext=(6, -12), fontsize=8, color=color)
        rivals = []
        for rows in series(table, eps, "diffpure").values():
            _draw(right, rows, [r["knob"] for r in rows], "DiffPure", "s", "--", COLORS["diffpure"])
            rivals += [robust(r)["accuracy"] for r in rows if r["complete"]]
        if rivals:  # the bar a MimicDiffusion setting has to clear, on its own panel
            left.axhline(max(rivals), color=COLORS["diffpure"], lw=0.8, ls="-.", label=RIVAL)
        shown = [r for r in table if r["eps"] == eps and (r["complete"] or r.get("screen"))]
        votes, n = sorted({r["votes"] for r in shown}), sorted({r["n"] for r in shown})
        left.set_ylabel(
            f"worst-case robust accuracy\n(vote of K = {', '.join(map(str, votes)) or '-'}, "
            f"N = {', '.join(map(str, n)) or '-'})"
        )
        left.set_title(f"MimicDiffusion, l_inf eps {eps:g}" if eps is not None else "MimicDiffusion", fontsize=10)
        right.set_title(f"DiffPure, l_inf eps {eps:g}" if eps is not None else "DiffPure", fontsize=10)
        left.set_xscale("log", base=2)
        left.xaxis.set_major_locator(FixedLocator(scales or [1]))
        left.xaxis.set_minor_locator(NullLocator())
        left.set_xticklabels([f"{s:g}" for s in scales or [1]])
        if scales:
            left.set_xlim(scales[0] / 1.5, scales[-1] * 1.5)
        right.set_xticks(starts)
        right.set_xticklabels([f"{s:g}" for s in starts])
        if starts:
            right.set_xlim(starts[0] - 0.05, starts[-1] + 0.05)
        for ax in (left, right):
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("guidance scale (log2 axis)")
    axes[-1][1].set_xlabel("t* (DiffPure's diffusion start)")
    handles = {}
    for ax in axes.flat:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    order = [label for label, *_ in MIMIC_SERIES.values()] + ["DiffPure", RIVAL]
    labels = sorted(handles, key=lambda label: order.index(label) if label in order else len(order))
    if labels:
        fig.legend([handles[k] for k in labels], labels, loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
