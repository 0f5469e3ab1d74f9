"""Gateware: the Amaranth components of the accelerator."""
