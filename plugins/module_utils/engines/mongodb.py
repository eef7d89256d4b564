# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB replica sets: dump, datafile and volume-snapshot backups, restores by id, point-in-time restores.

EXPERIMENTAL, all of it.  Nothing here has run against a real mongod, mongosh, mongodump or mongorestore: none
can run on the machines the tests run on.  The tests run against fakes built from MongoDB's manual and the
Database Tools' documentation and archive specification (tests/unit/fixtures/mongodb).

Method ``dump``
    ``mongodump --oplog --archive`` streamed straight into the repository (no staging copy), from a replica set
    member (a standalone has no oplog and is refused; so are mongos and shard or config server members).  The
    archive is followed as it streams (magic number, header, collection metadata, namespace segments and EOF
    blocks; the oplog under db "" collection "oplog") and the last oplog entry's ``ts``, the point the restored
    data is consistent at, is recorded as ``positions.oplog_ts``.  The password reaches the tools in a 0600
    YAML file given with ``--config`` (Database Tools 100.3.0 and newer), removed afterwards; the connection
    string carries the user only.  A restore by id feeds the archive to ``mongorestore --archive
    --oplogReplay`` on the server named by ``connection``; a server that already holds user data is refused
    unless ``force`` (then ``--drop``); ``collections`` become ``--nsInclude`` patterns (without the oplog
    replay, which covers every collection).  A point-in-time restore restores the newest dump before the
    time, then replays the archived oplog (``oplog.py``) after its point and before the time with
    ``mongorestore --oplogReplay --oplogLimit``.
Method ``datafile``
    A tar of dbPath streamed into the repository while the server is fsync-locked (the FsyncLock below, released
    once on every path), on the mongod host.  Restored into ``data_dir`` (a running mongod's directory is
    refused, a non-empty one without ``force``); the source's mongod.lock is not copied.

The volume snapshot, the first method of the engine:

EXPERIMENTAL.  This code has never run against a real MongoDB: no MongoDB
server can run on the machines its tests run on.  It is tested against a fake
``mongosh`` (tests/unit/fixtures/mongodb/mongosh) whose answers are shaped
like the replies MongoDB's manual documents on the pages of the ``fsync``
command and ``db.fsyncLock()`` (``info``, ``lockCount``, ``seeAlso``, ``ok``),
``fsyncUnlock`` (``info: "fsyncUnlock completed"``, ``lockCount``; the
``IllegalOperation`` error "fsyncUnlock called when not locked"), ``hello``
(``setName``, ``me``, ``lastWrite.opTime``, ``msg: "isdbgrid"`` on a mongos),
``serverStatus`` (``host``, ``version``, ``process``, ``storageEngine``),
``getCmdLineOpts`` (``parsed.storage.dbPath``) and ``connectionStatus`` with
``showPrivileges`` (``authInfo.authenticatedUserPrivileges``).

A snapshot backup takes ``fsync`` with ``lock: true`` (``db.fsyncLock()``):
mongod flushes and checkpoints its data files and blocks writes until
``fsyncUnlock``.  That lock belongs to the server, not to the connection that
took it: it stays when our client, or this process, goes away.  So the quiesce
runs ``fsyncUnlock`` itself on every path, once for the one lock it took (the
server counts locks: a lock someone else held before ours stays held), and a
release that fails names the manual command, ``db.fsyncUnlock()``.  The
position of the replica set's oplog under the lock (``hello.lastWrite``) is
recorded for a future point-in-time restore.  Sharded clusters are refused.

``Connection`` is the engine's one way to run ``mongosh``; the dump, datafile
and oplog methods are meant to reuse it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import struct
import sys
import tempfile
from urllib.parse import quote

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import oplog
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, DataProtectionError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import object_key
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import utcnow
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import copy_object_to

METHODS = ("dump", "datafile", "volume-snapshot", "oplog-archive")
LOG_ARCHIVE = oplog
ENGINE = "mongodb"
BIN_DIRS = ("/opt/mongosh*/bin", "/usr/local/mongosh/bin")
DEFAULT_DB_PATH = "/data/db"  # mongod's dbPath when neither the command line nor the configuration file sets one (Linux)
OUTPUT_MARK = "DPJSON "
SCRIPT_MARK = "// dataprotection.databases mongosh script: %s"
PLAN_TIMEOUT = 120
LOCK_TIMEOUT = 300
UNLOCK_TIMEOUT = 60
UNLOCK_COMMAND = "db.fsyncUnlock()"
# The cluster actions fsync and fsyncUnlock need; the built-in role hostManager holds both (clusterAdmin and root include it).
LOCK_ACTIONS = ("fsync", "unlock")
LOCK_ROLE = "hostManager"
# serverStatus and getCmdLineOpts need these cluster actions: clusterMonitor holds them.
MONITOR_ROLE = "clusterMonitor"

# How the scripts reach the server and report: every script authenticates with the credentials in the environment,
# runs admin commands through dpRun (a command error becomes its error document instead of an exception), and prints
# one line: OUTPUT_MARK and the replies, keyed by name, as relaxed Extended JSON.
_PRELUDE = """%(mark)s
if (process.env.DP_MONGO_USER) {
  db.getSiblingDB(process.env.DP_MONGO_AUTH_DB).auth(process.env.DP_MONGO_USER, process.env.DP_MONGO_PASSWORD);
}
const dpOut = {};
const dpRun = function (name, command) {
  try {
    dpOut[name] = db.getSiblingDB('admin').runCommand(command);
  } catch (e) {
    dpOut[name] = {ok: 0, errmsg: String(e.message || e), code: e.code, codeName: e.codeName};
  }
  return dpOut[name];
};
"""
_EPILOGUE = "print('%s' + EJSON.stringify(dpOut));\n" % OUTPUT_MARK

SCRIPTS = {
    "plan": ("if (!dpRun('hello', {hello: 1}).ok) { dpRun('hello', {isMaster: 1}); }\n"
             "dpRun('serverStatus', {serverStatus: 1});\n"
             "dpRun('getCmdLineOpts', {getCmdLineOpts: 1});\n"
             "dpRun('connectionStatus', {connectionStatus: 1, showPrivileges: true});\n"
             "dpRun('currentOp', {currentOp: 1, $ownOps: true});\n"),
    "probe": "dpRun('currentOp', {currentOp: 1, $ownOps: true});\n",
    # The oplog position is read on the same connection right after the lock: no write happens in between.
    "lock": ("if (dpRun('fsync', {fsync: 1, lock: true}).ok) { dpRun('hello', {hello: 1}); }\n"),
    "unlock": "dpRun('fsyncUnlock', {fsyncUnlock: 1});\n",
    # What a restore would collide with: the user collections of every database, and the target's version.
    "targets": ("dpRun('hello', {hello: 1});\n"
                "if (dpRun('listDatabases', {listDatabases: 1, nameOnly: true}).ok) {\n"
                "  dpOut.collections = {};\n"
                "  dpOut.listDatabases.databases.forEach(function (d) { dpOut.collections[d.name] = db.getSiblingDB(d.name).getCollectionNames(); });\n"
                "}\n"
                "dpOut.version = db.version();\n"),
}

