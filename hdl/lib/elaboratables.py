"""Marking elaboratables that are deliberately never elaborated in this process."""

from amaranth.hdl import Elaboratable

__all__ = ["mark_used"]


def mark_used(obj, seen=None):
    """Mark ``obj`` and the elaboratables it holds (attributes, lists, tuples, dicts) as used, so
    Amaranth does not warn that they were never elaborated: a tile that stands for an instance of
    a shared tile module, or a design whose compiled model came from the cache."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Elaboratable):
        obj._MustUse__used = True
        values = vars(obj).values()
    elif isinstance(obj, (list, tuple)):
        values = obj
    elif isinstance(obj, dict):
        values = obj.values()
    else:
        return
    for value in values:
        mark_used(value, seen)
