"""How fast an exported generator plays with LiteRT, and how large the export is.

    python bench/export.py [--stages 5 8] [--windows 8] [--room SECONDS]

For each stage it exports a freshly initialised progressive generator (the computation is a
trained one's) the way --export does (export.write_export: SavedModel, float32 and float16
LiteRT models), then times play.py's LiteGenerator on --windows windows of seed 0's latents
in batches of the stage's default size, after one warm-up call. Real-time factor = seconds
of audio made / seconds taken: above 1 plays live. With --room, also the listening room
(play.py EXPORT --serve) on each export: the page up after the command, a first clip, and a
walk of SECONDS through three seeds (targets: up within 10 s; a stage-5 clip well under 1 s;
every walk faster than real time).
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


def time_room(folder, walk_seconds):
    """The listening room on the export (play.py EXPORT --serve, a process of its own): seconds
    from the command to the page answering, to a first clip (seed 0) and to a walk of
    walk_seconds through seeds 1, 2, 3 (each rendered afresh, as the page asks)."""
    import signal
    import subprocess
    import urllib.request

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "play.py", folder, "--serve", "--port", "0"],
                              cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]

        def fetch(path):
            begin = time.perf_counter()
            with urllib.request.urlopen(url + path, timeout=600) as response:
                response.read()
            return time.perf_counter() - begin

        fetch("")
        page = time.perf_counter() - start
        clip = fetch("api/wav?kind=clip&seed=0")
        walk = fetch(f"api/wav?kind=walk&seeds=1,2,3&seconds={walk_seconds:g}")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    return {"page_seconds": page, "clip_seconds": clip, "walk_seconds": walk,
            "walk_audio_seconds": walk_seconds, "walk_real_time_factor": walk_seconds / walk}


def bench_stage(stage, windows, room=None):
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
        if room is not None:
            row["room"] = time_room(folder, room)
        return row
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", type=int_in_range(1, 8), nargs="+", default=[5, 8])
    parser.add_argument("--windows", type=int_in_range(1, 4096), default=8,
                        help="windows generated per stage (timed)")
    parser.add_argument("--room", type=float, default=None, metavar="SECONDS",
                        help="also time the listening room on each export (play.py --serve): "
                             "the page up, a first clip, and a walk of SECONDS")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    import_tensorflow()
    rows = [bench_stage(stage, args.windows, args.room) for stage in args.stages]
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
        if "room" in row:
            room = row["room"]
            print(f"{row['stage']:>5} listening room: page up in {room['page_seconds']:.2f} s, "
                  f"a clip in {room['clip_seconds']:.3f} s, a walk of "
                  f"{room['walk_audio_seconds']:g} s in {room['walk_seconds']:.2f} s "
                  f"({room['walk_real_time_factor']:.1f} x real time)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
