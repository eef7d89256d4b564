# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis engine: the redis-cli session, INFO and configuration parsing, the RDB followed while a child writes it,
the AOF manifest, where restored files go, restore targets in use, and the support matrix's refusals.

redis-cli is replaced by a small script that answers like it does (raw replies,
errors, the AUTH complaints on stderr); the BGSAVE child by a thread that
writes a temp file and renames it, with a fake /proc for its parent pid.
Real servers run in tests/integration/test_redis.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import shutil
import socket
import sys
import tempfile
import threading
import time

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import matrix
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import redis
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, UnsupportedError
from ansible_collections.dataprotection.databases.plugins.module_utils.logbackup import LogBackupRequest
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest

FAKE_CLI = r'''#!%(python)s
"""Answers like redis-cli reading commands from a pipe: raw replies, one per command."""
import json, os, sys
script = json.load(open(%(script)r))
log = open(%(log)r, "a")
log.write(json.dumps({"argv": sys.argv[1:], "auth": os.environ.get("REDISCLI_AUTH")}) + "\n")
log.flush()
if script.get("stderr"):
    sys.stderr.write(script["stderr"])
    sys.stderr.flush()
if script.get("exit") is not None:
    sys.exit(script["exit"])
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "ECHO" and not script.get("deny"):
        out = words[1] + "\n"
    else:
        out = script.get("deny") or script["replies"].get(" ".join(words), "ERR unknown command '%%s'\n\n" %% words[0])
    sys.stdout.write(out)
    sys.stdout.flush()
'''


@pytest.fixture
def fake_cli(tmp_path):
    """fake_cli(replies, stderr=None, deny=None, exit=None) -> a Connection whose redis-cli answers from ``replies``."""
    def make(replies, stderr=None, deny=None, exit=None, **params):
        script = tmp_path / "script.json"
        script.write_text(json.dumps({"replies": replies, "stderr": stderr, "deny": deny, "exit": exit}))
        cli = tmp_path / "redis-cli"
        cli.write_text(FAKE_CLI % {"python": sys.executable, "script": str(script), "log": str(tmp_path / "calls.log")})
        cli.chmod(0o755)
        params.setdefault("bin_dir", str(tmp_path))
        return redis.Connection(params)
    return make


def calls(tmp_path):
    return [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()]


INFO_SERVER = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nprocess_id:4242\r\nconfig_file:\r\n"


# redis-cli sessions ------------------------------------------------------------


def test_password_goes_to_the_environment_not_the_command_line(fake_cli, tmp_path):
    conn = fake_cli({"PING": "PONG\n"}, host="db1", port=6380, user="backup", password="s3cret pw")
    with conn.session(timeout=10) as session:
        assert session.call("PING") == "PONG"
    seen = calls(tmp_path)[0]
    assert seen["argv"] == ["-h", "db1", "-p", "6380", "--user", "backup"] and seen["auth"] == "s3cret pw"
    assert "s3cret" not in " ".join(seen["argv"])
    socket_conn = fake_cli({}, socket="/run/redis/redis.sock")
    assert socket_conn.argv()[1:] == ["-s", "/run/redis/redis.sock"] and socket_conn.target() == "/run/redis/redis.sock"


def test_session_returns_multi_line_replies_errors_and_empty_values(fake_cli):
    conn = fake_cli({
        "INFO persistence": "# Persistence\r\nloading:0\r\nrdb_saves:3\r\n\n",
        "CONFIG GET dir dbfilename appendonly appenddirname appendfilename aclfile databases":
            "databases\n16\ndir\n/var/lib/redis\nappenddirname\nappendonlydir\nappendfilename\nappendonly.aof\n"
            "dbfilename\ndump.rdb\naclfile\n\n",
        "BGSAVE": "ERR Background save already in progress\n\n",
    })
    with conn.session(timeout=10) as session:
        assert session.info("persistence") == {"loading": "0", "rdb_saves": "3"}
        settings = redis.server_config(session, conn, {})
        assert settings["dir"] == "/var/lib/redis" and settings["aclfile"] == "" and settings["appendonly"] == "no"
        assert settings["source"] == "CONFIG GET"
        reply = session.call("BGSAVE", check=False)
        assert redis.is_error(reply) and "already in progress" in reply
        with pytest.raises(EngineError) as err:
            session.call("NOSUCH")
        assert "does not know the command NOSUCH" in str(err.value)


