# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis 7 end to end, through ansible-playbook: method datafile, backup and restore.

Keys of every type (string, hash, list, set, sorted set, stream with a
consumer group) in several dbs, some with TTLs, are backed up, the server is
emptied with FLUSHALL, and the restored directory is served by a new server
that must hold every key with its value and TTL: once from the RDB (the
module starting the server, the save slowed down so the RDB is read while
the child writes it), once from a multi-part AOF (the RDB removed from the
restored directory before a server starts on it), with an ACL file and a
backup user holding only the permissions the module documents, and once into
a target configuration with other file names.  Then the refusals: a password
missing or wrong, a BGSAVE that fails (a dir its server cannot write), a
directory a running server uses, a non-empty one, and log backups and
point-in-time restores, which the support matrix does not offer for Redis.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import subprocess
import time

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_present
from harness.dbservers import free_port, run_command, stop_pid
from harness.playbook import iso, now, run_playbook, run_tasks, task

ROOT = os.geteuid() == 0


def resp(*args):
    """One command in the Redis protocol, for redis-cli --pipe (binary-safe values)."""
    out = ["*%d\r\n" % len(args)]
    for arg in args:
        data = str(arg).encode("utf-8")
        out.append("$%d\r\n%s\r\n" % (len(data), data.decode("utf-8")))
    return "".join(out)


# (db, key, type, commands that create it, TTL in seconds or None)
SEED = [
    (0, "s:plain", "string", [["SET", "s:plain", "hello world"]], None),
    (0, "s:text", "string", [["SET", "s:text", u"caf\u00e9 \u2603\ttab\nnew line \"quoted\""]], None),
    (0, "s:session", "string", [["SET", "s:session", "token-1234"]], 3600),
    (0, "s:big", "string", [["SET", "s:big", "".join("%08d" % i for i in range(40000))]], None),
    (0, "h:user", "hash", [["HSET", "h:user", "name", "Ada", "email", "ada@example.com", "visits", "42"]], None),
    (0, "h:big", "hash", [["HSET", "h:big"] + [x for i in range(1500) for x in ("field-%d" % i, "value-%d" % (i * 7))]], 7200),
    (0, "l:queue", "list", [["RPUSH", "l:queue", "job-1", "job-2", "job-3", "job-2"]], None),
    (0, "set:tags", "set", [["SADD", "set:tags", "red", "green", "blue"]], None),
    (0, "set:ints", "set", [["SADD", "set:ints"] + list(range(0, 1200, 3))], 5400),
    (0, "z:board", "zset", [["ZADD", "z:board", "1.5", "ann", "-2", "bob", "1e3", "cid"]], None),
    (0, "x:events", "stream", [["XADD", "x:events", "1700000000000-0", "kind", "login", "user", "ada"],
                               ["XADD", "x:events", "1700000000001-0", "kind", "logout", "user", "ada"],
                               ["XGROUP", "CREATE", "x:events", "audit", "0"],
                               ["XREADGROUP", "GROUP", "audit", "worker-1", "COUNT", "1", "STREAMS", "x:events", ">"]], None),
    (1, "s:other-db", "string", [["SET", "s:other-db", "db one"]], None),
    (1, "l:recent", "list", [["LPUSH", "l:recent"] + ["item-%d" % i for i in range(300)]], 4000),
    (1, "z:big", "zset", [["ZADD", "z:big"] + [x for i in range(500) for x in (i * 0.25, "m%d" % i)]], None),
    (7, "h:far", "hash", [["HSET", "h:far", "a", "1", "b", "2"]], 9000),
    (7, "x:log", "stream", [["XADD", "x:log", "5-1", "line", "first"], ["XADD", "x:log", "6-0", "line", "second"]], None),
]
PADDING = 300  # plain keys in db2, so that a slowed-down save takes about a second

READERS = {
    "string": lambda key: ["GET %s" % key],
    "hash": lambda key: ["HGETALL %s" % key],
    "list": lambda key: ["LRANGE %s 0 -1" % key],
    "set": lambda key: ["SMEMBERS %s" % key],
    "zset": lambda key: ["ZRANGE %s 0 -1 WITHSCORES" % key],
    "stream": lambda key: ["XRANGE %s - +" % key, "XINFO GROUPS %s" % key],
}


