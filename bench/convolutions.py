"""Benchmark the two ways a convolution of the progressive model can run: keras's Conv1D /
Conv1DTranspose (oneDNN) and the same layer as one matrix product (model_progressive's
MatmulConv1D / MatmulConv1DTranspose). The evidence for model_progressive.runs_as_matmul:
every kernel-25 convolution of a stage, forward and backward (input and kernel gradients),
alone, with the same weights in both forms.

    python bench/convolutions.py --stage 3 --batch_size 16
    python bench/convolutions.py --stage 3 --batch_size 16 --use_mixed_precision_training --json
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# bench/ is not a package: train_step is found beside this script.
from train_step import forward_backward_seconds, stage_convolutions, stage_parser

from internals import import_tensorflow
from rules import STANDARD, VARIANTS, default_batch_size
from utils import int_in_range


def forms(layer):
    """{form: class} of a convolution: keras's and the matrix product."""
    import keras

    import model_progressive as mp
    if isinstance(layer, keras.layers.Conv1DTranspose):
        return {"keras": keras.layers.Conv1DTranspose, "matmul": mp.MatmulConv1DTranspose}
    return {"keras": keras.layers.Conv1D, "matmul": mp.MatmulConv1D}


def benchmark(stage, batch, mixed, repeats, variant=STANDARD):
    tf = import_tensorflow()
    from model_progressive import Discriminator, Generator
    from wgan_gp import precision

    policy, _ = precision(mixed)
    networks = {"generator": Generator(stage, variant=variant),
                "discriminator": Discriminator(stage, variant=variant)}
    rows = []
    for macs, network, label, layer, shape in stage_convolutions(networks, batch):
        row = {"network": network.name, "layer": label, "shape": shape,
               "filters": layer.filters, "stride": layer.strides[0],
               "used": type(layer).__name__, "gflop": round(6 * macs / 1e9, 3)}
        for form, cls in forms(layer).items():
            seconds = forward_backward_seconds(tf, layer, shape, policy, repeats, cls)
            row[form + "_gflops_per_second"] = round(6 * macs / seconds / 1e9, 1)
        rows.append(row)
    return {"stage": stage, "batch_size": batch, "policy": policy, "model_variant": variant,
            "convolutions": rows}


def main(argv=None):
    parser = stage_parser("Time each convolution of a stage in keras's form and as one "
                          "matrix product.")
    parser.add_argument("--model_variant", choices=tuple(VARIANTS), default=STANDARD,
                        help="as train_progressive.py's --model_variant")
    parser.add_argument("--repeats", type=int_in_range(1, 100000), default=10,
                        help="timed calls of each convolution (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = benchmark(args.stage, args.batch_size or default_batch_size(args.stage),
                       args.use_mixed_precision_training, args.repeats, args.model_variant)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"stage {result['stage']}, batch {result['batch_size']}, {result['policy']}, "
          f"{result['model_variant']} model: "
          f"GFLOP/s forward and backward")
    print(f"  {'convolution':47} {'input':>16} {'filters':>7} {'keras':>8} {'matmul':>8}  used")
    for row in result["convolutions"]:
        print(f"  {row['network'] + '/' + row['layer']:47} {row['shape']!s:>16} "
              f"{row['filters']:7d} {row['keras_gflops_per_second']:8.1f} "
              f"{row['matmul_gflops_per_second']:8.1f}  {row['used']}")
    return 0


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
