# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Times, manifests, the catalog's windows, leases and the support matrix."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import types

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import catalog, locking, manifest, matrix, transfer
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    IntegrityError,
    LeaseHeld,
    RepositoryError,
    UnsupportedError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, format_time, parse_time

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def t(text):
    return parse_time(text)


@pytest.mark.parametrize("text,expected", [
    ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z"),
    ("2026-11-25T11:00:00+01:00", "2026-11-25T10:00:00Z"),
    ("2026-11-25T05:30:00-0430", "2026-11-25T10:00:00Z"),
    ("2026-11-25 10:00:00", "2026-11-25T10:00:00Z"),
    ("2026-11-25T10:00", "2026-11-25T10:00:00Z"),
    ("2026-11-25T10:00:00.250Z", "2026-11-25T10:00:00.25Z"),
    ("2026-11-25", "2026-11-25T00:00:00Z"),
])
def test_parse_time(text, expected):
    assert format_time(parse_time(text)) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-25T25:00:00Z", "2026-11-25T10:00:00+25:00", "", None])
def test_parse_time_refuses_malformed(text):
    with pytest.raises(ConfigError) as err:
        parse_time(text, "restore_time")
    assert "restore_time" in str(err.value)


def _manifest(cluster, backup_id, end, engine="postgresql", method="pg-basebackup", labels=None):
    return {
        "backup_id": backup_id, "cluster": cluster, "engine": engine, "method": method, "type": "full",
        "start_time": end, "end_time": end, "objects": [], "labels": labels or {},
    }


def test_backup_ids_sort_by_time():
    early = manifest.new_backup_id("db1", "pg-basebackup", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = manifest.new_backup_id("db1", "pg-basebackup", datetime.datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC))
    assert early == "db1-pg-basebackup-20260102030405"
    assert sorted([late, early]) == [early, late]


@pytest.mark.parametrize("name", ["", "-db", "db/x", "a" * 64, "db name", "../x"])
def test_bad_cluster_names(name):
    with pytest.raises(ConfigError):
        manifest.check_cluster(name)


def test_manifest_is_written_last_and_never_replaced(tmp_path):
    repo = LocalRepo({"path": str(tmp_path)})
    m = _manifest("db1", "db1-pg-basebackup-20261125100000", "2026-11-25T10:00:00Z")
    record = transfer.store_stream(repo, manifest.backup_prefix("db1", m["backup_id"]) + "base.tar", "base.tar", [b"x" * 10], "none")
    manifests, incomplete = catalog.scan_cluster(repo, "db1")
    assert manifests == [] and incomplete[0]["backup_id"] == m["backup_id"] and incomplete[0]["bytes"] == 10
    m["objects"] = [record]
    manifest.write_manifest(repo, m)
    manifests, incomplete = catalog.scan_cluster(repo, "db1")
    assert [x["backup_id"] for x in manifests] == [m["backup_id"]] and incomplete == []
    assert manifests[0]["size"] == 10
    with pytest.raises(RepositoryError):
        manifest.write_manifest(repo, dict(m))


def test_damaged_manifest_is_listed_as_incomplete(tmp_path):
    repo = LocalRepo({"path": str(tmp_path)})
    repo.put_bytes("db1/backups/db1-x-20260101000000/manifest.json", b"{not json")
    manifests, incomplete = catalog.scan_cluster(repo, "db1")
    assert manifests == [] and "not valid JSON" in incomplete[0]["error"]
    with pytest.raises(IntegrityError):
        manifest.parse_manifest(json.dumps({"backup_id": "x"}).encode(), "m")


def test_filters():
    m = _manifest("db1", "a", "2026-11-25T10:00:00Z", labels={"env": "prod"})
    assert catalog.matches(m, engine="postgresql", method="pg-basebackup", labels={"env": "prod"})
    assert not catalog.matches(m, engine="mysql")
    assert not catalog.matches(m, labels={"env": "dev"})
    assert catalog.matches(m, since=t("2026-11-25T10:00:00Z"), until=t("2026-11-25T10:00:00Z"))
    assert not catalog.matches(m, since=t("2026-11-25T10:00:01Z"))
    assert not catalog.matches(m, until=t("2026-11-25T09:59:59Z"))


