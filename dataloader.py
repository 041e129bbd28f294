"""The one data loader of all three trainers (report §7.4, §7.6 "data loader", augmentation).

Every audio file under a folder (subfolders too, in order of their paths) is decoded to int16
at the sampling rate and the files are read as one sequence of samples [samples, channels]
without joining them (Segments). With a decode cache (audio_cache.py) each file's samples live
in a cache entry on disk and are read from it on demand, so a restart decodes nothing and the
process's memory does not grow with the dataset. A stage's training windows are start offsets into that
sequence: window j of augmentation offset k starts at k * (window // 10) + j * window, so
augmentation level 9 costs no more memory than level 0 (the original appended L shifted
float32 copies). Windows are shuffled every epoch, batched (drop remainder), repeated forever
and reach TensorFlow as float32 = int16 / 32767.

A real library always has an odd file: one that decodes to fewer frames than its header states
is used as decoded, one that cannot be decoded is skipped, each with a note naming it (strict:
an error instead).

Check a dataset before a long run:
    python dataloader.py data/demo --num_blocks 5 [--augmentation_level L] [--json]
"""

import dataclasses
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

import audio_cache
import config
from rules import MAX_INT16, SAMPLING_RATE, window_length
from utils import UserError, run_cli, to_int16

# Extensions taken to be audio: a file with one of these that soundfile cannot read is skipped
# with its reason, any other file is skipped as not audio (a README, a cover image...).
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                    ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64"}
# Integer PCM is read straight as int16 by libsndfile (which keeps the top 16 bits); everything
# else is decoded as float, clipped to [-1, 1] and scaled by 32767.
INTEGER_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}
DECODE_BLOCK = 1 << 20  # frames per read: a read that fails keeps the blocks before it
NAMES_IN_A_NOTE = 5
CACHE_FOLDER = "audio_cache"  # the decode cache's folder in --checkpoint_dir, by default


def note(message):
    """Loader notes go to stderr, so that `--json` output on stdout stays machine-readable."""
    print(message, file=sys.stderr)


def some(names):
    """The first few names of a list, and how many more."""
    shown = ", ".join(names[:NAMES_IN_A_NOTE])
    more = len(names) - NAMES_IN_A_NOTE
    return shown + (f" and {more} more" if more > 0 else "")


class Segments:
    """The samples of several files, one after another, read as one sequence [samples,
    channels] of int16 without joining them: each file's samples stay where they are (an
    array in memory, or an audio_cache.Entry of the decode cache, read from disk on
    demand)."""

    dtype = np.dtype(np.int16)

    def __init__(self, sources, channels):
        self.sources = [s for s in sources if len(s)]
        self.ends = np.cumsum([len(a) for a in self.sources], dtype=np.int64)
        self.shape = (int(self.ends[-1]) if self.sources else 0, channels)

    @property
    def nbytes(self):
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    @property
    def from_cache(self):
        """Whether the samples are read from the decode cache on disk."""
        return any(isinstance(s, audio_cache.Entry) for s in self.sources)

    def read(self, start, out):
        """Copy the samples from `start` on into out [n, channels]; zeros past the end."""
        filled, i = 0, int(np.searchsorted(self.ends, start, side="right"))
        while filled < len(out) and i < len(self.sources):
            source = self.sources[i]
            offset = start + filled - (int(self.ends[i]) - len(source))
            take = min(len(out) - filled, len(source) - offset)
            if isinstance(source, audio_cache.Entry):
                source.read(offset, out[filled:filled + take])
            else:
                out[filled:filled + take] = source[offset:offset + take]
            filled, i = filled + take, i + 1
        out[filled:] = 0

    def __array__(self, dtype=None, copy=None):
        """All samples as one array (a copy): for small data and tests."""
        out = np.zeros(self.shape, np.int16)
        self.read(0, out)
        return out if dtype is None else out.astype(dtype)


@dataclass
class AudioData:
    """All audio of a folder: `buffer` (Segments, or an int16 array [samples, channels]) and
    what loading it found."""
    buffer: object
    sampling_rate: int
    data_dir: str
    files: list = field(default_factory=list)      # the files used, in order
    folders: int = 0                               # distinct folders they came from
    skipped: list = field(default_factory=list)    # (path, reason)
    short: list = field(default_factory=list)      # (path, decoded frames, stated frames)
    cache_dir: str | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    load_seconds: float = 0.0

    def __post_init__(self):
        if isinstance(self.buffer, np.ndarray):
            self.buffer = Segments([self.buffer], self.buffer.shape[1])

    @property
    def channels(self):
        return self.buffer.shape[1]

    @property
    def num_samples(self):
        return self.buffer.shape[0]

    @property
    def seconds(self):
        return self.num_samples / self.sampling_rate


