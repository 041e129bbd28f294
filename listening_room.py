"""The listening room: a local page to explore an exported generator in the browser
(python play.py EXPORT --serve). Clips from seeds (a kept seed gives the same WAV, byte for
byte, as play.py EXPORT --generate 1 --seed S), an A<->B morph between two kept seeds (the
project's interpolation), a long walk through kept seeds (its crossfades), the export's facts.

No TensorFlow and no web framework: Python's http.server serves one page of our own
(listening_room.html, no script, style or font from elsewhere) and a small JSON/WAV API; the
audio is made by play.py's LiteRT generator and longform.py. docs/generation.md says why not
Gradio (install size and start-up time, measured).

    GET /                                 the page
    GET /api/facts                        model.json's facts, the limits, the labels
    GET /api/wav?kind=clip&seed=S         a clip: file 0 of play.py --generate 1 --seed S
    GET /api/wav?kind=morph&a=A&b=B&t=T   the window between seeds A and B at fraction T
    GET /api/wav?kind=walk&seeds=A,B,C&seconds=D   a walk of D seconds through the seeds
    GET /api/picture?<the same query>     its waveform and spectrogram, for the page to draw
(&label=NAME for a conditional export.) A bad request is a 400 with {"error": one line}; the
server goes on.
"""

import argparse
import collections
import http.server
import itertools
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import urllib.parse

import numpy as np

import longform
from config import LABEL_STRENGTH, MAX_SEED
from utils import UserError, int_in_range, stop_on_signals, write_wav

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "listening_room.html")
MAX_WALK_SECONDS = 300        # a longer walk: play.py --generate 1 --duration S
MAX_WALK_WINDOWS = 4096       # and at most this many windows (stage 1: 12 s, minutes to make)
MAX_WALK_SEEDS = 32
CACHED = 32                   # rendered WAVs kept for the player and the download link
PICTURE_COLUMNS = 600         # the waveform's and spectrogram's width in points
SPECTROGRAM_FFT = 512
SPECTROGRAM_ROWS = 128
SPECTROGRAM_RANGE_DB = 80.0


class BadRequest(Exception):
    """A request the page can be told about in one line."""


def checked(query, name, parse, default=""):
    """A value of the request read by a flag's parser (`default` where it is not given):
    the flags' range and message, as a bad request."""
    try:
        return parse(query.get(name, [default])[0])
    except argparse.ArgumentTypeError as error:
        raise BadRequest(f"{name} {error}") from None


def integer(query, name, low, high):
    """A whole number of the request in [low, high], checked as the flags' are."""
    return checked(query, name, int_in_range(low, high))


def fraction(query, name):
    text = query.get(name, [""])[0]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise BadRequest(f"{name} must be a number from 0 to 1, not {text!r}")
    return value


