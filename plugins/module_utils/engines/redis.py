# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis 7: method ``datafile``, the server's own data files, and restores into a data directory.

Backup
    ``BGSAVE``, then the RDB file is streamed into the repository while the
    forked child writes it (``temp-<child pid>.rdb`` in the server's ``dir``,
    found by its parent pid, or by its age when the server runs in another
    pid namespace), up to the end the child wrote once the save has finished.
    The file read is checked to be the one the save renamed to ``dbfilename``,
    to start with the RDB magic and to end with the RDB end-of-file opcode,
    and ``rdb_last_bgsave_status`` must be ``ok``: a failed save (``dir`` not
    writable, disk full, the child killed; the state in which
    ``stop-writes-on-bgsave-error`` answers MISCONF) is refused and leaves
    nothing in the repository.  With ``appendonly yes`` the multi-part AOF
    follows: the manifest (without its ``history`` entries, files Redis is
    about to delete and never loads) and the base and incr files it names,
    each up to the size it had at one cut.  ``users.acl`` follows when the
    server uses an ACL file.  The module must therefore run on the Redis host.

    One object per file, not one tar stream: the RDB's size is unknown while
    the child writes it, which a tar header needs first; per-file objects
    each carry their own size and sha256 in the manifest; and a restore
    writes each under the target's own names without an archive tool.

    The keys count per db is recorded for the RDB as ``INFO keyspace`` read
    just before ``BGSAVE``, and marked exact when ``rdb_changes_since_last_save``
    shows that nothing was written between that read and the fork (or, for a
    save already finished, since the fork).  The AOF's keys count is recorded
    the same way around its cut (exact when nothing was written, no rewrite
    ran and the AOF buffer was empty).  Keys with a TTL may expire in between
    without a write being counted, so restores compare keys without a TTL
    exactly and keys with one as an upper bound.

    No identity pins the cluster name to one dataset: Redis has nothing
    stable that identifies it (``run_id`` changes on every restart,
    ``master_replid`` on restarts and failovers and is shared by replicas).

Restore
    Into ``data_dir`` (new, empty, or with ``force`` a stopped server's
    directory), under the names of the target's configuration when
    ``defaults_file`` (its redis.conf) is given, else Redis's defaults
    (``dump.rdb``, ``appendonlydir``, ``appendonly.aof``, ``users.acl``).  AOF
    files are renamed for the target's ``appendfilename`` and the manifest
    rewritten to match.  A target with ``appendonly yes`` restored from a
    backup without AOF gets an AOF made of the RDB (hard-linked as the base,
    an empty incr file and a manifest), since Redis 7 starting with
    ``appendonly yes`` and no AOF ignores ``dump.rdb`` and starts empty.  A
    target with ``appendonly no`` gets no AOF files (a stale AOF would be
    loaded the day ``appendonly`` is turned on in the file).  Without
    ``defaults_file`` the AOF is restored when the backup has one.  The ACL
    file goes into ``data_dir``.  A directory a running server uses (a live
    pid in a pid file there or the target configuration's, a listener on the
    configuration's port when its ``dir`` is ``data_dir``, a ``redis-server``
    whose working directory it is) is always refused.

    With ``start`` a ``redis-server`` is started on the restored directory
    (as ``owner`` when run as root; a replica's ``replicaof`` is overridden,
    so that it cannot resync the restored data away), its log is read for
    which file it loaded, and its ``INFO keyspace`` is compared with the
    manifest's.

Passwords reach redis-cli in REDISCLI_AUTH, never on a command line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno
import io
import os
import re
import select
import signal
import socket
import stat
import subprocess
import time

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import fsync_dir
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow

METHODS = ("datafile", "volume-snapshot")
ENGINE = "redis"
DEFAULT_PORT = 6379
MIN_VERSION = (7, 0)
BIN_DIRS = ("/usr/local/bin", "/opt/redis/bin", "/opt/homebrew/bin")
PACKAGES = {"redis-cli": "redis-tools (Debian), redis (RHEL)", "redis-server": "redis-server (Debian), redis (RHEL)"}
RDB_OBJECT = "dump.rdb"
AOF_OBJECT_PREFIX = "aof."
ACL_OBJECT = "users.acl"
DEFAULTS = {
    "dir": None,
    "dbfilename": "dump.rdb",
    "appendonly": "no",
    "appenddirname": "appendonlydir",
    "appendfilename": "appendonly.aof",
    "aclfile": "",
    "databases": "16",
    "port": str(DEFAULT_PORT),
    "pidfile": "",
    "bind": "",
    "unixsocket": "",
    "replicaof": "",
}
CONFIG_NAMES = ("dir", "dbfilename", "appendonly", "appenddirname", "appendfilename", "aclfile", "databases")
ACL_HINT = "Give the backup user at least: ACL SETUSER <user> +info +bgsave +config|get +echo"
ERROR_PREFIXES = ("ERR", "NOAUTH", "WRONGPASS", "NOPERM", "MISCONF", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "EXECABORT",
                  "NOREPLICAS", "CLUSTERDOWN", "TRYAGAIN", "WRONGTYPE", "UNKILLABLE", "NOPROTO")
POLL_SECONDS = 0.02
CHUNK = 1024 * 1024

_TEMP_RDB = re.compile(r"^temp-(\d+)\.rdb$")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_DB = re.compile(r"^db(\d+)$")


# Talking to the server ------------------------------------------------------


def _quote(arg):
    """An argument as redis-cli's line reader (sdssplitargs) reads it back."""
    text = str(arg)
    if text and not re.search(r"[\s\"'\\]", text):
        return text
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def is_error(reply):
    first = reply.split("\n", 1)[0]
    return any(first == prefix or first.startswith(prefix + " ") for prefix in ERROR_PREFIXES)


def version_tuple(text):
    match = _VERSION.search(text or "")
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


