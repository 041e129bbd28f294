"""Synthesise the bundled demo dataset of piano-like music.

Each piece is a melody over a simple chord progression, rendered with
additive synthesis (stretched harmonics, per-partial exponential decay,
short attack) and a light synthetic room.  Everything is generated from
fixed seeds, so the output is byte-identical on every run and contains no
recorded material.

Usage:
    python data/make_demo.py [--out_dir DIR] [--seconds_per_piece S]
"""

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve

SAMPLE_RATE = 16000
PEAK_DBFS = -2.0
N_PARTIALS = 8
MAX_PARTIAL_HZ = 7000.0  # stay clear of the 8 kHz Nyquist limit
DAMPER_TAU = 0.08  # seconds; how fast a released note dies away
RELEASE_TAIL = 0.5  # seconds rendered after note-off

MAJOR = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)


class Piece(NamedTuple):
    """Musical parameters of one demo piece."""

    tonic: int  # MIDI note of the melody's tonic
    scale: tuple
    bpm: float
    progs: tuple  # two 4-bar progressions of chord roots (0-based degrees)
    cadence: int  # chord before the final tonic
    style: str  # accompaniment pattern
    seed: int


# Varied keys, tempi, progressions and textures so the set is not one loop.
PIECES = (
    # C major: I-vi-IV-V / IV-V-I-vi
    Piece(72, MAJOR, 96, ((0, 5, 3, 4), (3, 4, 0, 5)), 4, "arpeggio", 101),
    # G major: I-V-vi-IV / I-IV-V-V
    Piece(67, MAJOR, 80, ((0, 4, 5, 3), (0, 3, 4, 4)), 4, "block", 202),
    # A minor: i-VI-III-VII / iv-i-VI-VII
    Piece(69, NATURAL_MINOR, 72, ((0, 5, 2, 6), (3, 0, 5, 6)), 6, "arpeggio", 303),
    # F major: I-vi-IV-V / ii-V-I-V
    Piece(65, MAJOR, 112, ((0, 5, 3, 4), (1, 4, 0, 4)), 4, "broken", 404),
)

# Melody rhythms for one 4/4 bar, in beats.
RHYTHMS = (
    (1, 1, 1, 1),
    (2, 1, 1),
    (1, 0.5, 0.5, 2),
    (1.5, 0.5, 1, 1),
    (0.5, 0.5, 1, 2),
    (1, 1, 2),
    (0.5, 0.5, 0.5, 0.5, 1, 1),
)
CADENCE_RHYTHMS = ((1, 1, 2), (2, 2), (1.5, 0.5, 2), (4,))


def midi_to_hz(midi):
    """Equal-tempered frequency of a MIDI note number."""
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def step_to_midi(step, tonic, scale):
    """MIDI note of a scale step counted from the tonic (may be negative)."""
    octave, degree = divmod(step, 7)
    return tonic + 12 * octave + scale[degree]