# mongosh never reached the server (so no command ran) ...
_UNREACHABLE = ("ECONNREFUSED", "MongoServerSelectionError", "ENOTFOUND", "EAI_AGAIN", "getaddrinfo", "EHOSTUNREACH", "ENOENT")
# ... or lost the connection, maybe after the server ran the command.
_LOST = ("MongoNetworkError", "ECONNRESET", "ETIMEDOUT", "did not finish within")
_AUTH_FAILED = ("Authentication failed", "AuthenticationFailed")
_UNAUTHORIZED = ("Unauthorized", "not authorized", "requires authentication")


def from_ejson(value):
    """Relaxed Extended JSON to plain values: a Timestamp becomes {t, i}, a Long an int, a Date its ISO text, an ObjectId its hex."""
    if isinstance(value, list):
        return [from_ejson(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        key, inner = list(value.items())[0]
        if key == "$timestamp" and isinstance(inner, dict):
            return {"t": int(inner.get("t", 0)), "i": int(inner.get("i", 0))}
        if key in ("$numberLong", "$numberInt"):
            return int(inner)
        if key == "$numberDouble":
            return float(inner)
        if key == "$date":
            return inner.get("$numberLong") if isinstance(inner, dict) else inner
        if key == "$oid":
            return inner
    return dict((k, from_ejson(v)) for k, v in value.items())


def _ok(reply):
    return isinstance(reply, dict) and reply.get("ok") in (1, 1.0, True)


class Connection(object):
    """How to reach a mongod through ``mongosh``: host/port or a socket, user, password, authentication database, bin_dir.

    The password never reaches a command line.  mongosh takes a password only
    from its argv (``--password`` or the connection string) or from a prompt on
    a terminal, and a command line is readable by every user of the host
    (``ps``, /proc/PID/cmdline).  So the connection string carries neither user
    nor password (with a user and no password mongosh would prompt and hang),
    and each script starts by authenticating with ``db.auth()`` from the
    environment variables DP_MONGO_USER / DP_MONGO_PASSWORD, which only the
    process itself and root can read.  No temporary file holds the secret.
    """

    def __init__(self, params):
        params = dict(params or {})
        self.host = params.get("host")
        self.port = params.get("port") or 27017
        self.socket = params.get("socket")
        self.user = params.get("user")
        self.password = params.get("password")
        self.database = params.get("database") or "admin"
        self.bin_dir = params.get("bin_dir")
        self.tls = bool(params.get("tls"))
        self.tls_ca_file = params.get("tls_ca_file")

    def target(self):
        return self.socket or "%s:%s" % (self.host or "localhost", self.port)

    def uri(self):
        """The connection string: no credentials; directConnection so every command reaches this one member, not the primary."""
        if self.socket:
            where = quote(self.socket, safe="")
        else:
            host = self.host or "127.0.0.1"
            if ":" in host and not host.startswith("["):
                host = "[%s]" % host
            where = "%s:%d" % (host, int(self.port))
        query = ["directConnection=true", "serverSelectionTimeoutMS=15000", "appName=dataprotection.databases"]
        if self.tls:
            query.append("tls=true")
        if self.tls_ca_file:
            query.append("tlsCAFile=%s" % quote(self.tls_ca_file, safe=""))
        return "mongodb://%s/%s?%s" % (where, quote(self.database, safe=""), "&".join(query))

    def env(self):
        # Empty strings rather than None, so that variables of the same name inherited from the caller never leak in.
        return {"DP_MONGO_USER": self.user or "", "DP_MONGO_PASSWORD": self.password or "", "DP_MONGO_AUTH_DB": self.database}

    def tool(self):
        if self.bin_dir:
            candidate = os.path.join(self.bin_dir, "mongosh")
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return tools.find_tool("mongosh", BIN_DIRS, package="mongodb-mongosh")

    @staticmethod
    def script(name):
        """The full text of one of SCRIPTS: the authenticating prelude, the commands, the printed replies."""
        return _PRELUDE % {"mark": SCRIPT_MARK % name} + SCRIPTS[name] + _EPILOGUE

    def argv(self, name):
        return [self.tool(), "--quiet", "--norc", self.uri(), "--eval", self.script(name)]

    def eval(self, name, timeout=PLAN_TIMEOUT):
        """Run one of SCRIPTS; return its replies {name: document}.  ToolError when mongosh fails (mapped by ``explain``)."""
        out, dummy = tools.run(self.argv(name), env=self.env(), timeout=timeout, what="mongosh")
        for line in out.splitlines():
            if line.startswith(OUTPUT_MARK):
                try:
                    return from_ejson(json.loads(line[len(OUTPUT_MARK):]))
                except ValueError as exc:
                    raise ToolError("mongosh printed replies that are not JSON: %s" % exc)
        raise ToolError("mongosh printed no replies: %s" % (out.strip()[-500:] or "no output"))

    def run(self, name, timeout=PLAN_TIMEOUT):
        """``eval`` with mongosh's failures as EngineError."""
        try:
            return self.eval(name, timeout)
        except ToolError as exc:
            raise self.explain(exc)

    @staticmethod
    def unreachable(exc):
        """Whether mongosh failed before any command could run (no server, wrong password): nothing happened on the server."""
        text = str(exc)
        return any(word in text for word in _UNREACHABLE + _AUTH_FAILED)

    def explain(self, exc):
        text = str(exc)
        last = text.strip().splitlines()[-1] if text.strip() else text
        if any(word in text for word in _AUTH_FAILED):
            return EngineError(
                "MongoDB at %s refused user %s: wrong user name or password (authentication database %s)" % (self.target(), self.user, self.database),
                hint="Check connection.user, connection.password and connection.database (the database the user was created in)",
            )
        if any(word in text for word in _UNREACHABLE):
            return EngineError(
                "cannot reach MongoDB at %s" % self.target(),
                hint="Check connection.host / connection.port / connection.socket and that mongod is running: %s" % last,
            )
        if any(word in text for word in _LOST):
            return EngineError(
                "mongosh lost its connection to MongoDB at %s: %s" % (self.target(), last),
                hint="Check the network to the server and the server's log",
            )
        if any(word in text for word in _UNAUTHORIZED):
            return EngineError("MongoDB user %s lacks a privilege on %s: %s" % (self.user, self.target(), last),
                               hint="Grant the backup user the roles %s and %s on the admin database" % (LOCK_ROLE, MONITOR_ROLE))
        return EngineError("mongosh failed against %s: %s" % (self.target(), last))

    def command_error(self, name, reply, role=None):
        """An EngineError for a command that answered ok: 0."""
        reply = reply if isinstance(reply, dict) else {}
        message = reply.get("errmsg") or "no reply"
        if reply.get("code") == 13 or reply.get("codeName") == "Unauthorized" or any(w in message for w in _UNAUTHORIZED):
            return EngineError(
                "MongoDB user %s may not run %s on %s: %s" % (self.user, name, self.target(), message),
                hint="Grant it the built-in role %s: db.getSiblingDB('admin').grantRolesToUser('%s', [{role: '%s', db: 'admin'}])"
                % (role or MONITOR_ROLE, self.user, role or MONITOR_ROLE),
            )
        return EngineError("%s failed on MongoDB at %s: %s (%s)" % (name, self.target(), message, reply.get("codeName") or reply.get("code")))

    def reply(self, replies, name, role=None):
        """One command's reply out of ``replies``, or EngineError when it failed."""
        reply = replies.get(name)
        if not _ok(reply):
            raise self.command_error(name, reply, role)
        return reply


def _get(doc, *path):
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _has_cluster_action(status, action):
    for privilege in _get(status, "authInfo", "authenticatedUserPrivileges") or ():
        resource = privilege.get("resource") or {}
        if (resource.get("cluster") or resource.get("anyResource")) and action in (privilege.get("actions") or ()):
            return True
    return False


def _oplog_position(hello):
    """{oplog_ts: {t, i}, term} of a replica set member's last write (hello.lastWrite.opTime), or {}."""
    optime = _get(hello, "lastWrite", "opTime")
    if not isinstance(optime, dict) or not isinstance(optime.get("ts"), dict):
        return {}
    position = {"oplog_ts": optime["ts"]}
    if optime.get("t") is not None:
        position["term"] = optime["t"]
    if _get(hello, "lastWrite", "lastWriteDate"):
        position["last_write_date"] = hello["lastWrite"]["lastWriteDate"]
    return position


# Volume snapshots ---------------------------------------------------------


def _outside(path, data_dir):
    real = os.path.realpath(path)
    return not (real + "/").startswith(os.path.realpath(data_dir).rstrip("/") + "/")


def identity(hello, status):
    """The stable id of the database behind a mongod: ``replset:<setName>``, or ``standalone:<host>`` without a replica set."""
    if hello.get("setName"):
        return "replset:%s" % hello["setName"]
    return "standalone:%s" % status.get("host")


def inspect(conn):
    """The plan script's replies (hello, serverStatus, getCmdLineOpts.parsed); refuses mongos, shard and config server members, arbiters."""
    replies = conn.run("plan")
    hello = conn.reply(replies, "hello")
    status = conn.reply(replies, "serverStatus", MONITOR_ROLE)
    if hello.get("msg") == "isdbgrid" or status.get("process") == "mongos":
        raise EngineError("%s is a mongos: sharded clusters are not supported yet" % conn.target(),
                          hint="Back up a replica set or a standalone mongod; for a sharded cluster, use MongoDB's own tools for now")
    opts = conn.reply(replies, "getCmdLineOpts", MONITOR_ROLE)
    parsed = opts.get("parsed") or {}
    role = _get(parsed, "sharding", "clusterRole")
    if role:
        raise EngineError("%s is a member of a sharded cluster (sharding.clusterRole %s): sharded clusters are not supported yet" % (conn.target(), role),
                          hint="A backup of one shard or config server is not a backup of the cluster")
    if hello.get("arbiterOnly"):
        raise EngineError("%s is an arbiter: it holds no data" % conn.target(), hint="Point connection at a data-bearing member of the replica set")
    return replies, hello, status, parsed


def plan_snapshot(request, local=False, where_hint="A btrfs or lvm snapshot is taken on the database host: run the backup there"):
    """What a volume snapshot of this mongod needs, read-only: its dbPath, its storage engine, the privileges of fsyncLock."""
    conn = Connection(request.connection)
    replies, hello, status, parsed = inspect(conn)
    engine_name = _get(status, "storageEngine", "name")
    if engine_name != "wiredTiger":
        raise EngineError("MongoDB at %s uses the storage engine %s; a volume snapshot is taken of WiredTiger's files" % (conn.target(), engine_name),
                          hint="Back it up with a method that reads through the server" if engine_name == "inMemory" else None)
    connection_status = conn.reply(replies, "connectionStatus")
    users = _get(connection_status, "authInfo", "authenticatedUsers") or []
    warnings = []
    if users:
        missing = [action for action in LOCK_ACTIONS if not _has_cluster_action(connection_status, action)]
        if missing:
            user = users[0].get("user") if isinstance(users[0], dict) else conn.user
            raise EngineError(
                "MongoDB user %s may not run %s on the cluster resource of %s, which fsyncLock/fsyncUnlock need" % (user, " and ".join(missing), conn.target()),
                hint="Grant it the built-in role %s (it holds the fsync and unlock actions; clusterAdmin and root include it): "
                     "db.getSiblingDB('admin').grantRolesToUser('%s', [{role: '%s', db: 'admin'}])" % (LOCK_ROLE, user, LOCK_ROLE),
            )
    elif _get(parsed, "security", "authorization") == "enabled":
        raise EngineError("no user is authenticated on %s, which enforces access control" % conn.target(),
                          hint="Set connection.user and connection.password")
    else:
        warnings.append("MongoDB at %s does not enforce access control (no user is authenticated): the fsync privileges were not checked" % conn.target())
    data_dir = os.path.normpath(_get(parsed, "storage", "dbPath") or DEFAULT_DB_PATH)
    journal_enabled = _get(parsed, "storage", "journal", "enabled")
    journal = {"enabled": journal_enabled is not False, "path": os.path.join(data_dir, "journal"), "inside_data_dir": None}
    if local:
        if not os.path.isfile(os.path.join(data_dir, "WiredTiger")):
            raise EngineError("the server's dbPath %s is not on this host (no WiredTiger file in it)" % data_dir,
                              hint=where_hint)
        outside = sorted(name for name in os.listdir(data_dir)
                         if os.path.islink(os.path.join(data_dir, name)) and _outside(os.path.join(data_dir, name), data_dir))
        journal["inside_data_dir"] = "journal" not in outside
        if outside:
            raise EngineError(
                "%s of dbPath %s are links out of it (%s): a snapshot of the dbPath's volume would miss them"
                % (", ".join(outside), data_dir, ", ".join(os.path.realpath(os.path.join(data_dir, n)) for n in outside)),
                hint="Keep the journal and the database directories inside dbPath, or snapshot every volume with a cloud provider",
            )
    if _get(replies, "currentOp", "fsyncLock"):
        warnings.append("MongoDB at %s is already fsync-locked by someone else (writes are blocked): this backup takes its own lock on top and "
                        "releases only that one" % conn.target())
    set_name = hello.get("setName")
    if set_name:
        state = "primary" if hello.get("isWritablePrimary") or hello.get("ismaster") else "secondary" if hello.get("secondary") else "other"
        if state == "primary":
            warnings.append("fsyncLock on the primary blocks the application's writes until the snapshot's point in time is fixed; connect to "
                            "a secondary to snapshot it instead")
    else:
        state = "standalone"
        warnings.append("%s is a standalone mongod: it has no oplog, so no point-in-time restore can start from this backup" % conn.target())
    return {
        "identity": identity(hello, status),
        "server": conn.target(),
        "server_version": status.get("version"),
        "engine_version": status.get("version"),
        "replica_set": set_name,
        "member": hello.get("me") or status.get("host"),
        "member_state": state,
        "storage_engine": engine_name,
        "data_dir": data_dir,
        "journal": journal,
        "quiesce": "fsyncLock ... fsyncUnlock",
        "warnings": warnings,
    }


class FsyncLock(Quiesce):
    """``fsync`` with ``lock: true`` around the snapshot, released by ``fsyncUnlock`` on every path, once.

    The server's lock is not tied to the connection that took it, so nothing
    releases it for us: ``state`` says whether we hold one (``locked``), hold
    none (``None``), or cannot tell (``unknown``: the lock command was sent and
    no answer came back).
    """

    consistency = "application"

    def __init__(self, conn, plan):
        super(FsyncLock, self).__init__()
        self.conn = conn
        self.plan = plan
        self.state = None
        self.locked_before = None

    def _probe(self):
        """Whether the server is fsync-locked now (currentOp's fsyncLock field; $ownOps needs no privilege); None when unknown."""
        try:
            reply = self.conn.eval("probe", timeout=UNLOCK_TIMEOUT).get("currentOp")
        except ToolError:
            return None
        return bool(reply.get("fsyncLock")) if _ok(reply) else None

    def hold(self):
        self.locked_before = self._probe()
        try:
            replies = self.conn.eval("lock", timeout=LOCK_TIMEOUT)
        except ToolError as exc:
            if not self.conn.unreachable(exc):
                self.state = "unknown"
            raise self.conn.explain(exc)
        reply = self.conn.reply(replies, "fsync", LOCK_ROLE)
        count = reply.get("lockCount")
        if not isinstance(count, int) or count < 1:
            raise EngineError("fsync with lock on %s answered without a lock count of 1 or more: %r" % (self.conn.target(), reply))
        self.state = "locked"
        self.facts.update({"locked": utcnow(), "lock_count": count, "other_locks": count - 1})
        hello = replies.get("hello")
        self.facts["positions"] = _oplog_position(hello) if _ok(hello) else {}
        if self.plan.get("replica_set") and not self.facts["positions"]:
            self.facts["positions_missing"] = "hello under the lock returned no lastWrite.opTime: %r" % (hello,)

    def _unlock(self):
        """One fsyncUnlock; EngineError naming the manual command when it fails."""
        try:
            replies = self.conn.eval("unlock", timeout=UNLOCK_TIMEOUT)
            reply = replies.get("fsyncUnlock")
            if not _ok(reply):
                raise self.conn.command_error("fsyncUnlock", reply, LOCK_ROLE)
        except (ToolError, EngineError) as exc:
            if "not locked" in str(exc):
                self.state = None
                raise EngineError(
                    "the fsync lock this backup took on %s was released by someone else before the snapshot was done; the snapshot may "
                    "not be consistent" % self.conn.target(),
                    hint="Make sure nothing else runs db.fsyncUnlock() on that server during backups, and run the backup again",
                )
            raise EngineError(
                "the fsync lock on %s could not be released: %s" % (self.conn.target(), getattr(exc, "message", None) or exc),
                hint="Writes to that server stay blocked until it is: run %s once in mongosh connected to %s "
                     "(db.currentOp().fsyncLock says whether it is still locked)" % (UNLOCK_COMMAND, self.conn.target()),
            )
        self.state = None
        self.facts.update({"unlocked": utcnow(), "lock_count_after": reply.get("lockCount")})

    def _release(self):
        if self.state == "locked":
            self._unlock()

    def _tell(self, text, failure):
        """Record a problem of the failure path in facts and on the error being raised (abort must not raise its own)."""
        self.facts.setdefault("unlock_problems", []).append(text)
        if isinstance(failure, DataProtectionError) and text not in failure.message:
            failure.message = "%s; %s" % (failure.message, text)
            failure.details.setdefault("fsync_lock", []).append(text)

    def abort(self):
        # The error that fails the backup (abort runs while it is handled): what abort cannot do is added to its message.
        failure = sys.exc_info()[1]
        try:
            if self.state == "locked":
                self._unlock()
            elif self.state == "unknown":
                now = self._probe()
                if now and self.locked_before is False:
                    # The server was not locked before our command and is now: the lock is ours.
                    self._unlock()
                elif now or now is None:
                    self._tell("the fsync lock command got no answer, and whether it left a lock of this backup on %s cannot be told; check "
                               "db.currentOp().fsyncLock there and run %s once if this backup's lock holds writes"
                               % (self.conn.target(), UNLOCK_COMMAND), failure)
        except EngineError as exc:
            self._tell("%s. %s" % (exc.message, exc.hint), failure)
        except Exception as exc:  # pylint: disable=broad-except
            self._tell("the fsync lock on %s could not be released (%s): run %s once in mongosh connected to it" % (self.conn.target(), exc, UNLOCK_COMMAND),
                       failure)


def quiesce(request, plan):
    return FsyncLock(Connection(request.connection), plan)


def snapshot_facts(request, ctx, held):
    """The manifest's facts of a snapshot under fsyncLock: the oplog position of its point in time, the server's version."""
    plan = held.plan
    facts = {
        "end_time": held.facts["locked"],
        "engine_version": plan["engine_version"],
        "positions": held.facts.get("positions") or {},
        "replica_set": plan.get("replica_set"),
        "member": plan.get("member"),
        "member_state": plan.get("member_state"),
        "storage_engine": plan.get("storage_engine"),
        "data_dir": plan["data_dir"],
        "fsync_lock": {"lock_count": held.facts.get("lock_count"), "other_locks": held.facts.get("other_locks"),
                       "lock_count_after": held.facts.get("lock_count_after")},
    }
    return facts


# Restore of a snapshot -------------------------------------------------------

LOCK_FILE = "mongod.lock"


def _owner(request):
    owner = request.options.get("owner") or "mongodb"
    hostfiles.lookup_user(owner, "mongod")
    return owner


def _mongod_running(data_dir):
    """A sentence when a running mongod uses data_dir (the pid in its mongod.lock is alive and is a mongod), else None."""
    pid = hostfiles.read_pid(os.path.join(data_dir, LOCK_FILE))
    if not pid or not hostfiles.pid_alive(pid):
        return None
    try:
        with open("/proc/%d/comm" % pid) as handle:
            if not handle.read().strip().startswith("mongod"):
                # A pid copied from another host's mongod.lock, now some other process here.
                return None
    except (IOError, OSError):
        pass
    return "mongod (pid %d) runs on it" % pid


def plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=False):
    """Checks before a snapshot restore touches anything; returns the engine's part of the plan."""
    if request.options.get("start"):
        raise ConfigError("start is not offered for engine mongodb in this version",
                          hint="Remove start, and start mongod on %s yourself after the restore" % data_dir)
    if logs is not None:
        raise ConfigError("a point-in-time restore of MongoDB is not implemented in this version", hint="Restore a backup by backup_id")
    owner = _owner(request)
    if mounted:
        if not os.path.isfile(os.path.join(data_dir, "WiredTiger")):
            raise ConfigError("data_dir %s holds no MongoDB dbPath (no WiredTiger file)" % data_dir,
                              hint="Mount the volume restored from the snapshot so that data_dir is the dbPath in it")
        busy = _mongod_running(data_dir)
        if busy:
            raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop that mongod first")
    else:
        hostfiles.check_target(data_dir, request.force, in_use=_mongod_running, server="mongod")
    return {"data_dir": data_dir, "owner": owner, "start": False, "remove": [LOCK_FILE]}


def finish_snapshot_restore(repository, manifest, request, logs, data_dir):
    """Make the snapshot's copy of a dbPath start cleanly: no mongod.lock of the source server, owned by owner."""
    owner = _owner(request)
    busy = _mongod_running(data_dir)
    if busy:
        raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop that mongod first")
    removed = []
    path = os.path.join(data_dir, LOCK_FILE)
    if os.path.lexists(path):
        # mongod.lock holds the pid of the server the snapshot was taken from; WiredTiger.lock is WiredTiger's own and stays.
        os.unlink(path)
        removed.append(LOCK_FILE)
    os.chmod(data_dir, 0o750)
    hostfiles.chown_tree(data_dir, owner, request.options.get("group"))
    result = {"data_dir": data_dir, "owner": owner, "removed": removed}
    if manifest.get("replica_set"):
        result["note"] = ("the copy keeps the configuration of replica set %s: start mongod on it with that replSetName to rejoin it, or as a "
                          "standalone to read it" % manifest["replica_set"])
    return result


def remote_restore_next(manifest, logs):
    return ("Mount the new volume on the database host, then run restore again with backup_id %s, source: mounted and data_dir set to the "
            "dbPath on it, which removes the source server's mongod.lock and gives the files to the owner; then start mongod on it yourself"
            % manifest["backup_id"])


# The mongodump archive, read as it streams ---------------------------------

ARCHIVE_MAGIC = b"\x6d\xe2\x99\x81"  # 0x8199e26d, little-endian
TERMINATOR = -1
_INT32 = struct.Struct("<i")
OPLOG_NAMESPACE = ("", "oplog")
_BSON_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0x7F: 0, 0xFF: 0}


