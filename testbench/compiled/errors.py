"""The compiled backend's exceptions."""


class BackendUnavailable(RuntimeError):
    """The compiled backend cannot run here (no Verilator, no C++ compiler, no make)."""


class BuildError(RuntimeError):
    """Verilator or the C++ build failed; the message has the tail of its output."""


class ProtocolError(AssertionError):
    """A stream rule was broken in the compiled simulation (valid dropped, payload changed) or an
    extra C++ model reported an error."""