def test_lease_excludes_a_second_writer_and_expires(tmp_path):
    repo = LocalRepo({"path": str(tmp_path)})
    first = locking.Lease(repo, "db1", "backup db1-x").acquire()
    with pytest.raises(LeaseHeld) as err:
        locking.Lease(repo, "db1", "backup db1-y").acquire()
    assert "backup db1-x" in str(err.value) and "db1/locks/writer.lease" in str(err.value)
    first.renew()
    first.release()
    assert repo.stat("db1/locks/writer.lease") is None
    stale = locking.Lease(repo, "db1", "crashed run", ttl=-1).acquire()
    taker = locking.Lease(repo, "db1", "next run").acquire()
    assert taker.current()["purpose"] == "next run"
    with pytest.raises(LeaseHeld):
        stale.renew()
    stale.release()  # must not remove the new holder's lease
    assert taker.current()["token"] == taker.token
    taker.release()


def test_matrix_never_lacks_a_seed_cell():
    for engine in matrix.ENGINES:
        derived = matrix.features(engine)
        for feature, seeded in matrix.SEED[engine].items():
            if seeded:
                assert derived[feature], "%s lacks %s" % (engine, feature)


def test_matrix_refuses_what_the_seed_does_not_offer():
    for engine, feature in [("redis", "pitr"), ("redis", "log"), ("prometheus", "compression"), ("qdrant", "pitr")]:
        with pytest.raises(UnsupportedError) as err:
            matrix.check_feature(engine, feature)
        assert engine in str(err.value) and "Engines with %s" % feature in str(err.value)
    with pytest.raises(UnsupportedError) as err:
        matrix.check_method("redis", "wal-archive")
    assert "datafile" in str(err.value)
    with pytest.raises(UnsupportedError):
        matrix.check_engine("oracle")


def test_planned_methods_are_refused_until_implemented():
    for engine in matrix.ENGINES:
        for method in matrix.METHODS[engine]:
            if method not in matrix.implemented_methods(engine):
                with pytest.raises(UnsupportedError) as err:
                    matrix.check_method(engine, method)
                assert "not implemented" in str(err.value)


def test_readme_matrix_is_generated_from_the_code():
    readme = open(os.path.join(CHECKOUT, "README.md")).read()
    block = re.search(r"<!-- support-matrix:start -->\n(.*?)<!-- support-matrix:end -->", readme, re.S)
    assert block, "README.md lacks the support-matrix markers"
    assert block.group(1) == matrix.markdown_table(), "README's matrix differs; regenerate it with scripts/gen-matrix"


CORE_MODULES = ("errors", "repository", "repository_s3", "crypto", "transfer", "repoconfig", "manifest", "catalog",
                "locking", "timeutil", "matrix", "repoadmin", "engines")


