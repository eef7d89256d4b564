# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_repo and backup_info through real ansible-playbook runs on local repositories.

The sequence follows the model collections: check mode reports the change and
writes nothing, the real run makes it, the re-run reports no change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

from harness.playbook import run_tasks

from ansible_collections.dataprotection.databases.plugins.module_utils import manifest, transfer
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository

SECRET = "n0t-in-any-log-7f3a"


def repo_task(path, register, **options):
    spec = {"repo": dict({"type": "local", "path": path}, **options.pop("repo", {}))}
    spec.update(options)
    return {"name": register, "dataprotection.databases.backup_repo": spec, "register": register}


def info_task(path, register, **options):
    spec = {"repo": dict({"type": "local", "path": path}, **options.pop("repo", {}))}
    spec.update(options)
    return {"name": register, "dataprotection.databases.backup_info": spec, "register": register}


def add_backup(spec, cluster="db1", when="20261125100000", payload=b"payload " * 100000, key=None):
    """Store a backup the way engines do: payload objects, then the manifest."""
    with open_repository(spec) as repository:
        backup_id = "%s-pg-basebackup-%s" % (cluster, when)
        prefix = manifest.backup_prefix(cluster, backup_id)
        record = transfer.store_stream(repository.repo, prefix + "base.tar.zst" + (".enc" if repository.encrypted else ""),
                                       "base.tar.zst" + (".enc" if repository.encrypted else ""), [payload], "zstd", 3, repository.master_key)
        end = "%s-%s-%sT%s:%s:%sZ" % (when[:4], when[4:6], when[6:8], when[8:10], when[10:12], when[12:14])
        manifest.write_manifest(repository.repo, {
            "backup_id": backup_id, "cluster": cluster, "engine": "postgresql", "method": "pg-basebackup", "type": "full",
            "status": "completed", "start_time": end, "end_time": end, "objects": [record], "labels": {"env": "test"},
        })
        return backup_id, prefix + record["name"]


def test_create_check_rerun(tmp_path):
    path = str(tmp_path / "repo")
    run = run_tasks([repo_task(path, "planned")], check=True, diff=True)
    planned = run["planned"]
    assert planned["changed"] is True and not planned.get("failed"), run
    assert planned["plan"] == ["create directory %s" % path, "write dataprotection.json (format version 1)"]
    assert planned["diff"]["before"]["exists"] is False and planned["diff"]["after"]["exists"] is True
    assert not os.path.exists(path), "check mode wrote to disk"

    run = run_tasks([repo_task(path, "created"), repo_task(path, "again"), info_task(path, "info")])
    created, again, info = run["created"], run["again"], run["info"]
    assert created["changed"] is True and created["created"] is True, run
    assert [(c["name"], c["ok"]) for c in created["checks"]] == [("write", True), ("read", True), ("list", True), ("delete", True)]
    assert all(c["latency_ms"] >= 0 for c in created["checks"])
    config = json.load(open(os.path.join(path, "dataprotection.json")))
    assert config["format"] == "dataprotection.databases" and config["version"] == 1 and config["encryption"] is None
    assert again["changed"] is False and again["created"] is False and again["format"]["version"] == 1
    assert sorted(os.listdir(path)) == ["dataprotection.json"], "the probe object was left behind"
    assert info["backups"] == [] and info["clusters"] == [] and not info.get("failed")
    assert set(info["support_matrix"]) == {"postgresql", "mysql", "mongodb", "redis", "prometheus", "nebula", "milvus", "qdrant", "weaviate"}

    run = run_tasks([repo_task(path, "checked")], check=True)
    assert run["checked"]["changed"] is False and run["checked"]["checks"][0]["ok"] is True