class Connection(object):
    """How to reach the server: host and port, or a Unix socket; an ACL user; the password (into REDISCLI_AUTH)."""

    def __init__(self, params):
        params = dict(params or {})
        self.host = params.get("host")
        self.socket = params.get("socket")
        self.port = int(params.get("port") or DEFAULT_PORT)
        self.user = params.get("user")
        self.password = params.get("password")
        self.bin_dir = params.get("bin_dir")
        self.defaults_file = params.get("defaults_file")

    def env(self):
        return {"REDISCLI_AUTH": self.password}

    def target(self):
        return self.socket or "%s:%s" % (self.host or "127.0.0.1", self.port)

    def tool(self, name="redis-cli"):
        if self.bin_dir:
            candidate = os.path.join(self.bin_dir, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return tools.find_tool(name, BIN_DIRS, PACKAGES.get(name))

    def argv(self):
        argv = [self.tool("redis-cli")]
        if self.socket:
            argv += ["-s", self.socket]
        else:
            argv += ["-h", self.host or "127.0.0.1", "-p", str(self.port)]
        if self.user:
            argv += ["--user", self.user]
        return argv

    def session(self, timeout=120):
        return Session(self, timeout)

    def explain(self, reply, stderr="", command=None):
        """The error for a failed exchange: what failed, on which server, and what to do."""
        text = "%s\n%s" % (reply or "", stderr or "")
        who = "user %s" % self.user if self.user else "the default user"
        if "WRONGPASS" in text:
            return EngineError(
                "Redis at %s refused the password in connection.password for %s (WRONGPASS)" % (self.target(), who),
                hint="Check connection.password%s" % ("" if self.user else ", and connection.user when the server uses ACL users"),
            )
        if "NOAUTH" in text:
            return EngineError(
                "Redis at %s requires a password and none was given (NOAUTH)" % self.target(),
                hint="Set connection.password (and connection.user for an ACL user other than default)",
            )
        if "NOPERM" in text:
            return EngineError("%s may not run %s on Redis at %s: %s" % (who, command or "a command", self.target(), _first_line(reply)),
                               hint=ACL_HINT)
        if "Could not connect" in text or "Connection refused" in text:
            return EngineError(
                "cannot reach Redis at %s" % self.target(),
                hint="Check connection.host / connection.port / connection.socket and that the server is running: %s"
                % _first_line(stderr or reply),
            )
        if "LOADING" in text:
            return EngineError("Redis at %s is still loading its dataset" % self.target(), hint="Run the backup again once it has loaded")
        if "unknown command" in text and command:
            return EngineError("Redis at %s does not know the command %s (renamed or disabled?): %s" % (self.target(), command, _first_line(reply)),
                               hint="The backup needs INFO, BGSAVE, ECHO and CONFIG GET (or connection.defaults_file instead of CONFIG GET)")
        return EngineError("Redis at %s: %s" % (self.target(), _first_line(reply) or _first_line(stderr) or "no answer"))


def _first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


class Session(object):
    """One redis-cli process, fed commands on stdin one at a time.

    After each command an ``ECHO <token>`` marks the end of its reply, so
    multi-line replies (INFO) and errors are told apart without parsing
    redis-cli's output formats.  Sequences that must follow each other
    closely (INFO, BGSAVE, INFO) run on one connection with no process
    start in between.
    """

    def __init__(self, conn, timeout=120):
        self.conn = conn
        self.timeout = timeout
        self.token = ("dataprotection-%s" % binascii.hexlify(os.urandom(8)).decode("ascii")).encode("ascii")
        self.out = bytearray()
        self.err = bytearray()
        self.warnings = []
        argv = conn.argv()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=tools.tool_env(conn.env()), bufsize=0, close_fds=True)
        except OSError as exc:
            raise ToolError("cannot run %s: %s" % (argv[0], exc))
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    @property
    def stderr(self):
        return bytes(self.err).decode("utf-8", "replace")

    def _send(self, text):
        try:
            self.proc.stdin.write(text.encode("utf-8"))
        except (IOError, OSError):
            self._pump(1.0)
            raise self.conn.explain(bytes(self.out).decode("utf-8", "replace"), self.stderr)

    def _pump(self, timeout):
        """Read what redis-cli printed within ``timeout``; False at the end of its output."""
        handles = [h for h in (self.proc.stdout, self.proc.stderr) if h is not None and not h.closed]
        ready = select.select(handles, [], [], max(timeout, 0))[0]
        alive = True
        for handle in ready:
            data = os.read(handle.fileno(), 65536)
            if handle is self.proc.stdout:
                if not data:
                    alive = False
                self.out += data
            else:
                self.err += data
        for complaint, reply in ((b"Could not connect", ""), (b"AUTH failed: WRONGPASS", "WRONGPASS")):
            at = self.err.find(complaint)
            if at >= 0 and (b"\n" in self.err[at:] or not alive):
                raise self.conn.explain(reply, self.stderr)
        return alive

    def _handshake(self):
        """The first exchange: the marker, or the error that stops every command (no password, wrong one, no server)."""
        self._send("ECHO %s\n" % self.token.decode("ascii"))
        deadline = time.monotonic() + self.timeout
        marker = self.token + b"\n"
        while True:
            if self.out.startswith(marker):
                del self.out[:len(marker)]
                break
            if b"\n" in self.out:
                line = bytes(self.out).decode("utf-8", "replace")
                raise self.conn.explain(line, self.stderr, command="ECHO")
            if time.monotonic() > deadline:
                raise EngineError("Redis at %s did not answer within %ss" % (self.conn.target(), self.timeout))
            if not self._pump(deadline - time.monotonic()):
                raise self.conn.explain(bytes(self.out).decode("utf-8", "replace"), self.stderr)
        if b"AUTH failed" in self.err:
            self.warnings.append("redis-cli: %s" % _first_line(self.stderr))

    def call(self, *args, **kwargs):
        """Run one command; return its reply as text (one line terminator removed).  Error replies raise unless check=False."""
        check = kwargs.get("check", True)
        timeout = kwargs.get("timeout") or self.timeout
        self._send("%s\nECHO %s\n" % (" ".join(_quote(a) for a in args), self.token.decode("ascii")))
        deadline = time.monotonic() + timeout
        marker = b"\n" + self.token + b"\n"
        while True:
            end = (b"\n" + self.out).find(marker)
            if end >= 0:
                reply = bytes(self.out[:max(end - 1, 0)]).decode("utf-8", "replace")
                del self.out[:end - 1 + len(marker)]
                break
            if time.monotonic() > deadline:
                raise EngineError("Redis at %s did not answer %s within %ss" % (self.conn.target(), args[0], timeout))
            if not self._pump(deadline - time.monotonic()):
                raise self.conn.explain(bytes(self.out).decode("utf-8", "replace"), self.stderr, command=args[0])
        if check and is_error(reply):
            raise self.conn.explain(reply, self.stderr, command=" ".join(str(a) for a in args[:2]))
        return reply

    def info(self, *sections):
        return parse_info(self.call("INFO", *sections))

    def close(self):
        tools.end_client(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


def parse_info(text):
    """``INFO`` text into a dict of strings (section headers and blank lines skipped)."""
    info = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        info[key] = value
    return info


def parse_keyspace(info):
    """``{"db0": {"keys": n, "expires": m}}`` from INFO's keyspace lines."""
    keyspace = {}
    for key, value in info.items():
        if not _DB.match(key):
            continue
        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        keyspace[key] = {"keys": int(fields.get("keys", 0)), "expires": int(fields.get("expires", 0))}
    return keyspace


def db_index(name):
    match = _DB.match(name)
    return int(match.group(1)) if match else -1


def compare_keyspace(expected, actual):
    """Differences between a restored server's keyspace and the backup's: keys without a TTL must match, keys with one may be fewer."""
    problems = []
    for db in sorted(set(expected) | set(actual), key=db_index):
        want = expected.get(db) or {"keys": 0, "expires": 0}
        have = actual.get(db) or {"keys": 0, "expires": 0}
        want_plain, have_plain = want["keys"] - want["expires"], have["keys"] - have["expires"]
        if have_plain != want_plain:
            problems.append("%s has %d keys without a TTL, the backup %d" % (db, have_plain, want_plain))
        if have["expires"] > want["expires"]:
            problems.append("%s has %d keys with a TTL, more than the backup's %d" % (db, have["expires"], want["expires"]))
    return problems


# Configuration files ----------------------------------------------------------


def split_config_line(line):
    """A redis.conf line into its words: plain, "double-quoted" (with backslash escapes) or 'single-quoted'."""
    words = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            break
        quote = line[i] if line[i] in "\"'" else None
        word = []
        if quote:
            i += 1
            while i < n and line[i] != quote:
                if quote == '"' and line[i] == "\\" and i + 1 < n:
                    i += 1
                    word.append({"n": "\n", "r": "\r", "t": "\t"}.get(line[i], line[i]))
                else:
                    word.append(line[i])
                i += 1
            if i >= n:
                raise ConfigError("unbalanced quotes in the configuration line %r" % line)
            i += 1
        else:
            while i < n and not line[i].isspace():
                word.append(line[i])
                i += 1
        words.append("".join(word))
    return words


def read_config_file(path, _depth=0):
    """The directives of a redis.conf (``include`` files followed), the last occurrence of each winning: {name: [args]}."""
    if _depth > 10:
        raise ConfigError("%s: include directives nest more than 10 deep" % path)
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read the Redis configuration %s: %s" % (path, exc), hint="defaults_file must be the server's redis.conf")
    directives = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = split_config_line(line)
        if not words:
            continue
        name = words[0].lower()
        if name == "include" and len(words) > 1:
            directives.update(read_config_file(words[1], _depth + 1))
        else:
            if name == "slaveof":
                name = "replicaof"
            directives[name] = words[1:]
    return directives


def config_settings(directives):
    """The settings the engine uses, from a configuration's directives, with Redis's defaults."""
    settings = dict(DEFAULTS)
    for name in DEFAULTS:
        if name in directives:
            settings[name] = " ".join(directives[name])
    settings["appendonly"] = "yes" if settings["appendonly"].lower() == "yes" else "no"
    return settings


# Backup -------------------------------------------------------------------------


def inspect(session, conn, min_version=MIN_VERSION):
    """What a backup needs to know about the server, read-only (refusing a version before ``min_version`` unless it is None)."""
    server = session.info("server")
    version = server.get("redis_version", "")
    if min_version is not None and (version_tuple(version) is None or version_tuple(version)[:2] < min_version):
        raise EngineError("Redis at %s is version %s; method datafile supports Redis 7.0 and later (multi-part AOF)" % (conn.target(), version or "unknown"),
                          hint="Back up this server with volume snapshots, or upgrade it")
    state = session.info("persistence", "replication", "keyspace")
    config = server_config(session, conn, server)
    result = {
        "version": version,
        "mode": server.get("redis_mode", "standalone"),
        "process_id": int(server.get("process_id") or 0),
        "role": state.get("role", "master"),
        "master_link_status": state.get("master_link_status"),
        "master_replid": state.get("master_replid"),
        "master_repl_offset": int(state.get("master_repl_offset") or 0),
        "loading": state.get("loading") == "1" or state.get("async_loading") == "1",
        "aof_enabled": state.get("aof_enabled") == "1",
        "last_bgsave_status": state.get("rdb_last_bgsave_status"),
        "keyspace": parse_keyspace(state),
        "config": config,
        "dir": config["dir"],
    }
    return result


def server_config(session, conn, server_info):
    """dir, dbfilename, appendonly, appenddirname, appendfilename, aclfile, databases: CONFIG GET, else the configuration file."""
    reply = session.call("CONFIG", "GET", *CONFIG_NAMES, check=False)
    if not is_error(reply):
        lines = reply.split("\n")
        pairs = dict(zip(lines[0::2], lines[1::2]))
        settings = dict(DEFAULTS)
        settings.update(dict((k, v) for k, v in pairs.items() if k in CONFIG_NAMES))
        settings["appendonly"] = "yes" if settings["appendonly"] == "yes" else "no"
        settings["source"] = "CONFIG GET"
        return settings
    path = conn.defaults_file or server_info.get("config_file")
    if not path or not os.path.isfile(path):
        raise EngineError(
            "cannot read the configuration of Redis at %s: CONFIG GET was refused (%s) and no readable configuration file is known"
            % (conn.target(), _first_line(reply)),
            hint="Allow the backup user +config|get, or set connection.defaults_file to the server's redis.conf",
        )
    settings = config_settings(read_config_file(path))
    if not settings["dir"] or not os.path.isabs(settings["dir"]):
        raise EngineError("the configuration %s does not give an absolute dir, and CONFIG GET was refused (%s)" % (path, _first_line(reply)),
                          hint="Allow the backup user +config|get, or set an absolute dir in %s" % path)
    settings["source"] = path
    return settings


def check_server(server, conn):
    """Refuse what cannot give a backup; return warnings for what can."""
    if server["loading"]:
        raise EngineError("Redis at %s is still loading its dataset" % conn.target(), hint="Run the backup again once it has loaded")
    data_dir = server["dir"]
    if not data_dir or not os.path.isdir(data_dir):
        raise EngineError(
            "the server's dir %s is not on this host" % data_dir,
            hint="BGSAVE writes the RDB into the server's dir and the backup reads it there: run the backup on the Redis host "
            "(a server in a container must see its dir at the same path as this host)",
        )
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise EngineError("the server's dir %s cannot be read by the user running the backup" % data_dir,
                          hint="Run the backup as root or as the user Redis runs as")
    for name in ("dbfilename", "appenddirname", "appendfilename"):
        if "/" in server["config"][name] or not server["config"][name]:
            raise EngineError("the server's %s %r is not a plain file name" % (name, server["config"][name]))
    warnings = []
    if server["last_bgsave_status"] == "err":
        warnings.append("the server's last BGSAVE failed (rdb_last_bgsave_status:err); with stop-writes-on-bgsave-error it refuses writes "
                        "(MISCONF) until a save succeeds")
    if server["role"] == "slave" and server["master_link_status"] != "up":
        warnings.append("this replica's link to its master is %s: the backup holds what it has replicated so far" % server["master_link_status"])
    if server["mode"] == "cluster":
        warnings.append("a Redis Cluster node: the backup holds this node's slots only; back up every primary")
    return warnings


def aof_paths(server):
    config = server["config"]
    directory = os.path.join(server["dir"], config["appenddirname"])
    return directory, os.path.join(directory, config["appendfilename"] + ".manifest")


def acl_path(server):
    aclfile = server["config"].get("aclfile") or ""
    if not aclfile:
        return None
    return aclfile if os.path.isabs(aclfile) else os.path.join(server["dir"], aclfile)


def parse_aof_manifest(text):
    """The lines of a Redis 7 AOF manifest: dicts with name, seq, type and the line's words (comments kept as None)."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            entries.append({"comment": line})
            continue
        words = split_config_line(line)
        if len(words) < 6 or len(words) % 2:
            raise EngineError("cannot read the AOF manifest line %r" % line)
        fields = dict((words[i].lower(), words[i + 1]) for i in range(0, len(words), 2))
        if "file" not in fields or "type" not in fields or "/" in fields["file"]:
            raise EngineError("cannot read the AOF manifest line %r" % line)
        entries.append({"name": fields["file"], "seq": fields.get("seq"), "type": fields["type"], "words": words, "line": line})
    return entries


def _format_manifest_line(entry, name):
    if name == entry["name"]:
        return entry["line"]
    words = list(entry["words"])
    for i in range(0, len(words), 2):
        if words[i].lower() == "file":
            words[i + 1] = name
    if any(_quote(word) != word for word in words):
        raise EngineError("cannot rename the AOF file %r: its name needs quoting" % entry["name"])
    return " ".join(words)


def rewrite_aof_manifest(text, source_prefix, target_prefix, keep_history=False):
    """The manifest for the target: history entries dropped, files renamed for the target's appendfilename.

    Returns (text, [(old name, new name, type)]) for the base and incr files.
    """
    lines = []
    files = []
    for entry in parse_aof_manifest(text):
        if "comment" in entry:
            lines.append(entry["comment"])
            continue
        if entry["type"] == "h" and not keep_history:
            continue
        name = entry["name"]
        if source_prefix != target_prefix and name.startswith(source_prefix + "."):
            name = target_prefix + name[len(source_prefix):]
        lines.append(_format_manifest_line(entry, name))
        if entry["type"] in ("b", "i"):
            files.append((entry["name"], name, entry["type"]))
    if not [f for f in files if f[2] == "i"] and not [f for f in files if f[2] == "b"]:
        raise EngineError("the AOF manifest names no base and no incr file")
    return "\n".join(lines) + "\n", files


class _Limited(object):
    """Read a file up to a fixed size (what it held at the cut)."""

    def __init__(self, handle, size):
        self.handle = handle
        self.left = size

    def read(self, size=-1):
        if self.left <= 0:
            return b""
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self.handle.read(want)
        if not data:
            raise EngineError("%s is shorter than when the backup's cut was taken" % getattr(self.handle, "name", "an AOF file"))
        self.left -= len(data)
        return data


def _proc_ppid(pid, proc_root="/proc"):
    try:
        with open(os.path.join(proc_root, str(pid), "status")) as handle:
            for line in handle:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (IOError, OSError, ValueError):
        return None
    return None


def _proc_comm(pid, proc_root="/proc"):
    try:
        with open(os.path.join(proc_root, str(pid), "comm")) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return ""


class RdbSnapshot(object):
    """One BGSAVE and its RDB, read as a file-like object while the forked child writes it.

    ``start()`` runs the BGSAVE (waiting for a running child first) and
    records the keyspace at the fork; ``read()`` follows the child's temp
    file and ends once the save has finished and every byte is read;
    ``finish()`` checks that the file read is the one the save produced.
    """

    def __init__(self, session, server, sleep=time.sleep, proc_root="/proc", wait_limit=3600):
        self.session = session
        self.server = server
        self.sleep = sleep
        self.proc_root = proc_root
        self.wait_limit = wait_limit
        self.dir = server["dir"]
        self.final_path = os.path.join(self.dir, server["config"]["dbfilename"])
        self.handle = None
        self.path = None
        self.followed = False
        self.matched_by_parent = False
        self.finished = False
        self.bytes = 0
        self.head = b""
        self.tail = b""
        self.saves = None
        self.keyspace = None
        self.exact = False
        self.started_wall = None
        self.time = None
        self.positions = {}
        self.last_poll = 0.0

    # The save

    def _wait_no_child(self):
        deadline = time.monotonic() + self.wait_limit
        while True:
            state = self.session.info("persistence")
            busy = [name for name in ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress") if state.get(name) == "1"]
            if not busy:
                return state
            if time.monotonic() > deadline:
                raise EngineError("Redis at %s kept a child process busy (%s) for %ds" % (self.session.conn.target(), ", ".join(busy), self.wait_limit),
                                  hint="Run the backup when no save or AOF rewrite is running")
            self.sleep(0.1)

    def start(self):
        reply = ""
        for dummy in range(20):
            self._wait_no_child()
            self.started_wall = time.time()
            before = self.session.info("persistence", "replication", "keyspace")
            reply = self.session.call("BGSAVE", check=False)
            after = self.session.info("persistence", "keyspace")
            if reply.strip() == "Background saving started":
                self.saves = int(before.get("rdb_saves") or 0) + 1
                self.time = utcnow()
                self.keyspace, self.exact = fork_keyspace(before, after)
                self.positions = {
                    "rdb_snapshot_time": format_time(self.time),
                    "master_replid": before.get("master_replid"),
                    "master_repl_offset": int(before.get("master_repl_offset") or 0),
                }
                return self
            if "in progress" in reply or "child process" in reply or "right now" in reply:
                continue
            if is_error(reply):
                raise self.session.conn.explain(reply, self.session.stderr, command="BGSAVE")
            raise EngineError("Redis at %s answered BGSAVE with %r" % (self.session.conn.target(), reply.strip()))
        raise EngineError("Redis at %s kept refusing BGSAVE: %s" % (self.session.conn.target(), reply.strip()),
                          hint="Another process keeps starting saves or AOF rewrites; run the backup again later")

    def _poll(self, force=False):
        """INFO persistence, at most every POLL_SECONDS unless forced; returns (completed, state)."""
        now = time.monotonic()
        if not force and now - self.last_poll < POLL_SECONDS:
            self.sleep(POLL_SECONDS - (now - self.last_poll))
        self.last_poll = time.monotonic()
        state = self.session.info("persistence")
        saves = int(state.get("rdb_saves") or 0)
        completed = state.get("rdb_bgsave_in_progress") != "1" or saves > self.saves
        if completed:
            self._check_outcome(state, saves)
        return completed, state

    def _check_outcome(self, state, saves):
        if saves > self.saves and state.get("rdb_bgsave_in_progress") != "1":
            raise EngineError("another save finished right after the backup's BGSAVE on Redis at %s, so its outcome cannot be told"
                              % self.session.conn.target(), hint="Run the backup again")
        if state.get("rdb_last_bgsave_status") != "ok":
            raise EngineError(
                "BGSAVE failed on Redis at %s (rdb_last_bgsave_status:%s): the server could not write its RDB into %s"
                % (self.session.conn.target(), state.get("rdb_last_bgsave_status"), self.dir),
                hint="Read the Redis log (a dir the server cannot write, a full disk, a killed child). With stop-writes-on-bgsave-error yes "
                "the server now refuses writes (MISCONF) until a save succeeds. Nothing was stored",
            )

    def _candidate(self):
        try:
            names = os.listdir(self.dir)
        except OSError as exc:
            raise EngineError("cannot list the server's dir %s: %s" % (self.dir, exc))
        temps = [(name, int(m.group(1))) for name, m in ((n, _TEMP_RDB.match(n)) for n in names) if m]
        same_namespace = _proc_comm(self.server["process_id"], self.proc_root).startswith("redis")
        for name, pid in temps:
            if _proc_ppid(pid, self.proc_root) == self.server["process_id"]:
                self.matched_by_parent = True
                return os.path.join(self.dir, name)
        if same_namespace:
            return None
        fresh = []
        for name, dummy in temps:
            try:
                mtime = os.stat(os.path.join(self.dir, name)).st_mtime
            except OSError:
                continue
            if mtime >= self.started_wall - 1:
                fresh.append((mtime, name))
        return os.path.join(self.dir, max(fresh)[1]) if fresh else None

    def _open(self):
        while True:
            path = self._candidate()
            if path:
                try:
                    self.handle = open(path, "rb")
                    self.path = path
                    self.followed = True
                    return
                except (IOError, OSError) as exc:
                    if exc.errno != errno.ENOENT:
                        raise EngineError("cannot read %s: %s" % (path, exc), hint="Run the backup as root or as the user Redis runs as")
            completed, dummy = self._poll()
            if completed:
                # The save finished before its temp file was seen: read the file it produced.
                try:
                    self.handle = open(self.final_path, "rb")
                except (IOError, OSError) as exc:
                    raise EngineError("cannot read %s after BGSAVE: %s" % (self.final_path, exc))
                self.path = self.final_path
                completed, state = self._poll(force=True)
                if int(state.get("rdb_saves") or 0) != self.saves:
                    raise EngineError("another save replaced %s during the backup on Redis at %s" % (self.final_path, self.session.conn.target()),
                                      hint="Run the backup again")
                self.finished = True
                return

    def read(self, size=-1):
        size = CHUNK if size is None or size < 0 else size
        if self.handle is None:
            self._open()
        while True:
            data = self.handle.read(size)
            if data:
                if len(self.head) < 9:
                    self.head += data[:9 - len(self.head)]
                self.tail = (self.tail + data)[-9:]
                self.bytes += len(data)
                return data
            if self.finished:
                return b""
            completed, dummy = self._poll()
            if completed:
                self.finished = True

    def finish(self):
        """Check the file read; return the facts about it."""
        try:
            if self.handle is None or not self.finished:
                raise EngineError("the RDB was not read to its end")
            stat = os.fstat(self.handle.fileno())
            if stat.st_size != self.bytes:
                raise EngineError("read %d bytes of the RDB, but it has %d" % (self.bytes, stat.st_size))
            if self.followed:
                self._check_renamed(stat)
        finally:
            self.close()
        if not self.head.startswith(b"REDIS") or not self.head[5:9].isdigit():
            raise EngineError("%s does not start like an RDB file (%r)" % (self.final_path, self.head))
        if self.tail[0:1] != b"\xff":
            raise EngineError("%s does not end with the RDB end-of-file marker" % self.final_path)
        return {"rdb_version": int(self.head[5:9]), "size": self.bytes, "followed_temp_file": self.followed}

    def _check_renamed(self, stat):
        """The temp file followed must be the one the save renamed to dbfilename."""
        try:
            final = os.stat(self.final_path)
        except OSError:
            final = None
        if final is not None and (final.st_ino, final.st_dev) == (stat.st_ino, stat.st_dev):
            return
        dummy, state = self._poll(force=True)
        if int(state.get("rdb_saves") or 0) > self.saves and self.matched_by_parent:
            # A later save has replaced dbfilename already; the file followed was our child's own.
            return
        raise EngineError("the file read, %s, is not the RDB that BGSAVE renamed to %s" % (self.path, self.final_path),
                          hint="Another Redis server may share the dir %s; run the backup again" % self.dir)

    def close(self):
        if self.handle is not None:
            self.handle.close()


def fork_keyspace(before, after):
    """The keyspace at the fork, and whether it is exact (see the module docstring).

    ``before``: INFO just before BGSAVE; ``after``: INFO just after it.
    """
    before_keyspace = parse_keyspace(before)
    saves = int(before.get("rdb_saves") or 0)
    if int(after.get("rdb_saves") or 0) != saves + 1:
        return before_keyspace, False
    if after.get("rdb_bgsave_in_progress") == "1":
        # Not finished: the change counter has not been reset, so equal counters mean no write in between.
        return before_keyspace, after.get("rdb_changes_since_last_save") == before.get("rdb_changes_since_last_save")
    if after.get("rdb_last_bgsave_status") == "ok" and after.get("rdb_changes_since_last_save") == "0":
        # Finished, and the counter (reset to the changes since the fork) shows none: the keyspace now is the fork's.
        return parse_keyspace(after), True
    return before_keyspace, False


def aof_cut_exact(before, after):
    """Whether the AOF files' sizes taken between two INFOs hold exactly the keyspace of the first."""
    same = ("rdb_changes_since_last_save", "aof_rewrites", "rdb_saves")
    return (before.get("aof_buffer_length") == "0" and before.get("aof_rewrite_in_progress") == "0"
            and after.get("aof_rewrite_in_progress") == "0" and before.get("rdb_bgsave_in_progress") == "0"
            and after.get("rdb_bgsave_in_progress") == "0" and all(before.get(k) == after.get(k) for k in same))


def _wait_no_rewrite(session, limit=3600, sleep=time.sleep):
    deadline = time.monotonic() + limit
    while True:
        state = session.info("persistence")
        if state.get("aof_rewrite_in_progress") != "1" and state.get("aof_rewrite_scheduled") != "1":
            return
        if time.monotonic() > deadline:
            raise EngineError("an AOF rewrite on Redis at %s ran for more than %ds" % (session.conn.target(), limit))
        sleep(0.1)


def open_aof(session, server, attempts=6, sleep=time.sleep):
    """Read the manifest and open the files it names at one cut; return (manifest text, [(entry, handle, size)], keyspace, exact)."""
    directory, manifest_path = aof_paths(server)
    opened = []
    for attempt in range(attempts):
        _wait_no_rewrite(session, sleep=sleep)
        before = session.info("persistence", "keyspace")
        try:
            with open(manifest_path, "rb") as handle:
                text = handle.read().decode("utf-8")
        except (IOError, OSError) as exc:
            raise EngineError("appendonly is on but the AOF manifest %s cannot be read: %s" % (manifest_path, exc))
        entries = [e for e in parse_aof_manifest(text) if e.get("type") in ("b", "i")]
        opened = []
        try:
            for entry in entries:
                handle = open(os.path.join(directory, entry["name"]), "rb")
                opened.append((entry, handle, os.fstat(handle.fileno()).st_size))
        except (IOError, OSError) as exc:
            for dummy, handle, dummy_size in opened:
                handle.close()
            opened = []
            if exc.errno == errno.ENOENT and attempt < attempts - 1:
                sleep(0.05 * (attempt + 1))
                continue
            raise EngineError("cannot read the AOF file %s: %s" % (exc.filename, exc))
        after = session.info("persistence")
        exact = aof_cut_exact(before, after)
        if exact or attempt == attempts - 1:
            return text, opened, parse_keyspace(before), exact
        for dummy, handle, dummy_size in opened:
            handle.close()
        sleep(0.05 * (attempt + 1))
    raise EngineError("could not take a cut of the AOF files in %s" % directory)


def plan_backup(request):
    conn = Connection(request.connection)
    with conn.session() as session:
        server = inspect(session, conn)
        warnings = check_server(server, conn) + session.warnings
    config = server["config"]
    objects = [RDB_OBJECT]
    files = {RDB_OBJECT: os.path.join(server["dir"], config["dbfilename"])}
    if server["aof_enabled"]:
        directory, manifest_path = aof_paths(server)
        try:
            with open(manifest_path) as handle:
                entries = parse_aof_manifest(handle.read())
        except (IOError, OSError) as exc:
            raise EngineError("appendonly is on but the AOF manifest %s cannot be read: %s" % (manifest_path, exc))
        for entry in entries:
            if entry.get("type") in ("b", "i"):
                objects.append(AOF_OBJECT_PREFIX + entry["name"])
                files[objects[-1]] = os.path.join(directory, entry["name"])
        objects.append(AOF_OBJECT_PREFIX + os.path.basename(manifest_path))
        files[objects[-1]] = manifest_path
    acl = acl_path(server)
    if acl:
        objects.append(ACL_OBJECT)
        files[ACL_OBJECT] = acl
    plan = {
        "server": conn.target(),
        "server_version": server["version"],
        "role": server["role"],
        "mode": server["mode"],
        "data_dir": server["dir"],
        "appendonly": server["aof_enabled"],
        "keyspace": server["keyspace"],
        "objects": objects,
        "files": files,
        "tools": {"redis-cli": {"path": conn.tool("redis-cli"), "version": tool_version(conn.tool("redis-cli"))}},
        "config_source": config["source"],
    }
    if warnings:
        plan["warnings"] = warnings
    return plan


def tool_version(path):
    out, err = tools.run([path, "--version"], timeout=30, check=False)
    found = version_tuple(out + err)
    return ".".join(str(part) for part in found) if found else (out + err).strip()[:80]


def run_backup(request, ctx):
    conn = Connection(request.connection)
    with conn.session() as session:
        server = inspect(session, conn)
        warnings = check_server(server, conn)
        started = utcnow()
        snapshot = RdbSnapshot(session, server)
        snapshot.start()
        try:
            record = ctx.store(RDB_OBJECT, snapshot)
            rdb = snapshot.finish()
        finally:
            snapshot.close()
        files = [{"object": record["name"], "kind": "rdb", "name": server["config"]["dbfilename"], "size": record["size"]}]
        aof = None
        if server["aof_enabled"]:
            aof = store_aof(session, server, ctx, files)
        acl = acl_path(server)
        if acl:
            try:
                with open(acl, "rb") as handle:
                    record = ctx.store(ACL_OBJECT, handle)
            except (IOError, OSError) as exc:
                raise EngineError("the server uses the ACL file %s, which cannot be read: %s" % (acl, exc))
            files.append({"object": record["name"], "kind": "acl", "name": os.path.basename(acl), "size": record["size"]})
        warnings += session.warnings
    facts = {
        "start_time": started,
        "end_time": utcnow(),
        "engine_version": server["version"],
        "role": server["role"],
        "keyspace": snapshot.keyspace,
        "keyspace_exact": snapshot.exact,
        "positions": snapshot.positions,
        "files": files,
        "aof": aof,
        "redis": {
            "mode": server["mode"],
            "rdb_version": rdb["rdb_version"],
            "followed_temp_file": rdb["followed_temp_file"],
            "dir": server["dir"],
            "config": dict((k, server["config"][k]) for k in CONFIG_NAMES),
        },
        "tools": {"redis-cli": tool_version(conn.tool("redis-cli"))},
    }
    if warnings:
        facts["warnings"] = warnings
    return facts


def store_aof(session, server, ctx, files):
    text, opened, keyspace, exact = open_aof(session, server)
    cut = utcnow()
    try:
        manifest_text, renamed = rewrite_aof_manifest(text, server["config"]["appendfilename"], server["config"]["appendfilename"])
        entries = []
        for entry, handle, size in opened:
            record = ctx.store(AOF_OBJECT_PREFIX + entry["name"], _Limited(handle, size))
            kind = "aof-base" if entry["type"] == "b" else "aof-incr"
            files.append({"object": record["name"], "kind": kind, "name": entry["name"], "size": record["size"]})
            entries.append(entry["name"])
    finally:
        for dummy, handle, dummy_size in opened:
            handle.close()
    manifest_name = server["config"]["appendfilename"] + ".manifest"
    record = ctx.store(AOF_OBJECT_PREFIX + manifest_name, [manifest_text.encode("utf-8")])
    files.append({"object": record["name"], "kind": "aof-manifest", "name": manifest_name, "size": record["size"]})
    return {
        "dirname": server["config"]["appenddirname"],
        "filename": server["config"]["appendfilename"],
        "files": entries,
        "keyspace": keyspace,
        "keyspace_exact": exact,
        "snapshot_time": format_time(cut),
        "renamed": [r for r in renamed if r[0] != r[1]],
    }


# Restore ----------------------------------------------------------------------


def _owner(request):
    return request.options.get("owner") or "redis"


def target_settings(request):
    """The target's file names and settings: from defaults_file (its redis.conf) or Redis's defaults."""
    path = request.options.get("defaults_file")
    if path:
        settings = config_settings(read_config_file(path))
        settings["known"] = True
    else:
        settings = dict(DEFAULTS)
        settings["known"] = False
    for name in ("dbfilename", "appenddirname", "appendfilename"):
        if not settings[name] or "/" in settings[name]:
            raise ConfigError("the target's %s %r is not a plain file name" % (name, settings[name]))
    return settings


def _objects(manifest):
    by_kind = {}
    names = dict((o["name"], o) for o in manifest["objects"])
    for entry in manifest.get("files") or []:
        record = names.get(entry["object"])
        if record is None:
            raise EngineError("backup %s lists %s, which is not among its objects" % (manifest["backup_id"], entry["object"]))
        by_kind.setdefault(entry["kind"], []).append((entry, record))
    if len(by_kind.get("rdb", [])) != 1:
        raise EngineError("backup %s has no RDB object" % manifest["backup_id"])
    return by_kind


def layout(manifest, settings, data_dir):
    """Where each object goes in data_dir: a list of (relative path, object record or None, what), and notes."""
    by_kind = _objects(manifest)
    rdb_entry, rdb_record = by_kind["rdb"][0]
    rdb_path = settings["dbfilename"]
    steps = [{"path": rdb_path, "object": rdb_record, "what": "rdb"}]
    notes = []
    has_aof = bool(manifest.get("aof")) and bool(by_kind.get("aof-manifest"))
    want_aof = settings["appendonly"] == "yes" if settings["known"] else has_aof
    aof_dir = settings["appenddirname"]
    loads = "rdb"
    if want_aof and has_aof:
        source_prefix = manifest["aof"]["filename"]
        target_prefix = settings["appendfilename"]
        for kind in ("aof-base", "aof-incr"):
            for entry, record in by_kind.get(kind, []):
                name = entry["name"]
                if source_prefix != target_prefix and name.startswith(source_prefix + "."):
                    name = target_prefix + name[len(source_prefix):]
                steps.append({"path": os.path.join(aof_dir, name), "object": record, "what": kind})
        entry, record = by_kind["aof-manifest"][0]
        steps.append({"path": os.path.join(aof_dir, target_prefix + ".manifest"), "object": record, "what": "aof-manifest",
                      "rename": [source_prefix, target_prefix]})
        loads = "aof"
    elif want_aof:
        prefix = settings["appendfilename"]
        steps.append({"path": os.path.join(aof_dir, "%s.1.base.rdb" % prefix), "object": None, "what": "aof-base-from-rdb", "link": rdb_path})
        steps.append({"path": os.path.join(aof_dir, "%s.1.incr.aof" % prefix), "object": None, "what": "aof-incr-empty"})
        steps.append({"path": os.path.join(aof_dir, "%s.manifest" % prefix), "object": None, "what": "aof-manifest-new",
                      "content": "file %s.1.base.rdb seq 1 type b\nfile %s.1.incr.aof seq 1 type i\n" % (prefix, prefix)})
        notes.append("the target has appendonly yes and the backup no AOF: an AOF was made of the RDB (hard-linked as its base)")
        loads = "aof-from-rdb"
    elif has_aof:
        notes.append("the target has appendonly no: the backup's AOF files were not restored")
    for entry, record in by_kind.get("acl", []):
        name = os.path.basename(settings["aclfile"]) if settings.get("aclfile") else ACL_OBJECT
        steps.append({"path": name, "object": record, "what": "acl"})
        if settings.get("aclfile"):
            configured = settings["aclfile"] if os.path.isabs(settings["aclfile"]) else os.path.join(settings.get("dir") or data_dir, settings["aclfile"])
            if os.path.normpath(configured) != os.path.normpath(os.path.join(data_dir, name)):
                notes.append("the target's aclfile is %s; the backup's ACL file was written to %s" % (configured, os.path.join(data_dir, name)))
    if not settings["known"] and not has_aof:
        loads = "rdb (aof if the server runs with appendonly yes: give defaults_file)"
    return steps, notes, loads


def _listening(host, port, timeout=0.5):
    try:
        probe = socket.create_connection((host, int(port)), timeout)
    except (socket.error, OSError, ValueError):
        return False
    probe.close()
    return True


def _redis_cwd_users(data_dir, proc_root="/proc"):
    """Pids of redis-server processes whose working directory (Redis chdirs to its dir) is data_dir."""
    real = os.path.realpath(data_dir)
    found = []
    try:
        pids = [name for name in os.listdir(proc_root) if name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(os.path.join(proc_root, pid, "comm")) as handle:
                comm = handle.read().strip()
            if not comm.startswith("redis-server"):
                continue
            if os.path.realpath(os.readlink(os.path.join(proc_root, pid, "cwd"))) == real:
                found.append(int(pid))
        except (IOError, OSError):
            continue
    return found


def server_using(data_dir, settings, proc_root="/proc"):
    """A sentence when a running server uses data_dir, else None."""
    if os.path.isdir(data_dir):
        for name in sorted(os.listdir(data_dir)):
            if name.endswith(".pid"):
                pid = hostfiles.read_pid(os.path.join(data_dir, name))
                if pid and hostfiles.pid_alive(pid):
                    return "a server (pid %d, %s) runs on it" % (pid, name)
    same_dir = bool(settings.get("dir")) and os.path.realpath(settings["dir"]) == os.path.realpath(data_dir)
    if settings.get("known") and same_dir:
        if settings.get("pidfile"):
            pid = hostfiles.read_pid(settings["pidfile"])
            if pid and hostfiles.pid_alive(pid):
                return "the server of its configuration runs (pid %d in %s)" % (pid, settings["pidfile"])
        port = int(settings.get("port") or DEFAULT_PORT)
        hosts = (settings.get("bind") or "").split() or ["127.0.0.1"]
        for host in hosts:
            host = host.lstrip("-")
            host = "127.0.0.1" if host in ("*", "0.0.0.0") else "::1" if host in ("::", "::*") else host
            if port and _listening(host, port):
                return "a server listens on %s port %d, the port of the configuration whose dir it is" % (host, port)
    pids = _redis_cwd_users(data_dir, proc_root)
    if pids:
        return "redis-server (pid %s) runs with it as its dir" % ", ".join(str(p) for p in pids)
    return None


def check_target(data_dir, force, settings):
    if not os.path.isabs(data_dir or ""):
        raise ConfigError("data_dir must be an absolute path, got %r" % (data_dir,))
    busy = server_using(data_dir, settings) if os.path.isdir(data_dir) else None
    if busy:
        raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop the Redis server before restoring over its dir; nothing was changed")
    return hostfiles.check_target(data_dir, force, None, server="the Redis server")


def server_tool(request):
    return Connection({"bin_dir": request.options.get("bin_dir")}).tool("redis-server")


def plan_restore(repository, manifest, request, logs=None):
    if logs is not None:
        raise ConfigError("Redis backups have no log chain: point-in-time restores are not offered")
    data_dir = request.target
    settings = target_settings(request)
    entries = check_target(data_dir, request.force, settings)
    owner = _owner(request)
    hostfiles.lookup_user(owner, "Redis")
    steps, notes, loads = layout(manifest, settings, data_dir)
    highest = max([db_index(db) for db in manifest.get("keyspace") or {}] + [-1])
    if highest >= int(settings.get("databases") or 16):
        raise ConfigError("the backup holds db%d but the target's configuration has databases %s" % (highest, settings["databases"]),
                          hint="Raise databases in %s to at least %d" % (request.options.get("defaults_file"), highest + 1))
    plan = {
        "backup_id": manifest["backup_id"],
        "base_end_time": manifest["end_time"],
        "data_dir": data_dir,
        "owner": owner,
        "replaces_entries": len(entries),
        "bytes": sum(step["object"]["size"] for step in steps if step["object"]),
        "files": dict((step["path"], step["object"]["name"] if step["object"] else step["what"]) for step in steps),
        "loads": loads,
        "target_config": request.options.get("defaults_file") or "Redis defaults",
        "recovery": "end of backup",
        "start": bool(request.options.get("start")),
        "source_version": manifest.get("engine_version"),
    }
    if request.options.get("start"):
        plan.update(plan_start(manifest, request, settings, data_dir))
    if notes:
        plan["notes"] = notes
    return plan


def plan_start(manifest, request, settings, data_dir):
    """The checks before a server is started on a restored directory: its user reaches it, its binary, its version, its dir, its port."""
    hostfiles.check_reachable(data_dir, hostfiles.lookup_user(_owner(request), "Redis"), "redis-server")
    binary = server_tool(request)
    version = tool_version(binary)
    have, want = version_tuple(version), version_tuple(manifest.get("engine_version"))
    if have and want and have[:2] < want[:2]:
        raise ConfigError("%s is Redis %s, which cannot load an RDB written by Redis %s" % (binary, version, manifest.get("engine_version")),
                          hint="Install Redis %d.%d or later, or set bin_dir" % want[:2])
    configured_dir = settings.get("dir") if settings["known"] else None
    if configured_dir and os.path.realpath(configured_dir) != os.path.realpath(data_dir) and not os.path.isdir(configured_dir):
        raise ConfigError("the target configuration %s sets dir %s, which does not exist, so redis-server would not start with it"
                          % (request.options.get("defaults_file"), configured_dir),
                          hint="Create that directory, or give a configuration whose dir exists (the started server gets dir %s)" % data_dir)
    port = int(request.options.get("port") or DEFAULT_PORT)
    if _listening("127.0.0.1", port):
        raise ConfigError("port %d is in use on this host, so no server could be started on the restored directory" % port,
                          hint="Choose another port; nothing was changed")
    return {"tools": {"redis-server": {"path": binary, "version": version}}, "port": port}


def _read_object(repository, manifest, record):
    buffer = io.BytesIO()
    from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import object_key  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import copy_object_to  # pylint: disable=import-outside-toplevel

    copy_object_to(repository.repo, object_key(manifest, record), record, buffer.write, repository.master_key)
    return buffer.getvalue()


def _write_bytes(path, data):
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def restore(repository, manifest, request, logs=None):
    """Write the backup's files into data_dir under the target's names; optionally start a server and check its keyspace."""
    data_dir = request.target
    settings = target_settings(request)
    owner = _owner(request)
    group = request.options.get("group")
    hostfiles.lookup_user(owner, "Redis")
    steps, notes, loads = layout(manifest, settings, data_dir)
    written = {}
    with hostfiles.Target(data_dir, 0o750):
        for step in steps:
            path = os.path.join(data_dir, step["path"])
            hostfiles.make_dirs(os.path.dirname(path), 0o750)
            if step["what"] == "aof-manifest":
                text = _read_object(repository, manifest, step["object"]).decode("utf-8")
                text, dummy = rewrite_aof_manifest(text, step["rename"][0], step["rename"][1])
                _write_bytes(path, text.encode("utf-8"))
            elif step.get("link"):
                os.link(os.path.join(data_dir, step["link"]), path)
            elif step["object"] is None:
                _write_bytes(path, (step.get("content") or "").encode("utf-8"))
            else:
                hostfiles.write_object(repository, manifest, step["object"], path)
            written[step["path"]] = step["object"]["name"] if step["object"] else step["what"]
        for dirpath, dirnames, filenames in os.walk(data_dir):
            os.chmod(dirpath, 0o750)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o640)
            fsync_dir(dirpath)
        hostfiles.chown_tree(data_dir, owner, group)
    result = {"data_dir": data_dir, "owner": owner, "files": written, "loads": loads,
              "bytes": sum(step["object"]["size"] for step in steps if step["object"])}
    if notes:
        result["notes"] = notes
    if request.options.get("start"):
        result["server"] = start_server(manifest, request, settings, steps, owner)
    return result


# A server on the restored directory --------------------------------------------


def server_argv(binary, request, settings, steps, data_dir, port, sock, pid_file, log_file, extra_args=()):
    defaults_file = request.options.get("defaults_file")
    argv = [binary] + ([defaults_file] if defaults_file else [])
    argv += ["--dir", data_dir, "--port", str(port), "--daemonize", "no", "--supervised", "no", "--pidfile", pid_file,
             "--logfile", log_file, "--unixsocket", sock, "--unixsocketperm", "700"]
    if not defaults_file:
        argv += ["--bind", "127.0.0.1", "--appendonly", "yes" if any(s["what"].startswith("aof") for s in steps) else "no"]
    elif settings.get("replicaof"):
        argv += ["--replicaof", "no", "one"]
    for step in steps:
        if step["what"] == "acl":
            argv += ["--aclfile", os.path.join(data_dir, step["path"])]
    return argv + list(extra_args)


def start_server(manifest, request, settings, steps, owner, data_dir=None, extra_args=()):
    """Start redis-server on the restored directory, detached; wait until it is ready; compare its keyspace with the manifest's."""
    options = request.options
    data_dir = data_dir or request.target
    port = int(options.get("port") or DEFAULT_PORT)
    socket_dir = options.get("socket_dir") or "/tmp"
    sock = os.path.join(socket_dir, "redis-%d.sock" % port)
    log_file = os.path.join(data_dir, "restore-start.log")
    pid_file = os.path.join(data_dir, "redis-server.pid")
    timeout = int(options.get("wait_timeout") or 300)
    argv = server_argv(server_tool(request), request, settings, steps, data_dir, port, sock, pid_file, log_file, extra_args)
    if os.geteuid() == 0 and owner != "root":
        argv = [tools.find_tool("runuser", package="util-linux"), "-u", owner, "--"] + argv
    out_file = os.path.join(data_dir, "restore-start.out")
    with open(out_file, "ab") as out:
        entry = hostfiles.lookup_user(owner, "Redis")
        os.chown(out_file, entry.pw_uid, entry.pw_gid)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=tools.tool_env(),
                                    start_new_session=True, close_fds=True, cwd=data_dir)
        except OSError as exc:
            raise ToolError("cannot run %s: %s" % (argv[0], exc))
    loaded = wait_ready(proc, log_file, out_file, timeout)
    pid = hostfiles.read_pid(pid_file) or proc.pid
    result = {"port": port, "socket": sock, "pid": pid, "pid_file": pid_file, "log": log_file, "loaded_from": loaded}
    result["keyspace_check"] = check_started(manifest, request, sock, loaded, proc, pid)
    return result