def render_note(f0, velocity, held, rng):
    """Render one piano-like note held for `held` seconds."""
    n = int((held + RELEASE_TAIL) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    # Low strings ring longer than high ones, as on a real piano.
    tau = np.clip(2.5 * (261.6 / f0) ** 0.6, 0.35, 6.0)
    # Real strings are stiff, so overtones sit slightly sharp of n * f0.
    stretch = 1.5e-4 * np.sqrt(f0 / 110.0)
    # Harder strikes are brighter: shallower spectral roll-off.
    rolloff = 1.8 - 0.8 * velocity
    out = np.zeros(n)
    for k in range(1, N_PARTIALS + 1):
        fk = k * f0 * np.sqrt(1.0 + stretch * k * k)
        if fk > MAX_PARTIAL_HZ:
            break
        rate = (1.0 + 0.45 * (k - 1)) / tau
        # Two-stage decay: a quick initial drop then a slower aftersound.
        env = 0.6 * np.exp(-3.0 * rate * t) + 0.4 * np.exp(-rate * t)
        phase = rng.uniform(0.0, 2.0 * np.pi)
        # Two slightly detuned strings per partial give a gentle beating.
        detune = 1.0 + rng.uniform(0.0003, 0.0008)
        tone = np.sin(2 * np.pi * fk * t + phase) + np.sin(
            2 * np.pi * fk * detune * t + phase
        )
        out += (k**-rolloff) * env * tone
    attack = min(int(0.005 * SAMPLE_RATE), n)
    out[:attack] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    off = int(held * SAMPLE_RATE)
    out[off:] *= np.exp(-(t[off:] - t[off]) / DAMPER_TAU)
    # Taper the last 10 ms so cutting the residual tail cannot click.
    taper = min(int(0.01 * SAMPLE_RATE), n)
    out[n - taper :] *= np.linspace(1.0, 0.0, taper)
    return velocity * out / 2.0


def fold(midi, low):
    """Move a MIDI note by whole octaves into the octave starting at `low`."""
    return low + (midi - low) % 12


def chord_midis(root_step, tonic, scale, low):
    """Triad on a scale step, each tone folded into the octave from `low`."""
    steps = (root_step, root_step + 2, root_step + 4)
    return sorted(fold(step_to_midi(s, tonic, scale), low) for s in steps)


def make_melody_phrase(rng, chords, start_step, template=None):
    """Melody events (beat, length, step) for a 4-bar phrase.

    If `template` (rhythms and step moves of an earlier phrase) is given it
    is reused so later phrases echo the opening motif.
    """
    if template is None:
        rhythms = [RHYTHMS[rng.integers(len(RHYTHMS))] for _ in range(3)]
        rhythms.append(CADENCE_RHYTHMS[rng.integers(len(CADENCE_RHYTHMS))])
        moves = list(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3], size=32))
    else:
        rhythms, moves = template
    events = []
    step = start_step
    move_iter = iter(moves)
    for bar, (rhythm, root) in enumerate(zip(rhythms, chords)):
        beat = 0.0
        tones = [root + d for d in (0, 2, 4)]
        for i, length in enumerate(rhythm):
            step += int(next(move_iter))
            step = int(np.clip(step, -2, 9))
            if beat in (0.0, 2.0):
                # Strong beats land on a chord tone so the tune fits the harmony.
                cands = [c + 7 * o for c in tones for o in (-1, 0, 1, 2)]
                step = min(cands, key=lambda c: (abs(c - step), c))
            last = bar == 3 and i == len(rhythm) - 1
            if last:
                # Cadence: resolve to the chord root nearest the current note.
                cands = [root + 7 * o for o in (-1, 0, 1)]
                step = min(cands, key=lambda c: abs(c - step))
            rest = (not last) and rng.random() < 0.07
            if not rest:
                events.append((bar * 4 + beat, length, step))
            beat += length
    return events, (rhythms, moves), step


def accompaniment(style, bar_beat, chord, bass):
    """Accompaniment events (beat, held beats, midi, level) for one bar."""
    events = [(bar_beat, 4.0, bass, 0.55)]
    if style == "block":
        for b in (0.0, 2.0):
            events += [(bar_beat + b, 2.0, m, 0.32) for m in chord]
    elif style == "arpeggio":
        # Alberti-style eighths; notes ring to the bar end as if pedalled.
        order = (0, 2, 1, 2, 0, 2, 1, 2)
        for i, idx in enumerate(order):
            b = 0.5 * i
            events.append((bar_beat + b, 4.0 - b, chord[idx], 0.30))
    else:  # "broken": bass on the downbeat, short chords on beats 2-4
        for b in (1.0, 2.0, 3.0):
            events += [(bar_beat + b, 0.9, m, 0.26) for m in chord]
    return events


def beat_times(n_bars, bpm, jitter):
    """Onset time in seconds of every beat of `n_bars` bars.

    `jitter` gives gentle rubato, and the two bars before the final chord
    slow down (ritardando) so pieces do not end mechanically.
    """
    n_beats = 4 * n_bars + 1
    durs = 60.0 / bpm * (1.0 + jitter[:n_beats])
    end = 4 * (n_bars - 1)
    k = min(8, end)
    durs[end - k : end] *= np.linspace(1.0, 1.35, k)
    return np.concatenate([[0.0], np.cumsum(durs)])