def test_info_lists_filters_and_verifies(tmp_path):
    path = str(tmp_path / "repo")
    run_tasks([repo_task(path, "created")])
    spec = {"type": "local", "path": path}
    first, dummy = add_backup(spec, when="20261120100000")
    second, second_key = add_backup(spec, when="20261125100000")
    add_backup(spec, cluster="db2", when="20261121100000")
    # An interrupted run: payload without a manifest.
    open_dir = os.path.join(path, "db1", "backups", "db1-pg-basebackup-20261126000000")
    os.makedirs(open_dir)
    with open(os.path.join(open_dir, "base.tar.zst"), "wb") as handle:
        handle.write(b"partial")

    run = run_tasks([
        info_task(path, "all"),
        info_task(path, "db1", cluster="db1"),
        info_task(path, "recent", since="2026-11-21T00:00:00Z"),
        info_task(path, "labelled", labels={"env": "prod"}),
        info_task(path, "verified", cluster="db1", verify=True),
        info_task(path, "bad_since", since="last tuesday"),
    ])
    assert [b["backup_id"] for b in run["all"]["backups"]] == [second, "db2-pg-basebackup-20261121100000", first]
    assert [c["name"] for c in run["all"]["clusters"]] == ["db1", "db2"]
    db1 = run["db1"]["clusters"][0]
    assert db1["backups"] == 2 and db1["latest_backup"] == second and db1["windows"] == []
    assert [i["backup_id"] for i in db1["incomplete"]] == ["db1-pg-basebackup-20261126000000"]
    assert [b["backup_id"] for b in run["recent"]["backups"]] == [second, "db2-pg-basebackup-20261121100000"]
    assert run["labelled"]["backups"] == []
    verified = run["verified"]["verification"]
    assert verified["ok"] is True and verified["backups"] == 2 and verified["objects"] == 2 and verified["bytes"] == 2 * 800000
    assert run["bad_since"]["failed"] and "not an ISO-8601 time" in run["bad_since"]["msg"]

    # Damage one object, remove another: verify names both and fails.
    victim = os.path.join(path, *second_key.split("/"))
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(victim, "wb").write(bytes(data))
    first_obj = os.path.join(path, "db1", "backups", first, "base.tar.zst")
    os.unlink(first_obj)
    run = run_tasks([info_task(path, "verified", cluster="db1", verify=True)])
    result = run["verified"]
    assert result["failed"] is True and "2 damaged or missing objects" in result["msg"]
    problems = dict((p["backup_id"], p["problem"]) for p in result["verification"]["problems"])
    assert problems[first] == "missing"
    assert second in problems and problems[second] != "missing"


def test_remove_refuses_backups_without_force(tmp_path):
    path = str(tmp_path / "repo")
    run_tasks([repo_task(path, "created")])
    add_backup({"type": "local", "path": path})
    before = sorted(os.path.join(d, f) for d, dummy, fs in os.walk(path) for f in fs)
    run = run_tasks([repo_task(path, "refused", state="absent")])
    assert run["refused"]["failed"] and "still holds 1 backups" in run["refused"]["msg"] and "force: true" in run["refused"]["msg"]
    run = run_tasks([repo_task(path, "planned", state="absent", force=True)], check=True)
    assert run["planned"]["changed"] is True and run["planned"]["removed"]["backups"] == 1
    assert sorted(os.path.join(d, f) for d, dummy, fs in os.walk(path) for f in fs) == before
    run = run_tasks([repo_task(path, "removed", state="absent", force=True), repo_task(path, "again", state="absent")])
    assert run["removed"]["changed"] is True and not os.path.exists(path)
    assert run["again"]["changed"] is False


