import os
import secrets

import pytest


@pytest.fixture
def seed(request):
    """A random seed, printed so a failure can be replayed with SYSTOLICA_SEED=<seed>."""
    value = int(os.environ.get("SYSTOLICA_SEED", secrets.randbits(32)))
    print(f"seed={value} (replay: SYSTOLICA_SEED={value} pytest '{request.node.nodeid}')")
    return value


# --- simulation backend (see docs/simulation.md) -------------------------------------------------

def pytest_addoption(parser):
    parser.addoption(
        "--sim-backend", default=None, choices=("amaranth", "verilator"),
        help="simulation backend for the whole session (sets SYSTOLICA_SIM_BACKEND); "
             "tests/test_backends.py runs on both regardless")


def pytest_configure(config):
    backend = config.getoption("--sim-backend")
    if backend:
        os.environ["SYSTOLICA_SIM_BACKEND"] = backend
