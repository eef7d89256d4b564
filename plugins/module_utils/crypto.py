# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encryption of stored objects: AES-256-GCM in authenticated chunks.

The user gives a passphrase (``repo.encryption_key``).  A 256-bit master key is
derived from it with scrypt and a random salt kept in the repository's
``dataprotection.json``, together with a key-check value (an HMAC of a fixed
label under the master key).  The passphrase and the keys never enter the
repository; the check value lets a wrong passphrase be refused before any
object is read or written.

Object format (all integers big-endian)::

    header   = b"DPGCM1" || salt (16 random bytes)
    obj_key  = HKDF-SHA256(master, salt=salt, info=b"dataprotection.databases object v1")
    chunk_i  = length (4 bytes; high bit set on the last chunk) || AES-GCM(obj_key, nonce_i, plain_i, aad_i)
    nonce_i  = 4 zero bytes || i (8 bytes)
    aad_i    = header || i (8 bytes) || final flag (1 byte)

Every object ends with exactly one chunk flagged final (possibly empty), so a
truncated object, reordered chunks or appended bytes all fail authentication.
Each object has its own key (random salt), so counters never repeat a nonce
under one key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import os
import struct
import traceback

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    EncryptionError,
    IntegrityError,
    KeyRequired,
    MissingDependency,
    WrongKey,
)

_LIBRARY = {}


def _library():
    """The cryptography primitives, imported on first use.

    Importing cryptography takes longer than everything else an
    archive_command does; repositories without encryption never need it.
    """
    if not _LIBRARY:
        try:
            from cryptography.exceptions import InvalidTag  # pylint: disable=import-outside-toplevel
            from cryptography.hazmat.primitives import hashes  # pylint: disable=import-outside-toplevel
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # pylint: disable=import-outside-toplevel
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # pylint: disable=import-outside-toplevel
            from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise MissingDependency(
                "the Python library 'cryptography' is required for encrypted repositories",
                hint="Install it on the host that runs the task (pip install cryptography)",
                traceback=traceback.format_exc(),
            )
        _LIBRARY.update(InvalidTag=InvalidTag, hashes=hashes, AESGCM=AESGCM, HKDF=HKDF, Scrypt=Scrypt)
    return _LIBRARY


def cryptography_missing():
    """None when cryptography can be imported, else the import traceback."""
    try:
        _library()
    except MissingDependency as exc:
        return exc.details.get("traceback") or str(exc)
    return None


MAGIC = b"DPGCM1"
SALT_LEN = 16
HEADER_LEN = len(MAGIC) + SALT_LEN
TAG_LEN = 16
CHUNK_SIZE = 1024 * 1024
FINAL_FLAG = 0x80000000
ALGORITHM = "aes-256-gcm"
KDF_DEFAULTS = {"name": "scrypt", "n": 2 ** 15, "r": 8, "p": 1}
CHECK_LABEL = b"dataprotection.databases key check v1"
OBJECT_INFO = b"dataprotection.databases object v1"


def require_cryptography():
    return _library()


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text):
    return base64.b64decode(text.encode("ascii"))


def derive_master_key(passphrase, salt, kdf):
    lib = require_cryptography()
    if kdf.get("name") != "scrypt":
        raise EncryptionError("unknown key derivation %r in the repository" % kdf.get("name"))
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    return lib["Scrypt"](salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])).derive(passphrase)


def key_check_value(master_key):
    return hmac.new(master_key, CHECK_LABEL, hashlib.sha256).hexdigest()


def new_encryption_record(passphrase):
    """Return (record for dataprotection.json, master key) for a new repository."""
    salt = os.urandom(16)
    kdf = dict(KDF_DEFAULTS)
    master = derive_master_key(passphrase, salt, kdf)
    record = {
        "algorithm": ALGORITHM,
        "chunk_size": CHUNK_SIZE,
        "kdf": dict(kdf, salt=_b64(salt)),
        "key_check": key_check_value(master),
    }
    return record, master


def unlock(record, passphrase, location):
    """Return the master key for a repository's encryption record, or None.

    ``record`` is the ``encryption`` entry of dataprotection.json (None when
    the repository is not encrypted).
    """
    if not record:
        if passphrase:
            raise EncryptionError(
                "repository %s was created without encryption, but repo.encryption_key was given" % location,
                hint="Remove repo.encryption_key, or create a new repository with encryption",
            )
        return None
    if not passphrase:
        raise KeyRequired(
            "repository %s is encrypted and no repo.encryption_key was given" % location,
            hint="Set repo.encryption_key (or the DATAPROTECTION_ENCRYPTION_KEY environment variable) to the repository's passphrase",
        )
    kdf = record.get("kdf") or {}
    master = derive_master_key(passphrase, _unb64(kdf["salt"]), kdf)
    if not hmac.compare_digest(key_check_value(master), record.get("key_check", "")):
        raise WrongKey(
            "repo.encryption_key does not match repository %s" % location,
            hint="Use the passphrase the repository was created with; nothing was read or written",
        )
    return master


