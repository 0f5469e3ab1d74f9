"""Content-addressed cache of measurement results.

The key of a measurement of a point is the SHA-256 of everything its answer depends on: the
measurement and its settings, the block, the configs of the sections it reads, the versions of
the tools it runs, and a digest of systolica's own sources (gateware, testbench, synth flow). An
interrupted sweep therefore resumes where it stopped, a repeated one is instant, and a changed
generator or tool never serves a stale answer. Results are written by the process that runs the
sweep (not by workers), one JSON file per key, atomically.
"""

import hashlib
import json
import os
from functools import lru_cache
from importlib import import_module, metadata
from pathlib import Path


__all__ = ["default_cache_dir", "tool_versions", "source_digest", "measurement_key",
           "ResultCache"]

KEY_FORMAT = 1      # bump when the meaning of cached results changes


def default_cache_dir():
    """``$SYSTOLICA_CACHE/sweep`` (default ``~/.cache/systolica/sweep``)."""
    base = os.environ.get("SYSTOLICA_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "systolica")
    return Path(base) / "sweep"


def tool_versions(distributions):
    """``{distribution: version}`` of installed packages (``"not installed"`` otherwise)."""
    versions = {}
    for name in sorted(set(distributions)):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


SOURCE_SUFFIXES = (".py", ".toml", ".cpp", ".h")


@lru_cache(maxsize=1)
def source_digest():
    """SHA-256 over systolica's sources, except this sweep package (it only orchestrates)."""
    folders = {"systolica": ("sweep",), "systolica.hdl": (), "systolica.testbench": (),
               "systolica.synth": ()}
    digest = hashlib.sha256()
    for package, excluded in folders.items():
        folder = Path(import_module(package).__file__).parent
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.suffix in SOURCE_SUFFIXES and not set(relative.parts) & {*excluded,
                                                                               "__pycache__"}:
                digest.update(f"{package}/{relative}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _jsonable(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot put {type(value).__name__} into a cache key")


def measurement_key(measurement, settings, block, configs, tools):
    """The cache key and the inputs it hashes (kept in the entry, for people reading it)."""
    inputs = {
        "format": KEY_FORMAT,
        "measurement": measurement,
        "settings": settings,
        "block": block,
        "configs": {section: configs[section] for section in sorted(configs)},
        "tools": tools,
        "systolica_sources": source_digest(),
    }
    text = json.dumps(inputs, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest(), json.loads(text)


class ResultCache:
    """``root/<key[:2]>/<key>.json``; ``root=None`` caches nothing."""

    def __init__(self, root):
        self.root = Path(root) if root is not None else None

    def _path(self, key):
        return self.root / key[:2] / f"{key}.json"

    def get(self, key):
        if self.root is None:
            return None
        try:
            with open(self._path(key)) as f:
                return json.load(f)["result"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None     # absent, or torn by a crash mid-write: measure again

    def put(self, key, inputs, result):
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump({"inputs": inputs, "result": result}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
