"""Play a trained generator anywhere: a folder written by a trainer's --export DIR, run with
LiteRT, no TensorFlow (needs ai-edge-litert, numpy and soundfile: requirements-play.txt;
sounddevice to play to the sound card).

    python play.py EXPORT --generate 3 --seed 5            # the files --generate writes
    python play.py EXPORT --generate 1 --duration 60       # a minute along a latent walk
    python play.py EXPORT --live                           # an endless walk, to the speakers
    python play.py EXPORT --live --stdout | aplay -f S16_LE -r 16000 -c 1

--generate gives the same latents for the same seed, the same audio (within the export's
stated error) and the same file names as the trainer's --generate. --live renders the walk
chunk by chunk ahead of playback, crossfading window into window with no gaps, until Ctrl+C
(or --chunks). longform.py (NumPy) makes the walks and crossfades for both.
"""

import json
import os
import queue
import sys
import threading

import numpy as np

import longform
from internals import native_stderr_hidden
from rules import DEFAULT_BATCH_SIZE, MAX_BLOCKS
from utils import (
    ArgumentParser,
    UserError,
    int_in_range,
    run_cli,
    to_int16,
    write_wav,
)

EXPORT_FILE = "model.json"  # what export.py writes beside the models
CHUNK_QUEUE = 2  # chunks rendered ahead of playback


class LiteGenerator:
    """An exported LiteRT generator as a callable: latents [batch, 100] float32 to audio
    [batch, window, channels] float32."""

    def __init__(self, path):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError("play.py needs LiteRT: pip install -r requirements-play.txt") from None
        self.interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = None

    def __call__(self, latents):
        latents = np.ascontiguousarray(latents, dtype=np.float32)
        if len(latents) != self.batch:
            with native_stderr_hidden():  # LiteRT's "Created ... XNNPACK delegate" line
                self.interpreter.resize_tensor_input(self.input, list(latents.shape))
                self.interpreter.allocate_tensors()
            self.batch = len(latents)
        self.interpreter.set_tensor(self.input, latents)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


def load_export(folder, float16=False):
    """(generator, model.json) of an export folder."""
    try:
        with open(os.path.join(folder, EXPORT_FILE)) as f:
            info = json.load(f)
        model = os.path.join(folder, info["files"]["float16" if float16 else "float32"])
    except (OSError, ValueError, KeyError):
        raise UserError(f"{folder} is not an export folder (no readable {EXPORT_FILE}): write "
                        f"one with a trainer's --export {folder}") from None
    if not os.path.exists(model):
        raise UserError(f"{model} is missing: export again with a trainer's --export")
    return LiteGenerator(model), info


def batch_of(info):
    return DEFAULT_BATCH_SIZE[min(info["stage"], MAX_BLOCKS)]


def generate(args, generator, info):
    """The files of the trainer's --generate, from the export."""
    rate, window = info["sampling_rate"], info["window"]
    samples = None if args.duration is None else round(args.duration * rate)
    pieces = longform.pieces(generator, args.generate, args.seed, info["prior"], window,
                             batch_of(info), samples,
                             longform.crossfade_samples(args.crossfade, window, rate),
                             args.anchor_every)
    for i, audio in enumerate(pieces):
        write_wav(os.path.join(args.output_dir, longform.file_name(
            info["file_stem"], args.seed, i, args.duration)), audio, rate)
    print(f"wrote {len(pieces)} files of {len(pieces[0]) / rate:.2f} s to {args.output_dir} "
          f"(seed {args.seed})")
    return 0


def chunks(generator, info, args):
    """Endless int16 chunks of a latent walk, each chunk_windows windows crossfaded on from
    the last: every chunk holds chunk_windows x (window - overlap) samples."""
    window, rate = info["window"], info["sampling_rate"]
    overlap = longform.crossfade_samples(args.crossfade, window, rate)
    walk = longform.walk(np.random.default_rng(args.seed), info["prior"], args.anchor_every)
    joiner = longform.Joiner(overlap)
    while True:
        latents = np.stack([next(walk) for _ in range(args.chunk_windows)])
        windows = longform.generate_windows(generator, latents, batch_of(info))
        yield to_int16(np.concatenate([joiner.push(w) for w in windows]))