def test_missing_password_names_connection_password(fake_cli):
    conn = fake_cli({}, deny="NOAUTH Authentication required.\n\n")
    with pytest.raises(EngineError) as err:
        conn.session(timeout=10)
    assert "requires a password and none was given (NOAUTH)" in str(err.value) and "connection.password" in str(err.value)


def test_wrong_password_names_connection_password(fake_cli):
    conn = fake_cli({}, deny="NOAUTH Authentication required.\n\n", password="wrong",
                    stderr="AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n")
    with pytest.raises(EngineError) as err:
        conn.session(timeout=10)
    assert "refused the password in connection.password" in str(err.value) and "WRONGPASS" in str(err.value)


def test_unreachable_server_and_missing_permission(fake_cli):
    conn = fake_cli({}, stderr="Could not connect to Redis at 127.0.0.1:1: Connection refused\n", port=1)
    with pytest.raises(EngineError) as err:
        conn.session(timeout=10)
    assert "cannot reach Redis at 127.0.0.1:1" in str(err.value) and "Connection refused" in str(err.value)
    conn = fake_cli({}, deny="NOPERM this user has no permissions to run the 'echo' command\n\n", user="backup", password="pw")
    with pytest.raises(EngineError) as err:
        conn.session(timeout=10)
    assert "user backup may not run ECHO" in str(err.value) and "+echo" in str(err.value)


def test_password_given_to_a_server_without_one_is_a_warning(fake_cli):
    conn = fake_cli({"PING": "PONG\n"}, password="x",
                    stderr="AUTH failed: ERR AUTH <password> called without any password configured for the default user.\n")
    with conn.session(timeout=10) as session:
        assert session.call("PING") == "PONG"
        assert session.warnings and "without any password configured" in session.warnings[0]


def test_redis_6_is_refused(fake_cli):
    conn = fake_cli({"INFO server": "# Server\r\nredis_version:6.2.14\r\n"})
    with conn.session(timeout=10) as session:
        with pytest.raises(EngineError) as err:
            redis.inspect(session, conn)
    assert "version 6.2.14" in str(err.value) and "Redis 7.0 and later" in str(err.value)