def compose_and_render(spec, seconds):
    """Render one piece to a float array of exactly `seconds` length."""
    rng = np.random.default_rng(spec.seed)
    tonic, scale = spec.tonic, spec.scale
    total = round(seconds * SAMPLE_RATE)
    max_bars = int(seconds * spec.bpm / 240.0) + 2
    jitter = rng.uniform(-0.02, 0.02, 4 * max_bars + 1)
    # As many bars as fit while leaving ~3.5 s for the final chord to ring.
    n_bars = max(
        (
            n
            for n in range(2, max_bars + 1)
            if beat_times(n, spec.bpm, jitter)[4 * (n - 1)] <= seconds - 3.5
        ),
        default=2,
    )
    n_phrases = -(-(n_bars - 1) // 4)
    times = beat_times(n_bars, spec.bpm, jitter)

    def beat_to_sec(beat):
        i = int(beat)
        return times[i] + (beat - i) * (times[i + 1] - times[i])

    # Chord root for every bar before the final one; the last of them is
    # forced to the cadence chord so each piece closes on a proper cadence.
    roots = [spec.progs[(b // 4) % 2][b % 4] for b in range(n_bars - 1)]
    roots[-1] = spec.cadence

    notes = []  # (start s, held s, midi, velocity)
    step, templates = 2, {}
    for p in range(n_phrases):
        chords = roots[4 * p : 4 * p + 4]
        chords += [0] * (4 - len(chords))  # padding past the end is skipped
        # Phrases 3 and 4 echo phrases 1 and 2 (A B A' B' ...).
        events, tmpl, step = make_melody_phrase(
            rng, chords, step, templates.get(p % 2) if p >= 2 else None
        )
        templates.setdefault(p % 2, tmpl)
        for beat, length, mstep in events:
            b = p * 16 + beat
            if b >= 4 * (n_bars - 1):
                continue
            # Swell towards the middle of each phrase, softer at its ends.
            swell = 0.85 + 0.15 * np.sin(np.pi * beat / 16.0)
            vel = np.clip(0.72 * swell + rng.normal(0.0, 0.04), 0.4, 0.95)
            start, end = beat_to_sec(b), beat_to_sec(b + length)
            midi = step_to_midi(mstep, tonic, scale)
            notes.append((start, 0.95 * (end - start), midi, vel))
    for bar, root in enumerate(roots):
        chord = chord_midis(root, tonic, scale, 53)
        bass = fold(step_to_midi(root, tonic, scale), 38)
        for beat, held, midi, level in accompaniment(spec.style, 4 * bar, chord, bass):
            start = beat_to_sec(beat)
            held_s = beat_to_sec(beat + held) - start
            vel = level * (0.9 + rng.uniform(0.0, 0.2))
            notes.append((start, held_s, midi, vel))

    # Final tonic chord, melody on the tonic, held to the end.
    start = beat_to_sec(4 * (n_bars - 1))
    held = max(seconds - start - 0.6, 0.2)
    final = chord_midis(0, tonic, scale, 53)
    final += [step_to_midi(0, tonic, scale) - 24, step_to_midi(0, tonic, scale)]
    notes += [(start, held, m, 0.45) for m in final]

    out = np.zeros(total + int(RELEASE_TAIL * SAMPLE_RATE) + SAMPLE_RATE)
    for start, held, midi, vel in notes:
        audio = render_note(midi_to_hz(midi), vel, held, rng)
        i = round(start * SAMPLE_RATE)
        out[i : i + len(audio)] += audio[: len(out) - i]

    # A short synthetic room (decaying noise impulse response) adds space.
    ir_t = np.arange(int(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
    ir = rng.normal(0.0, 1.0, len(ir_t)) * np.exp(-ir_t / 0.18)
    ir /= np.sqrt(np.sum(ir**2))
    out = out + 0.25 * fftconvolve(out, ir)[: len(out)]
    out = out[:total]
    fade = min(int(0.5 * SAMPLE_RATE), total)
    out[-fade:] *= np.linspace(1.0, 0.0, fade)
    return out


def main():
    """Parse arguments and write every demo piece."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--out_dir",
        type=Path,
        default=Path(__file__).resolve().parent / "demo",
        help="directory to write the WAV files into",
    )
    parser.add_argument(
        "--seconds_per_piece",
        type=float,
        default=36.0,
        help="duration of each piece in seconds",
    )
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    peak_target = 10.0 ** (PEAK_DBFS / 20.0)
    for i, spec in enumerate(PIECES, start=1):
        audio = compose_and_render(spec, args.seconds_per_piece)
        audio *= peak_target / np.max(np.abs(audio))
        path = args.out_dir / f"piece_{i:02d}.wav"
        sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
        print(f"wrote {path} ({len(audio) / SAMPLE_RATE:.1f} s)")


if __name__ == "__main__":
    main()
