"""docs/benchmarks.png: every implementation's time as a multiple of the FLOP floor."""

from __future__ import annotations

import workloads as wl


def draw(ms, wls, quick, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {k: list(dict.fromkeys(n for (_, kk, n) in ms if kk == k)) for k in wl.MODELS}
    fig, axes = plt.subplots(
        2, 2, figsize=(13, 11), squeeze=False, gridspec_kw={"height_ratios": [max(len(names[k]), 1) for k in wl.MODELS]}
    )
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    height = 0.8 / max(len(wls), 1)
    for row, kind in enumerate(wl.MODELS):
        for col, mode in enumerate(("fwd", "fb")):
            ax = axes[row][col]
            for j, w in enumerate(wls):
                floor = wl.floor_ms(w, quick)[col]
                ys = [i + j * height for i, n in enumerate(names[kind]) if (w, kind, n) in ms]
                xs = [ms[(w, kind, n)][mode] / floor for n in names[kind] if (w, kind, n) in ms]
                ax.barh(ys, xs, height, color=colors[j % len(colors)], label=w)
            ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names[kind]))], names[kind], fontsize=8)
            for tick in ax.get_yticklabels():
                if tick.get_text().startswith("rshop"):
                    tick.set_fontweight("bold")
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.axvline(1, color="k", lw=0.8)
            ax.grid(axis="x", which="both", alpha=0.3)
            ax.set_title(
                f"{wl.MODEL_TITLES[kind]}, {'forward' if mode == 'fwd' else 'forward + backward'}", fontsize=10
            )
            ax.set_xlabel("time / FLOP floor (log; 1 = 450 GFLOP/s)", fontsize=8)
            ax.legend(fontsize=8)
    fig.suptitle("rshop (bold) vs anchors" + (" — QUICK smoke run" if quick else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
