"""Flit format and the router-to-router link signature.

A flit is one ``data.StructLayout`` (see docs/noc.md, "Flit format")::

    head | tail | vc | dst_x | dst_y | src_x | src_y | payload

``dst_*``/``src_*`` are meaningful on head flits (they are the packet header; the routers read
only the head's destination), ``vc`` is the virtual channel the flit travels on over the link it
is on (rewritten by every router), ``payload`` is one word of the packet.

A link carries flits one way and credits the other way; it is not a ready/valid stream: the
sender only sends a flit on VC v when it holds a credit for v (a free buffer slot downstream),
so the receiver never refuses one. A credit for VC v comes back each time the receiver frees a
slot of VC v.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.contracts import index_bits


__all__ = ["check_noc_config", "check_position", "flit_layout", "flow_vc", "LinkSignature"]


def check_noc_config(config, component):
    """The first check of every NoC component: ``config`` is a :class:`NocConfig` (the config
    validated its own fields when it was made)."""
    if not isinstance(config, NocConfig):
        raise TypeError(f"{component} config must be a NocConfig; got {config!r}")


def check_position(config: NocConfig, x, y, component):
    """``(x, y)`` is a node of ``config``'s mesh."""
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{component} {name} must be an integer; got {value!r}")
    if not (0 <= x < config.width and 0 <= y < config.height):
        raise ValueError(f"{component} position ({x}, {y}) is outside the "
                         f"{config.width}x{config.height} mesh")


def flow_vc(config: NocConfig, src, dst):
    """The VC every packet from node ``src`` to node ``dst`` (``(x, y)`` pairs) travels on, end
    to end, when ``config.in_order``: (source id + destination id) mod V, node id = y * X + x.
    One VC per pair keeps the pair's packets in order (each VC is a FIFO at every hop and is
    held by one packet at a time); spreading pairs over the VCs keeps the VCs useful."""
    sid = src[1] * config.width + src[0]
    did = dst[1] * config.width + dst[0]
    return (sid + did) % config.vcs


def flit_layout(config: NocConfig):
    return data.StructLayout({
        "head": 1,
        "tail": 1,
        "vc": unsigned(index_bits(config.vcs)),
        "dst_x": unsigned(index_bits(config.width)),
        "dst_y": unsigned(index_bits(config.height)),
        "src_x": unsigned(index_bits(config.width)),
        "src_y": unsigned(index_bits(config.height)),
        "payload": unsigned(config.payload_bits),
    })


class LinkSignature(wiring.Signature):
    """One direction of a link, seen from the sender: ``valid``/``flit`` out, ``credit``/
    ``credit_vc`` in."""

    def __init__(self, config: NocConfig):
        super().__init__({
            "valid": Out(1),
            "flit": Out(flit_layout(config)),
            "credit": In(1),
            "credit_vc": In(unsigned(index_bits(config.vcs))),
        })
