# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume-snapshot backups of a real Prometheus 2.42 on btrfs, through ansible-playbook.

Real: the storage path of a Prometheus scraping itself is a btrfs subvolume
of a loop device; the backup asks for a TSDB snapshot through the admin API
(the head persisted as a block into snapshots/<name> on the volume), takes a
read-only btrfs snapshot, and removes the TSDB snapshot from the live server.
The restore makes a writable subvolume from the btrfs snapshot, keeps only
the TSDB snapshot's blocks (the source's wal, chunks_head, queries.active and
snapshots go), and starts Prometheus on it as the prometheus user: over the
backed-up range it answers the same samples as the source.

Not covered here: providers other than btrfs, a storage path on another host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import time
import urllib.parse
import urllib.request

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time
from harness import loopfs
from harness.dbservers import free_port, stop_pid
from harness.loopfs import btrfs_fs  # noqa: F401  pylint: disable=unused-import
from harness.playbook import run_tasks, task


def api(url, path, params):
    with urllib.request.urlopen(url + path + "?" + urllib.parse.urlencode(params), timeout=30) as response:
        payload = json.loads(response.read().decode("utf-8"))
    assert payload["status"] == "success", payload
    return payload["data"]


def samples(url, start, end):
    """``up`` and a counter at a one-second step over [start, end] (ISO-8601 times of the manifest)."""
    first, last = "%.3f" % parse_time(start).timestamp(), "%.3f" % parse_time(end).timestamp()
    out = {}
    for expr in ("up", "prometheus_tsdb_head_samples_appended_total"):
        result = api(url, "/api/v1/query_range", {"query": expr, "start": first, "end": last, "step": "1"})["result"]
        out[expr] = sorted((json.dumps(r["metric"], sort_keys=True), r["values"]) for r in result)
    return out


@pytest.fixture
def big_btrfs(monkeypatch, request):
    """btrfs_fs with room for Prometheus, which preallocates its chunk files (512 MiB for a block, 128 MiB for the head)."""
    monkeypatch.setattr(loopfs, "IMAGE_SIZE", 2 * 1024 * 1024 * 1024)
    return request.getfixturevalue("btrfs_fs")


def test_btrfs_snapshot_backup_and_restore_with_the_same_samples(tmp_path, prometheus_factory, big_btrfs):
    btrfs_fs = big_btrfs
    subvolume = btrfs_fs.subvolume("prometheus")
    # The prometheus user (the restored server's) must reach the restored subvolume next to it.
    os.chmod(btrfs_fs.workdir, 0o711)
    os.chmod(btrfs_fs.mount, 0o755)
    source = prometheus_factory(storage_path=subvolume)
    # A just-started server's TSDB snapshot is empty: wait for a few scrapes in the head.
    deadline = time.monotonic() + 45
    while sum(float(r["value"][1]) for r in source.query("prometheus_tsdb_head_samples_appended_total")) < 200:
        assert time.monotonic() < deadline, "Prometheus stored no samples"
        time.sleep(0.5)
    time.sleep(2)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = dict(repo=repo, cluster="metrics", engine="prometheus", method="volume-snapshot", connection={"host": source.host, "port": source.port},
                snapshot={"provider": "btrfs"})
    run = run_tasks([dict(task("backup_repo", "repo", repo=repo), check_mode=False), task("backup", "planned", **args)], check=True)
    assert "plan" in run["planned"], run["planned"]
    plan = run["planned"]["plan"]
    assert plan["data_dir"] == subvolume and plan["quiesce"].startswith("TSDB snapshot") and "identity" not in plan, plan
    assert btrfs_fs.subvolumes() == ["prometheus"] and not os.path.exists(os.path.join(subvolume, "snapshots")), "check mode changed something"

    run = run_tasks([task("backup", "taken", **args), task("backup_info", "info", repo=repo, cluster="metrics", verify=True)])
    assert "backup" in run["taken"], run["taken"]
    taken = run["taken"]["backup"]
    assert taken["type"] == "snapshot" and taken["consistency"] == "application" and len(taken["snapshots"]) == 1, run
    assert taken["positions"]["samples"] > 0 and taken["positions"]["blocks"] >= 1, taken["positions"]
    assert [b["backup_id"] for b in run["info"]["backups"]] == [taken["backup_id"]] and run["info"]["verification"]["ok"], run["info"]
    manifest = json.load(open(os.path.join(repo["path"], "metrics", "backups", taken["backup_id"], "manifest.json")))
    name = manifest["tsdb_snapshot"]
    ulids = sorted(b["ulid"] for b in manifest["blocks"])
    assert name and len(ulids) == taken["positions"]["blocks"] and "tsdb_snapshot_left" not in manifest, manifest
    assert parse_time(manifest["min_time"]) < parse_time(manifest["max_time"]) <= parse_time(manifest["end_time"])
    # The TSDB snapshot is in the volume snapshot, and gone from the live server.
    assert sorted(os.listdir(os.path.join(taken["snapshots"][0]["id"], "snapshots", name))) == ulids
    assert not os.path.exists(os.path.join(subvolume, "snapshots", name))

    target = btrfs_fs.path("restored")
    port = free_port()
    restore_args = dict(repo=repo, cluster="metrics", engine="prometheus", backup_id=taken["backup_id"], data_dir=target, start=True, port=port)
    run = run_tasks([task("restore", "planned", **restore_args)], check=True)
    assert run["planned"]["plan"]["tsdb_snapshot"] == name and run["planned"]["plan"]["source"] == "snapshot" and not os.path.exists(target), run
    run = run_tasks([task("restore", "restored", **restore_args)])
    restored = run["restored"].get("restored") or {}
    server = restored.get("server") or {}
    try:
        assert restored["from"] == "snapshot %s" % taken["snapshots"][0]["id"] and restored["blocks"] == len(ulids), run["restored"]
        assert {"wal", "chunks_head", "queries.active"} <= set(restored["removed"]), restored["removed"]
        assert restored["min_time"] == manifest["min_time"] and restored["max_time"] == manifest["max_time"]
        entries = os.listdir(target)
        assert "snapshots" not in entries and set(ulids) <= set(entries), entries
        prom = pwd.getpwnam("prometheus")
        st = os.stat(os.path.join(target, ulids[0], "meta.json"))
        assert (st.st_uid, st.st_mode & 0o777) == (prom.pw_uid, 0o640) and os.stat(target).st_mode & 0o777 == 0o750
        before = samples(source.url, manifest["min_time"], manifest["max_time"])
        after = samples(server["url"], manifest["min_time"], manifest["max_time"])
        assert before["up"] and before["up"][0][1], before
        assert after == before
    finally:
        if server.get("pid"):
            stop_pid(server["pid"])