class Room:
    """What the page asks of an export: audio for a request, its picture, the facts."""

    def __init__(self, folder, generator, info, batch):
        self.folder, self.generator, self.info, self.batch = folder, generator, info, batch
        self.labels = info.get("labels", [])
        self.rate, self.window = info["sampling_rate"], info["window"]
        self.lock = threading.Lock()  # one LiteRT interpreter: one request renders at a time
        self.cache = collections.OrderedDict()  # request key -> (file name, WAV bytes, audio)
        self.scratch = tempfile.mkdtemp(prefix="listening_room_")

    def facts(self):
        keys = ("stage", "window", "sampling_rate", "channels", "model", "variant", "step",
                "weights", "frozen", "prior", "file_stem", "max_error", "scores")
        return {"facts": {key: self.info[key] for key in keys if key in self.info},
                "labels": self.labels, "max_seed": MAX_SEED,
                "max_walk_seconds": self.longest_walk(), "max_walk_seeds": MAX_WALK_SEEDS,
                "folder": os.path.abspath(self.folder)}

    def playing(self, query):
        """(generator, file stem) for the label the query asks for (the only one there is,
        for an unconditional export) at its strength: longform.label_sets, as play.py
        --generate --label NAME --label_strength S."""
        asked = query.get("label", [""])[0]
        if self.labels and not asked:
            raise BadRequest(f"choose a label: {', '.join(self.labels)}")
        strength = checked(query, "strength", LABEL_STRENGTH, default="1")
        try:
            [(generator, stem)] = longform.label_sets(
                self.generator, self.labels, (asked,) if asked else None,
                self.info["file_stem"], self.folder, strength)
        except UserError as error:
            raise BadRequest(str(error)) from None
        return generator, stem

    def render(self, query):
        """(file name, WAV bytes, float audio) of a request, cached."""
        kind = query.get("kind", [""])[0]
        key = json.dumps(sorted((k, v) for k, v in query.items() if k in (
            "kind", "seed", "a", "b", "t", "seeds", "seconds", "label", "strength")))
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
            generator, stem = self.playing(query)
            prior = self.info["prior"]
            if kind == "clip":
                seed = integer(query, "seed", 0, MAX_SEED)
                audio = generator(longform.draw_latents(seed, 1, prior))[0]
                name = longform.file_name(stem, seed, 0)
            elif kind == "morph":
                a, b = (integer(query, n, 0, MAX_SEED) for n in ("a", "b"))
                t = fraction(query, "t")
                latent = longform.interpolate(longform.draw_latents(a, 1, prior)[0],
                                              longform.draw_latents(b, 1, prior)[0], [t], prior)
                audio = generator(latent.astype(np.float32))[0]
                name = f"{stem}_morph_seed{a}_seed{b}_{t:.3f}.wav"
            elif kind == "walk":
                seeds, seconds = self.walk_request(query)
                audio = self.walk(generator, seeds, seconds)
                name = f"{stem}_walk_{'-'.join(map(str, seeds))}_{seconds:g}s.wav"
            else:
                raise BadRequest("kind must be clip, morph or walk")
            path = os.path.join(self.scratch, "render.wav")
            write_wav(path, audio, self.rate)  # the writer of --generate: the same bytes
            with open(path, "rb") as f:
                rendered = (name, f.read(), np.asarray(audio, np.float32))
            self.cache[key] = rendered
            while len(self.cache) > CACHED:
                self.cache.popitem(last=False)
            return rendered

    def walk_request(self, query):
        texts = [t for t in query.get("seeds", [""])[0].split(",") if t.strip()]
        if not 1 <= len(texts) <= MAX_WALK_SEEDS:
            raise BadRequest(f"a walk goes through 1 to {MAX_WALK_SEEDS} kept seeds: keep a "
                             f"clip's seed first")
        seeds = [integer({"seed": [t.strip()]}, "seed", 0, MAX_SEED) for t in texts]
        text = query.get("seconds", [""])[0]
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        longest = self.longest_walk()
        if not 0 < seconds <= longest:
            raise BadRequest(f"a walk lasts more than 0 and at most {longest:g} s at this "
                             f"stage, not {text!r} (longer: play.py --generate 1 --duration S)")
        return seeds, seconds

    def longest_walk(self):
        """MAX_WALK_SECONDS, or less where MAX_WALK_WINDOWS windows make less (low stages)."""
        hop = self.window - longform.default_crossfade(self.window, self.rate)
        return min(MAX_WALK_SECONDS, math.floor(
            (MAX_WALK_WINDOWS * hop + self.window - hop) / self.rate * 10) / 10)

    def walk(self, generator, seeds, seconds, anchor_every=4):
        """seconds of audio along the kept seeds' latents, from one to the next (and back to
        the first) in anchor_every windows each, windows joined by longform's crossfades."""
        prior = self.info["prior"]
        anchors = itertools.cycle([longform.draw_latents(s, 1, prior)[0] for s in seeds])
        samples = round(seconds * self.rate)
        overlap = longform.default_crossfade(self.window, self.rate)
        needed = longform.windows_needed(samples, self.window, overlap)
        latents = np.stack(list(itertools.islice(
            longform.walk(None, prior, anchor_every, anchors=anchors), needed)))
        windows = longform.generate_windows(generator, latents, self.batch)
        return longform.join_windows(windows, overlap, samples)

    def picture(self, audio):
        """The waveform (min and max of each column, the channels mixed) and a log-magnitude
        spectrogram (0-255, linear frequency, low rows first) for the page's canvases."""
        mono = np.asarray(audio, np.float64).reshape(len(audio), -1).mean(axis=1)
        columns = min(PICTURE_COLUMNS, len(mono))
        parts = np.array_split(mono, columns)
        waveform = [[round(float(p.min()), 4), round(float(p.max()), 4)] for p in parts]
        # at least four frames: a short clip gets a shorter transform
        fft = max(16, min(SPECTROGRAM_FFT, 1 << int(math.log2(max(len(mono) // 4, 2)))))
        fft = min(fft, len(mono))
        hop = max(1, (len(mono) - fft) // PICTURE_COLUMNS + 1)
        frames = np.lib.stride_tricks.sliding_window_view(mono, fft)[::hop]
        power = np.abs(np.fft.rfft(frames * np.hanning(fft), axis=1)) ** 2
        rows = min(SPECTROGRAM_ROWS, power.shape[1])
        power = np.stack([band.mean(axis=1) for band in np.array_split(power, rows, axis=1)], 1)
        db = 10 * np.log10(power + 1e-12)
        scaled = np.clip((db - db.max() + SPECTROGRAM_RANGE_DB) / SPECTROGRAM_RANGE_DB, 0, 1)
        return {"waveform": waveform, "seconds": len(mono) / self.rate,
                "spectrogram": {"columns": len(scaled), "rows": rows,
                                "values": (scaled.T * 255).astype(np.uint8).ravel().tolist(),
                                "top_hz": self.rate / 2}}


class Handler(http.server.BaseHTTPRequestHandler):
    room = None  # the Room, set by serve()

    def log_message(self, format, *args):  # quiet: the console shows the URL and errors
        pass

    def send(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, value):
        self.send(status, json.dumps(value).encode(), "application/json")

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        try:
            if url.path in ("/", "/index.html"):
                with open(PAGE, "rb") as f:
                    self.send(200, f.read(), "text/html; charset=utf-8")
            elif url.path == "/api/facts":
                self.send_json(200, self.room.facts())
            elif url.path == "/api/wav":
                name, wav, _ = self.room.render(query)
                disposition = "attachment" if query.get("download") else "inline"
                self.send(200, wav, "audio/wav",
                          [("Content-Disposition", f'{disposition}; filename="{name}"')])
            elif url.path == "/api/picture":
                name, _, audio = self.room.render(query)
                self.send_json(200, {"name": name, **self.room.picture(audio)})
            else:
                self.send_json(404, {"error": f"no page {url.path}"})
        except BadRequest as error:
            self.send_json(400, {"error": str(error)})
        except BrokenPipeError:
            pass  # the browser went away


def serve(folder, generator, info, batch, host, port):
    """Serve the room until Ctrl+C (windows made `batch` at a time); one line for a port that
    is taken."""
    Handler.room = Room(folder, generator, info, batch)
    try:
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    except socket.gaierror as error:  # a --host that names no address of this machine
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror or error}): pass "
                        f"--host an address of this machine (127.0.0.1, or 0.0.0.0 for every "
                        f"one)") from None
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror or error}): pass "
                        f"another --port, or stop what uses it") from None
    url = f"http://{host}:{server.server_address[1]}/"
    try:
        stop_on_signals()  # Ctrl+C and SIGTERM stop it cleanly, even at once
        print(f"listening room for {folder} at {url} (Ctrl+C stops it)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
        shutil.rmtree(Handler.room.scratch, ignore_errors=True)
    return 0
