"""Loader benchmark: time and peak memory of loading a large dataset with dataloader.py.

Makes --hours (default 15) hours of 16 kHz 16-bit mono WAV noise in a temporary folder
(files of one hour, written in chunks so this script itself stays small), then for each
augmentation level (0 and 9) runs a fresh Python process that loads the folder with
load_audio and counts the stage-5 windows, and reports that process's seconds and peak
resident memory (resource.getrusage ru_maxrss), so each level's peak is its own.

Targets: under 10 s and peak under 2.5 GB at both levels on the 2-core machine.

"seconds" is load_audio plus the window count inside the child (interpreter start and
imports excluded; "process s" includes them). The files are flushed to disk (fsync) before
the first load, so no level pays for the writing. Each level runs --repeat times,
interleaved (0, 9, 0, 9, ...); the table gives the median, the slowest and every run.
By default the files are read from the page cache (warm); --cold evicts this benchmark's
files from the cache (posix_fadvise DONTNEED, nothing else is touched) before every run.
The temporary folder is removed afterwards unless --keep DIR is given.

    python bench/loader.py [--hours 15] [--repeat 3] [--cold] [--keep DIR] [--json]
"""

import json
import math
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

from utils import ArgumentParser, int_in_range, positive_float, window_length

RATE = 16000
FILE_SECONDS = 3600
CHUNK_SECONDS = 60
TARGET_SECONDS = 10.0
TARGET_PEAK_BYTES = 2.5e9