def test_config_get_refused_falls_back_to_the_configuration_file(fake_cli, tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text("dir /var/lib/redis\ndbfilename main.rdb\nappendonly yes\n")
    replies = {"CONFIG GET dir dbfilename appendonly appenddirname appendfilename aclfile databases":
               "NOPERM this user has no permissions to run the 'config|get' command\n\n"}
    with fake_cli(replies).session(timeout=10) as session:
        with pytest.raises(EngineError) as err:
            redis.server_config(session, session.conn, {})
        assert "+config|get" in str(err.value) and "connection.defaults_file" in str(err.value)
    conn = fake_cli(replies, defaults_file=str(conf))
    with conn.session(timeout=10) as session:
        settings = redis.server_config(session, conn, {})
    assert (settings["dir"], settings["dbfilename"], settings["appendonly"], settings["source"]) == ("/var/lib/redis", "main.rdb", "yes", str(conf))


# INFO, keyspace, configuration files -------------------------------------------


def test_info_and_keyspace_parsing():
    info = redis.parse_info("# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=9\r\ndb12:keys=7,expires=0,avg_ttl=0\r\n\r\n# Other\r\nrole:master\r\n")
    assert info["role"] == "master"
    assert redis.parse_keyspace(info) == {"db0": {"keys": 3, "expires": 1}, "db12": {"keys": 7, "expires": 0}}


def test_compare_keyspace_keys_without_ttl_exactly_keys_with_one_at_most():
    backup = {"db0": {"keys": 10, "expires": 4}, "db3": {"keys": 2, "expires": 0}}
    assert redis.compare_keyspace(backup, {"db0": {"keys": 8, "expires": 2}, "db3": {"keys": 2, "expires": 0}}) == []
    problems = redis.compare_keyspace(backup, {"db0": {"keys": 9, "expires": 4}, "db5": {"keys": 1, "expires": 1}})
    assert problems == ["db0 has 5 keys without a TTL, the backup 6", "db3 has 0 keys without a TTL, the backup 2",
                        "db5 has 1 keys with a TTL, more than the backup's 0"]


def test_fork_keyspace_is_exact_only_when_nothing_was_written_around_the_fork():
    before = {"rdb_saves": "4", "rdb_changes_since_last_save": "17", "db0": "keys=5,expires=1,avg_ttl=0"}
    running = {"rdb_saves": "5", "rdb_bgsave_in_progress": "1", "rdb_changes_since_last_save": "17", "db0": "keys=5,expires=1"}
    assert redis.fork_keyspace(before, running) == ({"db0": {"keys": 5, "expires": 1}}, True)
    written = dict(running, rdb_changes_since_last_save="18", db0="keys=6,expires=1")
    assert redis.fork_keyspace(before, written) == ({"db0": {"keys": 5, "expires": 1}}, False)
    finished = {"rdb_saves": "5", "rdb_bgsave_in_progress": "0", "rdb_last_bgsave_status": "ok", "rdb_changes_since_last_save": "0",
                "db0": "keys=5,expires=1"}
    assert redis.fork_keyspace(before, finished) == ({"db0": {"keys": 5, "expires": 1}}, True)
    assert redis.fork_keyspace(before, dict(finished, rdb_changes_since_last_save="2"))[1] is False
    assert redis.fork_keyspace(before, dict(running, rdb_saves="6"))[1] is False


def test_aof_cut_is_exact_only_without_writes_rewrites_or_buffered_data():
    before = {"aof_buffer_length": "0", "aof_rewrite_in_progress": "0", "rdb_bgsave_in_progress": "0", "rdb_changes_since_last_save": "3",
              "aof_rewrites": "1", "rdb_saves": "2"}
    after = dict(before)
    assert redis.aof_cut_exact(before, after)
    assert not redis.aof_cut_exact(before, dict(after, rdb_changes_since_last_save="4"))
    assert not redis.aof_cut_exact(dict(before, aof_buffer_length="120"), after)
    assert not redis.aof_cut_exact(before, dict(after, aof_rewrites="2"))


def test_configuration_file_quotes_includes_and_last_value_wins(tmp_path):
    extra = tmp_path / "extra.conf"
    extra.write_text('dbfilename "my dump.rdb"\nslaveof 10.0.0.1 6379\n')
    conf = tmp_path / "redis.conf"
    conf.write_text("# comment\nport 6380\nappendonly no\ninclude %s\nAPPENDONLY yes\nappendfilename 'ao.aof'\nbind 127.0.0.1 -::1\n" % extra)
    settings = redis.config_settings(redis.read_config_file(str(conf)))
    assert settings["dbfilename"] == "my dump.rdb" and settings["appendonly"] == "yes" and settings["appendfilename"] == "ao.aof"
    assert settings["replicaof"] == "10.0.0.1 6379" and settings["port"] == "6380" and settings["bind"] == "127.0.0.1 -::1"
    assert settings["appenddirname"] == "appendonlydir"
    assert redis.split_config_line(r'a "b\"c d" e') == ["a", 'b"c d', "e"]
    with pytest.raises(ConfigError):
        redis.split_config_line('dir "/var/lib')
    with pytest.raises(ConfigError) as err:
        redis.read_config_file(str(tmp_path / "missing.conf"))
    assert "cannot read the Redis configuration" in str(err.value)


# The AOF manifest --------------------------------------------------------------


MANIFEST = ("file appendonly.aof.3.base.rdb seq 3 type b\n"
            "file appendonly.aof.2.base.rdb seq 2 type h\n"
            "file appendonly.aof.5.incr.aof seq 5 type h\n"
            "file appendonly.aof.6.incr.aof seq 6 type i\n"
            "file appendonly.aof.7.incr.aof seq 7 type i startoffset 1024\n")


def test_manifest_drops_history_and_renames_for_the_target():
    text, files = redis.rewrite_aof_manifest(MANIFEST, "appendonly.aof", "appendonly.aof")
    assert text == ("file appendonly.aof.3.base.rdb seq 3 type b\nfile appendonly.aof.6.incr.aof seq 6 type i\n"
                    "file appendonly.aof.7.incr.aof seq 7 type i startoffset 1024\n")
    assert [f[2] for f in files] == ["b", "i", "i"] and all(f[0] == f[1] for f in files)
    text, files = redis.rewrite_aof_manifest(MANIFEST, "appendonly.aof", "cache.aof")
    assert text.splitlines() == ["file cache.aof.3.base.rdb seq 3 type b", "file cache.aof.6.incr.aof seq 6 type i",
                                 "file cache.aof.7.incr.aof seq 7 type i startoffset 1024"]
    assert files[0] == ("appendonly.aof.3.base.rdb", "cache.aof.3.base.rdb", "b")


def test_manifest_errors():
    with pytest.raises(EngineError):
        redis.parse_aof_manifest("file x seq 1\n")
    with pytest.raises(EngineError):
        redis.parse_aof_manifest("file ../x seq 1 type b\n")
    with pytest.raises(EngineError) as err:
        redis.rewrite_aof_manifest("file appendonly.aof.1.base.rdb seq 1 type h\n", "appendonly.aof", "appendonly.aof")
    assert "names no base and no incr file" in str(err.value)


# Where restored files go --------------------------------------------------------


def backup_manifest(aof=True, acl=False, keyspace=None):
    files = [{"object": "dump.rdb.zst", "kind": "rdb", "name": "dump.rdb", "size": 100}]
    if aof:
        files += [{"object": "aof.appendonly.aof.3.base.rdb.zst", "kind": "aof-base", "name": "appendonly.aof.3.base.rdb", "size": 90},
                  {"object": "aof.appendonly.aof.3.incr.aof.zst", "kind": "aof-incr", "name": "appendonly.aof.3.incr.aof", "size": 10},
                  {"object": "aof.appendonly.aof.manifest.zst", "kind": "aof-manifest", "name": "appendonly.aof.manifest", "size": 80}]
    if acl:
        files.append({"object": "users.acl.zst", "kind": "acl", "name": "users.acl", "size": 30})
    return {
        "backup_id": "c-datafile-20261125100000", "cluster": "c", "end_time": "2026-11-25T10:00:00Z", "engine_version": "7.0.15",
        "objects": [{"name": f["object"], "size": f["size"]} for f in files], "files": files,
        "aof": {"filename": "appendonly.aof", "dirname": "appendonlydir"} if aof else None,
        "keyspace": keyspace or {"db0": {"keys": 1, "expires": 0}},
    }


def settings(**values):
    result = dict(redis.DEFAULTS, known=True)
    result.update(values)
    return result


def test_layout_follows_the_target_configuration():
    steps, notes, loads = redis.layout(backup_manifest(), settings(appendonly="yes", appenddirname="aofs", appendfilename="c.aof",
                                                                   dbfilename="main.rdb"), "/srv/r")
    assert [(s["path"], s["what"]) for s in steps] == [("main.rdb", "rdb"), ("aofs/c.aof.3.base.rdb", "aof-base"),
                                                       ("aofs/c.aof.3.incr.aof", "aof-incr"), ("aofs/c.aof.manifest", "aof-manifest")]
    assert loads == "aof" and not notes
    steps, notes, loads = redis.layout(backup_manifest(), settings(appendonly="no"), "/srv/r")
    assert [s["path"] for s in steps] == ["dump.rdb"] and loads == "rdb" and "appendonly no" in notes[0]


def test_layout_makes_an_aof_of_the_rdb_for_an_appendonly_target():
    steps, notes, loads = redis.layout(backup_manifest(aof=False), settings(appendonly="yes"), "/srv/r")
    assert [(s["path"], s["what"]) for s in steps] == [
        ("dump.rdb", "rdb"), ("appendonlydir/appendonly.aof.1.base.rdb", "aof-base-from-rdb"),
        ("appendonlydir/appendonly.aof.1.incr.aof", "aof-incr-empty"), ("appendonlydir/appendonly.aof.manifest", "aof-manifest-new")]
    assert steps[1]["link"] == "dump.rdb" and loads == "aof-from-rdb" and "hard-linked" in notes[0]
    assert steps[3]["content"] == "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"


def test_layout_without_a_target_configuration_follows_the_backup():
    unknown = dict(redis.DEFAULTS, known=False)
    steps, dummy, loads = redis.layout(backup_manifest(acl=True), unknown, "/srv/r")
    assert [s["path"] for s in steps] == ["dump.rdb", "appendonlydir/appendonly.aof.3.base.rdb", "appendonlydir/appendonly.aof.3.incr.aof",
                                          "appendonlydir/appendonly.aof.manifest", "users.acl"] and loads == "aof"
    steps, notes, dummy = redis.layout(backup_manifest(aof=False, acl=True), settings(aclfile="/etc/redis/users.acl"), "/srv/r")
    assert steps[-1]["path"] == "users.acl" and "the target's aclfile is /etc/redis/users.acl" in notes[0]


def test_restore_plan_refusals(tmp_path, monkeypatch):
    monkeypatch.setattr(redis.hostfiles, "lookup_user", lambda name, what=None: pwd.getpwuid(os.getuid()))
    conf = tmp_path / "redis.conf"
    conf.write_text("databases 4\n")
    request = RestoreRequest("redis", "c", str(tmp_path / "new"), backup_id="x", options={"defaults_file": str(conf)})
    with pytest.raises(ConfigError) as err:
        redis.plan_restore(None, backup_manifest(keyspace={"db5": {"keys": 1, "expires": 0}}), request)
    assert "holds db5 but the target's configuration has databases 4" in str(err.value)
    old = tmp_path / "bin"
    old.mkdir()
    (old / "redis-server").write_text("#!/bin/sh\necho 'Redis server v=6.2.14 sha=0 malloc=jemalloc bits=64'\n")
    (old / "redis-server").chmod(0o755)
    request = RestoreRequest("redis", "c", str(tmp_path / "new"), backup_id="x", options={"start": True, "bin_dir": str(old)})
    with pytest.raises(ConfigError) as err:
        redis.plan_restore(None, backup_manifest(), request)
    assert "is Redis 6.2.14, which cannot load an RDB written by Redis 7.0.15" in str(err.value)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        request = RestoreRequest("redis", "c", str(tmp_path / "new"), backup_id="x", options={"start": True, "port": listener.getsockname()[1]})
        with pytest.raises(ConfigError) as err:
            redis.plan_restore(None, backup_manifest(), request)
        assert "port %d is in use" % listener.getsockname()[1] in str(err.value)
    finally:
        listener.close()
    assert not (tmp_path / "new").exists()
    with pytest.raises(ConfigError) as err:
        redis.plan_restore(None, backup_manifest(), RestoreRequest("redis", "c", str(tmp_path / "new"), backup_id="x"), logs=[])
    assert "point-in-time restores are not offered" in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a directory another user cannot search, and that user")
def test_a_started_restore_refuses_a_target_its_user_cannot_reach(monkeypatch):
    """The server would start as its user: a parent it may not search refuses the restore before anything changes."""
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setattr(redis.hostfiles, "lookup_user", lambda name, what=None: nobody)
    base = tempfile.mkdtemp(prefix="dp-reach-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        locked = os.path.join(base, "locked")
        os.mkdir(locked, 0o700)
        os.chmod(locked, 0o700)
        target = os.path.join(locked, "srv", "redis")
        request = RestoreRequest("redis", "c", target, backup_id="x", options={"start": True})
        with pytest.raises(ConfigError) as err:
            redis.plan_restore(None, backup_manifest(), request)
        assert err.value.message == "redis-server, run as nobody, could not reach %s: %s is mode 0700, owner root, group root" % (target, locked)
        assert "chmod o+x %s" % locked in err.value.hint and not os.path.exists(os.path.join(locked, "srv"))
        # Without start the files are only laid down: the plan goes on (the operator moves them or starts the server).
        assert redis.plan_restore(None, backup_manifest(), RestoreRequest("redis", "c", target, backup_id="x"))["start"] is False
        os.chmod(locked, 0o711)
        assert redis.hostfiles.unreachable_parent(target, nobody) is None
    finally:
        shutil.rmtree(base)


# Targets in use -------------------------------------------------------------------


def test_target_in_use_by_a_pid_file_a_configured_port_or_a_server_working_there(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dump.rdb").write_bytes(b"REDIS0010")
    assert redis.server_using(str(data), dict(redis.DEFAULTS, known=False), proc_root=str(tmp_path / "noproc")) is None
    with pytest.raises(ConfigError) as err:
        redis.check_target(str(data), False, dict(redis.DEFAULTS, known=False))
    assert "is not empty" in str(err.value) and "force: true" in str(err.value)

    (data / "redis-server.pid").write_text("%d\n" % os.getpid())
    with pytest.raises(ConfigError) as err:
        redis.check_target(str(data), True, dict(redis.DEFAULTS, known=False))
    assert "is in use: a server (pid %d, redis-server.pid) runs on it" % os.getpid() in str(err.value)
    (data / "redis-server.pid").unlink()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        configured = settings(dir=str(data), port=str(listener.getsockname()[1]), bind="127.0.0.1")
        assert "the port of the configuration whose dir it is" in redis.server_using(str(data), configured, proc_root=str(tmp_path / "noproc"))
        elsewhere = settings(dir=str(tmp_path), port=str(listener.getsockname()[1]))
        assert redis.server_using(str(data), elsewhere, proc_root=str(tmp_path / "noproc")) is None
    finally:
        listener.close()

    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "comm").write_text("redis-server\n")
    os.symlink(str(data), str(proc / "77" / "cwd"))
    (proc / "78").mkdir()
    (proc / "78" / "comm").write_text("bash\n")
    os.symlink(str(data), str(proc / "78" / "cwd"))
    assert redis.server_using(str(data), dict(redis.DEFAULTS, known=False), proc_root=str(proc)) == "redis-server (pid 77) runs with it as its dir"


def test_an_empty_directory_in_use_is_refused_too(tmp_path, monkeypatch):
    data = tmp_path / "empty"
    data.mkdir()
    monkeypatch.setattr(redis, "_redis_cwd_users", lambda path, proc_root="/proc": [99])
    with pytest.raises(ConfigError) as err:
        redis.check_target(str(data), False, dict(redis.DEFAULTS, known=False))
    assert "in use: redis-server (pid 99)" in str(err.value)


# The RDB, read while the child writes it ---------------------------------------------


class FakeServer(object):
    """INFO persistence as a server answers it during one BGSAVE; the 'child' thread moves it along."""

    def __init__(self, saves=4):
        self.state = {"rdb_saves": str(saves), "rdb_bgsave_in_progress": "0", "rdb_last_bgsave_status": "ok",
                      "rdb_changes_since_last_save": "0", "db0": "keys=2,expires=1,avg_ttl=5"}
        self.conn = redis.Connection({})
        self.stderr = ""
        self.warnings = []
        self.lock = threading.Lock()
        self.bgsave_reply = "Background saving started"

    def info(self, *sections):
        with self.lock:
            return dict(self.state)

    def call(self, *args, **kwargs):
        if args[0] == "BGSAVE":
            with self.lock:
                if self.bgsave_reply == "Background saving started":
                    self.state["rdb_saves"] = str(int(self.state["rdb_saves"]) + 1)
                    self.state["rdb_bgsave_in_progress"] = "1"
            return self.bgsave_reply
        raise AssertionError(args)

    def end(self, status="ok"):
        with self.lock:
            self.state.update(rdb_bgsave_in_progress="0", rdb_last_bgsave_status=status)


def child(server, data_dir, proc_root, payload, pid=5151, parent=4242, fail=False, delay=0.01):
    """Write temp-<pid>.rdb in pieces like a forked child, rename it to dump.rdb, then end the save."""
    (proc_root / str(pid)).mkdir(parents=True)
    (proc_root / str(pid) / "status").write_text("Name:\tredis-server\nPPid:\t%d\n" % parent)
    temp = data_dir / ("temp-%d.rdb" % pid)
    with open(str(temp), "wb") as handle:
        for at in range(0, len(payload), 7000):
            handle.write(payload[at:at + 7000])
            handle.flush()
            time.sleep(delay)
            if fail and at > len(payload) // 2:
                break
    if not fail:
        os.rename(str(temp), str(data_dir / "dump.rdb"))
    server.end("err" if fail else "ok")


def rdb_payload(size=200000):
    body = bytes(bytearray((i * 7) % 251 for i in range(size)))
    return b"REDIS0010" + body + b"\xff" + b"\x00" * 8


def snapshot_for(server, data_dir, proc_root):
    info = {"dir": str(data_dir), "process_id": 4242, "config": {"dbfilename": "dump.rdb"}}
    return redis.RdbSnapshot(server, info, sleep=time.sleep, proc_root=str(proc_root))


def test_rdb_is_followed_while_the_child_writes_it(tmp_path):
    data_dir, proc_root = tmp_path / "data", tmp_path / "proc"
    data_dir.mkdir()
    (proc_root / "4242").mkdir(parents=True)
    (proc_root / "4242" / "comm").write_text("redis-server\n")
    (data_dir / "temp-999.rdb").write_bytes(b"stale file of a crashed save")
    server = FakeServer()
    payload = rdb_payload()
    snapshot = snapshot_for(server, data_dir, proc_root).start()
    assert snapshot.keyspace == {"db0": {"keys": 2, "expires": 1}} and snapshot.exact
    writer = threading.Thread(target=child, args=(server, data_dir, proc_root, payload))
    writer.start()
    read = bytearray()
    while True:
        piece = snapshot.read(65536)
        if not piece:
            break
        read += piece
    writer.join()
    facts = snapshot.finish()
    assert bytes(read) == payload and facts == {"rdb_version": 10, "size": len(payload), "followed_temp_file": True}


def test_rdb_followed_by_age_when_the_server_runs_in_another_pid_namespace(tmp_path):
    data_dir, proc_root = tmp_path / "data", tmp_path / "proc"
    data_dir.mkdir()
    (proc_root / "4242").mkdir(parents=True)
    (proc_root / "4242" / "comm").write_text("systemd\n")   # pid 4242 here is not the server
    stale = data_dir / "temp-999.rdb"
    stale.write_bytes(b"stale file of a crashed save")
    os.utime(str(stale), (time.time() - 3600, time.time() - 3600))
    server = FakeServer()
    payload = rdb_payload()
    snapshot = snapshot_for(server, data_dir, proc_root).start()
    # The child's /proc entry is not visible from here.
    writer = threading.Thread(target=child, args=(server, data_dir, tmp_path / "other-namespace", payload))
    writer.start()
    read = b"".join(iter(lambda: snapshot.read(65536), b""))
    writer.join()
    assert read == payload and snapshot.finish()["followed_temp_file"] is True and not snapshot.matched_by_parent
    assert snapshot.path == str(data_dir / "temp-5151.rdb")


def test_rdb_of_a_save_that_finished_before_its_temp_file_was_seen(tmp_path):
    data_dir, proc_root = tmp_path / "data", tmp_path / "proc"
    data_dir.mkdir()
    (proc_root / "4242").mkdir(parents=True)
    server = FakeServer()
    payload = rdb_payload(5000)
    snapshot = snapshot_for(server, data_dir, proc_root).start()
    (data_dir / "dump.rdb").write_bytes(payload)
    server.end()
    read = b"".join(iter(lambda: snapshot.read(4096), b""))
    assert read == payload and snapshot.finish()["followed_temp_file"] is False


def test_a_failed_save_is_refused(tmp_path):
    data_dir, proc_root = tmp_path / "data", tmp_path / "proc"
    data_dir.mkdir()
    (proc_root / "4242").mkdir(parents=True)
    server = FakeServer()
    snapshot = snapshot_for(server, data_dir, proc_root).start()
    writer = threading.Thread(target=child, args=(server, data_dir, proc_root, rdb_payload()), kwargs={"fail": True})
    writer.start()
    with pytest.raises(EngineError) as err:
        while snapshot.read(65536):
            pass
    writer.join()
    snapshot.close()
    assert "BGSAVE failed" in str(err.value) and "rdb_last_bgsave_status:err" in str(err.value) and "MISCONF" in str(err.value)


def test_a_save_that_never_creates_its_file_is_refused(tmp_path):
    data_dir, proc_root = tmp_path / "data", tmp_path / "proc"
    data_dir.mkdir()
    (proc_root / "4242").mkdir(parents=True)
    server = FakeServer()
    snapshot = snapshot_for(server, data_dir, proc_root).start()
    server.end("err")
    with pytest.raises(EngineError) as err:
        snapshot.read(65536)
    assert "could not write its RDB into %s" % data_dir in str(err.value)


def test_a_truncated_rdb_is_refused(tmp_path):
    data_dir, proc_root = tmp_path / "data", tmp_path / "proc"
    data_dir.mkdir()
    (proc_root / "4242").mkdir(parents=True)
    server = FakeServer()
    snapshot = snapshot_for(server, data_dir, proc_root).start()
    (data_dir / "dump.rdb").write_bytes(rdb_payload(5000)[:-3])
    server.end()
    while snapshot.read(4096):
        pass
    with pytest.raises(EngineError) as err:
        snapshot.finish()
    assert "does not end with the RDB end-of-file marker" in str(err.value)


def test_bgsave_refused_for_another_reason(tmp_path):
    server = FakeServer()
    server.bgsave_reply = "NOPERM this user has no permissions to run the 'bgsave' command"
    with pytest.raises(EngineError) as err:
        snapshot_for(server, tmp_path, tmp_path).start()
    assert "may not run BGSAVE" in str(err.value) and "+bgsave" in str(err.value)


def test_limited_reader_stops_at_the_cut(tmp_path):
    path = tmp_path / "incr.aof"
    path.write_bytes(b"x" * 100)
    with open(str(path), "rb") as handle:
        reader = redis._Limited(handle, 60)
        assert len(b"".join(iter(lambda: reader.read(7), b""))) == 60
    with open(str(path), "rb") as handle:
        reader = redis._Limited(handle, 200)
        with pytest.raises(EngineError):
            while reader.read(64):
                pass


# The support matrix ---------------------------------------------------------------


def test_datafile_and_volume_snapshot_are_implemented():
    assert matrix.implemented_methods("redis") == ("datafile", "volume-snapshot")
    assert matrix.default_method("redis", "tool") == "datafile"
    request = BackupRequest("redis", "datafile", "cache", connection={"port": 6379})
    assert request.compression == "zstd"
    assert matrix.check_method("redis", "volume-snapshot")["kind"] == "snapshot"
    with pytest.raises(UnsupportedError) as err:
        matrix.check_method("redis", "aof-rewrite")
    assert "not a backup method of engine redis" in str(err.value)


def test_log_backups_and_point_in_time_restores_of_redis_are_refused():
    with pytest.raises(UnsupportedError) as err:
        RestoreRequest("redis", "cache", "/srv/restore", restore_time="2026-11-25T10:00:00Z")
    assert str(err.value) == ("engine redis does not support pitr (PITR) in the support matrix. "
                              "Engines with pitr: postgresql, mysql, mongodb")
    with pytest.raises(UnsupportedError) as err:
        LogBackupRequest({"type": "local", "path": "/srv/repo"}, "redis", "cache")
    assert str(err.value) == "engine redis has no log method in the support matrix"
    with pytest.raises(UnsupportedError) as err:
        matrix.check_feature("redis", "log")
    assert str(err.value) == "engine redis does not support log (Log) in the support matrix. Engines with log: postgresql, mysql, mongodb"
