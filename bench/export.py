"""How fast an exported generator plays with LiteRT, and how large the export is.

    python bench/export.py [--stages 5 8] [--windows 8]

For each stage it exports a freshly initialised progressive generator (the computation is a
trained one's) the way --export does (export.write_export: SavedModel, float32 and float16
LiteRT models), then times play.py's LiteGenerator on --windows windows of seed 0's latents
in batches of the stage's default size, after one warm-up call. Real-time factor = seconds
of audio made / seconds taken: above 1 plays live.
"""

import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import export
import longform
import rules
from play import LiteGenerator
from private_apis import import_tensorflow
from utils import ArgumentParser, int_in_range, run_cli


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(top, name))
               for top, _, names in os.walk(path) for name in names)


def bench_stage(stage, windows):
    import train_progressive

    config = {"num_blocks": stage, "channels": 1, "feature_map_smoothing": True,
              "use_sample_norm": False, "model_variant": rules.STANDARD, "sampling_rate":
              rules.SAMPLING_RATE, "model": "progressive"}
    generator = train_progressive.build_networks(config, "float32", True)["generator"]
    folder = tempfile.mkdtemp(prefix="bench_export_")
    try:
        start = time.perf_counter()
        info = export.export_info(config, train_progressive.RECIPE, 0, "generator", folder,
                                  "bench")
        errors = export.write_export(folder, generator, info)
        export_seconds = time.perf_counter() - start
        batch = rules.default_batch_size(stage)
        latents = longform.draw_latents(0, windows, "uniform")
        row = {"stage": stage, "window": rules.window_length(stage), "windows": windows,
               "export_seconds": export_seconds, "max_error": errors,
               "bytes": {"saved_model": folder_bytes(os.path.join(folder, export.SAVED_MODEL)),
                         "float32": os.path.getsize(os.path.join(folder,
                                                                 export.FLOAT32_MODEL)),
                         "float16": os.path.getsize(os.path.join(folder,
                                                                 export.FLOAT16_MODEL))}}
        for name, model in (("float32", export.FLOAT32_MODEL), ("float16", export.FLOAT16_MODEL)):
            lite = LiteGenerator(os.path.join(folder, model))
            longform.generate_windows(lite, latents[:batch], batch)  # warm-up
            start = time.perf_counter()
            audio = longform.generate_windows(lite, latents, batch)
            seconds = time.perf_counter() - start
            made = audio.shape[0] * audio.shape[1] / rules.SAMPLING_RATE
            row[name] = {"seconds": seconds, "audio_seconds": made,
                         "real_time_factor": made / seconds}
        return row
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", type=int_in_range(1, 8), nargs="+", default=[5, 8])
    parser.add_argument("--windows", type=int_in_range(1, 4096), default=8,
                        help="windows generated per stage (timed)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    import_tensorflow()
    rows = [bench_stage(stage, args.windows) for stage in args.stages]
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "stages": rows}))
        return 0
    print(f"{'stage':>5} {'model':>8} {'MB':>7} {'seconds':>8} {'audio s':>8} {'x real time':>11}"
          f" {'max error':>10}")
    for row in rows:
        for name, model in (("float32", export.FLOAT32_MODEL), ("float16", export.FLOAT16_MODEL)):
            timing = row[name]
            print(f"{row['stage']:>5} {name:>8} {row['bytes'][name] / 1e6:>7.1f} "
                  f"{timing['seconds']:>8.3f} {timing['audio_seconds']:>8.1f} "
                  f"{timing['real_time_factor']:>11.1f} {row['max_error'][model]:>10.2g}")
        print(f"{row['stage']:>5} {'saved':>8} {row['bytes']['saved_model'] / 1e6:>7.1f}  "
              f"(export took {row['export_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