def _cstring_end(data, at):
    end = data.index(b"\x00", at)
    return end


def bson_fields(data, wanted=None):
    """Top-level fields of one BSON document (bytes) as plain values: strings, booleans, integers, timestamps ({t, i}).

    Other types are skipped (their value is None); ``wanted`` limits which fields are decoded.  Enough for the
    archive's headers and an oplog entry's ``ts``; raises ValueError on a malformed document.
    """
    size = struct.unpack_from("<i", data, 0)[0]
    if size != len(data) or size < 5 or data[-1:] != b"\x00":
        raise ValueError("BSON document of %d bytes declares %d" % (len(data), size))
    fields = {}
    at = 4
    while at < size - 1:
        kind = data[at]
        end = _cstring_end(data, at + 1)
        name = data[at + 1:end].decode("utf-8", "replace")
        at = end + 1
        value = None
        if kind in _BSON_FIXED:
            length = _BSON_FIXED[kind]
            if kind == 0x08:
                value = data[at] == 1
            elif kind == 0x10:
                value = struct.unpack_from("<i", data, at)[0]
            elif kind == 0x12:
                value = struct.unpack_from("<q", data, at)[0]
            elif kind == 0x11:
                increment, seconds = struct.unpack_from("<II", data, at)
                value = {"t": seconds, "i": increment}
        elif kind in (0x02, 0x0D, 0x0E):
            length = 4 + struct.unpack_from("<i", data, at)[0]
            value = data[at + 4:at + length - 1].decode("utf-8", "replace")
        elif kind in (0x03, 0x04, 0x0F):
            length = struct.unpack_from("<i", data, at)[0]
        elif kind == 0x05:
            length = 5 + struct.unpack_from("<i", data, at)[0]
        elif kind == 0x0C:
            length = 4 + struct.unpack_from("<i", data, at)[0] + 12
        elif kind == 0x0B:
            length = _cstring_end(data, _cstring_end(data, at) + 1) + 1 - at
        else:
            raise ValueError("unknown BSON type 0x%02x in field %s" % (kind, name))
        if length < 0 or at + length > size - 1:
            raise ValueError("field %s runs past the end of its document" % name)
        if wanted is None or name in wanted:
            fields[name] = value
        at += length
    return fields


