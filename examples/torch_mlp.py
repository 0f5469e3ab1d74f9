"""An MLP on random MNIST-shaped data (784 -> 128 -> 10), its matmuls on systolica.

    python examples/torch_mlp.py [--batch 8] [--device model|amaranth|verilator] [--json]

The one-line change is the ``torch.compile(..., backend="systolica")`` below; the rest is
ordinary PyTorch. Prints the per-layer report and the difference to eager fp32.
"""

import argparse
import json

import torch
from torch import nn

import systolica.torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="model", help="model, amaranth or verilator")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                          nn.Linear(128, 10)).eval()
    images = torch.rand(args.batch, 1, 28, 28)          # MNIST-shaped, random pixels

    compiled = torch.compile(model, backend="systolica", options={"device": args.device})
    with torch.no_grad():
        logits = compiled(images)
        eager = model(images)
    error = systolica.torch.compare(model, compiled, images)
    error["argmax_agreement"] = float((logits.argmax(1) == eager.argmax(1)).float().mean())
    report = systolica.torch.report()
    if args.json:
        print(json.dumps({"report": report.to_dict(), "error_vs_eager_fp32": error}, indent=1))
    else:
        print(report)
        print(f"vs eager fp32: max |error| {error['max_abs_error']:.3g} (outputs up to "
              f"{error['max_abs_reference']:.3g}), relative error {error['rel_error']:.4f}, "
              f"argmax agreement {error['argmax_agreement']:.2f}")
    return error


if __name__ == "__main__":
    main()
