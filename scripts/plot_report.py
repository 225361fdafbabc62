"""Plots of `switchyard report`: reads report_data.json, writes PNGs beside it.

Embedded into the switchyard binary at build time (src/study/CMake); also runs
alone: python3 scripts/plot_report.py OUT/report_data.json OUT
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def mean_band(runs, key):
    """Mean and min/max over seeds at each step the runs share."""
    steps = runs[0][key]["steps"]
    n = min(len(r[key]["values"]) for r in runs)
    cols = [[r[key]["values"][i] for r in runs] for i in range(n)]
    return steps[:n], [sum(c) / len(c) for c in cols], [min(c) for c in cols], [max(c) for c in cols]


def style(i, arm):
    """A distinct colour per arm (up to 20); expert choice dashed, dense dotted."""
    ls = "--" if arm["expert_choice"] else ":" if not arm["token_choice"] else "-"
    return {"color": plt.cm.tab20(i % 20), "ls": ls}


def plot_val_ppl(data, out):
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, arm in enumerate(data["arms"]):
        steps, mean, lo, hi = mean_band(arm["runs"], "val_ppl")
        line, = ax.plot(steps, mean, label=f"{arm['name']} ({len(arm['runs'])} seeds)", **style(i, arm))
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.12)
    if data["target_ppl"] > 0:
        ax.axhline(data["target_ppl"], color="k", ls="--", lw=0.8, label=f"target ({data['target_arm']})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("validation perplexity")
    ax.set_title("Validation perplexity (line: mean over seeds; band: min–max over seeds)")
    ax.legend(fontsize=7, ncol=2)
    finals = [v for arm in data["arms"] for r in arm["runs"] for v in r["val_ppl"]["values"][-1:]]
    if finals:  # zoom on the end of training, where the arms differ
        ax.set_ylim(min(finals) * 0.97, max(finals) * 1.6)
    fig.tight_layout()
    fig.savefig(f"{out}/val_ppl.png", dpi=120)
    plt.close(fig)


def per_step_mean(runs, key):
    n = min(len(r[key]) for r in runs)
    steps = runs[0]["log_step"][:n]
    return steps, [sum(r[key][i] for r in runs) / len(runs) for i in range(n)]


def plot_load(data, out):
    moe = [a for a in data["arms"] if a["expert_choice"] or a["token_choice"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, arm in enumerate(data["arms"]):
        if arm not in moe:
            continue
        steps, load = per_step_mean(arm["runs"], "max_load")
        axes[0].plot(steps, load, label=arm["name"], lw=1, **style(i, arm))
        if arm["token_choice"]:
            steps, dropped = per_step_mean(arm["runs"], "dropped")
            axes[1].plot(steps, [100 * d for d in dropped], label=arm["name"], lw=1, **style(i, arm))
    axes[0].set_title("max / mean expert load (mean over seeds, layers)")
    axes[1].set_title("dropped token choices, % (token choice)")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}/load.png", dpi=120)
    plt.close(fig)


def plot_experts_per_token(data, out):
    ec = [a for a in data["arms"] if a["expert_choice"]]
    if not ec:
        return
    fig, axes = plt.subplots(1, len(ec), figsize=(3.2 * len(ec), 3.4), squeeze=False)
    bins = ["0", "1", "2", "3", "4+"]
    for ax, arm in zip(axes[0], ec):
        x = range(len(bins))
        ax.bar([i - 0.2 for i in x], [100 * v for v in arm["experts_per_token"]], 0.4, label="learned")
        ax.bar([i + 0.2 for i in x], [100 * v for v in arm["random_router"]], 0.4, label="random router")
        ax.set_xticks(list(x), bins)
        ax.set_title(arm["name"], fontsize=9)
        ax.set_xlabel("experts per token")
    axes[0][0].set_ylabel("% of tokens")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}/experts_per_token.png", dpi=120)
    plt.close(fig)


def plot_throughput(data, out):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = [a["name"] for a in data["arms"]]
    ax.bar(names, [a["tokens_per_s"] for a in data["arms"]])
    ax.set_ylabel("tokens/s")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}/throughput.png", dpi=120)
    plt.close(fig)


def plot_heatmaps(data, out):
    """report --trace: expert × part-of-speech class, each cell the share of
    the class's tokens the expert took (a column sums to experts per token)."""
    for m in data["heatmaps"]:
        cols = m["values"]  # [class][expert]
        experts = len(cols[0]) if cols else 0
        grid = [[cols[c][e] for c in range(len(cols))] for e in range(experts)]
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(cols), 1.5 + 0.4 * experts))
        im = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=0)
        ax.set_xticks(range(len(cols)), m["classes"], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(experts), [str(e) for e in range(experts)], fontsize=8)
        ax.set_ylabel("expert")
        ax.set_title(m["title"], fontsize=9)
        fig.colorbar(im, ax=ax, label="share of the class's tokens")
        fig.tight_layout()
        fig.savefig(f"{out}/{m['file']}", dpi=120)
        plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_report.py REPORT_DATA_JSON OUT_DIR")
    with open(sys.argv[1]) as f:
        data = json.load(f)
    out = sys.argv[2]
    if "heatmaps" in data:
        plot_heatmaps(data, out)
        return
    plot_val_ppl(data, out)
    plot_load(data, out)
    plot_experts_per_token(data, out)
    plot_throughput(data, out)


main()