def _object_key(master, salt):
    lib = require_cryptography()
    return lib["HKDF"](algorithm=lib["hashes"].SHA256(), length=32, salt=salt, info=OBJECT_INFO).derive(master)


def _nonce(counter):
    return b"\x00\x00\x00\x00" + struct.pack(">Q", counter)


def _aad(header, counter, final):
    return header + struct.pack(">QB", counter, 1 if final else 0)


class ChunkEncryptor(object):
    """Streaming encryptor: ``update`` and ``finalize`` return ciphertext bytes."""

    def __init__(self, master, chunk_size=CHUNK_SIZE):
        lib = require_cryptography()
        salt = os.urandom(SALT_LEN)
        self.header = MAGIC + salt
        self.aead = lib["AESGCM"](_object_key(master, salt))
        self.chunk_size = chunk_size
        self.counter = 0
        self.buffer = bytearray()
        self.started = False
        self.finished = False

    def _seal(self, plain, final):
        sealed = self.aead.encrypt(_nonce(self.counter), bytes(plain), _aad(self.header, self.counter, final))
        self.counter += 1
        length = len(sealed) | (FINAL_FLAG if final else 0)
        return struct.pack(">I", length) + sealed

    def update(self, data):
        out = []
        if not self.started:
            out.append(self.header)
            self.started = True
        self.buffer += data
        # Keep at least one byte back: the last chunk must be sealed as final.
        while len(self.buffer) > self.chunk_size:
            out.append(self._seal(self.buffer[:self.chunk_size], False))
            del self.buffer[:self.chunk_size]
        return b"".join(out)

    def finalize(self):
        if self.finished:
            return b""
        out = [] if self.started else [self.header]
        self.started = True
        out.append(self._seal(self.buffer, True))
        self.buffer = bytearray()
        self.finished = True
        return b"".join(out)


class ChunkDecryptor(object):
    """Streaming decryptor: ``update`` returns plain bytes; ``finalize`` checks the end."""

    def __init__(self, master, name="object"):
        self.lib = require_cryptography()
        self.master = master
        self.name = name
        self.header = None
        self.aead = None
        self.counter = 0
        self.buffer = bytearray()
        self.finished = False

    def update(self, data):
        self.buffer += data
        out = []
        if self.header is None:
            if len(self.buffer) < HEADER_LEN:
                return b""
            header = bytes(self.buffer[:HEADER_LEN])
            if not header.startswith(MAGIC):
                raise IntegrityError("%s is not an encrypted object of this format (bad header)" % self.name)
            self.header = header
            self.aead = self.lib["AESGCM"](_object_key(self.master, header[len(MAGIC):]))
            del self.buffer[:HEADER_LEN]
        while len(self.buffer) >= 4:
            if self.finished:
                raise IntegrityError("%s has bytes after its final chunk" % self.name)
            (length,) = struct.unpack(">I", bytes(self.buffer[:4]))
            final = bool(length & FINAL_FLAG)
            length &= ~FINAL_FLAG
            if length < TAG_LEN or length > CHUNK_SIZE * 64 + TAG_LEN:
                raise IntegrityError("%s has a corrupt chunk length at chunk %d" % (self.name, self.counter))
            if len(self.buffer) < 4 + length:
                break
            sealed = bytes(self.buffer[4:4 + length])
            del self.buffer[:4 + length]
            try:
                plain = self.aead.decrypt(_nonce(self.counter), sealed, _aad(self.header, self.counter, final))
            except self.lib["InvalidTag"]:
                raise IntegrityError(
                    "%s failed authentication at chunk %d: it is damaged or was written with another key" % (self.name, self.counter)
                )
            self.counter += 1
            out.append(plain)
            if final:
                self.finished = True
        if self.finished and self.buffer:
            raise IntegrityError("%s has bytes after its final chunk" % self.name)
        return b"".join(out)

    def finalize(self):
        if not self.finished:
            raise IntegrityError("%s is truncated: its final chunk is missing" % self.name)
        return b""
