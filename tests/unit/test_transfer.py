# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Round trips of the streaming data path over every compression x encryption combination."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import subprocess

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import crypto, transfer
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, IntegrityError, KeyRequired
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo

# Larger than one encryption chunk (1 MiB) and one S3 part (5 MiB), half random half compressible.
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17) + b"0123456789abcdef" * (256 * 1024)


@pytest.fixture(scope="module")
def master():
    return crypto.new_encryption_record("correct horse battery staple")[1]


@pytest.fixture
def repo(tmp_path):
    return LocalRepo({"path": str(tmp_path / "repo")})


def _pieces(data, size=100003):
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_round_trip(repo, master, compression, encrypted):
    key = master if encrypted else None
    record = transfer.store_stream(repo, "c/obj", "obj", _pieces(PAYLOAD), compression, None, key)
    assert record["size"] == len(PAYLOAD)
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert record["stored_size"] == repo.stat("c/obj").size
    assert record["encryption"] == ("aes-256-gcm" if encrypted else "none")
    if compression != "none":
        assert record["stored_size"] < len(PAYLOAD)
    out = bytearray()
    assert transfer.copy_object_to(repo, "c/obj", record, out.extend, key) == len(PAYLOAD)
    assert bytes(out) == PAYLOAD
    assert transfer.verify_object(repo, "c/obj", record, key) is None
    stored = open(repo.path_of("c/obj"), "rb").read()
    if encrypted:
        assert stored.startswith(crypto.MAGIC)
        assert PAYLOAD[:4096] not in stored


def test_small_reads_return_the_same_bytes(repo, master):
    record = transfer.store_stream(repo, "c/obj", "obj", [PAYLOAD], "zstd", 3, master)
    got = []
    with transfer.ObjectSource(repo, "c/obj", record, master) as source:
        while True:
            piece = source.read(7777)
            if not piece:
                break
            got.append(piece)
    assert b"".join(got) == PAYLOAD


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_plain_objects_decode_with_standard_tools(repo, compression):
    record = transfer.store_stream(repo, "c/obj", "obj", [PAYLOAD], compression)
    tool = ["zstd", "-dc"] if compression == "zstd" else ["gzip", "-dc"]
    plain = subprocess.run(tool + [repo.path_of("c/obj")], check=True, stdout=subprocess.PIPE).stdout
    assert hashlib.sha256(plain).hexdigest() == record["sha256"]


def test_wrong_key_is_refused_at_unlock():
    record, dummy = crypto.new_encryption_record("right")
    with pytest.raises(crypto.WrongKey) as err:
        crypto.unlock(record, "wrong", "/repo")
    assert "does not match" in str(err.value)
    with pytest.raises(KeyRequired):
        crypto.unlock(record, None, "/repo")
    assert crypto.unlock(record, "right", "/repo") is not None


def test_object_written_with_another_key_fails_authentication(repo, master):
    other = crypto.new_encryption_record("another passphrase")[1]
    record = transfer.store_stream(repo, "c/obj", "obj", [PAYLOAD], "zstd", 3, master)
    with pytest.raises(IntegrityError) as err:
        transfer.copy_object_to(repo, "c/obj", record, lambda data: None, other)
    assert "another key" in str(err.value)


def test_encrypted_object_needs_a_key(repo, master):
    record = transfer.store_stream(repo, "c/obj", "obj", [PAYLOAD], "none", None, master)
    with pytest.raises(KeyRequired):
        transfer.ObjectSource(repo, "c/obj", record, None)


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_flipped_byte_is_detected(repo, master, compression, encrypted):
    key = master if encrypted else None
    record = transfer.store_stream(repo, "c/obj", "obj", [PAYLOAD], compression, None, key)
    path = repo.path_of("c/obj")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    problem = transfer.verify_object(repo, "c/obj", record, key)
    assert problem is not None
    with pytest.raises(IntegrityError):
        transfer.copy_object_to(repo, "c/obj", record, lambda data: None, key)


def test_truncated_encrypted_object_is_detected(repo, master):
    record = transfer.store_stream(repo, "c/obj", "obj", [PAYLOAD], "none", None, master)
    path = repo.path_of("c/obj")
    data = open(path, "rb").read()
    # Cut exactly at a chunk boundary: every remaining chunk authenticates, the final flag is missing.
    cut = crypto.HEADER_LEN + 3 * (4 + crypto.CHUNK_SIZE + crypto.TAG_LEN)
    with open(path, "wb") as handle:
        handle.write(data[:cut])
    with pytest.raises(IntegrityError) as err:
        transfer.copy_object_to(repo, "c/obj", record, lambda data: None, master)
    assert "truncated" in str(err.value)


def test_missing_object_is_reported(repo):
    assert transfer.verify_object(repo, "c/none", {"name": "none", "size": 1, "sha256": "0", "compression": "none", "encryption": "none"}) == "missing"


def test_failed_source_leaves_nothing(repo):
    def source():
        yield PAYLOAD[:1000]
        raise RuntimeError("tool died")

    with pytest.raises(RuntimeError):
        transfer.store_stream(repo, "c/obj", "obj", source(), "zstd")
    assert repo.stat("c/obj") is None
    assert list(repo.list("")) == []
    assert os.listdir(repo.path_of("c")) == []


def test_objects_are_never_replaced(repo):
    transfer.store_stream(repo, "c/obj", "obj", [b"first"], "none")
    with pytest.raises(Exception):
        transfer.store_stream(repo, "c/obj", "obj", [b"second"], "none")
    assert repo.get_bytes("c/obj") == b"first"


@pytest.mark.parametrize("compression,level", [("lz4", None), ("zstd", 0), ("zstd", 23), ("gzip", 10)])
def test_bad_compression_settings(compression, level):
    with pytest.raises(ConfigError):
        transfer.check_compression(compression, level)


def test_object_names():
    assert transfer.object_name("base.tar", "zstd", True) == "base.tar.zst.enc"
    assert transfer.object_name("base.tar", "gzip", False) == "base.tar.gz"
    assert transfer.object_name("base.tar", "none", False) == "base.tar"


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_decoding_memory_is_bounded_on_highly_compressible_data(repo, compression):
    """256 MiB of zeros compress to almost nothing; decoding must still go a chunk at a time."""
    import tracemalloc

    zeros = b"\0" * (8 * 1024 * 1024)
    record = transfer.store_stream(repo, "c/zeros", "zeros", (zeros for dummy in range(32)), compression)
    assert record["stored_size"] < 2 * 1024 * 1024
    tracemalloc.start()
    try:
        with transfer.ObjectSource(repo, "c/zeros", record) as source:
            total = 0
            while True:
                piece = source.read(transfer.CHUNK)
                if not piece:
                    break
                assert len(piece) <= transfer.CHUNK
                total += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 256 * 1024 * 1024
    assert peak < 16 * 1024 * 1024, "decoding held %d bytes at once" % peak