class ArchiveScanner(object):
    """A file-like pass-through of mongodump's ``--archive`` stream that follows its structure as the bytes go by.

    The format (mongo-tools' archive specification): the magic number, a header document (format
    ``version``, ``server_version``, ``tool_version``), one metadata document per collection, a terminator
    (int32 -1), then segments: a namespace header {db, collection, EOF: false} followed by documents and a
    terminator, and per namespace one EOF header {db, collection, EOF: true, CRC} followed by a terminator.
    ``mongodump --oplog`` writes the oplog entries of the dump's window under the namespace db "" collection
    "oplog"; the last entry's ``ts`` is the point the restored data is consistent at.  Only headers and oplog
    entries are decoded; collection documents are skipped by their length.
    """

    def __init__(self, source):
        self.source = source
        self.buffer = bytearray()
        self.pos = 0
        self.phase = "magic"
        self.namespace = None  # the namespace of the segment being read, when inside one
        self.header = {}
        self.collections = []
        self.documents = {}
        self.ended = set()
        self.oplog_count = 0
        self.oplog_first = None
        self.oplog_last = None
        self.size = 0

    def read(self, size=-1):
        data = self.source.read(size)
        if data:
            self.size += len(data)
            self.feed(data)
        return data

    def _take(self, count):
        """The offset of the next ``count`` bytes in the buffer (consumed), or None when they have not arrived."""
        if len(self.buffer) - self.pos < count:
            return None
        start = self.pos
        self.pos += count
        return start

    def _doc(self, start):
        length = struct.unpack_from("<i", self.buffer, start)[0]
        return bytes(self.buffer[start:start + length])

    def _next(self):
        """The next document's offset, TERMINATOR, or None when more bytes are needed.  Nothing is copied."""
        if len(self.buffer) - self.pos < 4:
            return None
        length = struct.unpack_from("<i", self.buffer, self.pos)[0]
        if length == TERMINATOR:
            self.pos += 4
            return TERMINATOR
        if length < 5:
            raise EngineError("the mongodump archive is malformed: a document of %d bytes" % length)
        return self._take(length)

    def _skip_documents(self):
        """Inside a collection's segment: step over every whole document buffered, by its length alone; whether any was."""
        buffer, pos, end, count = self.buffer, self.pos, len(self.buffer), 0
        while end - pos >= 4:
            length = _INT32.unpack_from(buffer, pos)[0]
            if length == TERMINATOR or end - pos < length:
                break
            if length < 5:
                raise EngineError("the mongodump archive is malformed: a document of %d bytes" % length)
            pos += length
            count += 1
        self.pos = pos
        if count:
            self.documents[self.namespace] = self.documents.get(self.namespace, 0) + count
        return count > 0

    def feed(self, data):
        self.buffer += data
        try:
            while self._step():
                pass
        except (ValueError, struct.error) as exc:
            raise EngineError("the mongodump archive is malformed (%s) near byte %d" % (exc, self.size - len(self.buffer) + self.pos))
        # What was parsed goes, once per chunk (not once per document: that would move the buffer for each one).
        del self.buffer[:self.pos]
        self.pos = 0

    def _step(self):
        if self.phase == "magic":
            start = self._take(4)
            if start is None:
                return False
            magic = bytes(self.buffer[start:start + 4])
            if magic != ARCHIVE_MAGIC:
                raise EngineError("mongodump's output does not start with the archive magic number (%r)" % magic)
            self.phase = "header"
            return True
        if self.phase == "segments" and self.namespace not in (None, OPLOG_NAMESPACE) and self._skip_documents():
            return True
        item = self._next()
        if item is None:
            return False
        if self.phase == "header":
            if item == TERMINATOR:
                raise ValueError("no archive header")
            self.header = bson_fields(self._doc(item), ("version", "server_version", "tool_version", "concurrent_collections"))
            self.phase = "prelude"
        elif self.phase == "prelude":
            if item == TERMINATOR:
                self.phase = "segments"
            else:
                meta = bson_fields(self._doc(item), ("db", "collection"))
                self.collections.append("%s.%s" % (meta.get("db"), meta.get("collection")))
        elif self.namespace is None:
            if item == TERMINATOR:
                raise ValueError("a terminator where a namespace header belongs")
            head = bson_fields(self._doc(item), ("db", "collection", "EOF"))
            namespace = (head.get("db") or "", head.get("collection") or "")
            if head.get("EOF"):
                self.ended.add(namespace)
                self.phase = "eof"
            self.namespace = namespace
        elif self.phase == "eof":
            if item != TERMINATOR:
                raise ValueError("an EOF header not followed by a terminator")
            self.namespace = None
            self.phase = "segments"
        elif item == TERMINATOR:
            self.namespace = None
        else:
            self.documents[self.namespace] = self.documents.get(self.namespace, 0) + 1
            if self.namespace == OPLOG_NAMESPACE:
                ts = bson_fields(self._doc(item), ("ts",)).get("ts")
                if not isinstance(ts, dict):
                    raise ValueError("an oplog entry without a timestamp ts")
                self.oplog_count += 1
                if self.oplog_first is None:
                    self.oplog_first = ts
                if self.oplog_last is None or (ts["t"], ts["i"]) > (self.oplog_last["t"], self.oplog_last["i"]):
                    self.oplog_last = ts
        return True

    def complete(self):
        """None when the archive ended where the format allows it, else what is wrong."""
        if self.phase in ("magic", "header", "prelude"):
            return "it ends inside its prelude (%s)" % self.phase
        if self.namespace is not None or len(self.buffer) > self.pos:
            return "it ends inside a segment of %s" % ".".join(self.namespace or ("?",))
        started = set(self.documents)
        unfinished = sorted(".".join(ns) for ns in started - self.ended)
        if unfinished:
            return "namespaces without their EOF block: %s" % ", ".join(unfinished)
        return None

    def summary(self):
        user = dict((".".join(ns), n) for ns, n in self.documents.items() if ns != OPLOG_NAMESPACE)
        return {
            "format_version": self.header.get("version"),
            "server_version": self.header.get("server_version"),
            "tool_version": self.header.get("tool_version"),
            "collections": len(self.collections),
            "documents": sum(user.values()),
            "oplog_entries": self.oplog_count,
            "oplog_first": self.oplog_first,
            "oplog_last": self.oplog_last,
        }


