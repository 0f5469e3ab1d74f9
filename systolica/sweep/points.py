"""From a :class:`SweepSpec` to the list of design points, each with its complete configs.

Everything that can be wrong with a spec is found here, before any work starts: unknown blocks,
sections and fields, parameters that neither the block nor a measurement reads, values a config
rejects, alone or with the block's other sections (the error names the field and the point), bad
measurement settings and missing tools.
"""

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from systolica.blocks import get_block
from systolica.config import CONFIG_CLASSES, ConfigError, default_config, load_toml
from .measurements import MEASUREMENTS, check_settings
from .spec import SweepError


__all__ = ["Point", "Plan", "expand"]


@dataclass(frozen=True)
class Point:
    index: int
    params: dict                    # swept path -> value (ties not included)
    configs: dict                   # section -> config, every section

    def label(self):
        return ", ".join(f"{path}={value}" for path, value in self.params.items())


@dataclass(frozen=True)
class Plan:
    spec: object
    block: object                   # systolica.blocks.Block
    settings: dict                  # measurement -> settings with defaults
    points: tuple                   # of Point, in grid (or draw) order
    skipped: tuple                  # of (params, reason): combinations the configs reject
    space: int                      # size of the full grid

    def sections_read(self, measurement):
        return tuple(MEASUREMENTS[measurement].sections(self.block))


def _check_path(path, where):
    """``SECTION.FIELD[.SUB...]`` names a config field; returns ``(section, keys)``."""
    section, _, rest = path.partition(".")
    if section not in CONFIG_CLASSES:
        raise SweepError(f"{where} {path}: unknown config section {section!r}; known: "
                         f"{', '.join(sorted(CONFIG_CLASSES))}")
    names = [f.name for f in dataclasses.fields(CONFIG_CLASSES[section])]
    keys = rest.split(".") if rest else []
    if not keys or keys[0] not in names:
        raise SweepError(f"{where} {path}: unknown field {rest or '(none)'!r} of [{section}]; "
                         f"fields: {', '.join(names)}")
    return section, keys


def _set(tree, keys, value):
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def _get(tree, keys):
    for key in keys:
        tree = tree[key]
    return tree


def apply(configs, assignments):
    """``configs`` with ``{path: value}`` assigned, rebuilt through each section's ``from_dict``
    so every config check runs; raises :class:`ConfigError`."""
    by_section = {}
    for path, value in assignments.items():
        section, _, rest = path.partition(".")
        by_section.setdefault(section, []).append((rest.split("."), value))
    out = dict(configs)
    for section, changes in by_section.items():
        values = out[section].to_dict()
        for keys, value in changes:
            _set(values, keys, value)
        out[section] = CONFIG_CLASSES[section].from_dict(values)
    return out


def _base_configs(spec):
    try:
        configs = load_toml(spec.base_file) if spec.base_file else default_config()
    except FileNotFoundError:
        raise SweepError(f"[sweep] base: config file {spec.base_file} not found") from None
    except ConfigError as error:
        raise SweepError(f"[sweep] base {spec.base_file}: {error}") from None
    for section, table in spec.base.items():
        assignments = {f"{section}.{key}": value for key, value in table.items()}
        for path in assignments:
            _check_path(path, "[base]")
        try:
            configs = apply(configs, assignments)
        except ConfigError as error:
            raise SweepError(f"[base.{section}]: {error}") from None
    return configs


def _combinations(spec):
    """Index tuples into the parameters' values: the grid, or distinct random draws."""
    sizes = [len(v) for v in spec.parameters]
    space = int(np.prod(sizes, dtype=object))
    if spec.mode == "grid" or spec.samples >= space:
        return list(itertools.product(*map(range, sizes))), space
    rng = np.random.default_rng(spec.seed)
    drawn, seen = [], set()
    while len(drawn) < spec.samples:
        combo = tuple(int(rng.integers(n)) for n in sizes)
        if combo not in seen:
            seen.add(combo)
            drawn.append(combo)
    return drawn, space


def expand(spec):
    """Check ``spec`` against the block registry, the config classes and the measurements, and
    return its :class:`Plan`. Raises :class:`SweepError`."""
    try:
        block = get_block(spec.block)
    except ValueError as error:
        raise SweepError(f"[sweep] block: {error}") from None
    settings = {name: check_settings(MEASUREMENTS[name], spec.settings.get(name, {}))
                for name in spec.measure}
    read = set(block.sections)
    for name in spec.measure:
        read |= set(MEASUREMENTS[name].sections(block))
    for values in spec.parameters:
        section, _ = _check_path(values.path, "[parameters]")
        if section not in read:
            raise SweepError(
                f"[parameters] {values.path}: neither block {block.name} (sections "
                f"{', '.join(block.sections)}) nor the measurements "
                f"({', '.join(spec.measure)}) read [{section}]")
    for path, source in spec.ties.items():
        _check_path(path, "[tie]")
        _check_path(source, f"[tie] {path} =")

    base = _base_configs(spec)
    combos, space = _combinations(spec)
    points, skipped, valid_values = [], [], set()
    for combo in combos:
        params = {v.path: v[i] for v, i in zip(spec.parameters, combo)}
        assignments = dict(params)
        for path, source in spec.ties.items():
            if source in params:
                assignments[path] = params[source]
            else:
                section, keys = _check_path(source, "[tie]")
                assignments[path] = _get(base[section].to_dict(), keys)
        try:
            configs = apply(base, assignments)
            block.validated(configs)    # the rules that span the block's sections
        except (ConfigError, TypeError) as error:
            label = ", ".join(f"{p}={v}" for p, v in params.items())
            if not spec.skip_invalid:
                raise SweepError(f"[parameters] point {label}: {error} (set [sweep] "
                                 f"skip_invalid = true to drop such combinations)") from None
            skipped.append((params, str(error)))
            continue
        valid_values.update(params.items())
        points.append(Point(len(points), params, configs))
    if spec.skip_invalid:
        for values in spec.parameters:
            for value in values.all() if len(values) <= 4096 else ():
                if (values.path, value) not in valid_values and any(
                        p.get(values.path) == value for p, _ in skipped):
                    reason = next(r for p, r in skipped if p.get(values.path) == value)
                    raise SweepError(f"[parameters] {values.path} = {value!r} is invalid at "
                                     f"every point: {reason}")
    if not points:
        raise SweepError("no valid point in the sweep")
    return Plan(spec, block, settings, tuple(points), tuple(skipped), space)