def wait_ready(proc, log_file, out_file, timeout):
    deadline = time.monotonic() + timeout
    while True:
        text = _read_text(log_file)
        if "Ready to accept connections" in text:
            if "DB loaded from append only file" in text:
                return "aof"
            if "DB loaded from disk" in text:
                return "rdb"
            return "nothing"
        if proc.poll() is not None:
            tail = (hostfiles.log_tail(log_file, 20) + hostfiles.log_tail(out_file, 10)).strip().splitlines()
            raise EngineError("redis-server exited (%s) on the restored directory: %s" % (proc.returncode, " | ".join(tail[-6:])),
                              hint="Read %s and %s; the restored files are in place" % (log_file, out_file))
        if time.monotonic() > deadline:
            raise EngineError("redis-server on the restored directory was not ready within %ds" % timeout,
                              hint="Read %s; it is still running (pid %d)" % (log_file, proc.pid))
        time.sleep(0.1)


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ""


def check_started(manifest, request, sock, loaded, proc, pid):
    """Compare the started server's keyspace with the manifest's; stop it and refuse when an exact record differs."""
    if loaded == "aof" and manifest.get("aof"):
        expected, exact = manifest["aof"].get("keyspace") or {}, manifest["aof"].get("keyspace_exact", False)
    else:
        expected, exact = manifest.get("keyspace") or {}, manifest.get("keyspace_exact", False)
    conn = Connection({"socket": sock, "user": request.options.get("user"), "password": request.options.get("password"),
                       "bin_dir": request.options.get("bin_dir")})
    try:
        with conn.session(timeout=60) as session:
            actual = parse_keyspace(session.info("keyspace"))
    except EngineError as exc:
        return {"checked": False, "reason": str(exc)}
    problems = compare_keyspace(expected, actual)
    result = {"checked": True, "ok": not problems, "exact": exact, "expected": expected, "actual": actual}
    if problems and exact:
        stop_server(proc, pid)
        raise EngineError("the restored server's keyspace differs from the backup's: %s" % "; ".join(problems),
                          hint="The server started on the restored directory was stopped; the restored files are in place")
    if problems:
        result["warnings"] = problems
    return result