# mongodump / mongorestore ------------------------------------------------------

TOOLS_PACKAGE = "mongodb-database-tools"
TOOLS_BIN_DIRS = ("/usr/bin", "/opt/mongodb-database-tools*/bin", "/usr/local/mongodb-database-tools/bin")
TOOLS_MIN_VERSION = (100, 3, 0)  # --config (a YAML file holding the password) is new in 100.3.0
DUMP_OBJECT = "dump.archive"
DATAFILE_OBJECT = "datafiles.tar"
SYSTEM_DATABASES = ("admin", "config", "local")
# Left out of a datafile copy: the pid file of the running mongod, and full-time diagnostic data, written even under fsyncLock.
DATAFILE_EXCLUDES = ("./mongod.lock", "./diagnostic.data")
_RESTORED = re.compile(r"(\d+) document\(s\) restored successfully\. (\d+) document\(s\) failed to restore")
_TOOL_VERSION = re.compile(r"version:?\s*r?(\d+)\.(\d+)\.(\d+)")


def tools_path(conn, name):
    if conn.bin_dir:
        candidate = os.path.join(conn.bin_dir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return tools.find_tool(name, TOOLS_BIN_DIRS, package=TOOLS_PACKAGE)


def tools_version(path):
    """The Database Tools version of mongodump / mongorestore, as (major, minor, patch) and text; refuses one older than 100.3.0."""
    out, dummy = tools.run([path, "--version"], timeout=60, what=os.path.basename(path))
    match = _TOOL_VERSION.search(out)
    if not match:
        raise EngineError("cannot read the version of %s from: %s" % (path, out.strip()[:200]))
    version = tuple(int(part) for part in match.groups())
    if version < TOOLS_MIN_VERSION:
        raise EngineError(
            "%s is version %s; this collection needs MongoDB Database Tools %s or newer (for --config)"
            % (path, ".".join(map(str, version)), ".".join(map(str, TOOLS_MIN_VERSION))),
            hint="Install a current %s" % TOOLS_PACKAGE,
        )
    return ".".join(map(str, version))


def tools_uri(conn):
    """The connection string of mongodump / mongorestore: the user, never the password (that goes in the --config file),
    and no database path: the tools read a database there as --db, which would limit what is dumped or restored (and
    mongodump --oplog refuses a dump of one database).  The authentication database goes in authSource."""
    base, query = conn.uri().split("?", 1)
    where = base[len("mongodb://"):].rsplit("/", 1)[0]
    user = ""
    if conn.user:
        user = "%s@" % quote(conn.user, safe="")
        query += "&authSource=%s" % quote(conn.database, safe="")
    return "mongodb://%s%s/?%s" % (user, where, query)


class ToolsConfig(object):
    """A 0600 YAML file with ``password:`` for the tools' ``--config`` option, removed on exit; None without a password."""

    def __init__(self, conn):
        self.conn = conn
        self.path = None

    def __enter__(self):
        if self.conn.user and not self.conn.password:
            raise ConfigError("connection.user %s is set without connection.password" % self.conn.user,
                              hint="Set connection.password; mongodump and mongorestore would wait for it on a terminal")
        if self.conn.user and self.conn.password:
            handle, self.path = tempfile.mkstemp(prefix="dp-mongo-", suffix=".yaml")
            try:
                os.fchmod(handle, 0o600)
                # A JSON string is a valid YAML double-quoted scalar.
                os.write(handle, ("password: %s\n" % json.dumps(self.conn.password)).encode("utf-8"))
            finally:
                os.close(handle)
        return self

    def argv(self, tool, *options):
        argv = [tool, "--uri=%s" % tools_uri(self.conn)]
        if self.path:
            argv.append("--config=%s" % self.path)
        return argv + list(options)

    def __exit__(self, exc_type, exc, tb):
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)
        return False


