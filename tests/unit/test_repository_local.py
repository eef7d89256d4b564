# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository contract, checked on every backend, and LocalRepo specifics.

The contract tests run on a local directory, on an S3 bucket (the S3 test
server, see harness/s3server.py) and on an S3 bucket with a prefix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    NotARepository,
    ObjectExists,
    ObjectNotFound,
    RepositoryError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import (
    LocalRepo,
    open_repo,
)

BACKENDS = ["local", "s3", "s3-prefix"]


def _local_repo(tmp_path):
    repo = LocalRepo({"type": "local", "path": str(tmp_path / "repo")})
    repo.create_location()
    return repo


@pytest.fixture(params=BACKENDS)
def repo(request, tmp_path):
    if request.param == "local":
        backend = _local_repo(tmp_path)
    else:
        server = request.getfixturevalue("s3_server")
        prefix = "team/db-repo" if request.param == "s3-prefix" else ""
        backend = open_repo(server.repo_spec(server.make_bucket(), prefix=prefix, part_size_mb=5, max_concurrency=3))
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(params=BACKENDS)
def missing_repo(request, tmp_path):
    """A backend whose location does not exist."""
    if request.param == "local":
        backend = LocalRepo({"type": "local", "path": str(tmp_path / "absent")})
    else:
        server = request.getfixturevalue("s3_server")
        prefix = "team/db-repo" if request.param == "s3-prefix" else ""
        backend = open_repo(server.repo_spec(server.unique_bucket_name(), prefix=prefix))
    try:
        yield backend
    finally:
        backend.close()


def _keys(repo, prefix=""):
    return sorted(info.key for info in repo.list(prefix))


# ---------------------------------------------------------------------------
# Contract


def test_write_read_roundtrip(repo):
    data = os.urandom(300 * 1024)
    with repo.open_write("c/backups/b1/data.zst") as writer:
        for start in range(0, len(data), 7000):
            writer.write(data[start:start + 7000])
    assert writer.size == len(data)
    assert repo.get_bytes("c/backups/b1/data.zst") == data
    info = repo.stat("c/backups/b1/data.zst")
    assert info.key == "c/backups/b1/data.zst"
    assert info.size == len(data)
    assert isinstance(info.mtime, float) and info.mtime > 0


def test_empty_object(repo):
    repo.put_bytes("empty", b"")
    assert repo.get_bytes("empty") == b""
    assert repo.stat("empty").size == 0


def test_read_returns_exact_sizes(repo):
    data = bytes(bytearray(range(256))) * 1000
    repo.put_bytes("k", data)
    handle = repo.open_read("k")
    try:
        assert handle.read(10) == data[:10]
        assert handle.read(100000) == data[10:100010]
        assert handle.read() == data[100010:]
        assert handle.read(5) == b""
    finally:
        handle.close()


def test_missing_object(repo):
    with pytest.raises(ObjectNotFound):
        repo.open_read("nope/x")
    assert repo.stat("nope/x") is None
    assert not repo.exists("nope/x")


def test_overwrite(repo):
    repo.put_bytes("a/k", b"one")
    repo.put_bytes("a/k", b"two")
    assert repo.get_bytes("a/k") == b"two"


def test_no_clobber(repo):
    repo.put_bytes("a/k", b"first", overwrite=False)
    with pytest.raises(ObjectExists):
        repo.put_bytes("a/k", b"second", overwrite=False)
    assert repo.get_bytes("a/k") == b"first"
    assert _keys(repo) == ["a/k"]


def test_put_if_absent(repo):
    assert repo.put_if_absent("c/locks/writer", b"owner-1") is True
    assert repo.put_if_absent("c/locks/writer", b"owner-2") is False
    assert repo.get_bytes("c/locks/writer") == b"owner-1"
    repo.delete("c/locks/writer")
    assert repo.put_if_absent("c/locks/writer", b"owner-2") is True


def test_abort_leaves_nothing(repo):
    writer = repo.open_write("c/x")
    writer.write(b"partial data")
    writer.abort()
    assert repo.stat("c/x") is None
    assert _keys(repo) == []


def test_exception_in_block_leaves_nothing(repo):
    with pytest.raises(RuntimeError):
        with repo.open_write("c/x") as writer:
            writer.write(b"partial data")
            raise RuntimeError("source failed")
    assert repo.stat("c/x") is None
    assert _keys(repo) == []


