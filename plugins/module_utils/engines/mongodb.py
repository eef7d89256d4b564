# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB: volume snapshots under fsyncLock (the one method of this version).

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
import sys
from urllib.parse import quote

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, DataProtectionError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import utcnow

METHODS = ("volume-snapshot",)
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


def plan_snapshot(request, local=False):
    """What a volume snapshot of this mongod needs, read-only: its dbPath, its storage engine, the privileges of fsyncLock."""
    conn = Connection(request.connection)
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
                          hint="A snapshot of one shard or config server is not a backup of the cluster")
    if hello.get("arbiterOnly"):
        raise EngineError("%s is an arbiter: it holds no data" % conn.target(), hint="Point connection at a data-bearing member of the replica set")
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
                              hint="A btrfs or lvm snapshot is taken on the database host: run the backup there")
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
        identity = "replset:%s" % set_name
        if state == "primary":
            warnings.append("fsyncLock on the primary blocks the application's writes until the snapshot's point in time is fixed; connect to "
                            "a secondary to snapshot it instead")
    else:
        state = "standalone"
        identity = "standalone:%s" % status.get("host")
        warnings.append("%s is a standalone mongod: it has no oplog, so no point-in-time restore can start from this backup" % conn.target())
    return {
        "identity": identity,
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