def explain_tool(conn, what, exc):
    """mongodump / mongorestore failures in the user's terms."""
    text = str(exc)
    if "Authentication failed" in text or "AuthenticationFailed" in text:
        return EngineError("MongoDB at %s refused user %s: wrong user name or password (authentication database %s)"
                           % (conn.target(), conn.user, conn.database),
                           hint="Check connection.user, connection.password and connection.database")
    if any(word in text for word in _UNAUTHORIZED):
        role = "backup" if what == "mongodump" else "restore"
        return EngineError("MongoDB user %s lacks a privilege %s needs on %s: %s" % (conn.user, what, conn.target(), text.strip().splitlines()[-1]),
                           hint="Grant it the built-in role %s on the admin database" % role)
    return EngineError("%s against %s failed: %s" % (what, conn.target(), getattr(exc, "message", text)))


def _version_tuple(text):
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _major(version):
    return ".".join((version or "").split(".")[:2])


def plan_dump(request):
    conn = Connection(request.connection)
    if request.options.get("collections"):
        raise ConfigError("method dump backs up the whole replica set: collections is not taken by a backup",
                          hint="Remove collections; a restore takes collections to restore only some of them")
    replies, hello, status, dummy = inspect(conn)
    if not hello.get("setName"):
        raise EngineError(
            "%s is a standalone mongod: mongodump --oplog, which makes a dump consistent, needs a replica set's oplog" % conn.target(),
            hint="Convert it to a single-member replica set (replication.replSetName, then rs.initiate()), or use method datafile",
        )
    mongodump = tools_path(conn, "mongodump")
    warnings = []
    if _version_tuple(status.get("version")) < (4, 2):
        warnings.append("MongoDB %s is older than 4.2, the oldest release MongoDB Database Tools 100.x are documented for" % status.get("version"))
    connection_status = replies.get("connectionStatus") or {}
    if not (_get(connection_status, "authInfo", "authenticatedUsers") or []):
        warnings.append("no user is authenticated on %s: the dump reads what an unauthenticated client may read" % conn.target())
    return {
        "identity": identity(hello, status),
        "server": conn.target(),
        "server_version": status.get("version"),
        "engine_version": status.get("version"),
        "replica_set": hello.get("setName"),
        "member": hello.get("me") or status.get("host"),
        "tool": mongodump,
        "tool_version": tools_version(mongodump),
        "consistency": "mongodump --oplog: the oplog of the dump's window, replayed on restore",
        "warnings": warnings,
    }