def stop_server(proc, pid, timeout=60):
    """Stop the started redis-server (its own pid: as root, ``proc`` is runuser) and wait for it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Volume snapshots ---------------------------------------------------------------
#
# Before the snapshot a BGSAVE is run and waited for: the RDB on the volume is
# then complete, of the moment of the fork, and nothing is held while the
# provider snapshots (Redis goes on serving writes).  With appendonly yes the
# server started on the restored directory loads the AOF instead, as it was on
# the volume at the snapshot (Redis truncates a torn last command on load).
# The restore removes what a running server leaves in its dir (temp files of a
# save or a rewrite, pid files, sockets) and starts redis-server on the
# backup's own file names.

_STALE_FILE = re.compile(r"^temp-.*\.(rdb|aof|manifest)$|\.pid$")


def _bgsave_denied(session, user):
    """The reason ACL DRYRUN gives when ``user`` may not run BGSAVE, else None (also when DRYRUN itself is not allowed)."""
    reply = session.call("ACL", "DRYRUN", user or "default", "BGSAVE", check=False).strip()
    if not reply or is_error(reply) or reply == "OK":
        return None
    return _first_line(reply)


def plan_snapshot(request, local=False):
    """What a volume snapshot of this server needs, read-only: its dir, that it may run BGSAVE."""
    conn = Connection(request.connection)
    with conn.session() as session:
        server = inspect(session, conn, min_version=None)
        denied = _bgsave_denied(session, conn.user)
        warnings = list(session.warnings)
    who = "user %s" % conn.user if conn.user else "the default user"
    if denied:
        raise EngineError("%s may not run BGSAVE on Redis at %s, which a volume-snapshot backup runs first: %s" % (who, conn.target(), denied),
                          hint=ACL_HINT)
    if server["loading"]:
        raise EngineError("Redis at %s is still loading its dataset" % conn.target(), hint="Run the backup again once it has loaded")
    data_dir = server["dir"]
    if local and not os.path.isdir(data_dir or ""):
        raise EngineError(
            "the server's dir %s is not on this host" % data_dir,
            hint="A btrfs or lvm snapshot is taken on the Redis host: run the backup there (a server in a container must see its dir "
            "at the same path as this host)",
        )
    if server["last_bgsave_status"] == "err":
        warnings.append("the server's last BGSAVE failed (rdb_last_bgsave_status:err); the backup's BGSAVE must succeed")
    if server["role"] == "slave" and server["master_link_status"] != "up":
        warnings.append("this replica's link to its master is %s: the backup holds what it has replicated so far" % server["master_link_status"])
    if server["mode"] == "cluster":
        warnings.append("a Redis Cluster node: the backup holds this node's slots only; back up every primary")
    acl = acl_path(server)
    if acl and not (os.path.realpath(acl) + "/").startswith(os.path.realpath(data_dir).rstrip("/") + "/"):
        warnings.append("the ACL file %s is outside the dir %s: the snapshot does not hold it" % (acl, data_dir))
    return {
        "server": conn.target(),
        "server_version": server["version"],
        "role": server["role"],
        "mode": server["mode"],
        "data_dir": data_dir,
        "appendonly": server["aof_enabled"],
        "keyspace": server["keyspace"],
        "config_source": server["config"]["source"],
        "quiesce": "BGSAVE, waited for until %s is written" % server["config"]["dbfilename"],
        "warnings": warnings,
    }


def check_rdb(path):
    """Refuse a file that does not start like an RDB or lacks the end-of-file opcode."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
            handle.seek(max(os.fstat(handle.fileno()).st_size - 9, 0))
            tail = handle.read(9)
    except (IOError, OSError) as exc:
        raise EngineError("cannot read %s after BGSAVE: %s" % (path, exc), hint="Run the backup as root or as the user Redis runs as")
    if not head.startswith(b"REDIS") or not head[5:9].isdigit() or tail[0:1] != b"\xff":
        raise EngineError("%s is not a complete RDB file after BGSAVE" % path, hint="Read the Redis log; run the backup again")
    return int(head[5:9])