def test_core_imports_without_ansible():
    """The host command runs the core without Ansible: nothing below the glue may import it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block(object):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ansible' or name.startswith('ansible.'):\n"
        "            raise ImportError('ansible is not importable here: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "for name in %r:\n"
        "    __import__('ansible_collections.dataprotection.databases.plugins.module_utils.' + name)\n"
        "print('ok')\n" % (CORE_MODULES,)
    )
    env = dict(os.environ, PYTHONPATH=os.environ["DP_COLLECTIONS_ROOT"])
    proc = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_a_backup_id_under_which_anything_is_stored_is_never_taken(tmp_path, monkeypatch):
    """Ids name a second: a second backup within it (or leftovers of an interrupted one) waits for the next second."""
    from ansible_collections.dataprotection.databases.plugins.module_utils import backup  # pylint: disable=import-outside-toplevel
    repo = LocalRepo({"path": str(tmp_path)})
    first = t("2026-06-01T10:00:00.400000Z")
    clock = iter([first, t("2026-06-01T10:00:00.900000Z"), t("2026-06-01T10:00:01.010000Z")])
    slept = []
    monkeypatch.setattr(backup, "utcnow", lambda: next(clock))
    monkeypatch.setattr(backup, "time", types.SimpleNamespace(monotonic=lambda: 0.0, sleep=slept.append))
    repo.put_bytes("c1/backups/c1-dump-20260601100000/manifest.json", b"{}")
    assert backup.allocate_backup_id(repo, "c1", "dump") == ("c1-dump-20260601100001", t("2026-06-01T10:00:01.010000Z"))
    assert [round(s, 2) for s in slept] == [0.61, 0.11]
    assert repo.get_bytes("c1/backups/c1-dump-20260601100000/manifest.json") == b"{}"
    # Another method, or another cluster, in the same second is another id.
    monkeypatch.setattr(backup, "utcnow", lambda: first)
    assert backup.allocate_backup_id(repo, "c1", "datafile")[0] == "c1-datafile-20260601100000"
    assert backup.allocate_backup_id(repo, "c2", "dump")[0] == "c2-dump-20260601100000"
    # A clock stuck behind what is stored gives up instead of writing into it.
    monkeypatch.setattr(backup, "time", types.SimpleNamespace(monotonic=iter([0.0, 1.0, 6.0]).__next__, sleep=slept.append))
    with pytest.raises(RepositoryError, match="backup id c1-dump-20260601100000 is taken") as caught:
        backup.allocate_backup_id(repo, "c1", "dump")
    assert "clock" in caught.value.hint


def test_restore_targets_and_their_parents_get_their_modes_under_any_umask(tmp_path):
    """A restore run with root's common umask 077 must still leave the new parents traversable by the server's user."""
    from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles  # pylint: disable=import-outside-toplevel
    os.umask(0o077)  # the test's umask is put back after it (conftest)
    data_dir = tmp_path / "srv" / "restored" / "data"
    with hostfiles.Target(str(data_dir), 0o750):
        (data_dir / "file").write_text("x")
    assert [oct(os.stat(str(p)).st_mode & 0o777) for p in (tmp_path / "srv", tmp_path / "srv" / "restored", data_dir)] == ["0o755", "0o755", "0o750"]
    assert hostfiles.make_dirs(str(data_dir)) == [] and oct(os.stat(str(data_dir)).st_mode & 0o777) == "0o750"
    created = hostfiles.make_dirs(str(tmp_path / "a" / "b"), 0o750)
    assert created == [str(tmp_path / "a"), str(tmp_path / "a" / "b")] and all(os.stat(p).st_mode & 0o777 == 0o750 for p in created)
    # A failed restore removes the directory it created (its new parents stay, as empty directories).
    with pytest.raises(RuntimeError):
        with hostfiles.Target(str(tmp_path / "x" / "data")):
            raise RuntimeError("restore failed")
    assert not (tmp_path / "x" / "data").exists() and (tmp_path / "x").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        hostfiles.make_dirs(str(tmp_path / "file" / "sub"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: directories owned by another user")
def test_which_parent_a_server_user_cannot_search_by_owner_group_and_other_bits():
    import pwd  # pylint: disable=import-outside-toplevel
    import shutil  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel

    from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles  # pylint: disable=import-outside-toplevel
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="dp-reach-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        owned = os.path.join(base, "owned")  # nobody's own, 0700
        os.mkdir(owned)
        os.chown(owned, nobody.pw_uid, 0)
        os.chmod(owned, 0o700)
        grouped = os.path.join(owned, "grouped")  # root's, searchable by nobody's group only
        os.mkdir(grouped)
        os.chown(grouped, 0, nobody.pw_gid)
        os.chmod(grouped, 0o710)
        closed = os.path.join(grouped, "closed")  # root's, 0750 in group root
        os.mkdir(closed)
        os.chmod(closed, 0o750)
        assert hostfiles.unreachable_parent(os.path.join(closed, "data"), nobody)[0] == closed
        assert hostfiles.unreachable_parent(os.path.join(grouped, "new", "data"), nobody) is None
        assert hostfiles.unreachable_parent(os.path.join(closed, "data"), pwd.getpwnam("root")) is None
        os.chmod(owned, 0o600)
        assert hostfiles.unreachable_parent(os.path.join(closed, "data"), nobody)[0] == owned
    finally:
        shutil.rmtree(base)
