"""Small helpers of every command-line tool: the one-line error convention, atomic writes,
WAV files (report §7.4: 16-bit PCM) and flag types. No TensorFlow.
"""

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import wave

import numpy as np

from private_apis import DefaultsHelpFormatter
from rules import MAX_INT16


class UserError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2, no traceback."""


def to_int16(audio):
    """Float audio in [-1, 1] to int16: x 32767, rounded, clipped to int16's range. (The
    original truncated towards zero and clipped to +-32767: at most one step apart.)"""
    scaled = np.rint(np.asarray(audio, dtype=np.float64) * MAX_INT16)
    return np.clip(scaled, -MAX_INT16 - 1, MAX_INT16).astype(np.int16)


def make_readable(path):
    """mkstemp and mkdtemp make files and folders only the owner can read; give them the
    usual umask mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


def atomic_write(path, write, suffix=".tmp", replace=True):
    """Call write(tmp) on a file beside path, then rename it to path: the file appears complete
    or not at all, and a crash leaves whatever was there before. With replace=False a file
    already at path (another process wrote it meanwhile) is kept instead. A failed write (a
    full disk, a read-only folder) is one line naming the file."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=suffix, dir=directory)
        os.close(fd)
        write(tmp)
        make_readable(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            link_unless_there(tmp, path)
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror or error}): free space there or "
                        f"make the folder writable, then run the same command again") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


def link_unless_there(tmp, path):
    """Give tmp the name path unless a file has it already (atomically: a hard link), where
    the file system has hard links; else rename it over."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:  # no hard links here (e.g. FAT): the rename's last writer wins
        os.replace(tmp, path)


def write_json(path, data):
    """Write data as indented JSON, atomically (utils.atomic_write)."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    return atomic_write(path, write)


def read_json(path):
    """The JSON object in path (every JSON file the project writes holds one), or None where
    there is no such file; a damaged file, or one holding something else, is one line."""
    try:
        with open(path) as f:
            value = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path} ({getattr(error, 'strerror', None) or error}): "
                        f"restore it or remove it") from None
    if not isinstance(value, dict):
        raise UserError(f"cannot read {path} (not the JSON object this project writes "
                        f"there): restore it or remove it")
    return value


def write_wav(path, audio, sampling_rate):
    """Write float audio [samples] or [samples, channels] as a 16-bit PCM WAV file, atomically
    (write_wav_stream)."""
    audio = np.asarray(audio)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    return write_wav_stream(path, [audio], sampling_rate, channels)


def write_wav_stream(path, chunks, sampling_rate, channels):
    """Write float chunks [samples, channels] as one 16-bit PCM WAV file as they come, so
    that a file of any length takes the memory of one chunk; atomically (atomic_write).
    Python's wave module writes the same bytes as libsndfile, and its errors name their cause
    (a full disk, a file-size limit), where libsndfile says only "System error"."""
    def write(tmp):
        with wave.open(tmp, "wb") as f:
            f.setnchannels(channels)
            f.setsampwidth(2)
            f.setframerate(sampling_rate)
            for chunk in chunks:
                f.writeframes(to_int16(chunk).tobytes())
    return atomic_write(path, write, suffix=".wav.tmp")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults shown in --help and bad flags reported as one line, exit 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def stop_on_signals():
    """From here on Ctrl+C and SIGTERM raise KeyboardInterrupt, so that a server or a stream
    stops cleanly, also where it was started with SIGINT ignored (a background job of a shell
    script inherits that, and Python leaves it so)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)


def ask_to_save_and_stop(process):
    """SIGTERM to a trainer, once: it saves the step it is at and stops (a second one would
    stop it at once, unsaved). os.kill, as Popen.send_signal may reap a child that a caller
    waits for with os.wait4."""
    if not getattr(process, "asked_to_stop", False):
        process.asked_to_stop = True
        os.kill(process.pid, signal.SIGTERM)


def wait_saving_on_stop(process, who, run, kept, wait=None):
    """Wait for `process`, a trainer in a session of its own (so a Ctrl+C in the terminal
    reaches this process alone), with `wait()` (default process.wait; it returns what that
    does). On a KeyboardInterrupt (Ctrl+C, or SIGTERM after stop_on_signals) the trainer is
    asked to save and stop, and waited for whatever else comes: a save takes seconds, an
    unsaved stop loses every step since the last checkpoint. Then one line says how `who`
    (e.g. "seed 0") stopped, its run folder `run` kept or not, and SystemExit(130)."""
    try:
        return (wait or process.wait)()
    except KeyboardInterrupt:
        ask_to_save_and_stop(process)
    while True:
        try:
            code = process.wait()
            break
        except KeyboardInterrupt:
            print(f"{who} is saving its last step: it stops in a moment", file=sys.stderr,
                  flush=True)
    if code:
        said = f"stopped: {who}'s trainer stopped with exit code {code}, perhaps unsaved"
    elif kept:
        said = f"stopped: {who} saved its last step in {run}; the same command trains on from there"
    else:
        said = (f"stopped at {who} (its temporary folder is removed: --keep DIR keeps the runs "
                f"to train on)")
    print(said, file=sys.stderr, flush=True)
    raise SystemExit(130)


def int_in_range(low, high):
    """argparse type: an integer in [low, high], with a message naming the range."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            upper = " or more" if high == sys.maxsize else f" to {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low}{upper}")
        return value
    return parse


def float_above(low, inclusive=False):
    """argparse type: a number > low (>= low if inclusive)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= low if inclusive else value > low) or not math.isfinite(value):
            relation = "at least" if inclusive else "greater than"
            raise argparse.ArgumentTypeError(f"{value} must be {relation} {low:g}")
        return value
    return parse


def float_in_range(low, high):
    """argparse type: a number in [low, high], with a message naming the range."""
    def parse(text):
        value = float_above(low, inclusive=True)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range: use {low:g} to "
                                             f"{high:g}")
        return value
    return parse


positive_float = float_above(0.0)
non_negative_float = float_above(0.0, inclusive=True)


def fraction_below_one(text):
    """argparse type: a number in [0, 1)."""
    value = non_negative_float(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} must be below 1")
    return value


def fraction_in_half(text):
    """argparse type: a number in (0, 0.5]."""
    value = positive_float(text)
    if value > 0.5:
        raise argparse.ArgumentTypeError(f"{value:g} must be at most 0.5")
    return value


def run_cli(main, argv=None):
    """Run main(argv); a UserError becomes one line on stderr and exit code 2, a file or
    folder the system refuses (permissions, a file where a folder goes) one line and exit
    code 2, Ctrl+C or SIGTERM one line and exit code 130. SIGTERM acts as Ctrl+C meanwhile
    (a job stops removing what it half wrote: atomic_write; training saves and stops,
    train_loop.StopSignal), where it would kill the process at once."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        if error.filename is None:
            raise
        print(f"error: cannot use {error.filename} ({error.strerror}): check the path, and "
              f"that you may write there", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("stopped (Ctrl+C or SIGTERM) before the end: what was saved before is kept",
              file=sys.stderr)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