def seed_commands(padding=PADDING, extra=()):
    lines = []
    for db in sorted(set(entry[0] for entry in SEED) | ({2} if padding else set())):
        lines.append(resp("SELECT", db))
        for entry in SEED:
            if entry[0] != db:
                continue
            for command in entry[3]:
                lines.append(resp(*command))
            if entry[4]:
                lines.append(resp("EXPIRE", entry[1], entry[4]))
        if db == 2:
            lines.extend(resp("SET", "pad:%d" % i, "padding value %d" % i) for i in range(padding))
    lines.extend(extra)
    return "".join(lines)


def expected_keyspace(padding=PADDING):
    keyspace = {}
    for db, dummy_key, dummy_type, dummy_commands, ttl in SEED:
        entry = keyspace.setdefault("db%d" % db, {"keys": 0, "expires": 0})
        entry["keys"] += 1
        entry["expires"] += 1 if ttl else 0
    if padding:
        keyspace["db2"] = {"keys": padding, "expires": 0}
    return keyspace


def cli_argv(port, db, user=None):
    argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "-n", str(db), "--json"]
    return argv + (["--user", user] if user else [])


def snapshot(port, password=None, user=None):
    """Every seeded key's type, value and PTTL, read with redis-cli --json (one reply a line)."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("REDISCLI_"))
    if password:
        env["REDISCLI_AUTH"] = password
    state = {}
    taken = time.monotonic()
    for db in sorted(set(entry[0] for entry in SEED)):
        entries = [entry for entry in SEED if entry[0] == db]
        lines = []
        for dummy_db, key, kind, dummy_commands, dummy_ttl in entries:
            lines += ["TYPE %s" % key] + READERS[kind](key) + ["PTTL %s" % key]
        out = run_command(cli_argv(port, db, user), env=env, input="\n".join(lines) + "\n").stdout.splitlines()
        assert len(out) == len(lines), out
        replies = [json.loads(line) for line in out]
        for dummy_db, key, kind, dummy_commands, dummy_ttl in entries:
            count = 2 + len(READERS[kind](key))
            got, replies = replies[:count], replies[count:]
            value = got[1:-1]
            if kind == "set":
                value = [sorted(value[0])]
            state[(db, key)] = {"type": got[0], "value": value, "pttl": got[-1]}
    return state, taken


def assert_same_data(before, after):
    """Same types and values; TTLs gone down by the time between the reads, give or take 2 s."""
    (want, want_at), (have, have_at) = before, after
    assert sorted(have) == sorted(want)
    elapsed_ms = (have_at - want_at) * 1000
    for key in want:
        assert (have[key]["type"], have[key]["value"]) == (want[key]["type"], want[key]["value"]), key
        if want[key]["pttl"] == -1:
            assert have[key]["pttl"] == -1, key
        else:
            assert want[key]["pttl"] - elapsed_ms - 2000 <= have[key]["pttl"] <= want[key]["pttl"], (key, want[key]["pttl"], have[key]["pttl"])
    assert any(value["pttl"] > 0 for value in want.values()) and any(value["type"] == "stream" for value in want.values())


def redis_uid():
    return pwd.getpwnam("redis").pw_uid


def service_dir(path):
    """A directory the redis user owns (when running as root), for what a server started as redis writes."""
    path.mkdir()
    if ROOT:
        os.chown(str(path), redis_uid(), -1)
    return path


def backup_files(repo, cluster):
    """Regular files under the cluster's backups (a failed backup must leave none)."""
    root = os.path.join(repo["path"], cluster, "backups")
    return [os.path.join(d, f) for d, dummy, files in os.walk(root) for f in files]


