"""The decode cache: each audio file's decoded, resampled int16 samples on disk, so that a
restart reads no audio file and decodes nothing (issue: real music libraries).

One entry per source file, named by a hash of its key: the file's absolute path, size,
modification time (ns) and the sampling rate. A changed, added or removed file is decoded
again and nothing else is. An entry is one file:

    b"PAGANPCM" | uint32 little-endian n | n bytes of JSON, space-padded so that the samples
    start on a 64-byte boundary | int16 little-endian samples [frames, channels]

The JSON holds the key and what the loader reports about the file (channels, frames, source
rate, the frames its header stated). An entry is written to a temporary file and renamed, so it
appears whole or not at all; one whose size disagrees with its header (cut short by a crash or
a full disk) is not trusted and is decoded again. Entries are memory-mapped read-only, so the
samples stay in the page cache, shared by every process that maps them, and not in a process's
own memory. NumPy only: no TensorFlow.
"""

import hashlib
import json
import mmap
import os
import struct
import time

import numpy as np

from utils import atomic_write

MAGIC = b"PAGANPCM"
VERSION = 1  # of the entry format and of the decoding rules; a new one decodes everything again
ALIGN = 64
SUFFIX = ".pcm"
STALE_TEMP_SECS = 3600  # a temporary file older than this was left by a crash, not a writer


def source_key(path, sampling_rate):
    """What an entry depends on: (absolute path, size, mtime in ns, sampling rate, version)."""
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sampling_rate": sampling_rate, "version": VERSION}


def entry_path(cache_dir, key):
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return os.path.join(cache_dir, digest + SUFFIX)


def _header_bytes(meta):
    text = json.dumps(meta, sort_keys=True).encode()
    padded = -(-(len(MAGIC) + 4 + len(text)) // ALIGN) * ALIGN - len(MAGIC) - 4
    return MAGIC + struct.pack("<I", padded) + text.ljust(padded)


def write_entry(cache_dir, key, samples, info):
    """Store samples [frames, channels] int16 under key, atomically; info: JSON-able facts
    about the source file. Returns the entry's path."""
    samples = np.ascontiguousarray(samples, dtype="<i2")
    meta = dict(info, key=key, frames=int(samples.shape[0]), channels=int(samples.shape[1]))

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(_header_bytes(meta))
            f.write(samples.data)
    return atomic_write(entry_path(cache_dir, key), write, suffix=SUFFIX + ".tmp")


def read_header(path):
    """(metadata, offset of the samples) of an entry, or None if it is not a whole entry."""
    try:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                return None
            (length,) = struct.unpack("<I", f.read(4))
            meta = json.loads(f.read(length))
            size = os.fstat(f.fileno()).st_size
    except (OSError, ValueError, struct.error):
        return None
    offset = len(MAGIC) + 4 + length
    if not isinstance(meta, dict) or size != offset + 2 * meta.get("frames", -1) * \
            meta.get("channels", -1):
        return None
    return meta, offset


class Mapped:
    """The samples of an entry, memory-mapped read-only: `samples` [frames, channels] int16."""

    def __init__(self, path, meta, offset):
        with open(path, "rb") as f:
            self.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.meta = meta
        self.samples = np.frombuffer(self.mmap, dtype="<i2", offset=offset).reshape(
            meta["frames"], meta["channels"])

    def release(self):
        """Drop this process's mapped pages (they stay in the page cache): a process that has
        read every window keeps only what it reads next."""
        if hasattr(mmap, "MADV_DONTNEED"):
            self.mmap.madvise(mmap.MADV_DONTNEED)


def lookup(cache_dir, key):
    """The entry of key, memory-mapped, or None: missing, or not whole (then removed)."""
    path = entry_path(cache_dir, key)
    if not os.path.exists(path):
        return None
    header = read_header(path)
    if header is None or header[0].get("key") != key:
        os.remove(path)  # cut short by a crash: decoded again
        return None
    return Mapped(path, *header)


def prune(cache_dir):
    """Remove the entries whose source file is gone or changed, and temporary files a crash
    left behind; returns how many files were removed."""
    removed = 0
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return 0
    for name in names:
        path = os.path.join(cache_dir, name)
        if name.endswith(".tmp"):
            try:
                stale = time.time() - os.path.getmtime(path) > STALE_TEMP_SECS
            except OSError:
                continue
        elif name.endswith(SUFFIX):
            header = read_header(path)
            key = header and header[0].get("key")
            try:
                stale = not key or source_key(key["path"], key["sampling_rate"]) != key
            except OSError:  # the source is gone
                stale = True
        else:
            continue
        if stale:
            try:
                os.remove(path)
                removed += 1
            except OSError:
                pass
    return removed
