"""Running a sweep: plan, look up the cache, measure what is missing, collect, write.

:func:`run_sweep` does all checks (spec, configs, settings, tools, plot choices, the Dask
scheduler) before the first measurement starts. Each result is cached the moment it arrives, so
an interrupted sweep loses only the measurements in flight.
"""

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cache import ResultCache, default_cache_dir, measurement_key
from .executors import Task, make_executor, worker_environment
from .measurements import MEASUREMENTS, derive, headline_metrics, reported_metrics
from .outputs import output_choices, pareto_front, write_csv, write_json, write_markdown
from .points import expand


__all__ = ["SweepResult", "run_sweep", "DEFAULT_CACHE"]

DEFAULT_CACHE = object()    # run_sweep(cache=...) default: default_cache_dir()


@dataclass
class SweepResult:
    plan: object
    rows: list                      # one dict per point (see _collect)
    metrics: list                   # every metric column, in order
    headline: list                  # the metrics of the Markdown table
    plot_x: str
    plot_metrics: list
    pareto: dict                    # area, throughput (None: not measurable), indices
    tools: dict                     # measurement -> {distribution: version}
    stats: dict                     # points, measurements, cached, computed, failed, seconds
    files: list = field(default_factory=list)

    def summary(self):
        s = self.stats
        return (f"{_count(s['points'], 'point')}, {_count(s['measurements'], 'measurement')}: "
                f"{s['cached']} from the cache, {s['computed']} run; "
                f"{_count(s['failed_points'], 'point')} failed; {s['seconds']:.1f} s")

    def to_dict(self):
        spec = self.plan.spec
        return {
            "block": spec.block, "mode": spec.mode, "parameters": list(spec.names),
            "ties": spec.ties, "measure": list(spec.measure), "settings": self.plan.settings,
            "tools": self.tools, "stats": self.stats, "metrics": self.metrics,
            "pareto": self.pareto, "points": self.rows,
            "skipped": [{"params": p, "reason": r} for p, r in self.plan.skipped],
        }


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _tasks(plan):
    """``{point index: [(measurement, key)]}`` and the distinct tasks with their key inputs."""
    by_point, tasks = {}, {}
    environments = {name: worker_environment(MEASUREMENTS[name], plan.settings[name])
                    for name in plan.spec.measure}
    tools = {name: env["tools"] for name, env in environments.items()}
    for point in plan.points:
        for name in plan.spec.measure:
            configs = {s: point.configs[s] for s in plan.sections_read(name)}
            # A measurement that does not build the block (gemm) is shared between blocks.
            block = plan.block.name if MEASUREMENTS[name].builds_block else None
            key, inputs = measurement_key(name, plan.settings[name], block, configs, tools[name])
            by_point.setdefault(point.index, []).append((name, key))
            if key not in tasks:
                module = MEASUREMENTS[name].run.__module__
                tasks[key] = (Task(key, name, module, plan.block.name, configs,
                                   plan.settings[name], environments[name]), inputs)
    return by_point, tasks, tools


def _progress(total, enabled, stream):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        print("sweep: no progress bar (pip install tqdm)", file=stream)
        return None
    return tqdm(total=total, desc="sweep", unit="meas", file=stream, dynamic_ncols=True,
                postfix={"failed": 0})


def run_sweep(spec, *, jobs=1, scheduler=None, cache=DEFAULT_CACHE, output_dir=None,
              plots=True, progress=False, log=sys.stderr, retry_failed=False,
              connect_timeout=10.0):
    """Run the sweep ``spec`` (a :class:`~systolica.sweep.spec.SweepSpec`) and return its
    :class:`SweepResult`; with ``output_dir``, write results.{csv,json,md} and the plots there.
    ``cache``: a folder, ``None`` for none, default ``$SYSTOLICA_CACHE/sweep``. ``scheduler``:
    a Dask scheduler address (else ``jobs`` local processes; 1: this process)."""
    start = time.monotonic()
    plan = expand(spec)
    reported = reported_metrics(spec.measure, plan.settings)
    headline = headline_metrics(spec.measure, plan.settings)
    plot_x, plot_metrics, area, throughput = output_choices(spec, reported, headline)
    if output_dir is not None and plots:
        from .plots import require_matplotlib
        require_matplotlib()
    cache = ResultCache(default_cache_dir() if cache is DEFAULT_CACHE else cache)
    by_point, tasks, tools = _tasks(plan)

    results, pending = {}, []
    for key, (task, _) in tasks.items():
        cached = cache.get(key)
        if cached is not None and not (retry_failed and cached["status"] == "failed"):
            results[key] = {**cached, "cached": True}
        else:
            pending.append(task)

    with make_executor(jobs, scheduler, connect_timeout=connect_timeout) as executor:
        print(f"sweep: {_count(len(plan.points), 'point')}, "
              f"{_count(len(tasks), 'measurement')}, "
              f"{len(tasks) - len(pending)} cached, {len(pending)} to run on "
              f"{executor.description}", file=log)
        bar = _progress(len(pending), progress, log)
        failed = 0
        try:
            for key, result in executor.run(pending):
                results[key] = {**result, "cached": False}
                if not result.get("infrastructure"):
                    cache.put(key, tasks[key][1], result)
                failed += result["status"] == "failed"
                if bar is not None:
                    bar.set_postfix(failed=failed, refresh=False)
                    bar.update()
        finally:
            if bar is not None:
                bar.close()

    rows = _collect(plan, by_point, results)
    pairs = [(r["metrics"][area], r["metrics"][throughput])
             if area and r["status"] == "ok" and r["metrics"].get(area) is not None
             and r["metrics"].get(throughput) is not None else None for r in rows]
    front = pareto_front(pairs)
    for i in front:
        rows[i]["pareto"] = True
    seen = {m for r in rows for m in r["metrics"]}
    result = SweepResult(
        plan=plan, rows=rows, metrics=[m for m in reported if m in seen] + sorted(
            seen - set(reported)),
        headline=headline, plot_x=plot_x, plot_metrics=plot_metrics,
        pareto={"area": area, "throughput": throughput, "points": front},
        tools=tools,
        stats={"points": len(rows), "measurements": len(tasks),
               "cached": len(tasks) - len(pending), "computed": len(pending),
               "failed_points": sum(r["status"] == "failed" for r in rows),
               "skipped_combinations": len(plan.skipped),
               "seconds": round(time.monotonic() - start, 2)})
    if output_dir is not None:
        result.files = write_outputs(result, Path(output_dir), plots=plots)
    return result


def _collect(plan, by_point, results):
    rows = []
    for point in plan.points:
        metrics, errors, seconds, cached = {}, {}, 0.0, True
        for name, key in by_point[point.index]:
            result = results[key]
            metrics.update(result["metrics"])
            seconds += result["seconds"] or 0.0
            cached &= result["cached"]
            if result["status"] == "failed":
                errors[name] = result["error_summary"]
        rows.append({
            "index": point.index, "params": dict(point.params),
            "status": "failed" if errors else "ok", "cached": cached,
            "metrics": derive(metrics), "pareto": False,
            "error": "; ".join(f"{name}: {text}" for name, text in errors.items()) or None,
            "errors_full": {name: results[key]["error"] for name, key in by_point[point.index]
                            if results[key]["status"] == "failed"},
            "seconds": round(seconds, 3),
        })
    return rows


def write_outputs(result, folder, *, plots=True):
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "results.csv", folder / "results.json", folder / "results.md"]
    write_csv(result, files[0])
    write_json(result, files[1])
    write_markdown(result, files[2])
    if plots:
        from .plots import write_plots
        files += write_plots(result, folder)
    return files