class BackgroundSave(Quiesce):
    """A BGSAVE, waited for before the snapshot: the RDB on the volume is then complete.  Nothing is held afterwards."""

    consistency = "application"

    def __init__(self, conn, plan, wait_limit=3600):
        super(BackgroundSave, self).__init__()
        self.conn = conn
        self.plan = plan
        self.wait_limit = wait_limit
        self.session = None
        self.server = None

    def hold(self):
        self.session = self.conn.session()
        self.server = inspect(self.session, self.conn, min_version=None)
        save = RdbSnapshot(self.session, self.server, wait_limit=self.wait_limit)
        save.start()
        deadline = time.monotonic() + self.wait_limit
        while not save._poll()[0]:  # pylint: disable=protected-access
            if time.monotonic() > deadline:
                raise EngineError("the BGSAVE on Redis at %s did not finish in %ds" % (self.conn.target(), self.wait_limit),
                                  hint="Nothing was snapshotted; run the backup again when the server is less busy")
        self.facts.update({"time": save.time, "keyspace": save.keyspace, "exact": save.exact, "positions": save.positions, "saves": save.saves})
        if os.path.isfile(save.final_path):
            self.facts["rdb_version"] = check_rdb(save.final_path)
        if self.server["aof_enabled"]:
            self.facts["aof_keyspace"] = parse_keyspace(self.session.info("keyspace"))

    def _release(self):
        # A later save that finished before the snapshot replaced the RDB: its keyspace is no longer the one recorded.
        try:
            saves = int(self.session.info("persistence").get("rdb_saves") or 0)
        except EngineError:
            saves = None
        if saves != self.facts["saves"]:
            self.facts["exact"] = False

    def close(self):
        if self.session is not None:
            self.session.close()