def render_ahead(source, count, ready, stop):
    """Put count chunks of source (None: endlessly) on the queue `ready`, then None."""
    try:
        for number, chunk in enumerate(source):
            if stop.is_set() or (count is not None and number >= count):
                break
            ready.put(chunk)
    finally:
        ready.put(None)


def sound_card(info):
    """A writer to the sound card (sounddevice), or a one-line error."""
    try:
        import sounddevice
    except (ImportError, OSError):
        raise UserError("--live plays through the sounddevice package: pip install "
                        "sounddevice, or pipe raw PCM with --stdout") from None
    stream = sounddevice.RawOutputStream(samplerate=info["sampling_rate"],
                                         channels=info["channels"], dtype="int16")
    stream.start()
    return stream.write


def live(args, generator, info):
    """--live: the endless walk, rendered ahead, to the sound card or standard output."""
    rate, channels = info["sampling_rate"], info["channels"]
    if args.stdout:
        out = sys.stdout.buffer
        write = out.write
        print(f"raw PCM on standard output: signed 16-bit little-endian, {rate} Hz, {channels} "
              f"channel(s); e.g. | aplay -f S16_LE -r {rate} -c {channels}", file=sys.stderr)
    else:
        write = sound_card(info)
    ready, stop = queue.Queue(CHUNK_QUEUE), threading.Event()
    renderer = threading.Thread(target=render_ahead, daemon=True,
                                args=(chunks(generator, info, args), args.chunks, ready, stop))
    renderer.start()
    try:
        while (chunk := ready.get()) is not None:
            write(chunk.astype("<i2").tobytes())
            if args.stdout:
                out.flush()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    except BrokenPipeError:  # the reader went away: the end of the stream
        sys.stderr.close()
    finally:
        stop.set()
    return 0


def make_parser():
    parser = ArgumentParser(description="Play an exported generator with LiteRT, no "
                            "TensorFlow: files as --generate writes them, or an endless "
                            "latent walk.")
    parser.add_argument("export", help="a folder written by a trainer's --export DIR")
    parser.add_argument("--generate", type=int_in_range(1, 1_000_000), default=None, metavar="N",
                        help="write N files, as the trainer's --generate (--duration alone: "
                             "one file)")
    longform.add_walk_flags(parser, "--live")
    parser.add_argument("--live", action="store_true",
                        help="play an endless latent walk until Ctrl+C")
    parser.add_argument("--stdout", action="store_true",
                        help="with --live: raw 16-bit PCM on standard output instead of the "
                             "sound card")
    parser.add_argument("--chunks", type=int_in_range(1, sys.maxsize), default=None,
                        help="with --live: stop after this many chunks (default: never)")
    parser.add_argument("--chunk_windows", type=int_in_range(1, 4096), default=4,
                        help="with --live: windows rendered at a time")
    parser.add_argument("--seed", type=int_in_range(0, 2**31 - 1), default=None,
                        help="seed of the latents (default: random, printed)")
    parser.add_argument("--float16", action="store_true",
                        help="the export's smaller model (float16 weights)")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    if args.duration is not None and args.generate is None and not args.live:
        args.generate = 1
    if bool(args.generate) == bool(args.live):
        raise UserError("say what to play: --generate N (or --duration S) or --live")
    if (args.stdout or args.chunks) and not args.live:
        raise UserError("--stdout and --chunks go with --live")
    generator, info = load_export(args.export, args.float16)
    if args.seed is None:
        args.seed = int(np.random.default_rng().integers(2**31))
        print(f"seed {args.seed} (pass --seed {args.seed} to repeat it)", file=sys.stderr)
    return live(args, generator, info) if args.live else generate(args, generator, info)


if __name__ == "__main__":
    sys.exit(run_cli(main))