def run_dump(request, ctx):
    conn = Connection(request.connection)
    plan = plan_dump(request)
    started = utcnow()
    timeout = request.options.get("operation_timeout") or 3600
    with ToolsConfig(conn) as config:
        argv = config.argv(plan["tool"], "--oplog", "--archive")
        try:
            with tools.StreamingTool(argv, what="mongodump") as proc:
                scanner = ArchiveScanner(proc.stdout)
                ctx.store(DUMP_OBJECT, scanner)
                proc.finish(timeout)
        except ToolError as exc:
            raise explain_tool(conn, "mongodump", exc)
    problem = scanner.complete()
    if problem:
        raise EngineError("mongodump's archive of %s is incomplete: %s" % (conn.target(), problem))
    archive = scanner.summary()
    if not archive["oplog_last"]:
        raise EngineError("mongodump --oplog wrote no oplog entry for %s: the dump has no consistent point" % conn.target(),
                          hint="Check that the oplog did not roll over during the dump (a larger oplog, or a dump from a secondary)")
    return {
        "start_time": started,
        "end_time": utcnow(),
        "engine_version": plan["engine_version"],
        "positions": {"oplog_ts": archive["oplog_last"]},
        "replica_set": plan["replica_set"],
        "member": plan["member"],
        "tool_version": plan["tool_version"],
        "archive": archive,
    }


def plan_datafile(request):
    """A datafile copy: the checks of a volume snapshot on this host (dbPath here, WiredTiger, fsync privileges), and tar."""
    plan = plan_snapshot(request, local=True, where_hint="A datafile backup copies the files of dbPath: run it on the mongod host")
    plan["tool"] = tools.find_tool("tar", package="tar")
    plan["excludes"] = list(DATAFILE_EXCLUDES)
    return plan


def run_datafile(request, ctx):
    """tar of dbPath streamed into the repository while the server is fsync-locked; the lock released once, on every path."""
    plan = plan_datafile(request)
    started = utcnow()
    argv = [plan["tool"], "-C", plan["data_dir"], "-cf", "-"] + ["--exclude=%s" % name for name in DATAFILE_EXCLUDES] + ["."]
    held = FsyncLock(Connection(request.connection), plan)
    with held:
        with tools.StreamingTool(argv, what="tar") as proc:
            ctx.store(DATAFILE_OBJECT, proc.stdout)
            proc.finish(request.options.get("operation_timeout") or 3600)
    facts = snapshot_facts(request, ctx, held)
    facts.update({"start_time": started, "lock_seconds": held.held_seconds})
    return facts


def plan_backup(request):
    if request.method == "dump":
        return plan_dump(request)
    if request.method == "datafile":
        return plan_datafile(request)
    raise ConfigError("method %s is not a tool backup of engine mongodb" % request.method)


def run_backup(request, ctx):
    if request.method == "dump":
        return run_dump(request, ctx)
    if request.method == "datafile":
        return run_datafile(request, ctx)
    raise ConfigError("method %s is not a tool backup of engine mongodb" % request.method)


# Restores of dump and datafile backups -------------------------------------------


def restores_into_server(manifest):
    return manifest.get("method") == "dump"


def _object_of(manifest, base):
    for record in manifest.get("objects") or ():
        if record["name"].startswith(base):
            return record
    raise EngineError("backup %s has no %s object" % (manifest["backup_id"], base))


def ns_matches(pattern, namespace):
    """Whether db.coll matches an --nsInclude pattern (``*`` any run of characters, ``\\`` escapes)."""
    regex, escaped = "", False
    for char in pattern:
        if escaped:
            regex += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            regex += ".*"
        else:
            regex += re.escape(char)
    return re.match("^%s$" % regex, namespace) is not None


def _collections(request):
    patterns = request.options.get("collections") or []
    bad = [p for p in patterns if "." not in p.strip("*") and p != "*"]
    if bad:
        raise ConfigError("collections takes db.collection patterns for engine mongodb: %s" % ", ".join(bad),
                          hint="For example collections: ['shop.orders', 'shop.*']")
    return list(patterns)


def plan_dump_restore(repository, manifest, request, logs):
    conn = Connection(request.connection)
    replies = conn.run("targets")
    hello = conn.reply(replies, "hello")
    if hello.get("msg") == "isdbgrid":
        raise EngineError("%s is a mongos: restores into sharded clusters are not supported yet" % conn.target(),
                          hint="Restore into a replica set's primary")
    if hello.get("setName") and not (hello.get("isWritablePrimary") or hello.get("ismaster")):
        raise EngineError("%s is not the primary of replica set %s: mongorestore writes only through the primary" % (conn.target(), hello["setName"]),
                          hint="Point connection at the primary%s" % (" (%s)" % hello["primary"] if hello.get("primary") else ""))
    conn.reply(replies, "listDatabases")
    patterns = _collections(request)
    existing = []
    for db, names in sorted((replies.get("collections") or {}).items()):
        if db in SYSTEM_DATABASES:
            continue
        for name in names or ():
            namespace = "%s.%s" % (db, name)
            if not patterns or any(ns_matches(p, namespace) for p in patterns):
                existing.append(namespace)
    if existing and not request.force:
        raise ConfigError(
            "MongoDB at %s already holds %s the backup would restore: %s"
            % (conn.target(), "collections" if patterns else "user data", ", ".join(existing[:8])),
            hint="Restore into an empty replica set, or set force: true to drop and replace those collections (mongorestore --drop)",
        )
    if logs is not None and LOG_ARCHIVE is None:
        raise ConfigError("a point-in-time restore of MongoDB needs the oplog archive, not in this version", hint="Restore a backup by backup_id")
    if logs is not None and patterns:
        raise ConfigError("a point-in-time restore replays the oplog of every collection: collections cannot limit it",
                          hint="Remove collections, or restore a backup by backup_id")
    mongorestore = tools_path(conn, "mongorestore")
    version = tools_version(mongorestore)
    warnings = []
    status = replies.get("hello") or {}
    target_version = replies.get("version")
    if target_version and _major(target_version) != _major(manifest.get("engine_version")):
        warnings.append("the backup is of MongoDB %s and the target runs %s: MongoDB supports restoring a dump into the same major version"
                        % (manifest.get("engine_version"), target_version))
    if request.force and not patterns:
        warnings.append("force adds --drop, which also clears the users and roles of %s (admin.system.users, admin.system.roles) "
                        "before those of the backup are restored" % conn.target())
    if patterns:
        warnings.append("collections restores the collections as dumped, without the dump's oplog replay (which covers every collection): "
                        "writes made during the dump to them may be missing")
    return {
        "target": conn.target(),
        "replica_set": status.get("setName"),
        "tool": mongorestore,
        "tool_version": version,
        "drop": bool(request.force),
        "oplog_replay": not patterns,
        "ns_include": patterns,
        "existing": existing,
        "object": _object_of(manifest, DUMP_OBJECT)["name"],
        "consistent_at": (manifest.get("positions") or {}).get("oplog_ts"),
        "replay": None if logs is None else {"entries": len(logs), "until": "restore_time"},
        "warnings": warnings,
    }