def list_audio_files(data_dir):
    """(audio files under data_dir, what is not audio): subfolders included, sorted by
    relative path, hidden files and folders skipped, each real folder visited once (so
    symlink loops end)."""
    if os.path.isfile(data_dir):
        raise UserError(f"data folder {data_dir} is a file: give the folder that holds it "
                        f"(training reads a folder of audio files)")
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} does not exist: put audio files there or point "
                        f"--data_dir at a folder of audio files")
    found, not_audio, seen = [], [], set()
    for folder, subfolders, names in os.walk(data_dir, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:
            subfolders[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        relative = os.path.relpath(folder, data_dir)
        for name in [n for n in subfolders if n.startswith(".")]:
            not_audio.append(os.path.normpath(os.path.join(relative, name)) + "/")
            subfolders.remove(name)
        for name in names:
            path = os.path.join(folder, name)
            shown = os.path.normpath(os.path.join(relative, name))
            if name.startswith(".") or not os.path.isfile(path) \
                    or os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                not_audio.append(shown)
            else:
                found.append((tuple(shown.split(os.sep)), path))
    if not found:
        skipped = f" (only {some(sorted(not_audio))})" if not_audio else ""
        raise UserError(f"no audio files in {data_dir} or its subfolders{skipped}: put .wav/"
                        f".flac/.ogg/.mp3 files there or point --data_dir at a folder of audio")
    return [path for _, path in sorted(found)], sorted(not_audio)


class Undecodable(Exception):
    """A file that gives no audio; its message is the reason."""


def first_line(error):
    """The reason in an error's first line, without soundfile's "Error opening <path>: " (the
    notes name the file), so that files skipped for one reason share it."""
    return re.sub(r"^Error opening .*?: ", "", str(error).split("\n")[0])


def file_info(path):
    """soundfile's view of a file's header, or Undecodable."""
    try:
        return sf.info(os.fsencode(path))  # bytes: a name that is not UTF-8 opens too
    except (RuntimeError, OSError, ValueError) as error:  # LibsndfileError is a RuntimeError
        raise Undecodable(first_line(error)) from None


def decode(path, info, target_rate):
    """The file's samples as int16 [frames, channels] at target_rate, and the frames decoded at
    its own rate. Reads until the data ends, whatever the header states; a read that fails
    part-way keeps what came before it. Undecodable when nothing could be read."""
    direct = info.subtype in INTEGER_SUBTYPES and info.samplerate == target_rate
    blocks, reason = [], None
    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            while True:
                block = f.read(DECODE_BLOCK, dtype="int16" if direct else "float32",
                               always_2d=True)
                if not len(block):
                    break
                blocks.append(block)
    except (RuntimeError, OSError, ValueError) as error:  # damaged data past the header
        reason = first_line(error)
    frames = sum(len(block) for block in blocks)
    if not frames:
        raise Undecodable(reason or "it holds no audio")
    audio = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    if not direct and not np.isfinite(audio).all():  # a float file's NaN would become noise
        raise Undecodable("it holds samples that are not numbers (NaN or infinity)")
    if not direct:
        if info.samplerate != target_rate:
            g = math.gcd(target_rate, info.samplerate)
            audio = resample_poly(np.clip(audio, -1.0, 1.0), target_rate // g,
                                  info.samplerate // g, axis=0)
        audio = to_int16(np.clip(audio, -1.0, 1.0))
    return audio, frames


def _probe(path, sampling_rate, cache_dir):
    """(facts about the file, its cache entry or None) from the cache, or from the file's
    header (then decoded later). Facts: channels, source_rate, stated_frames and, once
    decoded, decoded_frames; "skipped" holds the reason of a file that gives no audio."""
    if cache_dir:
        entry = audio_cache.lookup(cache_dir, audio_cache.source_key(path, sampling_rate))
        if entry is not None:
            return dict(entry.meta, cached=True), entry
    try:
        info = file_info(path)
    except Undecodable as error:
        return {"skipped": str(error)}, None
    return {"channels": info.channels, "source_rate": info.samplerate,
            "stated_frames": info.frames, "info": info}, None


def _check_channels(data_dir, facts):
    """Mono or stereo, not both: a one-line error naming the files otherwise."""
    channels = {path: f["channels"] for path, f in facts.items() if "skipped" not in f}
    for path, count in channels.items():
        if count > 2:
            raise UserError(f"{path} has {count} channels: only mono or stereo audio is "
                            f"supported, mix it down to 1 or 2 channels")
    if len(set(channels.values())) > 1:
        mono = next(p for p, c in channels.items() if c == 1)
        stereo = next(p for p, c in channels.items() if c == 2)
        raise UserError(f"{data_dir} mixes mono ({mono}) and stereo ({stereo}) files: convert "
                        f"them all to mono or all to stereo")


class Loading:
    """One load of a folder: decodes what the cache lacks and stores it there."""

    def __init__(self, sampling_rate, cache_dir, log):
        self.rate, self.cache_dir, self.log = sampling_rate, cache_dir, log

    def store(self, path, samples, facts):
        """Put a decoded file (or the reason it was skipped) in the cache; returns what to
        read its samples from: the cache entry, or the array when there is no cache."""
        if not self.cache_dir:
            return samples
        key = audio_cache.source_key(path, self.rate)
        facts = {k: v for k, v in facts.items() if k != "info"}
        try:
            audio_cache.write_entry(self.cache_dir, key, samples, facts)
        except UserError as error:  # an unwritable cache is slower, not an error
            self.log(f"note: the decode cache is off for this run: {error}")
            self.cache_dir = None
            return samples
        entry = audio_cache.lookup(self.cache_dir, key)
        return samples if entry is None else entry

    def decode(self, path, facts):
        """(facts, what to read the samples from) of a file the cache lacks."""
        try:
            samples, decoded = decode(path, facts["info"], self.rate)
        except Undecodable as error:
            facts, samples = {"skipped": str(error)}, np.zeros((0, 1), np.int16)
        else:
            facts["decoded_frames"] = decoded
        return facts, self.store(path, samples, facts)


def _report(data_dir, facts, strict, log):
    """One note for each skipped or short file (an error with strict); past NAMES_IN_A_NOTE
    files skipped for one reason, one note for the rest of them."""
    if all("skipped" in f for f in facts.values()):
        path, f = next(iter(facts.items()))
        raise UserError(f"none of the {len(facts)} audio files in {data_dir} could be read "
                        f"({path}: {f['skipped']}): add audio that soundfile reads")
    by_reason, grouped = {}, set()
    for path, f in facts.items():
        if "skipped" in f:
            by_reason.setdefault(f["skipped"], []).append(path)
    for reason, paths in by_reason.items():
        if len(paths) > NAMES_IN_A_NOTE and not strict:
            log(f"note: cannot read {len(paths)} files ({reason}): {some(paths)}: skipped")
            grouped.update(paths)
    for path, f in facts.items():
        if path in grouped:
            continue
        if "skipped" in f:
            problem = f"cannot read {path} ({f['skipped']})"
        elif f["decoded_frames"] < f["stated_frames"]:
            missing = f["stated_frames"] - f["decoded_frames"]
            problem = (f"{path} decodes to {f['decoded_frames']} of the {f['stated_frames']} "
                       f"frames its header states ({100 * missing / f['stated_frames']:.2f} % "
                       f"short)")
        else:
            continue
        if strict:
            raise UserError(f"{problem}: --strict refuses it; replace or remove the file, or "
                            f"drop --strict to train on the rest")
        log(f"note: {problem}: " + ("skipped" if "skipped" in f else "used as decoded"))


def load_audio(data_dir, sampling_rate=SAMPLING_RATE, log=note, cache_dir=None, strict=False):
    """Read every audio file under data_dir as int16 at sampling_rate (§7.4, §7.6).

    Channel count (1 or 2) comes from the data; mixing mono and stereo is refused. With
    cache_dir, decoded files are cached there (audio_cache.py) and read from it; without
    it, everything is decoded into memory. strict: a skipped or short file is an error.
    """
    start = time.perf_counter()
    paths, not_audio = list_audio_files(data_dir)
    probed = {path: _probe(path, sampling_rate, cache_dir) for path in paths}
    facts = {path: f for path, (f, _) in probed.items()}
    _check_channels(data_dir, facts)  # before any decoding
    loading, sources, misses = Loading(sampling_rate, cache_dir, log), {}, 0
    for path, (f, entry) in probed.items():
        if not f.get("cached"):
            misses += 1
            if "skipped" in f:
                loading.store(path, np.zeros((0, 1), np.int16), f)
            else:
                f, entry = loading.decode(path, f)
                facts[path] = f
        if "skipped" not in f:
            sources[path] = entry
    _report(data_dir, facts, strict, log)
    if not_audio:
        log(f"skipping {len(not_audio)} entries of {data_dir} that are not audio files: "
            f"{some(not_audio)}")
    channels = next(f["channels"] for f in facts.values() if "skipped" not in f)
    buffer = Segments(list(sources.values()), channels)
    if buffer.shape[0] == 0:
        raise UserError(f"the audio files in {data_dir} hold no samples: add audio")
    _note_resampled(data_dir, {p: facts[p]["source_rate"] for p in sources}, sampling_rate, log)
    if loading.cache_dir:
        audio_cache.prune(loading.cache_dir)
    skipped = [(p, f["skipped"]) for p, f in facts.items() if "skipped" in f]
    short = [(p, f["decoded_frames"], f["stated_frames"]) for p, f in facts.items()
             if "skipped" not in f and f["decoded_frames"] < f["stated_frames"]]
    return AudioData(buffer, sampling_rate, data_dir, list(sources),
                     len({os.path.dirname(p) for p in sources}), skipped, short,
                     loading.cache_dir, len(paths) - misses, misses,
                     time.perf_counter() - start)


def _note_resampled(data_dir, source_rates, sampling_rate, log):
    by_rate = {}
    for path, rate in source_rates.items():
        if rate != sampling_rate:
            by_rate.setdefault(rate, []).append(os.path.relpath(path, data_dir))
    if by_rate:
        log(f"resampled {sum(map(len, by_rate.values()))} files to {sampling_rate} Hz: "
            + "; ".join(f"{some(names)} ({rate} Hz)" for rate, names in sorted(by_rate.items())))


def subset(audio, indices):
    """The AudioData of some of audio's files (by index), read from the same sources."""
    return dataclasses.replace(
        audio, buffer=Segments([audio.buffer.sources[i] for i in indices], audio.channels),
        files=[audio.files[i] for i in indices],
        folders=len({os.path.dirname(audio.files[i]) for i in indices}))


def split_files(audio, fraction, where=None):
    """(training, validation) AudioData of audio: `fraction` of its files (at least one,
    leaving at least one), whole, chosen by a fixed seed so that every run, resume and stage
    of one folder holds out the same files. `where` names the audio in the error."""
    count = len(audio.files)
    if count < 2:
        raise UserError(f"{where or audio.data_dir} holds {count} audio file: "
                        f"--validation_fraction holds out whole files, so it needs two or more")
    held = min(count - 1, max(1, round(fraction * count)))
    chosen = set(np.random.default_rng(0).choice(count, held, replace=False).tolist())
    return (subset(audio, [i for i in range(count) if i not in chosen]),
            subset(audio, sorted(chosen)))


def subset_of_parts(audio, parts):
    """The AudioData of the files of several subsets of audio, in the subsets' order."""
    index = {path: i for i, path in enumerate(audio.files)}
    return subset(audio, [index[path] for part in parts for path in part.files])


MAX_LABELS = 64  # folders a conditional model may be asked to tell apart


def folder_labels(audio, depth=1):
    """(the labels in path order, the label of each file of audio) for --condition folders:
    a file's label is its first `depth` folders under the data folder. A file above that
    depth, a label folder none of whose files could be read, fewer than two labels or more
    than MAX_LABELS are one line."""
    def label_of(path):
        parts = os.path.relpath(path, audio.data_dir).split(os.sep)[:-1]
        return "/".join(parts[:depth]) if len(parts) >= depth else None
    loose = [os.path.relpath(f, audio.data_dir) for f in audio.files if label_of(f) is None]
    if loose:
        raise UserError(f"--condition folders labels each file by its folder{'s' * (depth > 1)}"
                        f" {depth} deep in {audio.data_dir}, but {some(loose)} "
                        f"{'is' if len(loose) == 1 else 'are'} not in one: move "
                        f"{'it' if len(loose) == 1 else 'them'} into a label folder")
    names = sorted({label_of(f) for f in audio.files})
    unread = sorted({label_of(p) for p, _ in audio.skipped} - set(names) - {None})
    if unread:
        raise UserError(f"the label folder {unread[0]} of {audio.data_dir} has no audio that "
                        f"could be read: add audio to it or remove it")
    if not 2 <= len(names) <= MAX_LABELS:
        raise UserError(f"--condition folders found {len(names)} label folder"
                        f"{'s' * (len(names) != 1)} in {audio.data_dir} ({some(names)}): give "
                        f"it 2 to {MAX_LABELS}")
    return names, [names.index(label_of(f)) for f in audio.files]


def label_parts(audio, file_labels, count):
    """The AudioData of each label's files, in label order."""
    return [subset(audio, [i for i, label in enumerate(file_labels) if label == k])
            for k in range(count)]


def summary(audio):
    """One line: what was loaded, from how many folders, what was skipped, the cache."""
    line = (f"{len(audio.files)} files from {audio.folders} folder"
            f"{'s' if audio.folders != 1 else ''} of {audio.data_dir}: {audio.seconds:.1f} s "
            f"at {audio.sampling_rate} Hz, {'stereo' if audio.channels == 2 else 'mono'}")
    if audio.skipped or audio.short:
        line += f"; {len(audio.skipped)} skipped, {len(audio.short)} short"
    if audio.cache_dir:
        line += (f"; decode cache {audio.cache_dir}: {audio.cache_hits} hits, "
                 f"{audio.cache_misses} misses")
    return line + f"; loaded in {audio.load_seconds:.1f} s"


class Windows:
    """The windows of one stage and augmentation level as index arithmetic (§7.6).

    For k = 0..L, offset o_k = k * (window // 10) has ceil((samples - o_k) / window) windows
    starting at o_k + j * window; the last one of each offset is zero-padded at the tail.
    """

    def __init__(self, num_samples, window, augmentation_level=0):
        if num_samples < window:
            raise ValueError("less audio than one window")
        self.window = window
        self.offsets = np.array([k * (window // 10) for k in range(augmentation_level + 1)])
        counts = -(-(num_samples - self.offsets) // window)
        self.first_index = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self):
        return int(self.first_index[-1])

    def starts(self, indices):
        """Start sample of each window index in [0, len)."""
        indices = np.asarray(indices)
        k = np.searchsorted(self.first_index, indices, side="right") - 1
        return self.offsets[k] + (indices - self.first_index[k]) * self.window


def stage_windows(audio, num_blocks, augmentation_level=0):
    """The windows of stage num_blocks over audio, or a one-line error if there is too little."""
    window = window_length(num_blocks)
    if audio.num_samples < window:
        raise UserError(
            f"{audio.data_dir} holds {audio.seconds:.2f} s of audio ({audio.num_samples} samples) "
            f"but a stage {num_blocks} window is {window} samples "
            f"({window / audio.sampling_rate:.2f} s): add audio or use a smaller --num_blocks")
    return Windows(audio.num_samples, window, augmentation_level)


def gather(buffer, starts, window):
    """int16 batch [len(starts), window, channels] from Segments (or one array); zeros past
    the end."""
    if isinstance(buffer, np.ndarray):
        buffer = Segments([buffer], buffer.shape[1])
    batch = np.empty((len(starts), window, buffer.shape[1]), dtype=np.int16)
    for row, start in enumerate(starts):
        buffer.read(int(start), batch[row])
    return batch


def batches(audio, windows, batch_size, seed=None):
    """Endless int16 batches: a new full permutation of all windows every epoch, drop remainder."""
    if len(windows) < batch_size:
        raise UserError(f"{audio.data_dir} gives {len(windows)} windows at this stage but the "
                        f"batch size is {batch_size}: add audio, raise --augmentation_level or "
                        f"lower --batch_size")

    def endless():
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(len(windows))
            for first in range(0, len(order) - batch_size + 1, batch_size):
                yield gather(audio.buffer, windows.starts(order[first:first + batch_size]),
                             windows.window)
    return endless()


def labelled_batches(parts, windows, batch_size, shares, seed=None):
    """Endless (int16 batch, int32 labels) of the labels' audio (parts) and windows: each
    example's label drawn with the labels' shares, then the next window of that label's own
    permutation (a new one each time a label's windows are all used)."""
    def order(count, rng):
        while True:
            yield from rng.permutation(count)
    rng = np.random.default_rng(seed)
    orders = [order(len(w), np.random.default_rng([seed or 0, k])) for k, w in enumerate(windows)]
    channels = parts[0].channels
    while True:
        labels = rng.choice(len(parts), size=batch_size, p=shares)
        batch = np.empty((batch_size, windows[0].window, channels), np.int16)
        for row, k in enumerate(labels):
            parts[k].buffer.read(int(windows[k].starts([next(orders[k])])[0]), batch[row])
        yield batch, labels.astype(np.int32)


def label_shares(windows, balance):
    """The share of each label in training: uniform (1 / labels each) or the data's
    (each label's share of the windows)."""
    counts = np.array([len(w) for w in windows], np.float64)
    return (np.full(len(counts), 1.0 / len(counts)) if balance == "uniform"
            else counts / counts.sum())


def make_dataset(audio, num_blocks, batch_size, augmentation_level=0, seed=None, labelled=None,
                 balance="uniform"):
    """tf.data pipeline of float32 batches [batch, window, channels], prefetched (§7.6);
    with labelled (each label's AudioData), pairs of a batch and its int32 labels, balanced
    as --label_balance says."""
    import tensorflow as tf  # here, so that checking a dataset does not wait for TensorFlow

    if labelled is not None:
        windows = [stage_windows(part, num_blocks, augmentation_level) for part in labelled]
        shares = label_shares(windows, balance)
        signature = (tf.TensorSpec([batch_size, windows[0].window, audio.channels], tf.int16),
                     tf.TensorSpec([batch_size], tf.int32))
        dataset = tf.data.Dataset.from_generator(
            lambda: labelled_batches(labelled, windows, batch_size, shares, seed),
            output_signature=signature)
        dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32) / MAX_INT16, y))
        return dataset.prefetch(tf.data.AUTOTUNE)
    windows = stage_windows(audio, num_blocks, augmentation_level)
    batches(audio, windows, batch_size)  # raises now, not inside TensorFlow, if too few windows
    signature = tf.TensorSpec([batch_size, windows.window, audio.channels], tf.int16)
    dataset = tf.data.Dataset.from_generator(
        lambda: batches(audio, windows, batch_size, seed), output_signature=signature)
    dataset = dataset.map(lambda x: tf.cast(x, tf.float32) / MAX_INT16)
    return dataset.prefetch(tf.data.AUTOTUNE)


def describe(audio, num_blocks, augmentation_level):
    """The facts `python dataloader.py` reports about a dataset at one stage."""
    return {
        "files": len(audio.files),
        "folders": audio.folders,
        "skipped": len(audio.skipped),
        "short": len(audio.short),
        "seconds": round(audio.seconds, 3),
        "sampling_rate": audio.sampling_rate,
        "channels": audio.channels,
        "windows": len(stage_windows(audio, num_blocks, augmentation_level)),
        "audio_bytes": int(audio.buffer.nbytes),
        "from_cache": audio.buffer.from_cache,
        "cache_hits": audio.cache_hits,
        "cache_misses": audio.cache_misses,
        "load_seconds": round(audio.load_seconds, 3),
    }


def load(data, checkpoint_dir, log=note):
    """load_audio as the data flags (config.DataConfig) ask: the decode cache in
    --audio_cache, by default <checkpoint_dir>/audio_cache, or none with --no_audio_cache."""
    cache = None if data.no_audio_cache else (
        data.audio_cache or os.path.join(checkpoint_dir, CACHE_FOLDER))
    return load_audio(data.data_dir, data.sampling_rate, log, cache, data.strict)


CHECK_FLAGS = ("data_dir", "num_blocks", "augmentation_level", "sampling_rate", "audio_cache",
               "no_audio_cache", "strict", "checkpoint_dir", "json")


def make_parser():
    return config.make_parser(
        config.DataCheckConfig, "Check a folder of audio before training: how much audio it "
        "holds and how many windows a stage gets from it.", CHECK_FLAGS,
        positional=("data_dir",))


def main(argv=None):
    check = config.parse(config.DataCheckConfig, argv, make_parser())
    audio = load(check.data, check.checkpoint_dir)
    facts = describe(audio, check.model.num_blocks, check.data.augmentation_level)
    note(summary(audio))
    if check.json:
        print(json.dumps(facts))
    else:
        for key, value in facts.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
