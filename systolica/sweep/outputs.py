"""Sweep results as files: CSV, JSON and a Markdown table, and the Pareto front they mark.

The Pareto front is over the points that have both figures: a point is on it when no other point
has at most its area and at least its throughput, one of them strictly.
"""

import csv
import json
import math


__all__ = ["pareto_front", "output_choices", "write_csv", "write_json", "write_markdown"]


def pareto_front(pairs):
    """Indices (into ``pairs``, a list of ``(area, throughput)`` or ``None``) of the points no
    other point dominates (less or equal area and more or equal throughput, one strictly).
    Sorted by area, then by throughput descending, a point is on the front exactly when its
    throughput beats every point before it; equal pairs are all kept."""
    order = sorted((i for i, p in enumerate(pairs) if p is not None),
                   key=lambda i: (pairs[i][0], -pairs[i][1]))
    front, best, best_pair = [], -math.inf, None
    for i in order:
        if pairs[i][1] > best:
            front.append(i)
            best, best_pair = pairs[i][1], pairs[i]
        elif pairs[i] == best_pair:
            front.append(i)     # a duplicate of a front point dominates nothing and is not beaten
    return sorted(front)


def output_choices(spec, reported, headline):
    """The plot and Pareto settings of ``spec``, checked against the metrics the sweep will report
    (so a typo fails before any work). Returns ``(x, plot_metrics, area, throughput)``;
    area/throughput are None when the measurements cannot give both."""
    from .spec import SweepError
    unknown = sorted(set(spec.plots) - {"x", "metrics"})
    if unknown:
        raise SweepError(f"unknown key(s) {', '.join(unknown)} in [plots]; known: metrics, x")
    unknown = sorted(set(spec.pareto) - {"area", "throughput"})
    if unknown:
        raise SweepError(f"unknown key(s) {', '.join(unknown)} in [pareto]; "
                         f"known: area, throughput")
    x = spec.plots.get("x", spec.names[0])
    if x not in spec.names:
        raise SweepError(f"[plots] x = {x!r} is not a swept parameter; "
                         f"parameters: {', '.join(spec.names)}")
    metrics = spec.plots.get("metrics", headline)
    if isinstance(metrics, str):
        metrics = [metrics]
    for metric in metrics:
        if metric not in reported:
            raise SweepError(f"[plots] metrics: {metric!r} is not measured by this sweep; "
                             f"measured: {', '.join(reported)}")
    defaults = {"area": "luts", "throughput": "macs_per_cycle"}
    chosen = {}
    for key, default in defaults.items():
        value = spec.pareto.get(key, default)
        if value not in reported:
            if key in spec.pareto:
                raise SweepError(f"[pareto] {key} = {value!r} is not measured by this sweep; "
                                 f"measured: {', '.join(reported)}")
            value = None
        chosen[key] = value
    if None in chosen.values():
        chosen = {"area": None, "throughput": None}
    return x, list(metrics), chosen["area"], chosen["throughput"]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return str(value)


def write_csv(result, path):
    """One row per point: its parameters, status, every metric, the Pareto flag and the error."""
    names, metrics = result.plan.spec.names, result.metrics
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["point", *names, "status", "cached", *metrics, "pareto", "error"])
        for row in result.rows:
            writer.writerow([row["index"], *(row["params"][n] for n in names), row["status"],
                             row["cached"], *(row["metrics"].get(m, "") for m in metrics),
                             row["pareto"], row["error"] or ""])


def write_json(result, path):
    with open(path, "w") as f:
        json.dump(result.to_dict(), f, indent=1)
        f.write("\n")


def write_markdown(result, path, *, metrics=None):
    """A table of the points (the headline metrics, the Pareto flag), then the failures."""
    spec = result.plan.spec
    metrics = metrics or result.headline
    lines = [f"# Sweep of `{spec.block}`: {', '.join(f'`{n}`' for n in spec.names)}", "",
             result.summary(), ""]
    pareto = bool(result.pareto["area"])
    if pareto:
        lines += [f"Pareto: on the front of `{result.pareto['throughput']}` (higher is better) "
                  f"against `{result.pareto['area']}` (lower is better).", ""]
    header = [*(f"`{n}`" for n in spec.names), *metrics, *(["Pareto"] if pareto else []),
              "status"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result.rows:
        cells = [*(_cell(row["params"][n]) for n in spec.names),
                 *(_cell(row["metrics"].get(m)) for m in metrics),
                 *((["yes" if row["pareto"] else ""]) if pareto else []), row["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [row for row in result.rows if row["status"] == "failed"]
    if failed:
        lines += ["", "Failed points:", ""]
        lines += [f"- point {row['index']} ({_label(row['params'])}): "
                  f"{row['error'].replace('|', '/')}" for row in failed]
    if result.plan.skipped:
        lines += ["", f"{len(result.plan.skipped)} combination(s) skipped as invalid configs "
                      f"(skip_invalid = true); see results.json."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _label(params):
    return ", ".join(f"{p}={v}" for p, v in params.items())
