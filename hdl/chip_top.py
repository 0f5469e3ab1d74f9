"""The chip with standard AXI port names, for `systolica verilog --block chip` (docs/chip.md).

``ChipTop(config=ChipConfig)`` wraps :class:`~systolica.hdl.chip.Chip` in flat, AMBA-named ports,
so an integrator can drop the Verilog into a Vivado or Quartus block design, or an SoC, without a
wrapper:

* tile (X, Y)'s AXI4 master: ``m_axi_x{X}y{Y}_awid``, ``_awaddr``, ``_awlen``, ``_awsize``,
  ``_awburst``, ``_awlock``, ``_awcache``, ``_awprot``, ``_awqos``, ``_awvalid``, ``_awready``,
  ``_wdata``, ``_wstrb``, ``_wlast``, ``_wvalid``, ``_wready``, ``_bid``, ``_bresp``,
  ``_bvalid``, ``_bready``, ``_arid`` … ``_arready`` (as AW), ``_rid``, ``_rdata``, ``_rresp``,
  ``_rlast``, ``_rvalid``, ``_rready``;
* the host's AXI4-Lite slave: ``s_axil_awaddr``, ``_awprot``, ``_awvalid``, ``_awready``,
  ``_wdata``, ``_wstrb``, ``_wvalid``, ``_wready``, ``_bresp``, ``_bvalid``, ``_bready``,
  ``_araddr``, ``_arprot``, ``_arvalid``, ``_arready``, ``_rdata``, ``_rresp``, ``_rvalid``,
  ``_rready``;
* ``running`` (bit ``y * X + x``: tile (x, y) is running; its fall can be an interrupt);
* ``clk`` and ``rst`` (active high, synchronous), the clock and reset of every port.

Tied off (the DMA and fetch need none of them): ``*_arlock`` / ``*_awlock`` = 0 (normal
access), ``*_arcache`` / ``*_awcache`` = ``0b0011`` (normal non-cacheable bufferable, the value
Xilinx masters use), ``*_arprot`` / ``*_awprot`` = 0 (unprivileged, secure, data), ``*_arqos``
/ ``*_awqos`` = 0. ``s_axil_*prot`` is accepted and ignored. The Verilog carries Xilinx's
``X_INTERFACE_INFO`` / ``X_INTERFACE_PARAMETER`` attributes on ``clk`` and ``rst``
(:attr:`ChipTop.verilog_attributes`), binding every AXI port to the clock and the reset's
polarity; the AXI ports themselves follow the name patterns Vivado infers interfaces from.
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.config import ChipConfig
from .chip import Chip


__all__ = ["ChipTop", "AXI4_TIE_OFFS", "axi_master_prefix", "HOST_PREFIX"]

#: Constant AXI4 address-channel signals: name -> (width, value), on AR and AW.
AXI4_TIE_OFFS = {"lock": (1, 0), "cache": (4, 0b0011), "prot": (3, 0), "qos": (4, 0)}
HOST_PREFIX = "s_axil_"
#: Master (Out) channels and slave (In) channels, in AMBA's port order.
_CHANNELS = ("aw", "w", "b", "ar", "r")
_FORWARD = ("aw", "w", "ar")


def axi_master_prefix(x, y):
    return f"m_axi_x{x}y{y}_"


class ChipTop(wiring.Component):
    def __init__(self, *, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"ChipTop config must be a ChipConfig; got {config!r}")
        self.chip = Chip(config=config)
        self._config = config
        self._links = []    # (flat port, chip bus, channel, field / valid / ready, port is output)
        members = {}
        for (x, y) in self.chip.tiles:
            members.update(self._bus_members(axi_master_prefix(x, y), f"axi_{x}_{y}",
                                             master=True))
        members.update(self._bus_members(HOST_PREFIX, "host", master=False))
        members["running"] = Out(config.tiles)
        super().__init__(members)

    def _bus_members(self, prefix, attr, *, master):
        """Flat members for the chip's bus ``attr`` (a master's or the host's)."""
        bus_sig = self.chip.signature.members[attr].signature
        members = {}
        for ch in _CHANNELS:
            forward = (ch in _FORWARD) == master     # the chip drives valid and payload
            payload = bus_sig.members[ch].signature.members["payload"].shape
            for name, fld in payload:
                members[f"{prefix}{ch}{name}"] = (Out if forward else In)(fld.shape)
                self._links.append((f"{prefix}{ch}{name}", attr, ch, name, forward))
            if master and ch in ("aw", "ar"):
                for name, (width, _) in AXI4_TIE_OFFS.items():
                    members[f"{prefix}{ch}{name}"] = Out(width)
            for hs in ("valid", "ready"):
                out = forward if hs == "valid" else not forward
                members[f"{prefix}{ch}{hs}"] = (Out if out else In)(1)
                self._links.append((f"{prefix}{ch}{hs}", attr, ch, hs, out))
        return members

    @property
    def config(self):
        return self._config

    @property
    def verilog_attributes(self):
        """``{port: {attribute: value}}`` for the Verilog (Xilinx interface inference)."""
        busifs = [axi_master_prefix(x, y)[:-1] for (x, y) in self.chip.tiles]
        busifs.append(HOST_PREFIX[:-1])
        return {
            "clk": {"X_INTERFACE_INFO": "xilinx.com:signal:clock:1.0 clk CLK",
                    "X_INTERFACE_PARAMETER": f"ASSOCIATED_BUSIF {':'.join(busifs)}, "
                                             f"ASSOCIATED_RESET rst"},
            "rst": {"X_INTERFACE_INFO": "xilinx.com:signal:reset:1.0 rst RST",
                    "X_INTERFACE_PARAMETER": "POLARITY ACTIVE_HIGH"},
        }

    def manifest_extra(self):
        """The register map for ``manifest.json``: the windows and both maps."""
        hmap = self.chip.host_map

        def regs(regmap):
            return [{"name": r.name, "offset": r.offset, "access": r.access, "reset": r.reset,
                     "doc": " ".join(r.doc.split()),
                     "fields": [{"name": f.name, "lsb": lsb, "width": f.width,
                                 "access": f.access, "reset": f.reset,
                                 **({"enum": {m.name: m.value for m in f.enum}}
                                    if f.enum is not None else {})}
                                for f, lsb in r.placed]}
                    for r in regmap]
        return {"registers": {
            "host_port": HOST_PREFIX[:-1], "window_bytes": hmap.window_bytes,
            "windows": [{"index": w.index, "base": w.base, "size": w.size,
                         "tile": list(w.tile) if w.tile is not None else None,
                         "map": w.map.name} for w in hmap.windows],
            "maps": {hmap.chip.map.name: regs(hmap.chip.map),
                     hmap.tile(0, 0).map.name: regs(hmap.tile(0, 0).map)},
            "errors": {"outside_every_window": "DECERR", "hole_in_window": "SLVERR",
                       "write_to_read_only": "SLVERR"}}}

    def elaborate(self, platform):
        m = Module()
        chip = m.submodules.chip = self.chip
        for port, attr, ch, name, out in self._links:
            channel = getattr(getattr(chip, attr), ch)
            inner = channel.payload[name] if name not in ("valid", "ready") \
                else getattr(channel, name)
            flat = getattr(self, port)
            m.d.comb += flat.eq(inner) if out else inner.eq(flat)
        for (x, y) in chip.tiles:
            for ch in ("aw", "ar"):
                for name, (_, value) in AXI4_TIE_OFFS.items():
                    m.d.comb += getattr(self, f"{axi_master_prefix(x, y)}{ch}{name}").eq(value)
        m.d.comb += self.running.eq(chip.running)
        return m