def test_list(repo):
    for key in ("c1/backups/b1/manifest.json", "c1/backups/b1/data", "c1/backups/b2/data", "c1/logs/wal/000001", "c2/x", "top"):
        repo.put_bytes(key, key.encode("ascii"))
    assert _keys(repo) == sorted(
        ["c1/backups/b1/data", "c1/backups/b1/manifest.json", "c1/backups/b2/data", "c1/logs/wal/000001", "c2/x", "top"]
    )
    assert _keys(repo, "c1/backups/") == ["c1/backups/b1/data", "c1/backups/b1/manifest.json", "c1/backups/b2/data"]
    # A prefix may end inside a name.
    assert _keys(repo, "c1/backups/b") == ["c1/backups/b1/data", "c1/backups/b1/manifest.json", "c1/backups/b2/data"]
    assert _keys(repo, "c1/backups/b1/m") == ["c1/backups/b1/manifest.json"]
    assert _keys(repo, "c3/") == []
    sizes = dict((info.key, info.size) for info in repo.list("c2/"))
    assert sizes == {"c2/x": len(b"c2/x")}


def test_list_dirs(repo):
    for key in ("c1/backups/b1/data", "c1/backups/b2/data", "c1/logs/wal/1", "c2/x", "top"):
        repo.put_bytes(key, b"x")
    assert repo.list_dirs("") == ["c1", "c2"]
    assert repo.list_dirs("c1") == ["backups", "logs"]
    assert repo.list_dirs("c1/") == ["backups", "logs"]
    assert repo.list_dirs("c1/backups") == ["b1", "b2"]
    assert repo.list_dirs("c1/backups/b1") == []
    assert repo.list_dirs("nothing/here") == []


def test_delete(repo):
    repo.put_bytes("a/b/c", b"x")
    repo.put_bytes("a/d", b"y")
    repo.delete("a/b/c")
    repo.delete("a/b/c")  # missing is fine
    assert repo.stat("a/b/c") is None
    assert _keys(repo) == ["a/d"]
    assert repo.list_dirs("a") == []


def test_delete_many_and_prefix(repo):
    keys = ["c/backups/b1/%03d" % number for number in range(25)] + ["c/backups/b2/x"]
    for key in keys:
        repo.put_bytes(key, b"x")
    assert repo.delete_many(keys[:10] + ["c/not/there"]) == 11
    assert len(_keys(repo)) == 16
    assert repo.delete_prefix("c/backups/b1/") == 15
    assert _keys(repo) == ["c/backups/b2/x"]


def test_invalid_keys(repo):
    for key in ("", "/abs", "dir/", "a/../b", "a//b", "./a"):
        with pytest.raises(ConfigError):
            repo.open_write(key)


def test_location_exists(repo):
    assert repo.location_exists() is True
    repo.create_location()  # idempotent
    assert repo.location_exists() is True


def test_missing_location(missing_repo):
    assert missing_repo.location_exists() is False
    with pytest.raises(RepositoryError):
        list(missing_repo.list())
    missing_repo.create_location()
    assert missing_repo.location_exists() is True
    missing_repo.put_bytes("a/b", b"x")
    assert _keys(missing_repo) == ["a/b"]


def test_describe_and_location(repo):
    described = repo.describe()
    assert described["type"] == repo.type
    assert repo.location()


# ---------------------------------------------------------------------------
# LocalRepo specifics


def test_local_temporary_files_are_invisible(tmp_path):
    repo = _local_repo(tmp_path)
    writer = repo.open_write("a/k")
    writer.write(b"x")
    assert _keys(repo) == []
    assert repo.list_dirs("") == ["a"]
    writer.commit()
    assert _keys(repo) == ["a/k"]


def test_local_relative_path_refused():
    with pytest.raises(ConfigError):
        LocalRepo({"type": "local", "path": "relative/dir"})


def test_local_path_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x")
    repo = LocalRepo({"type": "local", "path": str(path)})
    with pytest.raises(NotARepository):
        repo.location_exists()


def test_local_describe(tmp_path):
    repo = _local_repo(tmp_path)
    assert repo.describe() == {"type": "local", "path": str(tmp_path / "repo")}
    assert repo.location() == str(tmp_path / "repo")


def test_open_repo_unknown_type():
    with pytest.raises(ConfigError):
        open_repo({"type": "ftp"})
