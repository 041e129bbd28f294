"""Benchmark the training step: seconds per iteration and achieved GFLOP/s against the single
most expensive convolution of the stage timed alone (the practical peak of this machine).

It builds train_progressive.py's networks and iteration with runs.build_run (the code
the trainer runs, not a copy) and feeds it make_dataset's prefetched batches of noise, distributed
as --distribution says. After --warmup iterations (the first traces the step) it times
--iterations iterations of 5 D and 1 G updates each.

    python bench/train_step.py --stage 3 --batch_size 16
    python bench/train_step.py --stage 3 --batch_size 16 --use_mixed_precision_training --json

Floating-point operations are counted from the architecture (flops_per_iteration below): the
multiply-adds of every convolution, transposed convolution and dense layer, 2 FLOPs each;
biases, activations and the optimiser are not counted.
"""

import json
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import conv_forms
import moving_average
from distribute import distribute, make_strategy
from private_apis import import_tensorflow
from rules import (
    DISTRIBUTIONS,
    EMA_HALF_LIFE,
    EMA_RAMPUP,
    GRAPHS,
    MAX_BLOCKS,
    MAX_FEATURE_MAP_DIVISOR,
    MIN_BLOCKS,
    SAMPLING_RATE,
    default_batch_size,
    window_length,
)
from runs import build_run
from utils import ArgumentParser, int_in_range

SEED = 0


# ------------------------------------------------------------------------- FLOPs from the layers

def convolution_label(name, block, layer):
    """A named layer's name, or for a convolution of a two-convolution block name/conv or
    name/strided_conv (both are named layers' attributes, so their own names collide)."""
    return name if layer is block else f"{name}/{layer.name}"