def quiesce(request, plan):
    return BackgroundSave(Connection(request.connection), plan)


def snapshot_facts(request, ctx, held):
    """The manifest's facts of a snapshot after BGSAVE: what the datafile method records of its RDB, and the AOF."""
    facts = held.facts
    server = held.server
    config = server["config"]
    result = {
        "engine_version": server["version"],
        "role": server["role"],
        "keyspace": facts["keyspace"],
        "keyspace_exact": facts["exact"],
        "positions": facts["positions"],
        "aof": None,
        "redis": {
            "mode": server["mode"],
            "rdb_version": facts.get("rdb_version"),
            "dir": server["dir"],
            "config": dict((k, config[k]) for k in CONFIG_NAMES),
        },
        "data_dir": server["dir"],
    }
    if server["aof_enabled"]:
        # The AOF on the volume is of the snapshot's moment, after the keyspace was read: an upper bound.
        result["aof"] = {"dirname": config["appenddirname"], "filename": config["appendfilename"], "keyspace": facts.get("aof_keyspace") or {},
                         "keyspace_exact": False, "snapshot_time": format_time(utcnow())}
    else:
        result["end_time"] = facts["time"]
    return result


def _source_config(manifest):
    config = dict(DEFAULTS)
    config.update((manifest.get("redis") or {}).get("config") or {})
    return config


