"""Benchmark generation: seconds to generate N windows at each stage, and the real-time factor.

Builds the progressive generator of each stage (freshly initialised: the computation is the
same as a trained one's) and times longform.generate_windows, the code --generate runs, after
one warm-up call. Also times a long piece the way --generate N --duration S makes it
(longform.py: latent walk, batched windows, crossfades).

    python bench/generate.py                       # stages 1-8, 8 windows each (4 at stage 8)
    python bench/generate.py --stages 5 8 --windows 4 --long_minutes 10 --json

Real-time factor = seconds of audio made / seconds taken; above 1 is faster than real time.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import rules
from private_apis import import_tensorflow
from utils import ArgumentParser, int_in_range

SAMPLING_RATE, STANDARD = rules.SAMPLING_RATE, rules.STANDARD
STAGES = range(rules.MIN_BLOCKS, rules.MAX_BLOCKS + 1)


def build_generator(num_blocks, variant=STANDARD):
    from train_progressive import build_networks
    config = {"num_blocks": num_blocks, "channels": 1, "feature_map_smoothing": True,
              "use_sample_norm": False, "model_variant": variant}
    return build_networks(config, "float32", generator_only=True)["generator"]


def time_windows(num_blocks, count, variant=STANDARD):
    """Seconds to generate `count` windows of the stage, batched as --generate does."""
    import longform
    from longform import generate_windows

    generator = build_generator(num_blocks, variant)
    batch = rules.default_batch_size(num_blocks)
    latents = longform.draw_latents(0, count, "uniform")
    generate_windows(generator, latents[:1], batch)  # warm-up
    start = time.perf_counter()
    audio = generate_windows(generator, latents, batch)
    seconds = time.perf_counter() - start
    made = audio.shape[0] * audio.shape[1] / SAMPLING_RATE
    return {"stage": num_blocks, "windows": count, "window_samples": rules.window_length(num_blocks),
            "seconds": round(seconds, 3), "audio_seconds": round(made, 3),
            "real_time_factor": round(made / seconds, 1)}


def time_long_piece(num_blocks, minutes, variant=STANDARD):
    """Seconds to make one piece of `minutes` the way --generate --duration does."""
    import longform
    from longform import generate_windows

    generator = build_generator(num_blocks, variant)
    window, batch = rules.window_length(num_blocks), rules.default_batch_size(num_blocks)
    samples = round(minutes * 60 * SAMPLING_RATE)
    overlap = longform.default_crossfade(window, SAMPLING_RATE)
    count = longform.windows_needed(samples, window, overlap)
    generate_windows(generator, longform.draw_latents(0, 1, "uniform"), batch)  # warm-up
    start = time.perf_counter()
    latents = longform.latent_walk(np.random.default_rng(0), count, "uniform")
    audio = longform.join_windows(generate_windows(generator, latents, batch), overlap, samples)
    seconds = time.perf_counter() - start
    return {"stage": num_blocks, "minutes": minutes, "windows": count,
            "seconds": round(seconds, 3), "real_time_factor": round(len(audio) / SAMPLING_RATE
                                                                    / seconds, 1)}


def main(argv=None):
    parser = ArgumentParser(description="Time generation at each stage.")
    parser.add_argument("--stages", type=int_in_range(STAGES[0], STAGES[-1]), nargs="+",
                        default=list(STAGES))
    parser.add_argument("--windows", type=int_in_range(1, 100000), default=8,
                        help="windows per stage (stage 8 uses at most 4: 65 s each)")
    parser.add_argument("--long_minutes", type=float, default=10.0,
                        help="length of the long piece (0: skip it)")
    parser.add_argument("--long_stage", type=int_in_range(STAGES[0], STAGES[-1]), default=5)
    parser.add_argument("--model_variant", default=STANDARD, choices=tuple(rules.VARIANTS),
                        help="generator of this variant of the progressive model")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    tf = import_tensorflow()
    results = {"machine": {"cpus": os.cpu_count(), "tensorflow": tf.__version__},
               "model_variant": args.model_variant,
               "stages": [time_windows(n, min(args.windows, 4) if n == 8 else args.windows,
                                       args.model_variant) for n in args.stages]}
    if args.long_minutes > 0:
        results["long_piece"] = time_long_piece(args.long_stage, args.long_minutes,
                                                args.model_variant)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'stage':>5} {'window':>9} {'windows':>7} {'seconds':>8} {'audio s':>8} "
          f"{'x real time':>11}")
    for row in results["stages"]:
        print(f"{row['stage']:>5} {row['window_samples']:>9} {row['windows']:>7} "
              f"{row['seconds']:>8.3f} {row['audio_seconds']:>8.1f} "
              f"{row['real_time_factor']:>11.1f}")
    if "long_piece" in results:
        row = results["long_piece"]
        print(f"{row['minutes']:g} min at stage {row['stage']} ({row['windows']} windows, "
              f"crossfaded): {row['seconds']:.2f} s, {row['real_time_factor']:.1f}x real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
