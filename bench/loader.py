"""Loader benchmarks: the decode cache's first and second start, and the data pipeline's memory
on a dataset larger than memory would hold.

    python bench/loader.py starts FOLDER [--repeat 3]
        FOLDER (compressed audio, e.g. OGG fetched by bench/fetch_music.py) is loaded with a
        new, empty decode cache (first start: every file decoded and resampled), then again
        --repeat times (second start: all cache hits). Each start runs in a fresh Python
        process; "seconds" is load_audio plus the stage-5 windows and one batch of 64, i.e.
        until the data is ready for training (interpreter start and imports excluded,
        "process s" includes them).

    python bench/loader.py memory [--hours 100] [--read_gb 4]
    python bench/loader.py memory --files 20000 --file_seconds 6
        Writes HOURS of 16 kHz 16-bit mono WAV noise (files of one hour), or FILES files of
        FILE_SECONDS each, to a temporary folder, builds its decode cache (first start,
        timed), then in a fresh process loads it from the cache and draws random stage-5
        training batches (batches of 64 windows, as training does) until --read_gb GB of
        windows were read. Both processes run with the open-file limit of --nofile (1024, the
        usual `ulimit -n`). Reports that process's peak resident memory (ru_maxrss), its
        resident memory at the end (VmRSS, with the anonymous and file-backed parts) and its
        open files. One int16 buffer of 100 hours would be 11.5 GB.

The temporary folders are removed afterwards. NumPy, SciPy and soundfile only: the data
pipeline without TensorFlow.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils import ArgumentParser, UserError, int_in_range, positive_float, run_cli

RATE = 16000
FILE_SECONDS = 3600
CHUNK_SECONDS = 60
NUM_BLOCKS = 5
BATCH = 64
TARGET_SECOND_START = 1.0
TARGET_PEAK_BYTES = 1.5e9

# Runs in a fresh interpreter: argv = repo root, folder, cache folder, GB of windows to read,
# the open-file limit.
CHILD = r"""
import json, os, resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[5]), int(sys.argv[5])))
sys.path.insert(0, sys.argv[1])
import numpy as np
import dataloader
folder, cache, read_gb = sys.argv[2], sys.argv[3], float(sys.argv[4])
start = time.perf_counter()
audio = dataloader.load_audio(folder, 16000, log=lambda line: None, cache_dir=cache)
windows = dataloader.stage_windows(audio, 5)
batches = dataloader.batches(audio, windows, 64, seed=0)
batch = next(batches)
ready = time.perf_counter() - start
read = batch.nbytes
while read < read_gb * 1e9:
    read += next(batches).nbytes
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kb = lambda key: int(status[key].split()[0]) * 1024 if key in status else None
print(json.dumps({
    "seconds": ready, "read_seconds": time.perf_counter() - start - ready, "read_bytes": read,
    "files": len(audio.files), "samples": int(audio.num_samples),
    "audio_bytes": int(audio.buffer.nbytes), "hits": audio.cache_hits,
    "misses": audio.cache_misses, "from_cache": audio.buffer.from_cache,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "rss_bytes": kb("VmRSS"), "rss_anon_bytes": kb("RssAnon"), "rss_file_bytes": kb("RssFile"),
    "open_files": len(os.listdir("/proc/self/fd")),
}))
"""


def log(message):
    print(message, file=sys.stderr, flush=True)


def start_process(folder, cache, read_gb=0.0, nofile=1024):
    """One fresh process that loads folder with the cache in `cache`; its facts."""
    begin = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, ROOT, folder, cache, str(read_gb),
                             str(nofile)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(f"the loader process failed: {result.stderr.strip().splitlines()[-1]}")
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    facts["process_seconds"] = time.perf_counter() - begin
    return facts


def starts(args):
    cache = tempfile.mkdtemp(prefix="bench_loader_cache_")
    try:
        log(f"first start of {args.folder}: an empty decode cache in {cache}")
        first = start_process(args.folder, cache)
        seconds = []
        for i in range(args.repeat):
            log(f"second start {i + 1}/{args.repeat}")
            seconds.append(start_process(args.folder, cache))
        cache_bytes = sum(os.path.getsize(os.path.join(cache, n)) for n in os.listdir(cache))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    median = statistics.median(run["seconds"] for run in seconds)
    return {"folder": args.folder, "files": first["files"],
            "hours": first["samples"] / RATE / 3600, "cache_bytes": cache_bytes,
            "first": first, "second": seconds, "second_seconds_median": median,
            "target_second_seconds": TARGET_SECOND_START,
            "met": max(run["seconds"] for run in seconds) <= TARGET_SECOND_START}


def make_noise(folder, hours, seed=0, file_seconds=FILE_SECONDS):
    """HOURS of 16-bit mono WAV noise in files of file_seconds (one hour), written a minute
    at a time."""
    total, chunk = round(hours * 3600 * RATE), CHUNK_SECONDS * RATE
    for index, first_frame in enumerate(range(0, total, round(file_seconds * RATE))):
        frames = min(round(file_seconds * RATE), total - first_frame)
        rng = np.random.default_rng([seed, index])
        with sf.SoundFile(os.path.join(folder, f"noise_{index + 1:06d}.wav"), "w", RATE, 1,
                          "PCM_16", format="WAV") as f:
            for first in range(0, frames, chunk):
                f.write(rng.integers(-8000, 8000, min(chunk, frames - first), dtype=np.int16))


def memory(args):
    work = tempfile.mkdtemp(prefix="bench_loader_", dir=args.tmp)
    folder, cache = os.path.join(work, "data"), os.path.join(work, "cache")
    os.makedirs(folder)
    if args.files:
        args.hours = args.files * args.file_seconds / 3600
    try:
        log(f"making {args.hours:g} h of {RATE} Hz 16-bit mono WAV noise in {folder}")
        begin = time.perf_counter()
        make_noise(folder, args.hours, file_seconds=args.file_seconds if args.files else
                   FILE_SECONDS)
        make_seconds = time.perf_counter() - begin
        log("first start: building the decode cache")
        first = start_process(folder, cache, nofile=args.nofile)
        log(f"second start: reading {args.read_gb:g} GB of random stage-5 batches")
        second = start_process(folder, cache, args.read_gb, args.nofile)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"hours": args.hours, "files": first["files"], "nofile": args.nofile,
            "make_seconds": make_seconds, "first": first,
            "second": second, "one_buffer_bytes": second["audio_bytes"],
            "target_peak_rss_bytes": TARGET_PEAK_BYTES,
            "met": second["peak_rss_bytes"] < TARGET_PEAK_BYTES}


def print_report(mode, report):
    gb = 1e9
    if mode == "starts":
        first = report["first"]
        print(f"{report['files']} files, {report['hours']:.2f} h from {report['folder']}; "
              f"cache {report['cache_bytes'] / gb:.2f} GB")
        print(f"first start:  {first['seconds']:.2f} s ({first['misses']} misses), process "
              f"{first['process_seconds']:.2f} s")
        for run in report["second"]:
            print(f"second start: {run['seconds']:.3f} s ({run['hits']} hits, "
                  f"{run['misses']} misses), process {run['process_seconds']:.2f} s")
        print(f"target: second start <= {TARGET_SECOND_START:g} s: "
              f"{'met' if report['met'] else 'MISSED'}")
        return
    second = report["second"]
    print(f"{report['hours']:g} h of 16 kHz mono in {report['files']} files "
          f"({report['one_buffer_bytes'] / gb:.2f} GB as one int16 buffer), written in "
          f"{report['make_seconds']:.1f} s; open-file limit {report['nofile']}")
    print(f"first start (decode cache built): {report['first']['seconds']:.1f} s, peak RSS "
          f"{report['first']['peak_rss_bytes'] / gb:.3f} GB")
    print(f"second start: data ready in {second['seconds']:.3f} s, from the cache "
          f"{second['from_cache']}; read {second['read_bytes'] / gb:.2f} GB of windows in "
          f"{second['read_seconds']:.1f} s")
    print(f"peak RSS {second['peak_rss_bytes'] / gb:.3f} GB; at the end RSS "
          f"{second['rss_bytes'] / gb:.3f} GB (anonymous {second['rss_anon_bytes'] / gb:.3f}, "
          f"file-backed {second['rss_file_bytes'] / gb:.3f}), {second['open_files']} open "
          f"files; target < {TARGET_PEAK_BYTES / gb:g} GB: "
          f"{'met' if report['met'] else 'MISSED'}")


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    first = modes.add_parser("starts", help="first and second start of a folder of audio")
    first.add_argument("folder", help="a folder of (compressed) audio, e.g. 2 h or more of OGG")
    first.add_argument("--repeat", type=int_in_range(1, 100), default=3,
                       help="second starts to time")
    mem = modes.add_parser("memory", help="peak memory of the data pipeline on a synthetic "
                                          "dataset")
    mem.add_argument("--hours", type=positive_float, default=100.0,
                     help="hours of synthetic audio (twice its size on disk: files and cache)")
    mem.add_argument("--read_gb", type=positive_float, default=4.0,
                     help="GB of training windows to read")
    mem.add_argument("--files", type=int_in_range(1, 10**7), default=None,
                     help="make this many files of --file_seconds instead of --hours of files "
                          "of one hour")
    mem.add_argument("--file_seconds", type=positive_float, default=6.0,
                     help="with --files: seconds of each file")
    mem.add_argument("--nofile", type=int_in_range(16, 1 << 20), default=1024,
                     help="the loader processes' open-file limit (ulimit -n)")
    mem.add_argument("--tmp", default=None, help="folder for the temporary files (default: "
                                                 "the system's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.mode == "starts" and not os.path.isdir(args.folder):
        raise UserError(f"{args.folder} is not a folder: fetch music with bench/fetch_music.py")
    report = starts(args) if args.mode == "starts" else memory(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(args.mode, report)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
