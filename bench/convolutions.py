"""Benchmark the two forms a convolution of the progressive model can run in: the framework's
Conv1D / Conv1DTranspose (oneDNN on a CPU) and one matrix product (model_progressive's
Convolution, form "matmul"): every kernel-25 convolution of a stage, forward and backward
(input and kernel gradients), alone, timed as conv_forms.py times it at start-up, and the
form --conv_forms auto would choose.

    python bench/convolutions.py --stage 3 --batch_size 16
    python bench/convolutions.py --stage 3 --batch_size 16 --use_mixed_precision_training --json
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# bench/ is not a package: train_step is found beside this script.
from train_step import stage_convolutions, stage_parser

from conv_forms import forward_backward_seconds
from private_apis import import_tensorflow
from rules import CONV_FORMS, STANDARD, VARIANTS, default_batch_size
from utils import int_in_range


def benchmark(stage, batch, mixed, repeats, variant=STANDARD):
    import_tensorflow()
    from model_progressive import Discriminator, Generator
    from precision import precision

    policy, _ = precision(mixed)
    networks = {"generator": Generator(stage, variant=variant),
                "discriminator": Discriminator(stage, variant=variant)}
    rows = []
    for macs, network, label, layer in stage_convolutions(networks, batch):
        row = {"network": network, "layer": label, "shape": [batch, *layer.built_shape[1:]],
               "filters": layer.filters, "stride": layer.strides[0],
               "gflop": round(6 * macs / 1e9, 3)}
        for form in CONV_FORMS:
            seconds = forward_backward_seconds(layer, batch, policy, form, repeats)
            row[form + "_gflops_per_second"] = round(6 * macs / seconds / 1e9, 1)
        row["faster"] = max(CONV_FORMS, key=lambda form: row[form + "_gflops_per_second"])
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
    print(f"  {'convolution':47} {'input':>16} {'filters':>7} {'framework':>9} {'matmul':>8}"
          f"  faster")
    for row in result["convolutions"]:
        print(f"  {row['network'] + '/' + row['layer']:47} {row['shape']!s:>16} "
              f"{row['filters']:7d} {row['framework_gflops_per_second']:9.1f} "
              f"{row['matmul_gflops_per_second']:8.1f}  {row['faster']}")
    return 0


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
