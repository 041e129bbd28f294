"""The one data loader of all three trainers (report §7.4, §7.6 "data loader", augmentation).

Every audio file of a folder is read into ONE int16 buffer of shape [samples, channels].
A stage's training windows are start offsets into that buffer: window j of augmentation
offset k starts at k * (window // 10) + j * window, so augmentation level 9 costs no more
memory than level 0 (the original appended L shifted float32 copies of the data).
Windows are shuffled every epoch, batched (drop remainder), repeated forever and reach
TensorFlow as float32 = int16 / 32767.

Check a dataset before a long run:
    python dataloader.py data/demo --num_blocks 5 [--augmentation_level L] [--json]
"""

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from utils import (
    MAX_BLOCKS,
    MAX_INT16,
    MIN_BLOCKS,
    ArgumentParser,
    UserError,
    int_in_range,
    run_cli,
    to_int16,
    window_length,
)

MAX_AUGMENTATION_LEVEL = 9
# Extensions taken to be audio: a file with one of these that soundfile cannot read is an
# error (corrupt), any other file is skipped with a note (a README, a cover image...).
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                    ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64"}
# Integer PCM is read straight into the buffer as int16 by libsndfile (which keeps the top
# 16 bits); everything else is decoded as float, clipped to [-1, 1] and scaled by 32767.
INTEGER_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}


def note(message):
    """Loader notes go to stderr, so that `--json` output on stdout stays machine-readable."""
    print(message, file=sys.stderr)


@dataclass
class AudioData:
    """All audio of a folder as one int16 buffer [samples, channels]."""
    buffer: np.ndarray
    sampling_rate: int
    data_dir: str
    files: list = field(default_factory=list)
    load_seconds: float = 0.0

    @property
    def channels(self):
        return self.buffer.shape[1]

    @property
    def num_samples(self):
        return self.buffer.shape[0]

    @property
    def seconds(self):
        return self.num_samples / self.sampling_rate


def list_audio_files(data_dir, log=note):
    """Audio files of a folder (not its subfolders), sorted by name; the rest noted and skipped."""
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} does not exist: put audio files there or point "
                        f"--data_dir at a folder of audio files")
    audio, skipped = [], []
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        if name.startswith(".") or not os.path.isfile(path) \
                or os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
            skipped.append(name + ("/" if os.path.isdir(path) else ""))
        else:
            audio.append(path)
    if skipped:
        log(f"skipping {len(skipped)} entries of {data_dir} that are not audio files: "
            + ", ".join(skipped))
    if not audio:
        raise UserError(f"no audio files in {data_dir}: put .wav/.flac/.ogg files there "
                        f"(subfolders are not read) or point --data_dir at a folder of audio")
    return audio


def _info(path):
    try:
        return sf.info(path)
    except (RuntimeError, OSError, ValueError) as error:  # LibsndfileError is a RuntimeError
        reason = str(error).split("\n")[0]
        raise UserError(f"cannot read {path} ({reason}): replace it with a working audio "
                        f"file or remove it from the folder") from None


