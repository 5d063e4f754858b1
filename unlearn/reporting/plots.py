"""EMSO Fig. 4 style trade-off curves: utility metric on x, memorization metric on y, one line per
method through its strengths (marker labels give the strength), target and oracle as reference marks."""
import matplotlib

matplotlib.use("Agg")  # file output only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402


def _panel(ax, rows: pd.DataFrame, x: str, y: str, colors: dict) -> None:
    for method, group in rows[rows.kind == "method"].groupby("label", sort=False):
        group = group.dropna(subset=[x, y]).sort_values("strength", na_position="first")
        if group.empty:
            continue
        ax.plot(group[x], group[y], marker="o", color=colors[method], label=method)
        _error_bars(ax, group, x, y, colors[method])
        bad = group[group.collapsed]
        if not bad.empty:  # hollow red ring: collapsed, left out of the table's ranking
            ax.scatter(bad[x], bad[y], s=160, facecolors="none", edgecolors="red", linewidths=1.5, label="collapsed", zorder=4)
        for _, r in group.iterrows():
            if pd.notna(r.strength):
                # Small offset labels with the strength; offset points so they never sit on the marker.
                ax.annotate(f"{r.strength:g}", (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=colors[method])
    refs = {"target": ("*", "black"), "oracle": ("X", "grey")}
    for role, (marker, color) in refs.items():
        ref = rows[(rows.kind == "reference") & (rows.method == role)].dropna(subset=[x, y])
        if not ref.empty:
            ax.scatter(ref[x], ref[y], marker=marker, s=110, color=color, label=role, zorder=3)
            _error_bars(ax, ref, x, y, color)  # over seeds: each seed memorizes its own target and oracle
    ax.set_xlabel(f"{x} (utility)")
    ax.set_ylabel(f"{y} (forget set)")
    ax.set_title(f"{y} vs {x}")
    ax.grid(alpha=0.3)


def _error_bars(ax, group: pd.DataFrame, x: str, y: str, color) -> None:
    """95% t-interval half-widths over seeds (table.py's `<metric>_ci95`), where a row averages several jobs."""
    xerr = group[f"{x}_ci95"].fillna(0.0) if f"{x}_ci95" in group else None
    yerr = group[f"{y}_ci95"].fillna(0.0) if f"{y}_ci95" in group else None
    if (xerr is not None and xerr.any()) or (yerr is not None and yerr.any()):
        ax.errorbar(group[x], group[y], xerr=xerr, yerr=yerr, fmt="none", ecolor=color, capsize=3, alpha=0.8)


def _log_x_if_wide(ax, values: pd.Series) -> None:
    """Log x only when the values span more than a decade (a collapsed run's perplexity). Within one
    decade a log axis labels every minor tick in 3.5x10^2 notation, and the labels run into each other."""
    values = values.dropna()
    values = values[values > 0]
    if values.empty or values.max() / values.min() <= 10:
        return
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def tradeoff_figure(rows: pd.DataFrame, panels, path) -> list[str]:
    """Writes one PNG per (model, data) with every panel whose two metrics exist; returns the paths."""
    written = []
    methods = list(dict.fromkeys(rows[rows.kind == "method"].label))
    cmap = plt.get_cmap("tab10")
    colors = {m: cmap(i % 10) for i, m in enumerate(methods)}
    for (model, data), sub in rows.groupby(["model_name", "data"], sort=False):
        usable = [p for p in panels if p.x in sub.columns and p.y in sub.columns
                  and sub[[p.x, p.y]].dropna().shape[0] > 0]
        if not usable:
            continue
        ncols = min(2, len(usable))
        nrows = -(-len(usable) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False, layout="constrained")
        for ax, p in zip(axes.flat, usable):
            _panel(ax, sub, p.x, p.y, colors)
            if p.get("logx"):
                _log_x_if_wide(ax, sub[p.x])
        for ax in axes.flat[len(usable):]:
            ax.set_visible(False)
        handles = {}
        for ax in axes.flat:
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
        if "collapsed" in handles:  # last, after the methods and references
            handles["collapsed"] = handles.pop("collapsed")
        # At most 4 legend entries and one model/data per title line, so a one-panel figure keeps them inside it.
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(len(handles), 4 * ncols), frameon=False)
        fig.suptitle(f"Erasure–utility trade-off (labels: strength)\n{model}, {data}")
        out = f"{path}_{model}_{data}.png"
        fig.savefig(out, dpi=130)
        plt.close(fig)
        written.append(out)
    return written