def test_rdb_backup_and_restore_with_start(tmp_path, server_tmp_path, redis_factory):
    db = redis_factory(save="", rdb_key_save_delay=3000)
    db.cli("--pipe", input=seed_commands())
    before = snapshot(db.port)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = dict(repo=repo, cluster="cache", engine="redis", method="datafile", connection={"host": db.host, "port": db.port})
    run = run_tasks([task("backup_repo", "repo", repo=repo), dict(task("backup", "planned", **args), check_mode=True),
                     task("backup", "taken", **args), task("backup_info", "info", repo=repo, cluster="cache", verify=True)])
    plan = run["planned"]["plan"]
    assert run["planned"]["changed"] and plan["server_version"].startswith("7.") and plan["objects"] == ["dump.rdb"], run
    assert plan["keyspace"] == expected_keyspace() and plan["data_dir"] == db.data_dir and "identity" not in plan
    taken = run["taken"]["backup"]
    assert taken["status"] == "completed" and taken["objects"] == ["dump.rdb.zst"] and taken["size"] > 100000, run["taken"]
    assert taken["engine_version"] == db.cli("INFO", "server").split("redis_version:")[1].split()[0]
    assert [b["backup_id"] for b in run["info"]["backups"]] == [taken["backup_id"]] and run["info"]["verification"]["ok"]
    manifest = json.load(open(os.path.join(repo["path"], "cache", "backups", taken["backup_id"], "manifest.json")))
    assert manifest["keyspace"] == expected_keyspace() and manifest["keyspace_exact"] is True and manifest["role"] == "master"
    assert manifest["redis"]["followed_temp_file"] is True and manifest["redis"]["rdb_version"] >= 10 and manifest["aof"] is None
    assert manifest["positions"]["master_replid"] == db.cli("INFO", "replication").split("master_replid:")[1].split()[0]
    assert [f["kind"] for f in manifest["files"]] == ["rdb"] and manifest["identity"] is None
    source_entries = sorted(os.listdir(db.data_dir))

    assert db.cli("FLUSHALL") == "OK" and db.cli("DBSIZE") == "0"
    target = str(server_tmp_path / "restored")
    sockets = service_dir(server_tmp_path / "sockets")
    port = free_port()
    occupied = server_tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("not Redis data")
    common = dict(repo=repo, cluster="cache", engine="redis", backup_id=taken["backup_id"])
    restore_args = dict(common, data_dir=target)
    run = run_tasks([
        dict(task("restore", "planned", start=True, port=port, socket_dir=str(sockets), **restore_args), check_mode=True),
        task("restore", "restored", start=True, port=port, socket_dir=str(sockets), **restore_args),
        task("restore", "occupied", data_dir=str(occupied), **common),
        task("restore", "busy", force=True, **restore_args),
        task("restore", "source_busy", force=True, data_dir=db.data_dir, **common),
        task("restore", "pitr", repo=repo, cluster="cache", engine="redis", restore_time=iso(now()), data_dir=target + "-pitr"),
        task("log_backup", "log", repo=repo, cluster="cache", engine="redis", connection={"port": db.port}),
    ])
    server = (run["restored"].get("restored") or {}).get("server") or {}
    try:
        planned = run["planned"]["plan"]
        assert planned["files"] == {"dump.rdb": "dump.rdb.zst"} and planned["owner"] == "redis" and planned["port"] == port, run["planned"]
        assert run["restored"]["changed"] and server["loaded_from"] == "rdb" and server["port"] == port, run["restored"]
        check = server["keyspace_check"]
        assert check["checked"] and check["ok"] and check["exact"] and check["actual"] == expected_keyspace(), check
        assert server["socket"] == str(sockets / ("redis-%d.sock" % port))
        assert_same_data(before, snapshot(port))
        st = os.stat(target)
        assert oct(st.st_mode & 0o777) == "0o750" and (not ROOT or st.st_uid == redis_uid())
        assert oct(os.stat(os.path.join(target, "dump.rdb")).st_mode & 0o777) == "0o640"
        assert run["occupied"]["failed"] and "is not empty" in run["occupied"]["msg"] and "force: true" in run["occupied"]["msg"], run["occupied"]
        assert os.listdir(str(occupied)) == ["keep.txt"]
        assert run["busy"]["failed"] and "is in use" in run["busy"]["msg"] and "redis-server.pid" in run["busy"]["msg"], run["busy"]
        assert run["source_busy"]["failed"] and "runs with it as its dir" in run["source_busy"]["msg"], run["source_busy"]
        assert sorted(os.listdir(db.data_dir)) == source_entries and db.cli("DBSIZE") == "0"
        assert run["pitr"]["failed"] and "engine redis does not support pitr (PITR) in the support matrix" in run["pitr"]["msg"], run["pitr"]
        assert not os.path.exists(target + "-pitr")
        assert run["log"]["failed"] and "engine redis has no log method in the support matrix" in run["log"]["msg"], run["log"]
    finally:
        if server.get("pid"):
            stop_pid(server["pid"])


