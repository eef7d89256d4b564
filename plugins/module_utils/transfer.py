# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The streaming data path.

Storing:   source -> sha256 (plain bytes) -> compress -> encrypt -> repository writer
Loading:   repository reader -> decrypt -> decompress -> sha256 check -> sink

Nothing is staged on local disk; memory is bounded by a few chunks (plus the
repository writer's in-flight parts).  The sha256 and size recorded for an
object are those of the plain bytes, so a restore done by hand
(``zstd -d | sha256sum``) can be checked against the manifest.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import traceback
import zlib

from ansible_collections.dataprotection.databases.plugins.module_utils.crypto import ChunkDecryptor, ChunkEncryptor, ALGORITHM
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    DataProtectionError,
    IntegrityError,
    KeyRequired,
    MissingDependency,
)

try:
    import zstandard

    HAS_ZSTANDARD = True
    ZSTANDARD_IMPORT_ERROR = None
except ImportError:
    HAS_ZSTANDARD = False
    ZSTANDARD_IMPORT_ERROR = traceback.format_exc()

COMPRESSIONS = ("zstd", "gzip", "none")
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": None}
LEVEL_RANGES = {"zstd": (1, 22), "gzip": (1, 9)}
CHUNK = 1024 * 1024


def require_zstandard():
    if not HAS_ZSTANDARD:
        raise MissingDependency(
            "the Python library 'zstandard' is required for zstd compression",
            hint="Install it on the host that runs the task (pip install zstandard), or set compression: gzip",
            traceback=ZSTANDARD_IMPORT_ERROR,
        )


def check_compression(compression, level=None):
    """Validate a compression choice; return (compression, level)."""
    if compression not in COMPRESSIONS:
        raise ConfigError(
            "unknown compression %r" % compression,
            hint="Use one of: %s" % ", ".join(COMPRESSIONS),
        )
    if compression == "none":
        return compression, None
    if level is None:
        level = DEFAULT_LEVELS[compression]
    low, high = LEVEL_RANGES[compression]
    if not low <= int(level) <= high:
        raise ConfigError(
            "compression_level %s is out of range for %s" % (level, compression),
            hint="Use a level from %d to %d" % (low, high),
        )
    if compression == "zstd":
        require_zstandard()
    return compression, int(level)


def object_name(base, compression, encrypted):
    """File name of a stored object: ``base`` + compression and encryption suffixes."""
    return base + EXTENSIONS[compression] + (".enc" if encrypted else "")


class _Identity(object):
    @staticmethod
    def compress(data):
        return data

    @staticmethod
    def flush():
        return b""


def _compressor(compression, level, threads):
    if compression == "zstd":
        require_zstandard()
        params = {"level": level}
        if threads:
            params["threads"] = threads
        return zstandard.ZstdCompressor(**params).compressobj(size=-1)
    if compression == "gzip":
        return zlib.compressobj(level, zlib.DEFLATED, 31)
    return _Identity()


class ObjectSink(object):
    """File-like writer that stores what is written as one repository object.

    ``write`` plain bytes; ``commit`` seals the object and returns its record
    (the dict kept in the manifest); ``abort`` leaves nothing behind.
    """

    def __init__(self, repo, key, name, compression="zstd", level=None, master_key=None, threads=-1, overwrite=False):
        compression, level = check_compression(compression, level)
        self.key = key
        self.record = {
            "name": name,
            "size": 0,
            "stored_size": 0,
            "sha256": None,
            "compression": compression,
            "compression_level": level,
            "encryption": ALGORITHM if master_key else "none",
        }
        self.hash = hashlib.sha256()
        self.compressor = _compressor(compression, level, threads)
        self.encryptor = ChunkEncryptor(master_key) if master_key else None
        self.writer = repo.open_write(key, overwrite=overwrite)
        self.done = False

    def _emit(self, data):
        if self.encryptor is not None and data:
            data = self.encryptor.update(data)
        if data:
            self.writer.write(data)

    def write(self, data):
        if not data:
            return 0
        try:
            self.hash.update(data)
            self.record["size"] += len(data)
            self._emit(self.compressor.compress(data))
        except Exception:
            self.abort()
            raise
        return len(data)

    def commit(self):
        if self.done:
            return self.record
        try:
            self._emit(self.compressor.flush())
            if self.encryptor is not None:
                self.writer.write(self.encryptor.finalize())
            self.writer.commit()
        except Exception:
            self.abort()
            raise
        self.done = True
        self.record["sha256"] = self.hash.hexdigest()
        self.record["stored_size"] = self.writer.size
        return self.record

    def abort(self):
        if self.done:
            return
        self.done = True
        self.writer.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def store_stream(repo, key, name, source, compression="zstd", level=None, master_key=None, threads=-1, chunk=CHUNK):
    """Store everything ``source`` yields (a file-like ``read`` or an iterable of bytes)."""
    sink = ObjectSink(repo, key, name, compression, level, master_key, threads)
    with sink:
        if hasattr(source, "read"):
            while True:
                data = source.read(chunk)
                if not data:
                    break
                sink.write(data)
        else:
            for data in source:
                sink.write(data)
    return sink.record


def store_bytes(repo, key, name, data, compression="zstd", level=None, master_key=None):
    return store_stream(repo, key, name, [data], compression, level, master_key, threads=0)


