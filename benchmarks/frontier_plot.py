"""The frontier's plot: clean accuracy against worst-case robust accuracy (vote of K), one panel per eps, from
the rows of `frontier_report.rows`. Each method's grid (MimicDiffusion's guidance scales, DiffPure's t*) is a
curve in knob order; MimicDiffusion's window and upsampling variants are their own markers, not on the curve
(they change a different knob). Screens are hollow markers with an arrow to the left: only an upper bound.
"""
import io

CLUSTER_X, CLUSTER_Y = 0.06, 0.01  # points closer than this (robust, clean) share a stacked label column
LINE_PT = 11  # vertical spacing of stacked labels, in points (font size 8 plus a gap)
MIMIC_VARIANTS = {"": ("o", "guidance scale"), "-wide": ("v", "authors' window"), "-up": ("^", "sr_direction=up")}


def knob(point: str) -> str:
    """The label of a point: its name without the method ("gs4-up", "t0.3")."""
    return point.split("-", 1)[1]


def label_offsets(points: list) -> list:
    """Offsets (dx, dy in points) for the labels of (x, y) points, in their order.

    A lone point is labelled just above and to the right. Points within CLUSTER_X of their neighbour in
    robust accuracy and CLUSTER_Y in clean accuracy (a chain) form a cluster, whose labels are stacked
    below it, one line each, left to right; a leader line ties each to its point.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    clusters = []
    for i in order:
        x, y = points[i]
        near = [c for c in clusters if x - points[c[-1]][0] <= CLUSTER_X and abs(y - points[c[-1]][1]) <= CLUSTER_Y]
        if near:  # points between them in x but at another clean accuracy do not split a cluster
            near[-1].append(i)
        else:
            clusters.append([i])
    offsets = [None] * len(points)
    for cluster in clusters:
        if len(cluster) == 1:
            offsets[cluster[0]] = (4, 4)
            continue
        for k, i in enumerate(cluster):
            offsets[i] = (4, -LINE_PT * (k + 1))
    return offsets


def _series(table: list, eps: float) -> list:
    """(label, marker, line style, color, rows) of the complete points at eps, grids in knob order."""
    done = [r for r in table if r["complete"] and r["eps"] == eps]
    series = []
    for suffix, (marker, name) in MIMIC_VARIANTS.items():
        rows = [r for r in done if r["method"] == "mimic" and r["point"].endswith(suffix)
                and not any(r["point"].endswith(s) for s in MIMIC_VARIANTS if s and s != suffix)]
        rows.sort(key=lambda r: float(knob(r["point"]).split("-")[0][2:]))
        series.append((f"MimicDiffusion, {name}", marker, "-" if not suffix else "none", "tab:blue", rows))
    rows = sorted((r for r in done if r["method"] == "diffpure"), key=lambda r: float(knob(r["point"])[1:]))
    series.append(("DiffPure, t*", "s", "--", "tab:orange", rows))
    return [s for s in series if s[-1]]


def plot(table: list) -> bytes:
    """The PNG bytes of the frontier plot (byte-for-byte reproducible: no timestamp in the metadata)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps_values = sorted({r["eps"] for r in table})
    fig, axes = plt.subplots(1, max(1, len(eps_values)), figsize=(6 * max(1, len(eps_values)), 4.5), squeeze=False)
    for ax, eps in zip(axes[0], eps_values):
        labelled = []
        for label, marker, line, color, rows in _series(table, eps):
            xs = [r["vote"]["robust"]["accuracy"] for r in rows]
            ys = [r["vote"]["clean"]["accuracy"] for r in rows]
            xerr = [[x - r["vote"]["robust"]["ci95"][0] for x, r in zip(xs, rows)],
                    [r["vote"]["robust"]["ci95"][1] - x for x, r in zip(xs, rows)]]
            yerr = [[y - r["vote"]["clean"]["ci95"][0] for y, r in zip(ys, rows)],
                    [r["vote"]["clean"]["ci95"][1] - y for y, r in zip(ys, rows)]]
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker=marker, linestyle=line, color=color, capsize=3,
                        elinewidth=0.8, label=label)
            labelled += [(x, y, knob(r["point"])) for x, y, r in zip(xs, ys, rows)]
        for (x, y, name), offset in zip(labelled, label_offsets([(x, y) for x, y, _ in labelled])):
            stacked = offset[1] < 0
            ax.annotate(name, (x, y), textcoords="offset points", xytext=offset, fontsize=8, va="center",
                        arrowprops=dict(arrowstyle="-", lw=0.4, color="gray", shrinkA=0, shrinkB=2) if stacked else None)
        _screens(ax, table, eps)
        ax.set_xlabel(f"worst-case robust accuracy, l_inf eps {eps:g} (vote of K)")
        ax.set_ylabel("clean accuracy (vote of K)")
        ax.set_xlim(0, 1)
        # clean accuracies sit near the top: show the range the points' intervals need, not 0..1
        lows = [m["vote"]["clean"]["ci95"][0] for r in table if r["eps"] == eps
                for m in ([r] if r["complete"] else [r["screen"]] if r.get("screen") else [])]
        ax.set_ylim(max(0.0, min(lows, default=0.0) - 0.05), 1.02)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _screens(ax, table: list, eps: float) -> None:
    """Screens: hollow gray markers with an arrow to the left; those this close share one label."""
    screens = sorted((r["screen"]["vote"]["robust"]["accuracy"], r["screen"]["vote"]["clean"]["accuracy"], knob(r["point"]))
                     for r in table if r.get("screen") and r["eps"] == eps)
    groups = []
    for x, y, name in screens:
        ax.plot([x], [y], "o", mfc="none", color="gray", label=None if groups else "screen (an upper bound)")
        ax.annotate("", (max(x - 0.08, 0), y), (x, y), arrowprops=dict(arrowstyle="->", color="gray"))
        if groups and y == groups[-1][1] and x - groups[-1][0] < 0.05:
            groups[-1] = (x, y, groups[-1][2] + [name])  # the label moves to the group's rightmost screen
        else:
            groups.append((x, y, [name]))
    for i, (x, y, names) in enumerate(groups):
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(2, 6 - 18 * (i % 2)),
                    fontsize=7, color="gray")