def _resampled_length(frames, rate, target_rate):
    """Length resample_poly gives: ceil(frames * up / down) with up/down in lowest terms."""
    g = math.gcd(target_rate, rate)
    return -(-frames * (target_rate // g) // (rate // g))


def _read_into(path, info, out, target_rate):
    """Read one file into out [frames, channels] int16, converting and resampling as needed."""
    direct = info.subtype in INTEGER_SUBTYPES and info.samplerate == target_rate
    try:
        with sf.SoundFile(path) as f:
            if direct:
                got = len(f.read(out=out, dtype="int16", always_2d=True))
            else:
                audio = np.clip(f.read(dtype="float32", always_2d=True), -1.0, 1.0)
                got = len(audio)
    except sf.LibsndfileError as error:  # damaged data past the header, e.g. a truncated FLAC
        reason = str(error).split("\n")[0]
        raise UserError(f"cannot read {path} ({reason}): replace it with a working audio "
                        f"file or remove it from the folder") from None
    # Checked before filling out: a short float read would not fit out (numpy ValueError).
    if got != info.frames:
        raise UserError(f"{path} ends early ({got} of {info.frames} frames could be read): the "
                        f"file is damaged, export it again or remove it")
    if not direct:
        if info.samplerate != target_rate:
            g = math.gcd(target_rate, info.samplerate)
            audio = resample_poly(audio, target_rate // g, info.samplerate // g, axis=0)
        out[:] = to_int16(np.clip(audio, -1.0, 1.0))


def load_audio(data_dir, sampling_rate=16000, log=note):
    """Read every audio file of data_dir into one int16 buffer at sampling_rate (§7.4, §7.6).

    Channel count (1 or 2) comes from the data; mixing mono and stereo is refused.
    """
    start = time.perf_counter()
    paths = list_audio_files(data_dir, log)
    infos = [_info(path) for path in paths]
    for path, info in zip(paths, infos):
        if info.channels > 2:
            raise UserError(f"{path} has {info.channels} channels: only mono or stereo audio is "
                            f"supported, mix it down to 1 or 2 channels")
    channel_counts = {info.channels for info in infos}
    if len(channel_counts) > 1:
        mono = next(p for p, i in zip(paths, infos) if i.channels == 1)
        stereo = next(p for p, i in zip(paths, infos) if i.channels == 2)
        raise UserError(f"{data_dir} mixes mono ({mono}) and stereo ({stereo}) files: convert "
                        f"them all to mono or all to stereo")
    lengths = [_resampled_length(info.frames, info.samplerate, sampling_rate) for info in infos]
    total = sum(lengths)
    if total == 0:
        raise UserError(f"the audio files in {data_dir} hold no samples: add audio")
    buffer = np.empty((total, channel_counts.pop()), dtype=np.int16)
    position = 0
    for path, info, length in zip(paths, infos, lengths):
        _read_into(path, info, buffer[position:position + length], sampling_rate)
        position += length
    resampled = [f"{os.path.basename(p)} ({i.samplerate} Hz)"
                 for p, i in zip(paths, infos) if i.samplerate != sampling_rate]
    if resampled:
        log(f"resampled {len(resampled)} files to {sampling_rate} Hz: " + ", ".join(resampled))
    return AudioData(buffer, sampling_rate, data_dir, paths, time.perf_counter() - start)


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
    """int16 batch [len(starts), window, channels]; samples past the end are zero."""
    batch = np.zeros((len(starts), window, buffer.shape[1]), dtype=np.int16)
    for row, start in enumerate(starts):
        piece = buffer[start:start + window]
        batch[row, :len(piece)] = piece
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


def make_dataset(audio, num_blocks, batch_size, augmentation_level=0, seed=None):
    """tf.data pipeline of float32 batches [batch, window, channels], prefetched (§7.6)."""
    import tensorflow as tf  # here, so that checking a dataset does not wait for TensorFlow

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
        "seconds": round(audio.seconds, 3),
        "sampling_rate": audio.sampling_rate,
        "channels": audio.channels,
        "windows": len(stage_windows(audio, num_blocks, augmentation_level)),
        "bytes_in_memory": int(audio.buffer.nbytes),
        "load_seconds": round(audio.load_seconds, 3),
    }


def main(argv=None):
    parser = ArgumentParser(description="Check a folder of audio before training: how much "
                            "audio it holds and how many windows a stage gets from it.")
    parser.add_argument("data_dir", help="folder of audio files (any format soundfile reads)")
    parser.add_argument("--num_blocks", type=int_in_range(MIN_BLOCKS, MAX_BLOCKS), default=5,
                        help="stage: window of 2^(4+2N) samples")
    parser.add_argument("--augmentation_level", type=int_in_range(0, MAX_AUGMENTATION_LEVEL),
                        default=0, help="also take windows offset by k*window/10, k = 1..L")
    parser.add_argument("--sampling_rate", type=int_in_range(1, 1_000_000), default=16000,
                        help="audio at other rates is resampled to this")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    audio = load_audio(args.data_dir, args.sampling_rate)
    facts = describe(audio, args.num_blocks, args.augmentation_level)
    if args.json:
        print(json.dumps(facts))
    else:
        for key, value in facts.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
