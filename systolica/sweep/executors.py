"""Where measurements run: in this process, on a local process pool, or on a Dask cluster.

Every executor takes the same picklable :class:`Task` objects and yields ``(task_id, result)`` as
tasks finish, in any order. :func:`run_task` never raises for a failing measurement: it returns a
``failed`` result, so one bad point never stops a sweep. An exception that escapes it (a worker
killed, a lost connection) becomes a failed result marked ``infrastructure``, which the cache
does not keep: the next run measures that point again.
"""

import concurrent.futures
import multiprocessing
import time
import traceback
from dataclasses import dataclass
from importlib import import_module

from .spec import SweepError


__all__ = ["Task", "run_task", "InlineExecutor", "PoolExecutor", "DaskExecutor",
           "make_executor"]


@dataclass(frozen=True)
class Task:
    task_id: str                    # the cache key
    measurement: str
    module: str                     # where the measurement is registered (imported by workers)
    block: str
    configs: dict                   # section -> config (only the sections it reads)
    settings: dict
    environment: dict               # tool versions and source digest the cache key assumes


def summarize_error(text):
    """One line for tables: the first ``ERROR`` line of a tool log, else the first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tool_errors = [line for line in lines if line.startswith("ERROR")]
    return (tool_errors or lines or [text])[0][:300]


def worker_environment(measurement, settings):
    """What a result depends on besides its inputs: tool versions and systolica's sources."""
    from .cache import source_digest, tool_versions
    return {"tools": tool_versions(measurement.tools(settings)), "sources": source_digest()}


def run_task(task):
    """Run one measurement; a result dict with status ``ok`` or ``failed``."""
    from .measurements import MEASUREMENTS, PartialFailure
    start = time.monotonic()
    try:
        if task.measurement not in MEASUREMENTS:
            import_module(task.module)      # a measurement registered outside this package
        measurement = MEASUREMENTS[task.measurement]
        here = worker_environment(measurement, task.settings)
        if here != task.environment:
            # A cluster worker with other tools or sources would cache wrong answers.
            difference = _difference(here, task.environment)
            return _infrastructure_failure(RuntimeError(
                f"worker environment differs from the sweep's: {difference}"))
        metrics = _plain(measurement.run(task.block, task.configs, task.settings))
        return {"status": "ok", "metrics": metrics, "error": None,
                "seconds": round(time.monotonic() - start, 3)}
    except Exception as error:
        metrics = _plain(error.metrics) if isinstance(error, PartialFailure) else {}
        message = f"{type(error).__name__}: {error}"
        return {"status": "failed", "metrics": metrics, "error": message,
                "error_summary": summarize_error(message),
                "traceback": traceback.format_exc(limit=8),
                "seconds": round(time.monotonic() - start, 3)}


def _plain(metrics):
    """Metrics as JSON values (NumPy scalars -> Python numbers) for the cache and the files."""
    return {str(k): v.item() if hasattr(v, "item") else v for k, v in metrics.items()}


def _difference(here, expected):
    tools = [f"{name} {here['tools'].get(name)} (sweep: {version})"
             for name, version in expected["tools"].items()
             if here["tools"].get(name) != version]
    if here["sources"] != expected["sources"]:
        tools.append("systolica sources differ")
    return ", ".join(tools)


def _infrastructure_failure(error):
    message = f"{type(error).__name__}: {error}"
    return {"status": "failed", "metrics": {}, "error": message, "error_summary": message[:300],
            "infrastructure": True, "seconds": None}


class InlineExecutor:
    """One task after another in this process (``--jobs 1``)."""

    description = "this process"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, tasks):
        for task in tasks:
            yield task.task_id, run_task(task)


class PoolExecutor:
    """A local process pool of ``jobs`` workers. Workers are spawned, not forked: the parent may
    hold threads (progress bar, Dask client) that a fork would copy mid-operation."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.description = f"{jobs} local processes"
        self._pool = None

    def __enter__(self):
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self._pool.shutdown()
            return False
        # Interrupted: finished results are cached already. Drop the queue and stop the
        # workers, which would otherwise run the tasks already handed to them (they catch
        # KeyboardInterrupt per task). Python < 3.14 has no public terminate_workers().
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)
        return False

    def run(self, tasks):
        futures = {self._pool.submit(run_task, task): task.task_id for task in tasks}
        for future in concurrent.futures.as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as error:     # a worker died (BrokenProcessPool, ...)
                yield futures[future], _infrastructure_failure(error)


class DaskExecutor:
    """Tasks on a Dask distributed cluster (``tcp://HOST:8786``). The workers need systolica and
    the tools installed; results come back to this process, so they share no file system."""

    def __init__(self, address, *, timeout=10.0):
        try:
            from distributed import Client
        except ImportError:
            raise SweepError("--scheduler needs Dask distributed: pip install "
                             "'systolica[sweep]' (or distributed)") from None
        try:
            self._client = Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as error:
            raise SweepError(f"cannot reach the Dask scheduler at {address}: "
                             f"{' '.join(str(error).split())}") from None
        workers = len(self._client.scheduler_info().get("workers", {}))
        self.description = f"Dask scheduler {address} ({workers} workers now)"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self._client.close()
        return False

    def run(self, tasks):
        from distributed import as_completed
        # pure=False: a task's id is its cache key, but a rerun must really run.
        futures = {self._client.submit(run_task, task, pure=False,
                                       key=f"systolica-sweep-{task.task_id}"): task.task_id
                   for task in tasks}
        try:
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except Exception as error:     # KilledWorker, CancelledError, ...
                    yield futures[future], _infrastructure_failure(error)
        finally:
            self._client.cancel(list(futures))


def make_executor(jobs=1, scheduler=None, *, connect_timeout=10.0):
    """The executor for ``--jobs`` / ``--scheduler``; a Dask scheduler is connected to here, so an
    unreachable one fails before any work starts."""
    if scheduler:
        return DaskExecutor(scheduler, timeout=connect_timeout)
    if not isinstance(jobs, int) or jobs < 1:
        raise SweepError(f"--jobs must be an integer >= 1; got {jobs!r}")
    return InlineExecutor() if jobs == 1 else PoolExecutor(jobs)