def layer_macs(network, batch):
    """[(name, forward multiply-adds)] of every convolution, transposed convolution and dense
    layer of a progressive generator or critic, in the order of its forward pass; a
    two-convolution block's are named progressive_block_b/conv and .../strided_conv.

    Conv1D, stride s:  batch x ceil(length_in / s) x kernel x C_in x C_out
    Conv1DTranspose:   batch x length_in x kernel x C_in x C_out (length_out = s x length_in)
    Dense:             batch x inputs x units
    """
    import keras

    from model_progressive import BASE_LENGTH, Generator, convolutions

    length = BASE_LENGTH if isinstance(network, Generator) else window_length(network.num_blocks)
    macs = []
    for name, block in network.named_layers().items():
        for layer in convolutions(block):
            weights = math.prod(layer.kernel.shape)
            label = convolution_label(name, block, layer)
            if isinstance(layer, keras.layers.Conv1DTranspose):
                macs.append((label, batch * length * weights))
                length *= layer.strides[0]
            elif isinstance(layer, keras.layers.Conv1D):
                length = -(-length // layer.strides[0])
                macs.append((label, batch * length * weights))
            else:  # Dense: the generator's projection or the critic's prediction
                macs.append((name, batch * weights))
    return macs


def flops_per_iteration(g_macs, d_macs):
    """FLOPs of one iteration (5 D updates, 1 G update) from the networks' layer_macs.

    F = 2 x (sum of a network's forward multiply-adds), f = 2 x those of its first layer.
    A layer's input gradient costs as much as its forward pass, and so does its kernel
    gradient; the first layer's input gradient is needed only where the input is
    differentiated (x_hat in the gradient penalty).
    One D update, WGAN-GP (iteration.Iteration.critic_gradients):
        F_G                    fakes
        3 F_D                  D(real), D(fake), D(x_hat)
        F_D                    gradient penalty: input gradient of D(x_hat) down to x_hat
        2 (2 F_D - f_D)        backward of D(real) and D(fake): kernel and input gradients
        2 F_D                  double backward: each input-gradient op differentiated with
                               respect to its upstream gradient and its kernel (the activations'
                               slopes are constant: nothing flows back through D(x_hat)'s
                               forward pass, model_progressive.lrelu)
        = F_G + 10 F_D - 2 f_D
    One G update: F_G + F_D forward, F_D D's input gradients, 2 F_G - f_G G's backward
        = 3 F_G + 2 F_D - f_G
    Iteration = 5 (F_G + 10 F_D - 2 f_D) + 3 F_G + 2 F_D - f_G = 8 F_G + 52 F_D - 10 f_D - f_G
    """
    f_g, f_d = 2 * g_macs[0][1], 2 * d_macs[0][1]
    big_g = 2 * sum(m for _, m in g_macs)
    big_d = 2 * sum(m for _, m in d_macs)
    return 8 * big_g + 52 * big_d - 10 * f_d - f_g


# ------------------------------------------------------------------------- timing

def time_calls(function, repeats):
    """Median seconds of `repeats` calls of function(), which returns something to wait on."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(function())
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def stage_convolutions(networks, batch):
    """[(forward multiply-adds, network name, label, layer)] of every kernel-25 convolution
    of the stage's networks, labelled as layer_macs does."""
    from conv_forms import convolution_layers

    macs = {f"{name}/{label}": m for name, network in networks.items()
            for label, m in layer_macs(network, batch)}
    return [(macs[label], label.split("/")[0], label.split("/", 1)[1], layer)
            for label, layer in convolution_layers(networks.values()).items()]


def convolution_peak(networks, batch, policy, repeats):
    """GFLOP/s of the stage's most expensive convolutions (every one within 1 % of the most
    multiply-adds), each timed alone in both forms: forward, input gradient and kernel
    gradient (3 x its forward FLOPs), as a fresh layer of the same configuration and dtype
    policy on random input. The fastest of them all is the peak."""
    from conv_forms import forward_backward_seconds
    from rules import CONV_FORMS

    candidates = stage_convolutions(networks, batch)
    most = max(macs for macs, *_ in candidates)
    results = []
    for macs, network, label, layer in candidates:
        if macs < 0.99 * most:
            continue
        for form in CONV_FORMS:
            seconds = forward_backward_seconds(layer, batch, policy, form, repeats)
            results.append({"network": network, "layer": label, "form": form,
                            "shape": [batch, *layer.built_shape[1:]],
                            "filters": layer.filters, "stride": layer.strides[0],
                            "gflop": round(6 * macs / 1e9, 3), "seconds": round(seconds, 4),
                            "gflops_per_second": round(6 * macs / seconds / 1e9, 1)})
    return max(results, key=lambda r: r["gflops_per_second"]), results


def training_run(stage, batch, mixed, xla=False, distribution="none", graph=GRAPHS[0],
                 forms_mode=conv_forms.AUTO, conv_forms_cache=None, recipe=None, config=None,
                 divisor=1):
    """A trainer's training run of a stage, fed prefetched batches of noise: recipe and config
    (by default train_progressive.py's, with its default configuration: mono, smoothing on,
    standard variant; `divisor` its --feature_map_divisor). conv_forms_cache None: a
    temporary file, so that every run measures the forms. Returns (run, iterator, dtype
    policy, strategy, the forms' line)."""
    import_tensorflow()
    import train_progressive
    from config import ModelConfig
    from dataloader import AudioData, make_dataset
    from precision import precision

    strategy = make_strategy(distribution)
    policy, loss_scale = precision(mixed)
    if recipe is None:
        recipe = train_progressive.RECIPE
        config = train_progressive.make_config(
            ModelConfig(num_blocks=stage, feature_map_divisor=divisor), SAMPLING_RATE, 1)
    noise = np.random.default_rng(SEED).integers(-8000, 8000, (window_length(stage) * batch * 4,
                                                               1), dtype=np.int16)
    audio = AudioData(noise, SAMPLING_RATE, "noise")
    iterator = distribute(make_dataset(audio, stage, batch, seed=SEED), strategy)
    average = moving_average.rule(None, EMA_HALF_LIFE, EMA_RAMPUP, batch)
    run = build_run(recipe, config, policy, loss_scale, SEED, strategy, xla, average, graph)
    with tempfile.TemporaryDirectory(prefix="bench_forms_") as scratch:
        forms = conv_forms.choose(run.networks.values(), batch // strategy.num_replicas_in_sync,
                                  policy, forms_mode, conv_forms_cache or
                                  os.path.join(scratch, conv_forms.CACHE_FILE))
    return run, iterator, policy, strategy, forms


def convolutions_rate(convolutions, forms):
    """GFLOP/s of an iteration made only of the timed convolutions (convolution_peak's), each
    in its form from `forms` at its speed alone, in the iteration's proportions: a generator
    convolution runs 8 times its forward FLOPs per iteration, a critic's 52 times
    (flops_per_iteration), so this is their speeds' harmonic mean weighted by 8 and 52. The
    iteration's rate over this one is how much of its time the convolutions are not
    (casts, the optimiser, activations, the data path, ...)."""
    weight = {"generator": 8, "discriminator": 52}
    timed = [c for c in convolutions if c["form"] == forms[f"{c['network']}/{c['layer']}"]]
    work = sum(weight[c["network"]] * c["gflop"] for c in timed)
    seconds = sum(weight[c["network"]] * c["seconds"] for c in timed)
    return work / seconds


def fixed_rule_forms(forms):
    """{label: form} of the convolutions labelled in `forms` by the rule before forms were
    measured: block 1's the matrix product, the others the framework's
    (model_progressive.runs_as_matmul returned block == 1)."""
    return {label: "matmul" if label.split("/")[1] == "progressive_block_1" else "framework"
            for label in forms}


def time_alternately(functions, repeats):
    """{name: median seconds} of repeats calls of each function (which returns something to
    wait on), called in turn, the order reversed every round: a machine whose speed drifts
    slows them alike."""
    seconds = {name: [] for name in functions}
    for round_ in range(repeats):
        for name in (list(functions) if round_ % 2 == 0 else list(functions)[::-1]):
            seconds[name].append(time_calls(functions[name], 1))
    return {name: statistics.median(values) for name, values in seconds.items()}


def benchmark(stage, batch, mixed, xla, distribution, iterations, warmup, repeats,
              forms_mode=conv_forms.AUTO, conv_forms_cache=None, against_fixed_rule=False,
              divisor=1):
    run, iterator, policy, strategy, forms = training_run(
        stage, batch, mixed, xla, distribution, GRAPHS[0], forms_mode, conv_forms_cache,
        divisor=divisor)
    chosen = {label: layer.form for label, layer in
              conv_forms.convolution_layers(run.networks.values()).items()}
    calls = {"chosen": lambda: run.iteration(iterator)["d_loss"]}
    for _ in range(warmup):
        np.asarray(calls["chosen"]())  # traces with the chosen forms
    fixed_forms = fixed_rule_forms(chosen)
    if against_fixed_rule and fixed_forms != chosen:
        # The same networks, optimisers and batches in a second graph of the iteration,
        # traced with the rule's forms: a second training run built beside the first would
        # differ in memory too.
        fixed = run.iteration.iteration_graph()
        calls["fixed_rule"] = lambda: fixed(iterator)["d_loss"]
        conv_forms.set_forms(run.networks.values(), fixed_forms)
        for _ in range(warmup):
            np.asarray(calls["fixed_rule"]())
        conv_forms.set_forms(run.networks.values(), chosen)
    timed = time_alternately(calls, iterations)
    seconds = timed["chosen"]
    traces = run.iteration.traces()
    g_macs = layer_macs(run.networks["generator"], batch)
    d_macs = layer_macs(run.networks["discriminator"], batch)
    flops = flops_per_iteration(g_macs, d_macs)
    peak, convolutions = convolution_peak(run.networks, batch, policy, repeats)
    achieved = flops / seconds / 1e9
    bound = convolutions_rate(convolutions, chosen)
    return {"stage": stage, "batch_size": batch, "policy": policy, "xla": xla,
            "distribution": distribution, "replicas": strategy.num_replicas_in_sync,
            "iterations": iterations, "seconds_per_iteration": round(seconds, 4),
            "gflop_per_iteration": round(flops / 1e9, 2),
            "gflops_per_second": round(achieved, 1),
            "peak_convolution": peak, "convolutions_timed": convolutions,
            "fraction_of_peak": round(achieved / peak["gflops_per_second"], 3),
            "convolutions_rate": round(bound, 1),
            "fraction_of_convolutions_rate": round(achieved / bound, 3),
            "traces": traces, "forms": chosen, "forms_line": forms,
            **({"fixed_rule_seconds_per_iteration": round(timed["fixed_rule"], 4),
                "fixed_rule_over_chosen": round(timed["fixed_rule"] / seconds, 3)}
               if "fixed_rule" in timed else {}),
            "fixed_rule_forms_chosen": fixed_forms == chosen}


def stage_parser(description):
    """The flags every benchmark of a stage's networks takes: stage, batch, precision."""
    parser = ArgumentParser(description=description)
    parser.add_argument("--stage", type=int_in_range(MIN_BLOCKS, MAX_BLOCKS), default=3,
                        help="number of blocks")
    parser.add_argument("--batch_size", type=int_in_range(1, 1 << 16), default=None,
                        help="global batch (default: the stage's default)")
    parser.add_argument("--use_mixed_precision_training", action="store_true",
                        help="as the trainers: float16 on a GPU, bfloat16 on a CPU with it")
    return parser


def main(argv=None):
    parser = stage_parser("Time train_progressive.py's training step.")
    parser.add_argument("--xla", action="store_true", help="as the trainers' --xla")
    parser.add_argument("--conv_forms", choices=conv_forms.CHOICES, default=conv_forms.AUTO,
                        help="as the trainers' --conv_forms")
    parser.add_argument("--conv_forms_cache", metavar="FILE", default=None,
                        help="as the trainers' (default: a temporary file: every run measures)")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS,
                        default="none", help="as the trainers' --distribution")
    parser.add_argument("--iterations", type=int_in_range(1, 100000), default=5,
                        help="timed iterations (the median is reported)")
    parser.add_argument("--warmup", type=int_in_range(1, 100000), default=2,
                        help="untimed iterations first (the first one traces the step)")
    parser.add_argument("--repeats", type=int_in_range(1, 100000), default=10,
                        help="timed calls of each single convolution (median)")
    parser.add_argument("--against_fixed_rule", action="store_true",
                        help="also time, alternately in the same run, the iteration with the "
                             "forms of the rule before they were measured (block 1 the matrix "
                             "product, the others the framework's)")
    parser.add_argument("--feature_map_divisor", type=int_in_range(1, MAX_FEATURE_MAP_DIVISOR),
                        default=1, help="as the trainers' (1: the report's width)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    batch = args.batch_size or default_batch_size(args.stage)
    result = benchmark(args.stage, batch, args.use_mixed_precision_training, args.xla,
                       args.distribution, args.iterations, args.warmup, args.repeats,
                       args.conv_forms, args.conv_forms_cache, args.against_fixed_rule,
                       args.feature_map_divisor)
    result["feature_map_divisor"] = args.feature_map_divisor
    tf = import_tensorflow()
    result["machine"] = {"cpus": os.cpu_count(), "tensorflow": tf.__version__}
    if args.json:
        print(json.dumps(result))
        return 0
    peak = result["peak_convolution"]
    print(f"stage {result['stage']}, batch {result['batch_size']}, {result['policy']}"
          f"{', XLA' if result['xla'] else ''}, {result['replicas']} replica(s) of "
          f"--distribution {result['distribution']}")
    print(f"  {result['seconds_per_iteration']:.3f} s per iteration (median of "
          f"{result['iterations']}), {result['gflop_per_iteration']:.1f} GFLOP per iteration, "
          f"{result['gflops_per_second']:.1f} GFLOP/s")
    print(f"  peak: {peak['network']}/{peak['layer']} alone ({peak['form']}), forward and "
          f"backward: "
          f"{peak['gflops_per_second']:.1f} GFLOP/s; the iteration reaches "
          f"{100 * result['fraction_of_peak']:.1f} % of it")
    print(f"  its convolutions alone, in their forms and proportions: "
          f"{result['convolutions_rate']:.1f} GFLOP/s; the iteration reaches "
          f"{100 * result['fraction_of_convolutions_rate']:.1f} % of it")
    print(f"  {result['forms_line']}")
    if args.against_fixed_rule and result["fixed_rule_forms_chosen"]:
        print("  the fixed rule (block 1 the matrix product) would choose the same forms")
    elif args.against_fixed_rule:
        print(f"  with the fixed rule (block 1 the matrix product): "
              f"{result['fixed_rule_seconds_per_iteration']:.3f} s per iteration, "
              f"{result['fixed_rule_over_chosen']:.3f}x the chosen forms' time")
    print(f"  iteration traced {result['traces']} time(s)")
    return 0


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
