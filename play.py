"""Play a trained generator anywhere: a folder written by a trainer's --export DIR, run with
LiteRT, no TensorFlow (needs ai-edge-litert, numpy and soundfile: requirements-play.txt;
sounddevice to play to the sound card).

    python play.py EXPORT --generate 3 --seed 5            # the files --generate writes
    python play.py EXPORT --generate 1 --duration 60       # a minute along a latent walk
    python play.py EXPORT --live                           # an endless walk, to the speakers
    python play.py EXPORT --live --stdout | aplay -f S16_LE -r 16000 -c 1
    python play.py EXPORT --serve                          # the listening room, a local page

--generate gives the same latents for the same seed, the same audio (within the export's
stated error) and the same file names as the trainer's --generate. --live renders the walk
chunk by chunk ahead of playback, crossfading window into window with no gaps, until Ctrl+C
(or --chunks). longform.py (NumPy) makes the walks and crossfades for both.
"""

import dataclasses
import json
import os
import queue
import sys
import threading

import numpy as np

import config
import longform
from private_apis import native_stderr_hidden
from rules import DEFAULT_BATCH_SIZE, MAX_BLOCKS
from utils import UserError, run_cli, stop_on_signals, to_int16

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
        try:
            with native_stderr_hidden():
                self.interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
                inputs = self.interpreter.get_input_details()
                outputs = self.interpreter.get_output_details()
        except (ValueError, RuntimeError) as error:
            reason = str(error).split("\n")[0][:120] or type(error).__name__
            raise UserError(f"{path} is not a whole LiteRT model ({reason}): export again with "
                            f"a trainer's --export") from None
        self.input, self.output = inputs[0]["index"], outputs[0]["index"]
        self.latent_dim = int(inputs[0]["shape"][-1])
        self.output_shape = tuple(int(n) for n in outputs[0]["shape"][1:])  # (window, channels)
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


# What play.py reads of model.json.
REQUIRED = ("sampling_rate", "channels", "window", "latent_dim", "prior", "stage", "file_stem",
            "files")
COUNTS = ("sampling_rate", "channels", "window", "latent_dim", "stage")  # positive integers


def load_export(folder, float16=False):
    """(generator, model.json) of an export folder: a one-line error for a folder that is no
    export, a model.json that lacks a key, a model that is empty or cut short, or one whose
    shapes are not those model.json states (a model of another stage beside it)."""
    path = os.path.join(folder, EXPORT_FILE)
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError):
        raise UserError(f"{folder} is not an export folder (no readable {EXPORT_FILE}): write "
                        f"one with a trainer's --export {folder}") from None
    missing = [key for key in REQUIRED if not isinstance(info, dict) or key not in info]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: export again with a trainer's "
                        f"--export")
    wrong = [key for key in COUNTS if type(info[key]) is not int or info[key] < 1]
    if wrong or not isinstance(info["files"], dict):
        raise UserError(f"{path} states {', '.join(wrong) or 'files'} wrongly (not what an "
                        f"export writes): export again with a trainer's --export")
    model = os.path.join(folder, info["files"].get("float16" if float16 else "float32", ""))
    if not os.path.isfile(model):
        raise UserError(f"{model} is missing: export again with a trainer's --export")
    generator = LiteGenerator(model)
    stated = (info["window"], info["channels"])
    inputs = info["latent_dim"] + len(info.get("labels", []))
    if generator.output_shape != stated or generator.latent_dim != inputs:
        raise UserError(f"{model} makes windows of {generator.output_shape[0]} samples x "
                        f"{generator.output_shape[1]} channels from {generator.latent_dim} "
                        f"latents but {path} states {stated[0]} x {stated[1]} from "
                        f"{inputs}: they come from different exports, export "
                        f"again")
    return generator, info


def batch_of(info):
    return DEFAULT_BATCH_SIZE[min(info["stage"], MAX_BLOCKS)]


def generate(options, generator, info):
    """The files of the trainer's --generate, from the export (a conditional model's for
    each label asked for, as the trainer names them)."""
    rate, labels, stem = info["sampling_rate"], info.get("labels", []), info["file_stem"]
    sets = longform.label_sets(generator, labels, options.label, stem, options.export,
                               options.label_strength)
    for playing, name in sets:
        files, samples = longform.write_files(playing, options.walk, options.generate,
                                              options.seed, info["prior"], info["window"],
                                              batch_of(info), rate, info["channels"], name)
    print(f"wrote {files * len(sets)} files of {samples / rate:.2f} s to "
          f"{options.walk.output_dir} (seed {options.seed})")
    return 0


def chunks(generator, info, options):
    """Endless int16 chunks of a latent walk, each chunk_windows windows crossfaded on from
    the last: every chunk holds chunk_windows x (window - overlap) samples. A conditional
    model's walk moves from label to label of --label, one at each anchor."""
    window, rate = info["window"], info["sampling_rate"]
    overlap = longform.crossfade_samples(options.walk.crossfade, window, rate)
    labels = info.get("labels", [])
    walk = longform.walk(np.random.default_rng(options.seed), info["prior"],
                         options.walk.anchor_every, len(labels),
                         longform.asked_labels(options.label, labels, options.export),
                         strength=options.label_strength)
    joiner = longform.Joiner(overlap)
    while True:
        latents = np.stack([next(walk) for _ in range(options.chunk_windows)])
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


def live(options, generator, info):
    """--live: the endless walk, rendered ahead, to the sound card or standard output."""
    rate, channels = info["sampling_rate"], info["channels"]
    if options.stdout:
        out = sys.stdout.buffer
        write = out.write
        print(f"raw PCM on standard output: signed 16-bit little-endian, {rate} Hz, {channels} "
              f"channel(s); e.g. | aplay -f S16_LE -r {rate} -c {channels}", file=sys.stderr)
    else:
        write = sound_card(info)
    ready, stop = queue.Queue(CHUNK_QUEUE), threading.Event()
    renderer = threading.Thread(target=render_ahead, daemon=True,
                                args=(chunks(generator, info, options), options.chunks, ready,
                                      stop))
    renderer.start()
    try:
        stop_on_signals()  # Ctrl+C and SIGTERM end the stream cleanly
        while (chunk := ready.get()) is not None:
            write(chunk.astype("<i2").tobytes())
            if options.stdout:
                out.flush()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    except BrokenPipeError:  # the reader went away: the end of the stream
        sys.stderr.close()
    finally:
        stop.set()
    return 0


PLAY_FLAGS = ("export", "generate", "label", "label_strength", "output_dir", "duration",
              "anchor_every", "crossfade", "live", "stdout", "chunks", "chunk_windows", "seed",
              "float16", "serve", "host", "port")


def make_parser():
    return config.make_parser(
        config.PlayConfig, "Play an exported generator with LiteRT, no TensorFlow: files as "
        "--generate writes them, or an endless latent walk.", PLAY_FLAGS, positional=("export",))


def main(argv=None):
    options = config.parse(config.PlayConfig, argv, make_parser())
    generator, info = load_export(options.export, options.float16)
    longform.asked_labels(options.label, info.get("labels", []), options.export,
                          options.label_strength)  # before a word
    if options.serve:
        import listening_room
        return listening_room.serve(options.export, generator, info, batch_of(info),
                                    options.host, options.port)
    if options.seed is None:
        seed = int(np.random.default_rng().integers(2**31))
        print(f"seed {seed} (pass --seed {seed} to repeat it)", file=sys.stderr)
        options = dataclasses.replace(options, seed=seed)
    return (live if options.live else generate)(options, generator, info)


if __name__ == "__main__":
    sys.exit(run_cli(main))
