"""A small transformer encoder layer (d_model 64, 4 heads, feed-forward 128) on systolica:
the QKV and output projections, both attention matmuls (q kᵀ and weights · v, as ``bmm``) and
the feed-forward layers run on the accelerator; softmax, layer norm and the residual adds in
PyTorch.

    python examples/torch_transformer.py [--batch 2] [--seq 8] [--device model|amaranth]
"""

import argparse
import json

import torch
from torch import nn

import systolica.torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=8)
    parser.add_argument("--device", default="model", help="model, amaranth or verilator")
    parser.add_argument("--plans", action="store_true", help="print every layer's full plan")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128,
                                       dropout=0.0, batch_first=True).eval()
    tokens = torch.randn(args.batch, args.seq, 64)

    compiled = torch.compile(layer, backend="systolica", options={"device": args.device})
    with torch.no_grad():
        compiled(tokens)
    error = systolica.torch.compare(layer, compiled, tokens)
    report = systolica.torch.report()
    if args.json:
        print(json.dumps({"report": report.to_dict(), "error_vs_eager_fp32": error}, indent=1))
        return error
    print(report)
    if args.plans:
        for entry in report.layers:
            print(f"\n{entry.name} ({entry.op}):\n{entry.plan}")
    print(f"vs eager fp32: max |error| {error['max_abs_error']:.3g} (outputs up to "
          f"{error['max_abs_reference']:.3g}), relative error {error['rel_error']:.4f}")
    return error


if __name__ == "__main__":
    main()
