# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus end to end against a real Prometheus 2.42 scraping itself, through ansible-playbook.

A backup (method tsdb-snapshot, through the job-template playbook) of a
server with persisted blocks and a head, a restore into a new storage path
with a Prometheus started on it, and the same samples over the backed-up
range from both servers; then the refusals, each changing nothing: the admin
API off, an unreachable server, wrong and missing basic-auth credentials, a
storage path that is not on this host, compression, log backups and
point-in-time restore, a target that is not a Prometheus storage path, a
non-empty target without force, and a target a running server uses (its
lock file, and its open files).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import pwd
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness.dbservers import free_port, stop_pid
from harness.playbook import run_playbook, run_tasks, task

from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time

# A bcrypt hash of "prom-secret-9" (cost 4), for the server's basic_auth_users.
AUTH_USER = "backup"
AUTH_PASSWORD = "prom-secret-9"
AUTH_HASH = "$2b$04$6A4YlDp9kuiECD3FiHH0nuLDqM7yiUu/d6dpWmbLnpordHl06nKea"
# Small blocks, so the backup holds persisted blocks besides the head.
SMALL_BLOCKS = ["--storage.tsdb.min-block-duration=2s", "--storage.tsdb.max-block-duration=2s"]


def api(url, path, params=None, timeout=30):
    """GET an API endpoint of the server at ``url``; return its data."""
    full = url + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(full, timeout=timeout) as response:
        payload = json.loads(response.read().decode("utf-8"))
    assert payload["status"] == "success", payload
    return payload["data"]


def seconds(text):
    """An ISO-8601 UTC time of a manifest as the API's Unix time with milliseconds."""
    return "%.3f" % parse_time(text).timestamp()


def samples(url, start, end):
    """Over [start, end]: a range query of two series at a one-second step, and the raw samples of a counter."""
    first, last = seconds(start), seconds(end)
    width = int(float(last) - float(first)) + 2
    out = {}
    for expr in ("up", "prometheus_tsdb_head_samples_appended_total"):
        result = api(url, "/api/v1/query_range", {"query": expr, "start": first, "end": last, "step": "1"})["result"]
        out[expr] = sorted((json.dumps(r["metric"], sort_keys=True), r["values"]) for r in result)
    raw = api(url, "/api/v1/query", {"query": "prometheus_tsdb_head_samples_appended_total[%ds]" % width, "time": last})["result"]
    out["raw"] = sorted((json.dumps(r["metric"], sort_keys=True), [v for v in r["values"] if v[0] >= float(first)]) for r in raw)
    return out


def blocks_on_disk(storage):
    return [name for name in os.listdir(storage) if len(name) == 26 and os.path.isfile(os.path.join(storage, name, "meta.json"))]


def wait_until(predicate, what, timeout=45):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting until %s" % what
        time.sleep(0.25)


@pytest.fixture
def started():
    """Pids of servers a restore started; stopped at teardown."""
    pids = []
    yield pids
    for pid in pids:
        stop_pid(pid)


