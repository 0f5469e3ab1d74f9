"""systolica: an accelerator generator in Amaranth HDL (see README.md).

``systolica.matmul(a, b, device=..., out_dtype=...)`` and ``systolica.run(layers, x,
device=...)`` compile and run on a tile (default: the instruction-level model); see
:mod:`systolica.runtime` and :mod:`systolica.compiler`.
"""

__version__ = "0.1.0"


def matmul(a, b, *, device=None, out_dtype=None, **kwargs):
    """``a @ b`` on a tile, bit-exact to NumPy: :func:`systolica.runtime.matmul`."""
    from .runtime import matmul as _matmul
    return _matmul(a, b, device=device, out_dtype=out_dtype, **kwargs)


def run(layers, x, *, device=None):
    """A layer sequence on a tile: :func:`systolica.runtime.run`."""
    from .runtime import run as _run
    return _run(layers, x, device=device)