def test_aof_backup_restore_loads_from_the_aof(tmp_path, server_tmp_path, redis_factory):
    acl = server_tmp_path / "users.acl"
    acl.write_text("user default on nopass ~* &* +@all\nuser backup on >backup-pw ~* &* -@all +info +bgsave +config|get +echo\n")
    db = redis_factory(appendonly=True, aclfile=str(acl), save="")
    db.cli("--pipe", input=seed_commands(padding=0))
    db.cli("BGREWRITEAOF")
    deadline = time.monotonic() + 30
    while "aof_rewrite_in_progress:0" not in db.cli("INFO", "persistence") or "aof_rewrites:1" not in db.cli("INFO", "persistence"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Written after the rewrite: only in the incr file.
    db.cli("--pipe", input=resp("SELECT", 7) + resp("XADD", "x:log", "7-0", "line", "third") + resp("HSET", "h:far", "c", "3"))
    before = snapshot(db.port)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    connection = {"host": db.host, "port": db.port, "user": "backup", "password": "backup-pw"}
    run = run_tasks([task("backup_repo", "repo", repo=repo),
                     task("backup", "taken", repo=repo, cluster="aof", engine="redis", connection=connection)])
    taken = run["taken"].get("backup") or {}
    assert taken.get("status") == "completed", run["taken"]
    assert "backup-pw" not in run.stdout and "backup-pw" not in json.dumps(run.results)
    manifest = json.load(open(os.path.join(repo["path"], "aof", "backups", taken["backup_id"], "manifest.json")))
    kinds = [f["kind"] for f in manifest["files"]]
    assert kinds == ["rdb", "aof-base", "aof-incr", "aof-manifest", "acl"], manifest["files"]
    assert manifest["aof"]["files"] == ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof"]
    assert manifest["aof"]["keyspace"] == expected_keyspace(padding=0) and manifest["aof"]["keyspace_exact"] is True
    incr = [f for f in manifest["files"] if f["kind"] == "aof-incr"][0]
    assert incr["size"] == os.path.getsize(os.path.join(db.data_dir, "appendonlydir", "appendonly.aof.2.incr.aof")) > 0

    assert db.cli("FLUSHALL") == "OK"
    plain = str(server_tmp_path / "plain")
    renamed = str(server_tmp_path / "renamed")
    conf = server_tmp_path / "target.conf"
    conf.write_text('dir %s\ndbfilename main.rdb\nappendonly yes\nappenddirname "aof"\nappendfilename restored.aof\nsave ""\n' % renamed)
    sockets = service_dir(server_tmp_path / "sockets")
    port = free_port()
    restore_args = dict(repo=repo, cluster="aof", engine="redis", backup_id=taken["backup_id"])
    run = run_tasks([task("restore", "plain", data_dir=plain, **restore_args),
                     task("restore", "renamed", data_dir=renamed, defaults_file=str(conf), start=True, port=port, socket_dir=str(sockets),
                          **restore_args)])
    server = (run["renamed"].get("restored") or {}).get("server") or {}
    try:
        assert run["plain"]["changed"] and run["plain"]["restored"]["loads"] == "aof", run["plain"]
        assert sorted(run["plain"]["restored"]["files"]) == ["appendonlydir/appendonly.aof.2.base.rdb", "appendonlydir/appendonly.aof.2.incr.aof",
                                                             "appendonlydir/appendonly.aof.manifest", "dump.rdb", "users.acl"]
        assert server.get("loaded_from") == "aof" and server["keyspace_check"]["ok"] and server["keyspace_check"]["exact"], run["renamed"]
        assert sorted(os.listdir(os.path.join(renamed, "aof"))) == ["restored.aof.2.base.rdb", "restored.aof.2.incr.aof", "restored.aof.manifest"]
        assert open(os.path.join(renamed, "aof", "restored.aof.manifest")).read() == (
            "file restored.aof.2.base.rdb seq 2 type b\nfile restored.aof.2.incr.aof seq 2 type i\n")
        assert_same_data(before, snapshot(port))
        assert "main.rdb" in os.listdir(renamed)
    finally:
        if server.get("pid"):
            stop_pid(server["pid"])

    # Without the RDB, a server on the plain restore can only load the AOF (and the ACL file).
    os.unlink(os.path.join(plain, "dump.rdb"))
    restored = redis_factory(dir=plain, appendonly=True, aclfile=os.path.join(plain, "users.acl"), save="")
    assert "DB loaded from append only file" in open(restored.log_path).read()
    assert_same_data(before, snapshot(restored.port))
    assert restored.cli("ACL", "GETUSER", "backup").startswith("flags")


@pytest.fixture
def service_redis(server_tmp_path):
    """A redis-server run as the redis user (as root) or as this user: a dir made read-only is then unwritable to it."""
    started = []

    def start():
        run_dir = service_dir(server_tmp_path / "run")
        data = service_dir(server_tmp_path / "service-data")
        port = free_port()
        conf = run_dir / "redis.conf"
        conf.write_text('port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\nsave 3600 1\n' % (port, data, run_dir / "redis.log"))
        argv = ["redis-server", str(conf)]
        if ROOT:
            argv = ["runuser", "-u", "redis", "--"] + argv
        # What redis-server (or runuser) says before its log file is open goes to stderr.
        with open(str(server_tmp_path / ("redis-%d.stderr" % port)), "w+") as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        started.append((proc, port))
        deadline = time.monotonic() + 30
        while run_command(["redis-cli", "-p", str(port), "PING"], check=False).stdout.strip() != "PONG":
            log = run_dir / "redis.log"
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server exit status %s; stderr: %s; log: %s" % (
                proc.poll(), (server_tmp_path / ("redis-%d.stderr" % port)).read_text(), log.read_text() if log.exists() else "(none written)")
            time.sleep(0.1)
        return port, data

    yield start
    for proc, port in started:
        # NOSAVE: a server whose dir was made read-only would refuse to stop after a failed final save.
        run_command(["redis-cli", "-p", str(port), "SHUTDOWN", "NOSAVE"], check=False)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_refusals_leave_nothing_behind(tmp_path, redis_factory, service_redis):
    locked = redis_factory(password="right-pw", save="")
    locked.cli("SET", "k", "v")
    port, data = service_redis()
    run_command(["redis-cli", "-p", str(port), "--pipe"], input=seed_commands(padding=0))
    os.chmod(str(data), 0o555)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    run = run_tasks([
        task("backup_repo", "repo", repo=repo),
        task("backup", "nopass", repo=repo, cluster="locked", engine="redis", connection={"host": locked.host, "port": locked.port}),
        task("backup", "wrong", repo=repo, cluster="locked", engine="redis",
             connection={"host": locked.host, "port": locked.port, "password": "wrong-pw"}),
        task("backup", "unwritable", repo=repo, cluster="failing", engine="redis", connection={"port": port}),
    ])
    assert run["nopass"]["failed"] and "requires a password and none was given (NOAUTH)" in run["nopass"]["msg"], run["nopass"]
    assert "connection.password" in run["nopass"]["msg"]
    assert run["wrong"]["failed"] and "refused the password in connection.password" in run["wrong"]["msg"], run["wrong"]
    assert "WRONGPASS" in run["wrong"]["msg"] and "wrong-pw" not in run.stdout
    failed = run["unwritable"]
    assert failed["failed"] and "BGSAVE failed" in failed["msg"] and "rdb_last_bgsave_status:err" in failed["msg"], failed
    assert "stop-writes-on-bgsave-error" in failed["msg"] and str(data) in failed["msg"]
    assert backup_files(repo, "locked") == [] and backup_files(repo, "failing") == []
    assert not os.path.exists(os.path.join(repo["path"], "failing", "locks", "writer.lease"))
    misconf = run_command(["redis-cli", "-p", str(port), "SET", "k2", "v"], check=False).stdout
    assert misconf.startswith("MISCONF") and os.listdir(str(data)) == []


def test_generic_playbooks_take_redis(tmp_path, server_tmp_path, redis_factory):
    db = redis_factory(save="")
    db.cli("--pipe", input=seed_commands(padding=0))
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    common = {"dp_repo": repo, "dp_cluster": "job", "dp_engine": "redis", "dp_connection": {"port": db.port}}
    ensure_present(repo)
    run = run_playbook("backup.yml", dict(common, dp_labels={"job": "nightly"}))
    assert run.returncode == 0 and "consistent at" in run.stdout, run.stdout[-3000:]
    backup_id = os.listdir(os.path.join(repo["path"], "job", "backups"))[0]
    assert backup_id.startswith("job-datafile-")
    target = str(server_tmp_path / "restored")
    run = run_playbook("restore.yml", dict(common, dp_backup_id=backup_id, dp_data_dir=target, dp_owner="redis"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert sorted(os.listdir(target)) == ["dump.rdb"]
