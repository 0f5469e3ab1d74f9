"""AXI4 and AXI4-Lite interface signatures, reusable by every block of the chip.

Each AXI channel is an ``amaranth.lib.stream`` interface (``valid``/``ready`` and a
``data.StructLayout`` payload), so the stream rules of the code base are exactly AXI's handshake
rules: ``valid`` never waits on ``ready`` and the payload is held until accepted.

``Axi4Signature`` is the *master's* view (``ar``, ``aw``, ``w`` out; ``r``, ``b`` in); a slave
takes it flipped. In Verilog the members appear as ``<port>__ar__valid``,
``<port>__ar__payload__addr`` ... (see docs/dma.md for the mapping to ``ARVALID``, ``ARADDR``).

Payload fields (widths from the parameters):

* ``ar`` / ``aw``: ``id``, ``addr`` (byte address), ``len`` (beats - 1, 8 bits), ``size``
  (log2 bytes per beat, 3 bits), ``burst`` (2 bits; ``BURST_INCR`` = 1).
* ``w``: ``data``, ``strb`` (one bit per byte lane), ``last``.
* ``r``: ``id``, ``data``, ``resp`` (2 bits), ``last``.
* ``b``: ``id``, ``resp``.

AXI4-Lite (``Axi4LiteSignature``): ``ar``/``aw`` carry ``addr`` and ``prot``; ``w`` carries ``data``
and ``strb``; ``r`` carries ``data`` and ``resp``; ``b`` carries ``resp``.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


__all__ = [
    "BURST_FIXED", "BURST_INCR", "BURST_WRAP",
    "RESP_OKAY", "RESP_EXOKAY", "RESP_SLVERR", "RESP_DECERR",
    "axi4_addr_layout", "axi4_w_layout", "axi4_r_layout", "axi4_b_layout", "Axi4Signature",
    "axi4lite_addr_layout", "axi4lite_w_layout", "axi4lite_r_layout", "axi4lite_b_layout",
    "Axi4LiteSignature", "check_axi_params",
]

BURST_FIXED, BURST_INCR, BURST_WRAP = 0, 1, 2
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0, 1, 2, 3

#: A burst never crosses a boundary of this many bytes (AXI4 rule).
BOUNDARY_BYTES = 4096
#: AXI4 INCR bursts have at most this many beats.
MAX_BURST_BEATS = 256


def check_axi_params(addr_width, data_width, id_width=1):
    if not isinstance(addr_width, int) or not 12 <= addr_width <= 64:
        raise ValueError(f"AXI addr_width must be an integer in [12, 64]; got {addr_width!r}")
    if data_width not in (8, 16, 32, 64, 128, 256, 512, 1024):
        raise ValueError(f"AXI data_width must be a power of two in [8, 1024]; got {data_width!r}")
    if not isinstance(id_width, int) or not 0 <= id_width <= 32:
        raise ValueError(f"AXI id_width must be an integer in [0, 32]; got {id_width!r}")


def _fields(id_width, **fields):
    if id_width:
        return data.StructLayout({"id": unsigned(id_width), **fields})
    return data.StructLayout(fields)


def axi4_addr_layout(addr_width, id_width):
    """AR / AW payload."""
    return _fields(id_width, addr=unsigned(addr_width), len=unsigned(8), size=unsigned(3),
                   burst=unsigned(2))


def axi4_w_layout(data_width):
    return data.StructLayout({"data": unsigned(data_width), "strb": unsigned(data_width // 8),
                              "last": 1})


def axi4_r_layout(data_width, id_width):
    return _fields(id_width, data=unsigned(data_width), resp=unsigned(2), last=1)


def axi4_b_layout(id_width):
    return _fields(id_width, resp=unsigned(2))


class Axi4Signature(wiring.Signature):
    """AXI4 master view (flip it for a slave)."""

    def __init__(self, *, addr_width, data_width, id_width=4):
        check_axi_params(addr_width, data_width, id_width)
        self.addr_width = addr_width
        self.data_width = data_width
        self.id_width = id_width
        super().__init__({
            "ar": Out(stream.Signature(axi4_addr_layout(addr_width, id_width))),
            "r": In(stream.Signature(axi4_r_layout(data_width, id_width))),
            "aw": Out(stream.Signature(axi4_addr_layout(addr_width, id_width))),
            "w": Out(stream.Signature(axi4_w_layout(data_width))),
            "b": In(stream.Signature(axi4_b_layout(id_width))),
        })

    @property
    def data_bytes(self):
        return self.data_width // 8

    def __eq__(self, other):
        return (isinstance(other, Axi4Signature) and
                (self.addr_width, self.data_width, self.id_width) ==
                (other.addr_width, other.data_width, other.id_width))

    def __repr__(self):
        return (f"Axi4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width})")


def axi4lite_addr_layout(addr_width):
    return data.StructLayout({"addr": unsigned(addr_width), "prot": unsigned(3)})


def axi4lite_w_layout(data_width):
    return data.StructLayout({"data": unsigned(data_width), "strb": unsigned(data_width // 8)})


def axi4lite_r_layout(data_width):
    return data.StructLayout({"data": unsigned(data_width), "resp": unsigned(2)})


def axi4lite_b_layout():
    return data.StructLayout({"resp": unsigned(2)})


class Axi4LiteSignature(wiring.Signature):
    """AXI4-Lite master view (flip it for a slave); data width 32 or 64."""

    def __init__(self, *, addr_width, data_width=32):
        check_axi_params(addr_width, data_width)
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data_width must be 32 or 64; got {data_width!r}")
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "ar": Out(stream.Signature(axi4lite_addr_layout(addr_width))),
            "r": In(stream.Signature(axi4lite_r_layout(data_width))),
            "aw": Out(stream.Signature(axi4lite_addr_layout(addr_width))),
            "w": Out(stream.Signature(axi4lite_w_layout(data_width))),
            "b": In(stream.Signature(axi4lite_b_layout())),
        })

    def __eq__(self, other):
        return (isinstance(other, Axi4LiteSignature) and
                (self.addr_width, self.data_width) == (other.addr_width, other.data_width))

    def __repr__(self):
        return f"Axi4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"
