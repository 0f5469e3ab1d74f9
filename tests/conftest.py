import os
import secrets

import pytest


@pytest.fixture
def seed(request):
    """A random seed, printed so a failure can be replayed with SYSTOLICA_SEED=<seed>."""
    value = int(os.environ.get("SYSTOLICA_SEED", secrets.randbits(32)))
    print(f"seed={value} (replay: SYSTOLICA_SEED={value} pytest '{request.node.nodeid}')")
    return value
