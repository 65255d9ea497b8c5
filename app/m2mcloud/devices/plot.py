"""The PNG timeline of a run: rates (target, offered, acknowledged, errors) and, on the same
time axis below, latency percentiles; the CSE replica count when it was sampled."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_timeline(report: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = report["series"]
    t = [p["t"] + 0.5 for p in series]
    fig, (ax_rate, ax_lat) = plt.subplots(
        2, 1, sharex=True, figsize=(11, 6.5), gridspec_kw={"height_ratios": [3, 2]}
    )
    ax_rate.plot(t, [p["target_rate"] for p in series], "--", color="grey", label="target")
    ax_rate.plot(t, [p["offered"] for p in series], color="tab:blue", label="offered")
    ax_rate.plot(t, [p["acked"] for p in series], color="tab:green", label="acknowledged")
    errors = [p["errors"] for p in series]
    if any(errors):
        ax_rate.bar(t, errors, width=1.0, color="tab:red", alpha=0.6, label="errors")
    ax_rate.set_ylabel("readings / s")
    ax_rate.set_ylim(bottom=0)
    ax_rate.grid(alpha=0.3)
    handles, labels = ax_rate.get_legend_handles_labels()
    replicas = report.get("replicas") or []
    if replicas:
        ax_rep = ax_rate.twinx()
        rt = [r["t"] for r in replicas]
        ax_rep.step(
            rt,
            [r["replicas"] for r in replicas],
            where="post",
            color="tab:purple",
            label="CSE replicas",
        )
        ax_rep.step(
            rt,
            [r["ready"] for r in replicas],
            where="post",
            color="tab:purple",
            linestyle=":",
            label="ready replicas",
        )
        if any("desired" in r for r in replicas):
            ax_rep.step(
                [r["t"] for r in replicas if "desired" in r],
                [r["desired"] for r in replicas if "desired" in r],
                where="post",
                color="tab:orange",
                linestyle="--",
                label="HPA desired",
            )
        ax_rep.set_ylabel("CSE replicas")
        top = max(max(r["replicas"], r.get("desired", 0)) for r in replicas)
        ax_rep.set_ylim(0, top + 1)
        ax_rep.yaxis.get_major_locator().set_params(integer=True)
        h2, l2 = ax_rep.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax_rate.legend(handles, labels, loc="upper left", fontsize="small", ncol=3)

    for key, style, label in (
        ("p50_ms", "-", "p50"),
        ("p90_ms", "-", "p90"),
        ("p99_ms", "-", "p99"),
    ):
        values = [p[key] if p[key] is not None else float("nan") for p in series]
        ax_lat.plot(t, values, style, label=label)
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_xlabel("time since the load started (s)")
    lat_values = [p["p99_ms"] for p in series if p["p99_ms"]]
    if lat_values and max(lat_values) / max(min(lat_values), 1e-3) > 50:
        ax_lat.set_yscale("log")
    ax_lat.grid(alpha=0.3)
    ax_lat.legend(loc="upper left", fontsize="small", ncol=3)

    tot = report["totals"]
    settings = report["settings"]
    heading = title or (
        f"m2mcloud devices: {report['devices']['ready']} devices over {settings.get('protocol')}, "
        f"profile {report['profile']['name']}"
    )
    fig.suptitle(
        f"{heading}\noffered {tot['offered']}, acknowledged {tot['acked']}, errors {tot['errors']}"
        f", p99 {tot['latency']['p99_ms'] or 0:.1f} ms",
        fontsize="medium",
    )
    fig.tight_layout()
    out = Path(path)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