# Runs in a fresh interpreter: argv = repo root, folder, num_blocks, level.
CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import dataloader
folder, num_blocks, level = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
audio = dataloader.load_audio(folder, log=lambda line: None)
windows = len(dataloader.stage_windows(audio, num_blocks, level))
seconds = time.perf_counter() - start
print(json.dumps({
    "level": level,
    "windows": windows,
    "seconds": seconds,
    "load_seconds": audio.load_seconds,
    "samples": int(audio.num_samples),
    "buffer_bytes": int(audio.buffer.nbytes),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def log(message):
    print(message, file=sys.stderr, flush=True)


def file_plan(hours):
    """(name, frames) of each file: one hour each, the last one holding any remainder."""
    total = round(hours * 3600 * RATE)
    frames_per_file = FILE_SECONDS * RATE
    count = math.ceil(total / frames_per_file)
    return [(f"hour_{i + 1:02d}.wav", min(frames_per_file, total - i * frames_per_file))
            for i in range(count)]


def is_complete(path, frames):
    if not os.path.isfile(path):
        return False
    try:
        info = sf.info(path)
    except sf.LibsndfileError:  # unreadable (e.g. an interrupted earlier run): write it again
        return False
    return (info.frames, info.samplerate, info.channels, info.subtype) == (frames, RATE, 1,
                                                                           "PCM_16")


def make_data(folder, hours, seed=0):
    """Write the files in CHUNK_SECONDS pieces (a couple of MB in memory at a time)."""
    os.makedirs(folder, exist_ok=True)
    chunk = CHUNK_SECONDS * RATE
    for index, (name, frames) in enumerate(file_plan(hours)):
        path = os.path.join(folder, name)
        if is_complete(path, frames):
            log(f"  {name}: reusing")
            continue
        rng = np.random.default_rng([seed, index])
        with sf.SoundFile(path, "w", RATE, 1, "PCM_16", format="WAV") as f:
            for first in range(0, frames, chunk):
                f.write(rng.integers(-8000, 8000, min(chunk, frames - first), dtype=np.int16))
        log(f"  {name}: {frames / RATE / 3600:.2f} h")


def flush(folder, names):
    """fsync this benchmark's files, so that no run pays for writing them back."""
    for name in names:
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def evict(folder, names):
    """Drop this benchmark's (already synced) files from the page cache."""
    for name in names:
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def measure(folder, num_blocks, level):
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, ROOT, folder, str(num_blocks),
                             str(level)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"level {level}: the loader process failed:\n{result.stderr}")
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    facts["wall_seconds"] = wall
    facts["within_targets"] = (facts["seconds"] < TARGET_SECONDS
                               and facts["peak_rss_bytes"] < TARGET_PEAK_BYTES)
    return facts


def expected_windows(samples, window, level):
    return sum(-(-(samples - k * (window // 10)) // window) for k in range(level + 1))


def main(argv=None):
    parser = ArgumentParser(description="Time and peak memory of loading HOURS of 16 kHz mono "
                            "WAV with dataloader.load_audio, each augmentation level in a "
                            "fresh process. Targets: < 10 s and < 2.5 GB peak per level.")
    parser.add_argument("--hours", type=positive_float, default=15.0,
                        help="hours of audio to make (files of one hour)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="make the files in DIR and keep them (complete files already "
                             "there are reused); DIR must hold no other audio. Default: a "
                             "temporary folder, removed afterwards")
    parser.add_argument("--num_blocks", type=int_in_range(1, 8), default=5,
                        help="stage whose windows are counted")
    parser.add_argument("--levels", type=int_in_range(0, 9), nargs="+", default=[0, 9],
                        help="augmentation levels to measure")
    parser.add_argument("--repeat", type=int_in_range(1, 100), default=3,
                        help="runs per level (a fresh process each)")
    parser.add_argument("--cold", action="store_true",
                        help="evict the files from the page cache before every run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    names = [name for name, _ in file_plan(args.hours)]

    folder = args.keep or tempfile.mkdtemp(prefix="bench_loader_")
    try:
        log(f"making {args.hours:g} h of {RATE} Hz 16-bit mono WAV in {folder}")
        start = time.perf_counter()
        make_data(folder, args.hours)
        make_seconds = time.perf_counter() - start
        disk_bytes = sum(os.path.getsize(os.path.join(folder, name)) for name in names)
        log("flushing the files to disk (fsync)")
        flush(folder, names)
        load_before = os.getloadavg()
        runs = []
        for repeat in range(args.repeat):
            for level in args.levels:
                if args.cold:
                    evict(folder, names)
                log(f"run {repeat + 1}/{args.repeat}: augmentation level {level}, fresh process"
                    + (", cold cache" if args.cold else ""))
                runs.append(measure(folder, args.num_blocks, level))
        load_after = os.getloadavg()
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    window = window_length(args.num_blocks)
    levels = []
    for level in dict.fromkeys(args.levels):
        mine = [run for run in runs if run["level"] == level]
        for run in mine:
            assert run["windows"] == expected_windows(run["samples"], window, level)
        seconds = [run["seconds"] for run in mine]
        levels.append({
            "level": level,
            "windows": mine[0]["windows"],
            "runs": len(mine),
            "seconds_median": statistics.median(seconds),
            "seconds_max": max(seconds),
            "seconds_each": seconds,
            "process_seconds_median": statistics.median(run["wall_seconds"] for run in mine),
            "peak_rss_bytes_max": max(run["peak_rss_bytes"] for run in mine),
            "buffer_bytes": mine[0]["buffer_bytes"],
            "within_targets": all(run["within_targets"] for run in mine),
        })
    report = {
        "hours": args.hours,
        "files": len(file_plan(args.hours)),
        "bytes_on_disk": disk_bytes,
        "make_seconds": make_seconds,
        "num_blocks": args.num_blocks,
        "window": window,
        "cpu_count": os.cpu_count(),
        "cache": "cold" if args.cold else "warm",
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
        "targets": {"seconds": TARGET_SECONDS, "peak_rss_bytes": TARGET_PEAK_BYTES},
        "levels": levels,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['files']} files, {args.hours:g} h, {disk_bytes / 1e9:.2f} GB on disk "
          f"(made in {make_seconds:.1f} s); stage {args.num_blocks} (window {window}); "
          f"{os.cpu_count()} CPUs; {report['cache']} page cache; {args.repeat} runs per level; "
          f"1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{'level':>5} {'windows':>9} {'median s':>8} {'max s':>6} {'process s':>9} "
          f"{'peak RSS GB':>11} {'buffer GB':>9}  "
          f"targets (< {TARGET_SECONDS:g} s, < {TARGET_PEAK_BYTES / 1e9:g} GB)  each run s")
    for facts in levels:
        print(f"{facts['level']:>5} {facts['windows']:>9} {facts['seconds_median']:>8.2f} "
              f"{facts['seconds_max']:>6.2f} {facts['process_seconds_median']:>9.2f} "
              f"{facts['peak_rss_bytes_max'] / 1e9:>11.2f} {facts['buffer_bytes'] / 1e9:>9.2f}  "
              f"{'met' if facts['within_targets'] else 'MISSED':<30}  "
              + " ".join(f"{value:.2f}" for value in facts["seconds_each"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
