"""The Pareto plot of a sweep: instant rate against efficiency, per policy family."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulation.bench.policy_run import PolicyResult
from simulation.bench.sweep import family, frontiers
from simulation.policies import PolicyKind


def plot_frontier(
    results: Sequence[PolicyResult], path: Path, *, title: str = "Instant rate vs efficiency"
) -> None:
    """Instant rate (logit axis) against efficiency: each family's points and its Pareto
    frontier, the oracle as a line (it serves every connect at once). Points at an instant
    rate of 0 or 1 cannot sit on a logit axis and are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    markers = {"static": "s", "seed-rule": "D", "heuristic": "o", "model": "^"}
    colors = {"static": "C0", "seed-rule": "C1", "heuristic": "C2", "model": "C3"}
    lowest, highest = 0.9, 0.999
    for name, points in frontiers(results).items():
        if name == PolicyKind.ORACLE.value:
            continue
        everything = [r for r in results if family(r) == name]
        shown = [r for r in everything if 0.0 < r.run.instant_rate < 1.0]
        if not shown:
            continue
        lowest = min(lowest, *(r.run.instant_rate for r in shown))
        highest = max(highest, *(r.run.instant_rate for r in shown))
        marker = markers.get(name, "o")
        line = ax.plot(
            [r.run.instant_rate for r in points if 0.0 < r.run.instant_rate < 1.0],
            [r.run.efficiency for r in points if 0.0 < r.run.instant_rate < 1.0],
            marker=marker,
            label=name,
            color=colors.get(name),
        )[0]
        ax.scatter(
            [r.run.instant_rate for r in shown],
            [r.run.efficiency for r in shown],
            marker=marker,
            facecolors="none",
            edgecolors=line.get_color(),
            alpha=0.6,
        )
        for r in points:
            if r.knob is not None and 0.0 < r.run.instant_rate < 1.0:
                knob = f"{r.knob:g}"
                ax.annotate(
                    knob,
                    (r.run.instant_rate, r.run.efficiency),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                    color=line.get_color(),
                )
    for r in results:
        if family(r) == PolicyKind.ORACLE.value:
            ax.axhline(r.run.efficiency, color="black", linestyle="--", linewidth=1)
            ax.annotate(
                f"oracle {r.run.efficiency:.3f} (100% instant)",
                (0.02, r.run.efficiency),
                xycoords=("axes fraction", "data"),
                xytext=(0, 4),
                textcoords="offset points",
                fontsize=8,
            )
    ax.set_xscale("logit")
    left, right = max(1e-4, lowest * 0.98), min(1 - 1e-5, 1 - (1 - highest) * 0.5)
    ax.set_xlim(left, right)
    ticks = [t for t in (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999) if left < t < right]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("instant rate (connects served at once)")
    ax.set_ylabel("efficiency (user-seconds / node-seconds)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
