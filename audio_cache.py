"""The decode cache: each audio file's decoded, resampled int16 samples on disk, so that a
restart reads no audio file and decodes nothing (issue: real music libraries).

One entry per source file, named by a hash of its key: the file's absolute path, size,
modification time (ns) and the sampling rate. A changed, added or removed file is decoded
again and nothing else is. An entry is one file:

    b"PAGANPCM" | uint32 little-endian n | n bytes of JSON, space-padded so that the samples
    start on a 64-byte boundary | int16 little-endian samples [frames, channels]

The JSON holds the key, what the loader reports about the file (channels, frames, source
rate, the frames its header stated) and a CRC-32 of the samples. An entry is written to a
temporary file and renamed, so it appears whole or not at all; one whose size disagrees with
its header (cut short by a crash or a full disk) is not trusted and is decoded again. Training
reads an entry's samples from the file on demand (Entry.read, os.preadv into the batch), so
they stay in the page cache, shared by every process that reads them, and not in a
process's own memory; at most MAX_OPEN entry files are open at once, whatever the size of
the library. The first read of an entry in a process checks its samples against their CRC
(about 1 GB/s, spread over the first epoch instead of every start); flipped bytes remove the
entry and stop with one line (Damaged): the next start decodes the file again. NumPy only:
no TensorFlow.
"""

import collections
import hashlib
import json
import os
import struct
import sys
import threading
import time
import zlib

import numpy as np

from utils import UserError, atomic_write

MAGIC = b"PAGANPCM"
VERSION = 2  # of the entry format and of the decoding rules; a new one decodes everything again
ALIGN = 64
SUFFIX = ".pcm"
STALE_TEMP_SECS = 3600  # a temporary file older than this was left by a crash, not a writer
MAX_OPEN = 64  # entry files open at once at most (the usual limit is 1024 descriptors)
CHECK_BLOCK = 1 << 23  # bytes read at a time to check an entry's CRC


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
    about the source file. Returns the entry's path. An entry of the key that another
    process wrote meanwhile (two runs starting on the same library) is kept, not replaced:
    that process reads from it by its inode."""
    samples = np.ascontiguousarray(samples, dtype="<i2")
    meta = dict(info, key=key, frames=int(samples.shape[0]), channels=int(samples.shape[1]),
                crc32=zlib.crc32(samples.data))

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(_header_bytes(meta))
            f.write(samples.data)
    return atomic_write(entry_path(cache_dir, key), write, suffix=SUFFIX + ".tmp",
                        replace=False)


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


class Damaged(UserError):
    """A cache entry whose samples do not match their CRC: removed, decoded at the next
    start."""


class Descriptors:
    """Open entry files by path, at most MAX_OPEN of them: the least recently read one is
    closed to open another. Shared by every Entry of the process (and its threads: the
    tf.data pipeline reads in its own), which remembers the entries it has checked."""

    def __init__(self, limit=MAX_OPEN):
        self.limit, self.open, self.lock = limit, collections.OrderedDict(), threading.Lock()
        self.checked = set()

    def read_into(self, path, inode, view, offset):
        """os.preadv of the file `inode` at path, at offset, into the writable buffer view;
        returns the bytes read. Keyed by inode too: an entry written again under the same
        path is another file."""
        with self.lock:
            fd = self.open.pop((path, inode), None)
            if fd is None:
                if len(self.open) >= self.limit:
                    os.close(self.open.popitem(last=False)[1])
                fd = os.open(path, os.O_RDONLY)
                if os.fstat(fd).st_ino != inode:
                    os.close(fd)
                    raise OSError(f"{path} was written again since it was loaded")
            self.open[(path, inode)] = fd
            return os.preadv(fd, [view], offset)


DESCRIPTORS = Descriptors()


class Entry:
    """The samples of an entry, read from its file on demand without holding it open:
    `meta`, its `frames` x `channels` int16 samples, and read()."""

    def __init__(self, path, meta, offset):
        self.path, self.meta, self.offset = path, meta, offset
        self.frames, self.channels = meta["frames"], meta["channels"]
        self.inode = os.stat(path).st_ino

    def __len__(self):
        return self.frames

    def read(self, first, out):
        """Copy frames first .. first + len(out) into out [n, channels] int16 (C-contiguous);
        the entry's CRC is checked at its first read in the process."""
        if (self.path, self.inode) not in DESCRIPTORS.checked:
            if not checksum_matches(self.path, self.meta, self.offset):
                try:
                    os.remove(self.path)
                except OSError:
                    pass
                raise Damaged(f"the decode cache entry {self.path} of "
                              f"{self.meta['key']['path']} is damaged (its samples do not "
                              f"match their checksum) and was removed: run the same command "
                              f"again, the file is decoded again")
            DESCRIPTORS.checked.add((self.path, self.inode))
        view = memoryview(out).cast("B")
        got = DESCRIPTORS.read_into(self.path, self.inode, view,
                                    self.offset + first * 2 * self.channels)
        if got != len(view):
            raise OSError(f"{self.path} is shorter than its header states")
        if sys.byteorder == "big":
            out.byteswap(inplace=True)


def checksum_matches(path, meta, offset):
    """Whether an entry's samples match the CRC-32 in its header, read CHECK_BLOCK bytes at
    a time."""
    crc = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while block := f.read(CHECK_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc == meta.get("crc32")


def lookup(cache_dir, key):
    """The entry of key, or None: missing, or not whole (then removed, where the cache can
    be written)."""
    path = entry_path(cache_dir, key)
    if not os.path.exists(path):
        return None
    header = read_header(path)
    if header is None or header[0].get("key") != key:
        try:
            os.remove(path)  # cut short by a crash, or damaged: decoded again
        except OSError:
            pass  # a read-only cache: decoded again, in memory
        return None
    return Entry(path, *header)


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