def test_encrypted_repository(tmp_path):
    path = str(tmp_path / "repo")
    run = run_tasks([
        repo_task(path, "created", repo={"encryption_key": SECRET}),
        repo_task(path, "again", repo={"encryption_key": SECRET}),
        repo_task(path, "wrong", repo={"encryption_key": "wrong passphrase"}),
        repo_task(path, "nokey"),
    ])
    assert run["created"]["changed"] and run["created"]["format"]["encryption"] == {"algorithm": "aes-256-gcm", "kdf": "scrypt"}
    assert run["again"]["changed"] is False
    assert run["wrong"]["failed"] and "does not match" in run["wrong"]["msg"] and run["wrong"]["error"]["kind"] == "wrong_key"
    assert run["nokey"]["failed"] and "encryption_key" in run["nokey"]["msg"]
    assert SECRET not in run.stdout and SECRET not in json.dumps(run.results)
    config = open(os.path.join(path, "dataprotection.json")).read()
    assert SECRET not in config and "key_check" in config

    spec = {"type": "local", "path": path, "encryption_key": SECRET}
    backup_id, dummy = add_backup(spec)
    run = run_tasks([
        info_task(path, "verified", verify=True, repo={"encryption_key": SECRET}),
        info_task(path, "nokey", verify=True),
        info_task(path, "wrong", verify=True, repo={"encryption_key": "wrong passphrase"}),
        info_task(path, "listed"),
    ], extra_env={"DATAPROTECTION_ENCRYPTION_KEY": ""})
    assert run["verified"]["verification"]["ok"] is True and run["verified"]["backups"][0]["backup_id"] == backup_id
    assert run["nokey"]["failed"] and "needs repo.encryption_key" in run["nokey"]["msg"]
    assert run["wrong"]["failed"] and "does not match" in run["wrong"]["msg"]
    # Listing needs no passphrase: manifests hold metadata only.
    assert not run["listed"].get("failed") and run["listed"]["backups"][0]["backup_id"] == backup_id
    assert run["listed"]["backups"][0]["encryption"] == "aes-256-gcm" and run["listed"]["backups"][0]["compression"] == "zstd"

    # The passphrase can come from the environment instead.
    run = run_tasks([info_task(path, "env", verify=True)], extra_env={"DATAPROTECTION_ENCRYPTION_KEY": SECRET})
    assert run["env"]["verification"]["ok"] is True


def test_bad_input_changes_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone's data")
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "dataprotection.json").write_text(json.dumps({"format": "dataprotection.databases", "version": 2}))
    run = run_tasks([
        {"name": "badtype", "dataprotection.databases.backup_repo": {"repo": {"type": "ftp", "path": "/x"}}, "register": "badtype"},
        {"name": "nopath", "dataprotection.databases.backup_repo": {"repo": {"type": "local"}}, "register": "nopath"},
        repo_task("relative/path", "relative"),
        repo_task(str(afile), "isfile"),
        repo_task(str(foreign), "foreign"),
        repo_task(str(newer), "newer"),
        info_task(str(tmp_path / "nothing"), "missing"),
        info_task(str(tmp_path / "nothing"), "badcluster", cluster="bad/name"),
    ])
    assert run["badtype"]["failed"] and "local, s3" in run["badtype"]["msg"]
    assert run["nopath"]["failed"] and "path" in run["nopath"]["msg"]
    assert run["relative"]["failed"] and "absolute path" in run["relative"]["msg"]
    assert run["isfile"]["failed"] and "is not a directory" in run["isfile"]["msg"]
    assert run["foreign"]["failed"] and "is not empty" in run["foreign"]["msg"] and "force: true" in run["foreign"]["msg"]
    assert run["newer"]["failed"] and "format version 2" in run["newer"]["msg"] and "Upgrade" in run["newer"]["msg"]
    assert run["missing"]["failed"] and "no repository at" in run["missing"]["msg"] and "backup_repo" in run["missing"]["msg"]
    assert run["badcluster"]["failed"] and "not a valid cluster name" in run["badcluster"]["msg"]
    assert afile.read_text() == "x"
    assert os.listdir(str(foreign)) == ["notes.txt"]
    assert os.listdir(str(newer)) == ["dataprotection.json"]
    assert not os.path.exists(str(tmp_path / "nothing"))


@pytest.fixture
def read_only_dir(tmp_path):
    path = tmp_path / "ro"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], check=True)
    yield str(path)
    subprocess.run(["umount", str(path)], check=True)


def test_read_only_location_is_reported(read_only_dir):
    run = run_tasks([repo_task(os.path.join(read_only_dir, "repo"), "ro")])
    assert run["ro"]["failed"] and "writable" in run["ro"]["msg"]
    assert run["ro"]["error"]["kind"] == "not_writable"
