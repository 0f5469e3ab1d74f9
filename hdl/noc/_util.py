"""Small helpers shared by the NoC components."""

__all__ = ["construct_or_silence"]


def construct_or_silence(component, setup, *args):
    """Run ``setup(*args)`` (a component's checks and ``super().__init__``); if it raises,
    mark the half-built component as deliberately unused (a refused configuration is not an
    "elaboratable created but never used") and re-raise."""
    try:
        setup(*args)
    except Exception:
        component._MustUse__silence = True
        raise
