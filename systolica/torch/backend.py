"""The Dynamo backend: Dynamo's graph → ATen graph (``aot_autograd``) → every matmul node
replaced by an :class:`~.layer.AcceleratedMatmul`; all other ATen ops stay PyTorch's."""

import collections

import torch
from torch._dynamo.backends.common import aot_autograd

from systolica.config import dtype_range
from systolica.runtime import BACKENDS, Device

from .decompositions import decompositions
from .layer import MATMUL_OPS, AcceleratedMatmul
from .quant import QMAX
from .report import GraphReport, Report

__all__ = ["SystolicaBackend", "OPTIONS"]

aten = torch.ops.aten
#: Ops a weight may pass through between its parameter and the matmul (``linear`` → ``t``).
_VIEW_OPS = {aten.t.default, aten.transpose.int, aten.permute.default, aten.view.default,
             aten._unsafe_view.default, aten.reshape.default, aten.expand.default,
             aten.clone.default, aten.alias.default, aten.contiguous.default}

#: ``torch.compile(..., options=...)`` keys and what they mean.
OPTIONS = {
    "device": "a systolica.runtime.Device, or a backend name: model (default), amaranth, "
              "verilator",
    "config": "TileConfig for a device given by name (default: the default config)",
    "check": "compare every device result with NumPy's int8 matmul (default True)",
    "keep_tensors": "keep each layer's last operands and results in its report (default "
                    "False)",
    "warn": "emit a FallbackWarning when an op runs in PyTorch (default True)",
}


def _device(device, config):
    if isinstance(device, Device):
        if config is not None:
            raise ValueError("options: give 'config' only with a device name, not with a "
                             "Device (it has its config)")
        dev = device
    elif isinstance(device, str):
        if device not in BACKENDS:
            raise ValueError(f"options['device'] must be a Device or one of "
                             f"{', '.join(BACKENDS)}; got {device!r}")
        dev = Device(config, backend=device)
    else:
        raise TypeError(f"options['device'] must be a Device or a backend name; got "
                        f"{device!r}")
    arr = dev.tile_config.array
    for what, dtype in (("moving", arr.moving_dtype), ("stationary", arr.stationary_dtype)):
        lo, hi = dtype_range(dtype)
        if lo > -QMAX or hi < QMAX:
            raise ValueError(f"the device's {what} dtype {dtype} cannot hold int8 values "
                             f"[-{QMAX}, {QMAX}]")
    return dev


def _source(node):
    """The node a matmul operand comes from, through view-like ops."""
    while node.op == "call_function" and node.target in _VIEW_OPS:
        node = node.args[0]
    return node


class SystolicaBackend:
    """A Dynamo backend (``torch.compile(model, backend=SystolicaBackend(...))``; the
    registered ``"systolica"`` is one instance). Keyword arguments as :data:`OPTIONS`; the
    ``options`` of ``torch.compile`` override them per compile. ``graphs``: a
    :class:`~.report.GraphReport` per compiled graph; :meth:`report` reads them."""

    def __init__(self, **options):
        self.defaults = self._options(options)
        self.graphs = []

    @staticmethod
    def _options(options):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown systolica option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(OPTIONS)}")
        return dict(options)

    def report(self):
        """A :class:`~.report.Report` of every graph compiled since the last :meth:`reset`."""
        return Report(list(self.graphs))

    def reset(self):
        self.graphs.clear()

    def __call__(self, gm, example_inputs, options=None, **kwargs):
        if kwargs:
            raise ValueError(f"the systolica backend takes options=..., not "
                             f"{', '.join(kwargs)}")
        opts = {**self.defaults, **self._options(options or {})}
        device = _device(opts.get("device", "model"), opts.get("config"))
        weights = [isinstance(t, torch.nn.Parameter) for t in example_inputs]
        graph = GraphReport(index=len(self.graphs), backend=device.backend)
        self.graphs.append(graph)

        def forward(fw_gm, fw_inputs):
            return self._rewrite(fw_gm, fw_inputs, weights, device, opts, graph)

        def backward(bw_gm, bw_inputs):
            graph.notes.append("backward graph runs in PyTorch (fp32)")
            return bw_gm

        return aot_autograd(fw_compiler=forward, bw_compiler=backward,
                            decompositions=decompositions)(gm, example_inputs)

    @staticmethod
    def _rewrite(gm, inputs, weights, device, opts, graph):
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) == len(weights):
            params = {n for n, w in zip(placeholders, weights) if w}
        else:
            params = set()
            graph.notes.append("could not match the ATen graph's inputs to parameters; "
                               "every operand is quantised per tensor")
        ops = collections.Counter()
        for node in list(gm.graph.nodes):
            if node.op != "call_function":
                continue
            if node.target not in MATMUL_OPS:
                name = getattr(node.target, "__name__", str(node.target))
                ops[name.removesuffix(".default")] += 1
                continue
            rhs = node.args[2] if MATMUL_OPS[node.target] == "addmm" else node.args[1]
            layer = AcceleratedMatmul(node.target, node.name, device,
                                      rhs_is_weight=_source(rhs) in params,
                                      check=opts.get("check", True),
                                      keep_tensors=opts.get("keep_tensors", False),
                                      warn=opts.get("warn", True))
            module_name = f"systolica_{node.name}"
            gm.add_submodule(module_name, layer)
            with gm.graph.inserting_before(node):
                new = gm.graph.call_module(module_name, node.args, node.kwargs)
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
            graph.layers.append(layer.report)
        graph.pytorch_ops = dict(ops)
        gm.recompile()
        return gm
