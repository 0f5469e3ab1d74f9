"""PNG plots of a sweep (matplotlib, the object API: no pyplot state, no GUI backend).

* ``METRIC_vs_PARAM.png``: a metric against the ``x`` parameter, one line per combination of
  the other parameters.
* ``pareto_THROUGHPUT_vs_AREA.png``: every measured point, the Pareto front drawn as a staircase.
"""

import re

from .spec import SweepError


__all__ = ["require_matplotlib", "plot_metric", "plot_pareto", "write_plots"]


def require_matplotlib():
    try:
        import matplotlib   # noqa: F401
    except ImportError:
        raise SweepError("plots need matplotlib: pip install 'systolica[sweep]' (or pass "
                         "--no-plots)") from None


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(6.4, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _series(rows, x, names):
    """``{label: [(x value, row), ...]}``, one series per combination of the other parameters."""
    others = [n for n in names if n != x]
    series = {}
    for row in rows:
        label = ", ".join(f"{n.split('.')[-1]}={row['params'][n]}" for n in others) or None
        series.setdefault(label, []).append((row["params"][x], row))
    return series


def plot_metric(rows, x, metric, names, path, *, title=None):
    figure = _figure()
    axes = figure.add_subplot()
    numeric_x = all(isinstance(row["params"][x], (int, float)) for row in rows)
    categories = sorted({str(row["params"][x]) for row in rows})
    for label, points in _series(rows, x, names).items():
        points = sorted((px, r["metrics"][metric]) for px, r in points
                        if r["metrics"].get(metric) is not None)
        if not points:
            continue
        xs = [px if numeric_x else categories.index(str(px)) for px, _ in points]
        axes.plot(xs, [v for _, v in points], marker="o", label=label)
    if not numeric_x:
        axes.set_xticks(range(len(categories)), categories)
    elif all(isinstance(row["params"][x], int) for row in rows):
        from matplotlib.ticker import MaxNLocator
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(x)
    axes.set_ylabel(metric)
    axes.set_title(title or f"{metric} vs {x}")
    axes.grid(True, alpha=0.3)
    if len(axes.get_lines()) > 1:
        axes.legend(fontsize="small")
    figure.savefig(path)


def plot_pareto(rows, area, throughput, path, *, title=None):
    figure = _figure()
    axes = figure.add_subplot()
    measured = [r for r in rows if r["metrics"].get(area) is not None
                and r["metrics"].get(throughput) is not None]
    axes.scatter([r["metrics"][area] for r in measured],
                 [r["metrics"][throughput] for r in measured],
                 color="0.6", label="design points", zorder=2)
    front = sorted((r for r in measured if r["pareto"]), key=lambda r: r["metrics"][area])
    axes.plot([r["metrics"][area] for r in front], [r["metrics"][throughput] for r in front],
              drawstyle="steps-post", marker="o", color="C3", label="Pareto front", zorder=3)
    for r in front:
        axes.annotate(", ".join(f"{p.split('.')[-1]}={v}" for p, v in r["params"].items()),
                      (r["metrics"][area], r["metrics"][throughput]), fontsize=7,
                      textcoords="offset points", xytext=(4, -10))
    axes.set_xlabel(f"{area} (lower is better)")
    axes.set_ylabel(f"{throughput} (higher is better)")
    axes.set_title(title or f"Pareto front: {throughput} vs {area}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path)


def write_plots(result, folder):
    """Every plot of ``result`` into ``folder``; returns the paths written."""
    ok_rows = [r for r in result.rows if r["metrics"]]
    names = result.plan.spec.names
    paths = []
    for metric in result.plot_metrics:
        path = folder / f"{_slug(metric)}_vs_{_slug(result.plot_x)}.png"
        plot_metric(ok_rows, result.plot_x, metric, names, path)
        paths.append(path)
    if result.pareto["area"] and any(r["pareto"] for r in ok_rows):
        path = folder / (f"pareto_{_slug(result.pareto['throughput'])}_vs_"
                         f"{_slug(result.pareto['area'])}.png")
        plot_pareto(ok_rows, result.pareto["area"], result.pareto["throughput"], path)
        paths.append(path)
    return paths
