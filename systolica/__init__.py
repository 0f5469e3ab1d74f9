"""systolica: an accelerator generator in Amaranth HDL (see README.md)."""

__version__ = "0.1.0"
