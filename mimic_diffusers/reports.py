"""Reports of an evaluation: summary.json, results.md (Markdown table) and PNG plots. Every file is
written to a temporary name and renamed, so an interrupted run never leaves a half-written report."""

from __future__ import annotations

import io
import json
import os
from typing import List, Sequence, Union

from .evaluation.results import Accuracy, Results


def atomic_write(path: str, data, mode: str = "w") -> None:
    """Write `data` (str, or bytes with mode "wb") to a temporary name, fsync, and rename over `path`:
    a kill leaves the old file or the new one, never half of one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pct(a: Accuracy) -> str:
    return f"{a.accuracy:.1%} [{a.ci95[0]:.1%}, {a.ci95[1]:.1%}]"


def _results(summary: Union[Results, dict]) -> Results:
    # the dict summarize() returns (or summary.json's contents) is converted here, so callers keep passing it
    return summary if isinstance(summary, Results) else Results.from_summary(summary)


METRIC_NOTE = (
    "A sample counts as robust under a rule (the first purification; the majority of K; all K) only if "
    "that rule classifies both its clean and its attacked input correctly."
)

CASCADE_NOTE = (
    "Cascade: each attack ran only on the samples still robust after the clean pass and the attacks above "
    "it, so each row is cumulative (robust after that attack and every one above it). A skipped sample was "
    "already broken under every rule, so the worst case is defined as with every attack on every sample."
)


def markdown_table(summary: Union[Results, dict]) -> str:
    """results.md: clean accuracy, then one row per attack and the worst case of each threat.

    Args:
        summary (`Results` or `dict`): the results, or the dict `summarize` returns.
    Returns:
        `str`: the Markdown text.
    """
    r = _results(summary)
    k = r.config.votes
    every_clean = f", all {k}: {r.clean_all_votes.accuracy:.1%}" if r.clean_all_votes is not None else ""
    lines = [
        f"Clean (standard) accuracy through the defense: {_pct(r.clean)} (n={r.clean.n}, "
        f"{r.config.num_inference_steps} steps, majority of {k}: {r.clean_vote.accuracy:.1%}{every_clean})",
        "",
        METRIC_NOTE,
        "",
    ]
    if any(t.cascade for t in r.threats):
        lines += [CASCADE_NOTE, ""]
    lines += [
        f"| threat | attack | robust acc [95% CI] | vote acc | all-{k} acc | n | "
        "mean abs input grad (L1) | zero-grad frac | params | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in r.threats:
        for label, a in t.attacks.items():
            g = "-" if a.grad_l1_mean is None else f"{a.grad_l1_mean:.3g}"
            z = "-" if a.zero_grad_fraction is None else f"{a.zero_grad_fraction:.2f}"
            params = ", ".join(f"{k}={v}" for k, v in a.params.items())
            every = "-" if a.all_votes is None else f"{a.all_votes.accuracy:.1%}"
            name = label if a.name == label else f"{label} ({a.name})"
            lines.append(
                f"| {t.key} | {name} | {_pct(a.first)} | {a.vote.accuracy:.1%} | {every} | {a.first.n} | {g} | "
                f"{z} | {params} | {a.seconds:.0f} |"
            )
        vote, every = ("-" if w is None else f"{w.accuracy:.1%}" for w in (t.worst_case_vote, t.worst_case_all_votes))
        lines.append(
            f"| {t.key} | **worst case** | **{_pct(t.worst_case)}** | {vote} | {every} | {t.worst_case.n} | | | | |"
        )
    if r.warnings:
        lines += ["", "Warnings:"] + [f"- {w}" for w in r.warnings]
    return "\n".join(lines) + "\n"


def write_reports(summary: Union[Results, dict], output_dir: str) -> None:
    """Write summary.json, results.md and (where there are threats) accuracy_vs_eps.png into `output_dir`.

    Args:
        summary (`Results` or `dict`): the results, or the dict `summarize` returns.
        output_dir (`str`): the report folder (made if missing).
    """
    r = _results(summary)
    data = summary if isinstance(summary, dict) else r.to_summary()  # a dict is written as given
    os.makedirs(output_dir, exist_ok=True)  # a report_dir that no run has written to yet (--report-only)
    atomic_write(os.path.join(output_dir, "summary.json"), json.dumps(data, indent=1))
    atomic_write(os.path.join(output_dir, "results.md"), markdown_table(r))
    if r.threats:
        plot_accuracy_vs_eps(r, os.path.join(output_dir, "accuracy_vs_eps.png"))


def plot_accuracy_vs_eps(summary: Union[Results, dict], path: str) -> None:
    """Robust accuracy (first purification) against eps: one line per attack and norm, and the worst case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    by_norm = {}
    for t in _results(summary).threats:
        for name, a in [(label, a.first) for label, a in t.attacks.items()] + [("worst case", t.worst_case)]:
            by_norm.setdefault((t.norm, name), []).append((t.eps, a.accuracy))
    for (norm, name), points in sorted(by_norm.items()):
        points.sort()
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="o",
            label=f"{name} ({norm})",
            linewidth=2.5 if name == "worst case" else 1.2,
        )
    ax.set_xlabel("eps")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save_figure(fig, path)


def image_grid(rows: Sequence, predictions: List[List[int]], labels: List[int], titles: List[str], path: str) -> None:
    """One row per image set (tensors (B, C, H, W) in [0, 1]), predicted labels under each image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.35 * len(rows)), squeeze=False)
    for r, (images, preds) in enumerate(zip(rows, predictions)):
        for i in range(n):
            ax = axes[r][i]
            img = images[i].detach().cpu().permute(1, 2, 0).squeeze(-1).numpy()
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ok = preds[i] == labels[i]
            ax.set_title(f"{preds[i]}", fontsize=8, color="green" if ok else "red")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(titles[r], fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, png.getvalue(), "wb")