def _snapshot_layout(manifest, settings, data_dir):
    """The steps server_argv reads, the extra arguments that make redis-server load the backup's own file names, and notes."""
    source = _source_config(manifest)
    aof = bool(manifest.get("aof"))
    steps = [{"what": "rdb", "path": source["dbfilename"]}]
    if aof:
        steps.append({"what": "aof-base", "path": source["appenddirname"]})
    extra = []
    notes = []
    if settings["known"]:
        for name in ("dbfilename", "appenddirname", "appendfilename"):
            if settings[name] != source[name]:
                raise ConfigError("the target configuration sets %s %s, but the snapshot holds the files of %s %s" % (name, settings[name], name, source[name]),
                                  hint="Give a configuration (defaults_file) with the backup's file names, or none")
        if settings["appendonly"] == "yes" and not aof:
            raise ConfigError("the target configuration has appendonly yes, but the backup has no AOF: Redis would start empty",
                              hint="Give a configuration with appendonly no (turn it on at runtime with CONFIG SET appendonly yes), or none")
        if settings["appendonly"] == "no" and aof:
            notes.append("the target configuration has appendonly no: a server started with it loads the RDB of the BGSAVE, older than the AOF")
    else:
        for name in ("dbfilename", "appenddirname", "appendfilename"):
            if source[name] != DEFAULTS[name]:
                extra += ["--%s" % name, source[name]]
    acl = source.get("aclfile") or ""
    if acl:
        full = os.path.normpath(acl if os.path.isabs(acl) else os.path.join(source.get("dir") or "", acl))
        inside = os.path.relpath(full, source.get("dir") or "/") if source.get("dir") else None
        if inside and not inside.startswith(".."):
            steps.append({"what": "acl", "path": inside})
        else:
            notes.append("the backup's server used the ACL file %s, outside its dir: the snapshot does not hold it" % acl)
    return steps, extra, notes


def plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=False):
    """Checks before a snapshot restore touches anything; returns the engine's part of the plan."""
    if logs is not None:
        raise ConfigError("Redis backups have no log chain: point-in-time restores are not offered")
    owner = _owner(request)
    hostfiles.lookup_user(owner, "Redis")
    settings = target_settings(request)
    dummy_steps, dummy_extra, notes = _snapshot_layout(manifest, settings, data_dir)
    source = _source_config(manifest)
    if mounted:
        if not os.path.isfile(os.path.join(data_dir, source["dbfilename"])) and not os.path.isdir(os.path.join(data_dir, source["appenddirname"])):
            raise ConfigError(
                "data_dir %s holds neither %s nor %s of the backup's server" % (data_dir, source["dbfilename"], source["appenddirname"]),
                hint="Mount the volume restored from the snapshot so that data_dir is the server's dir in it",
            )
        busy = server_using(data_dir, settings)
        if busy:
            raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop that server first")
    else:
        check_target(data_dir, request.force, settings)
    plan = {
        "data_dir": data_dir,
        "owner": owner,
        "loads": "aof" if manifest.get("aof") and (not settings["known"] or settings["appendonly"] == "yes") else "rdb",
        "target_config": request.options.get("defaults_file") or "Redis defaults",
        "start": bool(request.options.get("start")),
        "source_version": manifest.get("engine_version"),
    }
    if request.options.get("start"):
        plan.update(plan_start(manifest, request, settings, data_dir))
    if notes:
        plan["notes"] = notes
    return plan


def finish_snapshot_restore(repository, manifest, request, logs, data_dir):
    """Clear what the running server left in the snapshot's copy of its dir; owner and modes as a restore sets them; optionally start."""
    owner = _owner(request)
    group = request.options.get("group")
    hostfiles.lookup_user(owner, "Redis")
    settings = target_settings(request)
    steps, extra, notes = _snapshot_layout(manifest, settings, data_dir)
    source = _source_config(manifest)
    removed = []
    for directory in (data_dir, os.path.join(data_dir, source["appenddirname"])):
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if stat.S_ISSOCK(os.lstat(path).st_mode) or (_STALE_FILE.search(name) and os.path.isfile(path)):
                os.unlink(path)
                removed.append(os.path.relpath(path, data_dir))
    for dirpath, dirnames, filenames in os.walk(data_dir):
        os.chmod(dirpath, 0o750)
        for name in filenames:
            if not os.path.islink(os.path.join(dirpath, name)):
                os.chmod(os.path.join(dirpath, name), 0o640)
    hostfiles.chown_tree(data_dir, owner, group)
    if not os.path.isfile(os.path.join(data_dir, source["dbfilename"])) and not manifest.get("aof"):
        notes.append("the snapshot holds no %s: a server started on it is empty" % source["dbfilename"])
    result = {"data_dir": data_dir, "owner": owner, "removed": removed}
    if notes:
        result["notes"] = notes
    if request.options.get("start"):
        result["server"] = start_server(manifest, request, settings, steps, owner, data_dir=data_dir, extra_args=extra)
    return result


def remote_restore_next(manifest, logs):
    return ("Mount the new volume on the Redis host, then run restore again with backup_id %s, source: mounted and data_dir set to the "
            "server's dir on it (and start: true to start redis-server there): that removes the source server's temp, pid and socket "
            "files and gives the files to the owner" % manifest["backup_id"])