def _run_restore_tool(conn, argv, feed=None, timeout=3600):
    """mongorestore fed the archive (or nothing); returns its counts: restored, failed."""
    proc = tools.FeedingTool(argv, what="mongorestore")
    try:
        if feed is not None:
            feed(proc.write)
        proc.finish(timeout=timeout)
    except ToolError as exc:
        proc.kill()
        raise explain_tool(conn, "mongorestore", exc)
    except BaseException:
        proc.kill()
        raise
    text = b"".join(proc.output).decode("utf-8", "replace")
    found = _RESTORED.search(text)
    counts = {"restored": int(found.group(1)), "failed": int(found.group(2))} if found else {}
    if counts.get("failed"):
        raise EngineError("mongorestore could not restore %d documents into %s: %s" % (counts["failed"], conn.target(), proc.text()),
                          hint="Check the target for conflicting documents (duplicate keys) and the server's log")
    return counts


def restore_dump(repository, manifest, request, logs):
    plan = plan_dump_restore(repository, manifest, request, logs)
    conn = Connection(request.connection)
    record = _object_of(manifest, DUMP_OBJECT)
    timeout = request.options.get("operation_timeout") or 3600
    options = ["--archive"]
    if plan["oplog_replay"]:
        options.append("--oplogReplay")
    if plan["drop"]:
        options.append("--drop")
    options += ["--nsInclude=%s" % pattern for pattern in plan["ns_include"]]
    result = {"target": plan["target"], "drop": plan["drop"], "oplog_replay": plan["oplog_replay"], "ns_include": plan["ns_include"]}
    with ToolsConfig(conn) as config:
        argv = config.argv(plan["tool"], *options)

        def feed(write):
            copy_object_to(repository.repo, object_key(manifest, record), record, write, repository.master_key)

        result["documents"] = _run_restore_tool(conn, argv, feed, timeout)
        if logs is not None:
            result["replay"] = _replay(repository, manifest, request, logs, conn, config, plan, timeout)
    return result


def _replay(repository, manifest, request, logs, conn, config, plan, timeout):
    """The archived oplog after the base backup's point, up to restore_time, applied by mongorestore --oplogReplay."""
    after = (manifest.get("positions") or {}).get("oplog_ts")
    if not after:
        raise EngineError("backup %s records no oplog position (positions.oplog_ts): no oplog can be replayed on it" % manifest["backup_id"])
    directory = tempfile.mkdtemp(prefix="dp-oplog-")
    try:
        written = LOG_ARCHIVE.write_replay(repository, logs, after, request.restore_time, os.path.join(directory, "oplog.bson"))
        if not written.get("count"):
            return {"count": 0, "first": None, "last": None}
        last = written["last"]
        # --oplogLimit applies the entries before the limit: the one after the last entry written is the limit.
        argv = config.argv(plan["tool"], "--oplogReplay", "--oplogLimit=%d:%d" % (last["t"], last["i"] + 1), "--dir=%s" % directory)
        _run_restore_tool(conn, argv, None, timeout)
        return {"count": written["count"], "first": written.get("first"), "last": last}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def plan_datafile_restore(repository, manifest, request, logs):
    data_dir = request.target
    if logs is not None:
        raise ConfigError("a point-in-time restore starts from a dump backup of MongoDB, not a datafile copy", hint="Restore this backup by backup_id")
    if request.options.get("start"):
        raise ConfigError("start is not offered for engine mongodb in this version",
                          hint="Remove start, and start mongod on %s yourself after the restore" % data_dir)
    owner = _owner(request)
    entries = hostfiles.check_target(data_dir, request.force, in_use=_mongod_running, server="mongod")
    return {"data_dir": data_dir, "owner": owner, "replaces": len(entries), "object": _object_of(manifest, DATAFILE_OBJECT)["name"],
            "tool": tools.find_tool("tar", package="tar"), "start": False}


def restore_datafile(repository, manifest, request, logs):
    plan = plan_datafile_restore(repository, manifest, request, logs)
    data_dir = plan["data_dir"]
    record = _object_of(manifest, DATAFILE_OBJECT)
    with hostfiles.Target(data_dir, 0o750):
        size = hostfiles.feed_object(repository, manifest, record, [plan["tool"], "-x", "-f", "-", "-C", data_dir, "--no-same-owner"], "tar",
                                     timeout=request.options.get("operation_timeout") or 3600)
        result = finish_snapshot_restore(repository, manifest, request, logs, data_dir)
    result["size"] = size
    return result


def plan_restore(repository, manifest, request, logs=None):
    if manifest.get("method") == "dump":
        return plan_dump_restore(repository, manifest, request, logs)
    if manifest.get("method") == "datafile":
        return plan_datafile_restore(repository, manifest, request, logs)
    raise ConfigError("backup %s of method %s is not restored this way" % (manifest["backup_id"], manifest.get("method")))


def restore(repository, manifest, request, logs=None):
    if manifest.get("method") == "dump":
        return restore_dump(repository, manifest, request, logs)
    if manifest.get("method") == "datafile":
        return restore_datafile(repository, manifest, request, logs)
    raise ConfigError("backup %s of method %s is not restored this way" % (manifest["backup_id"], manifest.get("method")))


# Oplog archive and point-in-time restore ------------------------------------------
# The archive itself is oplog.py's; a point-in-time restore starts from a dump (restored through the server, then the
# archived oplog replayed by mongorestore), so only dump backups are bases here.


def _dump_bases(manifests):
    return [m for m in manifests if m.get("method") == "dump"]


def windows(repo, cluster, manifests, index=None):
    return oplog.windows(repo, cluster, _dump_bases(manifests), index)


def plan_pitr(repo, cluster, manifests, target):
    return oplog.plan_pitr(repo, cluster, _dump_bases(manifests), target)


def log_backup(repository, request, state, check_mode=False):
    return oplog.log_backup(repository, request, state, check_mode=check_mode)