@pytest.fixture
def auth_server(server_tmp_path):
    """A Prometheus that requires basic authentication (web.config.file with basic_auth_users)."""
    base = server_tmp_path / "auth"
    base.mkdir()
    (base / "web.yml").write_text("basic_auth_users:\n  %s: %s\n" % (AUTH_USER, AUTH_HASH))
    (base / "prometheus.yml").write_text("global:\n  scrape_interval: 1s\nscrape_configs: []\n")
    port = free_port()
    log = open(str(base / "server.log"), "ab")
    proc = subprocess.Popen(["prometheus", "--config.file=%s" % (base / "prometheus.yml"), "--storage.tsdb.path=%s" % (base / "data"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--web.enable-admin-api", "--web.config.file=%s" % (base / "web.yml")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    url = "http://127.0.0.1:%d" % port
    token = base64.b64encode(("%s:%s" % (AUTH_USER, AUTH_PASSWORD)).encode()).decode()
    request = urllib.request.Request(url + "/-/ready", headers={"Authorization": "Basic " + token})

    def ready():
        assert proc.poll() is None, (base / "server.log").read_text()
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(ready, "the basic-auth Prometheus is ready")
        yield {"port": port, "storage": str(base / "data")}
    finally:
        proc.terminate()
        proc.wait(60)


def test_backup_and_restore_with_the_same_samples(tmp_path, prometheus_factory, server_tmp_path, started):
    source = prometheus_factory(extra_args=SMALL_BLOCKS)
    # The backup holds persisted blocks and the head, and the head has samples.
    wait_until(lambda: len(blocks_on_disk(source.storage_path)) >= 1, "Prometheus persisted a block")
    wait_until(lambda: float(source.query("sum(prometheus_tsdb_head_samples_appended_total)")[0]["value"][1]) > 0, "the head has samples")
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    connection = {"host": source.host, "port": source.port}
    snapshots = os.path.join(source.storage_path, "snapshots")

    create_repo = dict(task("backup_repo", "repo", repo=repo), check_mode=False)
    run = run_tasks([create_repo, task("backup", "planned", repo=repo, cluster="metrics", engine="prometheus", connection=connection)], check=True)
    plan = run["planned"]["plan"]
    assert run["repo"]["changed"] and run["planned"]["changed"], run
    assert plan["server_version"].startswith("2.42.") and plan["storage_path"] == source.storage_path, plan
    assert plan["compression"] == "none" and plan["method"] == "tsdb-snapshot" and plan["head"]["series"] > 0 and "identity" not in plan
    assert not os.path.exists(snapshots) and not os.path.exists(os.path.join(repo["path"], "metrics")), "check mode changed something"

    # As an AWX job template would take it; the method and compression come from the support matrix.
    job = run_playbook("backup.yml", {"dp_repo": repo, "dp_cluster": "metrics", "dp_engine": "prometheus", "dp_connection": connection,
                                      "dp_labels": {"source": "self-scrape"}})
    assert job.returncode == 0, job.stdout[-3000:]
    assert not os.path.exists(snapshots), "the snapshot was left in the storage path"
    backup_ids = os.listdir(os.path.join(repo["path"], "metrics", "backups"))
    assert len(backup_ids) == 1 and backup_ids[0] in job.stdout, job.stdout[-3000:]
    manifest = json.load(open(os.path.join(repo["path"], "metrics", "backups", backup_ids[0], "manifest.json")))
    assert [o["name"] for o in manifest["objects"]] == ["snapshot.tar"] and manifest["identity"] is None
    assert len(manifest["blocks"]) >= 2, manifest["blocks"]  # at least one persisted block and the head's
    first, last = parse_time(manifest["min_time"]), parse_time(manifest["max_time"])
    assert first == min(parse_time(b["min_time"]) for b in manifest["blocks"]) and last == max(parse_time(b["max_time"]) for b in manifest["blocks"])
    assert first < last <= parse_time(manifest["end_time"]) and manifest["snapshot"] and manifest["storage_path"] == source.storage_path

    target = str(server_tmp_path / "restored" / "metrics2")
    port = free_port()
    restore_args = dict(repo=repo, cluster="metrics", engine="prometheus", backup_id=backup_ids[0], data_dir=target)
    run = run_tasks([task("backup_info", "info", repo=repo, cluster="metrics", verify=True),
                     task("restore", "planned", start=True, port=port, **restore_args)], check=True)
    info = run["info"]
    assert info["verification"]["ok"] and len(info["backups"]) == 1, run
    taken = info["backups"][0]
    assert taken["method"] == "tsdb-snapshot" and taken["compression"] == "none" and taken["engine_version"].startswith("2.42.")
    assert taken["labels"] == {"source": "self-scrape"} and taken["stored_size"] == taken["size"] > 0
    assert taken["positions"] == {"min_time": manifest["min_time"], "max_time": manifest["max_time"], "blocks": len(manifest["blocks"]),
                                  "samples": sum(b["samples"] for b in manifest["blocks"])} and taken["positions"]["samples"] > 0
    plan = run["planned"]["plan"]
    assert plan["owner"] == "prometheus" and plan["blocks"] == len(manifest["blocks"]) and plan["tools"]["prometheus"], run
    assert not os.path.exists(target)

    # As root with a umask of 077 (common on hardened hosts; it reaches the module): the new parent
    # directory must still let Prometheus through to its storage path and its configuration.
    os.umask(0o077)  # the test's umask is put back after it (conftest)
    run = run_tasks([task("restore", "restored", start=True, port=port, **restore_args)])
    restored = run["restored"].get("restored") or {}
    if restored.get("server"):
        started.append(restored["server"]["pid"])
    assert run["restored"]["changed"] and restored["blocks"] == len(manifest["blocks"]), json.dumps(run["restored"], indent=1)
    assert restored["min_time"] == manifest["min_time"] and restored["max_time"] == manifest["max_time"]

    # The restored blocks: owned by prometheus, directories 0750, files 0640.
    prom = pwd.getpwnam("prometheus")
    assert os.stat(os.path.dirname(target)).st_mode & 0o777 == 0o755
    st = os.stat(target)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (prom.pw_uid, prom.pw_gid, 0o750)
    checked = 0
    for block in manifest["blocks"]:
        for dirpath, dirnames, filenames in os.walk(os.path.join(target, block["ulid"])):
            for name, mode in [(dirpath, 0o750)] + [(os.path.join(dirpath, f), 0o640) for f in filenames]:
                st = os.stat(name)
                assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (prom.pw_uid, prom.pw_gid, mode), name
                checked += 1
    assert checked >= 5 * len(manifest["blocks"])
    server = restored["server"]
    with open("/proc/%d/status" % server["pid"]) as handle:
        assert "Uid:\t%d\t" % prom.pw_uid in handle.read(), "the started server does not run as prometheus"
    assert server["url"] == "http://127.0.0.1:%d" % port

    expected = samples(source.url, manifest["min_time"], manifest["max_time"])
    got = samples(server["url"], manifest["min_time"], manifest["max_time"])
    # The counter of appended samples grows with every scrape: the raw samples compared are many and distinct.
    assert max(len(set(value for dummy, value in values)) for dummy, values in expected["raw"]) >= 5, expected["raw"]
    assert expected["up"] and len(expected["up"][0][1]) >= 5
    assert got == expected

    # A running server is never restored over, force or not (it has no lock file, but holds its files open).
    run = run_tasks([task("restore", "again", **restore_args), task("restore", "busy", force=True, **restore_args)])
    for name in ("again", "busy"):
        assert run[name]["failed"] and "is in use: process %d (prometheus) has %s/" % (server["pid"], target) in run[name]["msg"], run[name]
    assert api(server["url"], "/api/v1/query", {"query": "count(up)", "time": seconds(manifest["max_time"])})["result"]


def test_refusals_change_nothing(tmp_path, prometheus_factory, server_tmp_path, auth_server):
    locked = prometheus_factory(extra_args=["--storage.tsdb.use-lockfile"])
    # These two are refused before any data is read: no need to wait for their first scrape.
    noadmin = prometheus_factory(admin_api=False, wait_for_scrape=False)
    moved = prometheus_factory(wait_for_scrape=False)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    common = dict(repo=repo, cluster="metrics", engine="prometheus")
    run = run_tasks([task("backup_repo", "repo", repo=repo),
                     task("backup", "base", connection={"host": locked.host, "port": locked.port}, **common)])
    assert run["base"]["backup"]["status"] == "completed", run
    backup_id = run["base"]["backup"]["backup_id"]

    occupied = server_tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "wal").mkdir()
    (occupied / "notes.txt").write_text("precious")
    target = str(server_tmp_path / "t")
    restore_args = dict(common, backup_id=backup_id)
    auth = {"host": "127.0.0.1", "port": auth_server["port"]}
    # The storage path of a server on another host: this host does not have it.
    os.rename(moved.storage_path, moved.storage_path + ".elsewhere")
    try:
        run = run_tasks([
            task("backup", "noadmin", connection={"host": noadmin.host, "port": noadmin.port}, **common),
            task("backup", "unreachable", connection={"port": free_port()}, **common),
            task("backup", "badpw", connection=dict(auth, user=AUTH_USER, password="not-the-password"), **common),
            task("backup", "nocreds", connection=auth, **common),
            task("backup", "elsewhere", connection={"host": moved.host, "port": moved.port}, **common),
            task("backup", "zstd", connection={"host": locked.host, "port": locked.port}, compression="zstd", **common),
            task("log_backup", "logs", connection={"host": locked.host, "port": locked.port}, **common),
            task("restore", "pitr", restore_time="2026-01-01T00:00:00Z", data_dir=target, **common),
            task("restore", "notsdb", data_dir=str(occupied), force=True, **restore_args),
            task("restore", "nonempty", data_dir=str(occupied), **restore_args),
            task("restore", "lockheld", data_dir=locked.storage_path, force=True, **restore_args),
        ])
    finally:
        os.rename(moved.storage_path + ".elsewhere", moved.storage_path)
    msg = dict((name, (run[name] or {}).get("msg", "")) for name in run.results)
    assert all(run[name]["failed"] for name in run.results), dict((n, r.get("failed")) for n, r in run.results.items())
    assert "admin API of Prometheus at http://127.0.0.1:%d is disabled" % noadmin.port in msg["noadmin"]
    assert "--web.enable-admin-api" in msg["noadmin"]
    assert "cannot reach Prometheus at http://127.0.0.1:" in msg["unreachable"] and "Connection refused" in msg["unreachable"]
    assert "refused the credentials of user backup (HTTP 401)" in msg["badpw"], msg["badpw"]
    assert "not-the-password" not in json.dumps(run.results) and "not-the-password" not in run.stdout
    assert "requires basic authentication (HTTP 401)" in msg["nocreds"]
    assert "the storage path %s of Prometheus at http://127.0.0.1:%d is not on this host" % (moved.storage_path, moved.port) in msg["elsewhere"]
    assert "run the backup on the Prometheus host" in msg["elsewhere"]
    assert msg["zstd"] == "method tsdb-snapshot of engine prometheus does not offer compression in the support matrix. Set compression: none"
    assert msg["logs"] == "engine prometheus has no log method in the support matrix"
    assert msg["pitr"].startswith("engine prometheus does not support pitr (PITR) in the support matrix")
    assert "is not a Prometheus storage path: it holds notes.txt" in msg["notsdb"]
    assert "is not empty" in msg["nonempty"] and "force: true" in msg["nonempty"]
    assert "is in use: a Prometheus server holds the lock on %s/lock" % locked.storage_path in msg["lockheld"]

    # Nothing changed: one backup, no snapshot left on any server, the directories untouched, the servers running.
    assert os.listdir(os.path.join(repo["path"], "metrics", "backups")) == [backup_id]
    for server in (locked, noadmin, moved):
        assert not os.path.exists(os.path.join(server.storage_path, "snapshots")), server
        assert server.is_running()
    assert locked.query("up") and noadmin.api("/-/ready")[0] == 200 and moved.api("/-/ready")[0] == 200
    assert not os.path.exists(os.path.join(auth_server["storage"], "snapshots"))
    assert (occupied / "notes.txt").read_text() == "precious" and not os.path.exists(target)
    assert os.path.isdir(os.path.join(locked.storage_path, "wal")) and os.path.exists(os.path.join(locked.storage_path, "lock"))