class _Stored(object):
    """An object's stored bytes, decrypted: file-like ``read(n)`` with bounded buffering."""

    def __init__(self, handle, decryptor, chunk):
        self.handle = handle
        self.decryptor = decryptor
        self.chunk = chunk
        self.pending = bytearray()
        self.eof = False
        self.stored = 0

    def read(self, size=-1):
        if size is None or size < 0:
            size = self.chunk
        while len(self.pending) < size and not self.eof:
            raw = self.handle.read(self.chunk)
            if not raw:
                if self.decryptor is not None:
                    self.pending += self.decryptor.finalize()
                self.eof = True
                break
            self.stored += len(raw)
            self.pending += self.decryptor.update(raw) if self.decryptor is not None else raw
        data = bytes(self.pending[:size])
        del self.pending[:size]
        return data


class _PlainReader(object):
    """Decompresses a stored stream into pieces of at most ``chunk`` bytes.

    The bound matters: database files hold long runs of zeros, which compress
    a thousandfold, so decompressing whatever one read returns could take
    gigabytes of memory.
    """

    def __init__(self, stored, compression, chunk):
        self.stored = stored
        self.compression = compression
        self.chunk = chunk
        self.zlib = None
        self.zstd = None
        if compression == "zstd":
            require_zstandard()
            self.zstd = zstandard.ZstdDecompressor().stream_reader(stored, read_size=chunk, read_across_frames=True)
        elif compression == "gzip":
            self.zlib = zlib.decompressobj(47)
        elif compression != "none":
            raise IntegrityError("unknown compression %r recorded for an object" % compression)

    def next(self):
        """The next piece of plain bytes; b"" at the end."""
        if self.zstd is not None:
            return self.zstd.read(self.chunk)
        if self.zlib is None:
            return self.stored.read(self.chunk)
        while True:
            data = self.zlib.unconsumed_tail or self.stored.read(self.chunk)
            if not data:
                return self.zlib.flush()
            out = self.zlib.decompress(data, self.chunk)
            if self.zlib.eof and self.zlib.unused_data:
                # Concatenated gzip members decode one after the other, as gzip -d does.
                rest = self.zlib.unused_data
                self.zlib = zlib.decompressobj(47)
                out += self.zlib.decompress(rest, self.chunk)
            if out:
                return out


class ObjectSource(object):
    """File-like reader of an object's plain bytes, with bounded memory.

    Size and sha256 are checked when the end is reached; a mismatch raises
    IntegrityError naming the object.  Call ``drain`` to read to the end when
    a consumer may stop early (e.g. tar stops at its end-of-archive blocks).
    """

    def __init__(self, repo, key, record, master_key=None, chunk=CHUNK):
        self.key = key
        self.record = record
        encrypted = record.get("encryption", "none") != "none"
        if encrypted and master_key is None:
            raise KeyRequired(
                "object %s is encrypted and no key was given" % key,
                hint="Set repo.encryption_key to the repository's passphrase",
            )
        decryptor = ChunkDecryptor(master_key, key) if encrypted else None
        self.handle = repo.open_read(key)
        self.stored = _Stored(self.handle, decryptor, chunk)
        self.plain = _PlainReader(self.stored, record.get("compression", "none"), chunk)
        self.hash = hashlib.sha256()
        self.size = 0
        self.buffer = bytearray()
        self.eof = False
        self.chunk = chunk

    def _fill(self):
        try:
            piece = self.plain.next()
        except (zlib.error, ValueError) as exc:
            raise IntegrityError("%s cannot be decompressed: %s" % (self.key, exc))
        except IntegrityError:
            raise
        except Exception as exc:  # zstandard.ZstdError is not importable without the library
            if HAS_ZSTANDARD and isinstance(exc, zstandard.ZstdError):
                raise IntegrityError("%s cannot be decompressed: %s" % (self.key, exc))
            raise
        if not piece:
            # The stored stream must be fully consumed (and, encrypted, end with its final chunk).
            if self.stored.read(1) or not self.stored.eof:
                raise IntegrityError("%s has bytes after the end of its compressed data" % self.key)
            self.eof = True
            self._verify()
            return
        self.hash.update(piece)
        self.size += len(piece)
        self.buffer += piece

    def _verify(self):
        expected_size = self.record.get("size")
        if expected_size is not None and expected_size != self.size:
            raise IntegrityError(
                "%s has %d bytes once decoded, the manifest records %d" % (self.key, self.size, expected_size)
            )
        expected = self.record.get("sha256")
        if expected and expected != self.hash.hexdigest():
            raise IntegrityError("%s does not match its recorded sha256" % self.key)

    def read(self, size=-1):
        while not self.eof and (size is None or size < 0 or len(self.buffer) < size):
            self._fill()
        if size is None or size < 0 or size >= len(self.buffer):
            data = bytes(self.buffer)
            self.buffer = bytearray()
        else:
            data = bytes(self.buffer[:size])
            del self.buffer[:size]
        return data

    def readinto(self, target):
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)

    def drain(self):
        """Read (and check) whatever remains; return the number of bytes discarded."""
        dropped = 0
        while True:
            data = self.read(self.chunk)
            if not data:
                return dropped
            dropped += len(data)

    def close(self):
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


def copy_object_to(repo, key, record, sink_write, master_key=None):
    """Stream an object's plain bytes into ``sink_write``; return the plain size."""
    with ObjectSource(repo, key, record, master_key) as source:
        while True:
            data = source.read(CHUNK)
            if not data:
                return source.size
            sink_write(data)


def verify_object(repo, key, record, master_key=None):
    """Re-read an object and check size and sha256; return a problem string or None."""
    try:
        info = repo.stat(key)
        if info is None:
            return "missing"
        if record.get("stored_size") is not None and info.size != record["stored_size"]:
            return "stored size is %d bytes, the manifest records %d" % (info.size, record["stored_size"])
        copy_object_to(repo, key, record, lambda data: None, master_key)
    except IntegrityError as exc:
        return str(exc)
    except DataProtectionError as exc:
        return "unreadable: %s" % exc
    return None
