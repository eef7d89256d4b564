# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL and MariaDB: hot physical backups, binary log archiving, restores and point-in-time restores.

The flavour is read from the server: MySQL is backed up by ``xtrabackup``,
MariaDB by ``mariabackup``, both as one xbstream/mbstream read from the
tool's stdout straight into the repository.  The binlog file, position and
GTID set of the consistent point come from the tool's report.

A restore extracts the stream next to the target, prepares it and moves it
into the data directory.  A point-in-time restore then starts the server on
the restored directory, on a private socket with networking and grant
checks off, and replays the archived binary logs from the backup's position
up to the target with ``mysqlbinlog --stop-datetime`` before stopping it (or
starting it for use when asked).  Binlog event times have a resolution of one
second: the replay stops before the first event stamped at or after the
target's second.

Passwords reach the tools in MYSQL_PWD, never on a command line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import binlog, logarchive
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, format_time, utcnow

METHODS = ("xtrabackup", "volume-snapshot", "binlog-archive")
ENGINE = "mysql"
LOG_ARCHIVE = binlog
BACKUP_OBJECT = "backup.xbstream"
BIN_DIRS = ("/usr/sbin", "/usr/local/mysql/bin", "/usr/local/mysql/sbin", "/opt/mysql/bin")
MARIADB = "mariadb"
MYSQL = "mysql"
PACKAGES = {
    MARIADB: {"backup": "mariadb-backup", "client": "mariadb-client", "server": "mariadb-server"},
    MYSQL: {"backup": "percona-xtrabackup-80 (Percona's repository)", "client": "mysql-client", "server": "mysql-server"},
}
TOOLS = {
    MARIADB: {"backup": ("mariabackup", "mariadb-backup"), "stream": ("mbstream",), "client": ("mariadb", "mysql"),
              "binlog": ("mariadb-binlog", "mysqlbinlog"), "server": ("mariadbd", "mysqld")},
    MYSQL: {"backup": ("xtrabackup",), "stream": ("xbstream",), "client": ("mysql",), "binlog": ("mysqlbinlog",), "server": ("mysqld",)},
}
STREAM_FORMAT = {MARIADB: "mbstream", MYSQL: "xbstream"}
# Global privileges the tools need; a pair means either name will do.
BACKUP_PRIVILEGES = {
    MARIADB: ("RELOAD", "PROCESS", "LOCK TABLES", ("BINLOG MONITOR", "REPLICATION CLIENT")),
    MYSQL: ("RELOAD", "PROCESS", "LOCK TABLES", "REPLICATION CLIENT", "BACKUP_ADMIN"),
}
LOG_PRIVILEGES = ("RELOAD", ("BINLOG MONITOR", "REPLICATION CLIENT"))

_BINLOG_POSITION = re.compile(
    r"MySQL binlog position: filename '(?P<file>[^']+)', position '?(?P<pos>\d+)'?(?:, GTID of the last change '(?P<gtid>[^']*)')?")
# mariabackup: "Redo log (from LSN a to b) was copied"; xtrabackup 8: "Transaction log of lsn (a) to (b) was copied."
_LSN_RANGE = re.compile(r"(?:Redo log \(from LSN (\d+) to (\d+)\)|Transaction log of lsn \((\d+)\) to \((\d+)\)) was copied")
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class Connection(object):
    """How to reach the server: host/port or socket, user, password (into MYSQL_PWD), an optional option file."""

    def __init__(self, params):
        params = dict(params or {})
        self.host = params.get("host")
        self.socket = params.get("socket")
        self.port = params.get("port") or 3306
        self.user = params.get("user") or "root"
        self.password = params.get("password")
        self.bin_dir = params.get("bin_dir")
        self.defaults_file = params.get("defaults_file")
        self.flavor = params.get("flavor")

    def env(self):
        return {"MYSQL_PWD": self.password, "TZ": "UTC"}

    def target(self):
        return self.socket or "%s:%s" % (self.host or "localhost", self.port)

    def defaults(self):
        """The option-file argument, which must come first on a MySQL tool's command line."""
        return ["--defaults-file=%s" % self.defaults_file] if self.defaults_file else ["--no-defaults"]

    def address(self):
        if self.socket:
            return ["--socket=%s" % self.socket, "--user=%s" % self.user]
        return ["--protocol=TCP", "--host=%s" % (self.host or "127.0.0.1"), "--port=%d" % int(self.port), "--user=%s" % self.user]

    def tool(self, role, flavor=None):
        flavor = flavor or self.flavor or MARIADB
        names = TOOLS[flavor][role]
        if self.bin_dir:
            for name in names:
                candidate = os.path.join(self.bin_dir, name)
                if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                    return candidate
        for name in names[:-1]:
            found = tools.find_tool(name, BIN_DIRS, required=False)
            if found:
                return found
        return tools.find_tool(names[-1], BIN_DIRS, PACKAGES[flavor].get(role, PACKAGES[flavor]["client"]))

    def query(self, sql):
        """Run SQL with the command-line client; return rows as lists of strings."""
        argv = [self.tool("client")] + self.defaults() + self.address() + ["--batch", "--skip-column-names", "--connect-timeout=10", "-e", sql]
        try:
            out, dummy = tools.run(argv, env=self.env(), timeout=120, what="mysql client")
        except ToolError as exc:
            raise self.explain(exc)
        # Batch mode escapes tabs, newlines and backslashes inside values, so a line is a row.
        return [[_unescape(field) for field in line.split("\t")] for line in out.splitlines()]

    def explain(self, exc):
        text = str(exc)
        if "ERROR 1045" in text or "Access denied for user" in text and "using password" in text:
            return EngineError(
                "the server at %s refused user %s: wrong user name or password" % (self.target(), self.user),
                hint="Check connection.user and connection.password (and that the account may connect from this host)",
            )
        if "ERROR 2002" in text or "ERROR 2003" in text or "ERROR 2005" in text or "Can't connect" in text or "Failed to connect" in text:
            return EngineError(
                "cannot reach the MySQL/MariaDB server at %s" % self.target(),
                hint="Check connection.host / connection.port / connection.socket and that the server is running: %s" % text.splitlines()[-1],
            )
        if "ERROR 1227" in text or "ERROR 1142" in text or "Access denied; you need" in text:
            return EngineError("user %s lacks a privilege on %s: %s" % (self.user, self.target(), text),
                               hint="Grant what the message names, for example GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.*")
        return EngineError("MySQL/MariaDB at %s: %s" % (self.target(), text))


def _unescape(field):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)), field)


def flavor_of(version):
    return MARIADB if "mariadb" in version.lower() else MYSQL


INSPECT_VARIABLES = ("version", "version_comment", "server_id", "log_bin", "binlog_format", "log_bin_basename", "log_bin_index",
                     "datadir", "gtid_binlog_pos", "gtid_executed", "server_uuid")


def inspect(conn):
    """What backups and log archiving need to know about the server, read-only, in one client run for either flavour."""
    rows = conn.query(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s); "
        "SELECT '#installed', IFNULL(UNIX_TIMESTAMP(CREATE_TIME), '') FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = 'db'" % ", ".join("'%s'" % name for name in INSPECT_VARIABLES))
    found = dict((row[0].lower(), row[1] if len(row) > 1 else "") for row in rows if row)
    version = found.get("version", "")
    flavor = flavor_of("%s %s" % (version, found.get("version_comment", "")))
    conn.flavor = flavor
    match = _VERSION.search(version)
    gtid = found.get("gtid_binlog_pos") if flavor == MARIADB else found.get("gtid_executed")
    installed = (found.get("#installed") or "").split(".")[0]
    return {
        "flavor": flavor,
        "version": match.group(0) if match else version,
        "version_full": version,
        "server_id": found.get("server_id"),
        "log_bin": found.get("log_bin") in ("1", "ON"),
        "binlog_format": found.get("binlog_format", ""),
        "log_bin_basename": found.get("log_bin_basename") or None,
        "log_bin_index": found.get("log_bin_index") or None,
        "datadir": found.get("datadir"),
        "gtid": "".join((gtid or "").split()),
        "server_uuid": found.get("server_uuid") or None,
        # One cluster name is one database: the time its system schema was created, and its server_id.
        "identity": "%s/%s" % (installed or "unknown", found.get("server_id")),
    }


def global_privileges(conn):
    """Privileges the connected user holds on *.* (upper case); ALL PRIVILEGES stands for all."""
    held = set()
    for row in conn.query("SHOW GRANTS"):
        line = row[0]
        match = re.match(r"GRANT (.+?) ON \*\.\* TO ", line)
        if match:
            held.update(p.strip().upper() for p in match.group(1).split(","))
    return held


def missing_privileges(held, required):
    if "ALL PRIVILEGES" in held or "ALL" in held:
        return []
    missing = []
    for need in required:
        names = need if isinstance(need, tuple) else (need,)
        if not any(name in held for name in names):
            missing.append(names[0])
    return missing


def check_privileges(conn, required, purpose):
    missing = missing_privileges(global_privileges(conn), required)
    if missing:
        raise EngineError(
            "user %s on %s lacks the privileges %s needs: %s" % (conn.user, conn.target(), purpose, ", ".join(missing)),
            hint="GRANT %s ON *.* TO the backup user" % ", ".join(missing),
        )


def tool_version(path):
    out, err = tools.run([path, "--version"], timeout=30, check=False)
    match = _VERSION.search(out + err)
    return match.group(0) if match else (out + err).strip()[:80]


def check_tool_version(path, tool_ver, server_ver, flavor):
    """mariabackup must be of the server's major version; xtrabackup of the server's series and at least its release."""
    have = _VERSION.match(tool_ver or "")
    want = _VERSION.match(server_ver or "")
    if not have or not want:
        raise EngineError("cannot tell the version of %s (it printed %r)" % (path, (tool_ver or "")[:200]),
                          hint="Run `%s --version` on the host; reinstall the tool if it does not start" % path)
    have = tuple(int(x) for x in have.groups())
    want = tuple(int(x) for x in want.groups())
    if flavor == MARIADB and have[:2] != want[:2]:
        raise EngineError("%s is version %s, but the server is MariaDB %s; mariabackup must match the server's major version" % (path, tool_ver, server_ver),
                          hint="Install the mariadb-backup package of the server's version, or set connection.bin_dir")
    if flavor == MYSQL and (have[:2] != want[:2] or have < want):
        raise EngineError("%s is version %s; MySQL %s needs Percona XtraBackup of the %d.%d series, release %d.%d.%d or later"
                          % ((path, tool_ver, server_ver) + want[:2] + want),
                          hint="Install that XtraBackup, or set connection.bin_dir to where it is")


def plan_backup(request):
    conn = Connection(request.connection)
    server = inspect(conn)
    check_privileges(conn, BACKUP_PRIVILEGES[server["flavor"]], "a %s backup" % conn.tool("backup", server["flavor"]).rsplit("/", 1)[-1])
    if not os.path.isdir(server["datadir"]):
        raise EngineError("the server's data directory %s is not on this host" % server["datadir"],
                          hint="%s copies the data files: run the backup on the database host" % TOOLS[server["flavor"]]["backup"][0])
    tool = conn.tool("backup", server["flavor"])
    version = tool_version(tool)
    check_tool_version(tool, version, server["version"], server["flavor"])
    # run_backup follows at once: it reuses what was just read instead of asking again.
    request.inspected = {"server": server, "tool": tool, "version": version}
    plan = {
        "identity": server["identity"],
        "server": conn.target(),
        "server_version": server["version_full"],
        "flavor": server["flavor"],
        "tools": {os.path.basename(tool): {"path": tool, "version": version}},
        "objects": [BACKUP_OBJECT],
        "log_bin": server["log_bin"],
    }
    if not server["log_bin"]:
        plan["warnings"] = ["log_bin is off: this backup can be restored, but no point-in-time restore can start from it"]
    return plan


def backup_argv(tool, conn, flavor, target_dir, parallel=None):
    """The backup command line: the option file first, then --backup --stream to stdout."""
    argv = [tool] + conn.defaults() + ["--backup", "--stream=%s" % STREAM_FORMAT[flavor], "--target-dir=%s" % target_dir] + conn.address()
    if parallel:
        argv.append("--parallel=%d" % int(parallel))
    return argv


def parse_backup_report(stderr):
    """Binlog position, GTID set and LSN range from xtrabackup's or mariabackup's stderr."""
    positions = {}
    found = None
    for found in _BINLOG_POSITION.finditer(stderr):
        pass
    if found:
        positions.update({"binlog_file": found.group("file"), "binlog_pos": int(found.group("pos"))})
        if found.group("gtid") is not None:
            positions["gtid"] = found.group("gtid")
    lsn = _LSN_RANGE.search(stderr)
    if lsn:
        low, high = [value for value in lsn.groups() if value is not None]
        positions.update({"from_lsn": int(low), "to_lsn": int(high)})
    return positions


def parse_binlog_info(text):
    """``xtrabackup_binlog_info``: file, position and (optionally) the GTID set, tab separated."""
    fields = text.strip().split("\t") if "\t" in text else text.strip().split(None, 2)
    if len(fields) < 2 or not fields[1].strip().isdigit():
        raise EngineError("cannot read xtrabackup_binlog_info: %r" % text[:200])
    result = {"binlog_file": fields[0].strip(), "binlog_pos": int(fields[1])}
    if len(fields) > 2 and fields[2].strip():
        result["gtid"] = "".join(fields[2].split())
    return result


def parse_info(text):
    """``xtrabackup_info``: ``key = value`` lines; a line without `` = `` continues the previous value (a long GTID set)."""
    info = {}
    key = None
    for line in text.splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
            key = key.strip()
            info[key] = value.strip()
        elif key is not None and line.strip():
            info[key] += "\n" + line.strip()
    return info


def run_backup(request, ctx):
    conn = Connection(request.connection)
    inspected = getattr(request, "inspected", None) or {}
    server = inspected.get("server") or inspect(conn)
    flavor = conn.flavor = server["flavor"]
    tool = inspected.get("tool") or conn.tool("backup", flavor)
    version = inspected.get("version") or tool_version(tool)
    started = utcnow()
    scratch = tempfile.mkdtemp(prefix="dp-xtrabackup-")
    try:
        argv = backup_argv(tool, conn, flavor, scratch, request.options.get("parallel"))
        with tools.StreamingTool(argv, env=conn.env(), what=os.path.basename(tool)) as proc:
            ctx.store(BACKUP_OBJECT, proc.stdout)
            try:
                stderr = proc.finish()
            except ToolError as exc:
                raise conn.explain(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ended = utcnow()
    if "completed OK!" not in stderr:
        raise EngineError("%s did not report completed OK: %s" % (os.path.basename(tool), stderr[-2000:]))
    positions = parse_backup_report(stderr)
    if server["log_bin"] and "binlog_file" not in positions:
        raise EngineError("%s did not report the binlog position of the backup: %s" % (os.path.basename(tool), stderr[-2000:]))
    return {
        "start_time": started,
        "end_time": ended,
        "engine_version": server["version"],
        "flavor": flavor,
        "positions": positions,
        "tools": {os.path.basename(tool): version},
        "server_uuid": server["server_uuid"],
        "server_id": server["server_id"],
    }


# Restore ------------------------------------------------------------------


def _server_running(data_dir):
    """A sentence when a running server uses the directory (InnoDB holds a lock on ibdata1), else None."""
    import errno  # pylint: disable=import-outside-toplevel
    import fcntl  # pylint: disable=import-outside-toplevel

    ibdata = os.path.join(data_dir, "ibdata1")
    if os.path.exists(ibdata):
        try:
            fd = os.open(ibdata, os.O_RDWR)
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.lockf(fd, fcntl.LOCK_UN)
            except (IOError, OSError) as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return "a MySQL/MariaDB server holds a lock on its ibdata1"
            finally:
                os.close(fd)
    for name in os.listdir(data_dir):
        if name.endswith(".pid"):
            pid = hostfiles.read_pid(os.path.join(data_dir, name))
            if pid and hostfiles.pid_alive(pid):
                return "a server (pid %d, %s) runs on it" % (pid, name)
    return None


def check_target(data_dir, force):
    return hostfiles.check_target(data_dir, force, _server_running, server="the MySQL/MariaDB server")


def plan_pitr(repo, cluster, manifests, target):
    return binlog.plan_pitr(repo, cluster, manifests, target)


def windows(repo, cluster, manifests):
    return binlog.windows(repo, cluster, manifests)


def stop_datetime(target):
    """mysqlbinlog's --stop-datetime for a target: its whole second, in UTC (the tool runs with TZ=UTC)."""
    return target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _owner(request):
    return request.options.get("owner") or "mysql"


def _restore_conn(manifest, request):
    return Connection({"bin_dir": request.options.get("bin_dir"), "defaults_file": request.options.get("defaults_file"),
                       "flavor": manifest.get("flavor") or MARIADB})


def plan_restore(repository, manifest, request, logs=None):
    data_dir = request.target
    entries = check_target(data_dir, request.force)
    owner = _owner(request)
    user = hostfiles.lookup_user(owner, "MySQL/MariaDB")
    objects = [o for o in manifest["objects"] if o["name"].startswith(BACKUP_OBJECT)]
    if len(objects) != 1:
        raise EngineError("backup %s has no %s object" % (manifest["backup_id"], BACKUP_OBJECT))
    conn = _restore_conn(manifest, request)
    needed = ["stream", "backup"]
    if logs is not None or request.options.get("start"):
        # A server runs as the owner on the restored directory: to replay the binary logs, or started.
        hostfiles.check_reachable(data_dir, user, "mysqld")
        needed += ["server", "client"]
    if logs is not None:
        needed.append("binlog")
    found = dict((role, conn.tool(role)) for role in needed)
    plan = {
        "backup_id": manifest["backup_id"],
        "base_end_time": manifest["end_time"],
        "data_dir": data_dir,
        "owner": owner,
        "replaces_entries": len(entries),
        "bytes": objects[0]["size"],
        "flavor": conn.flavor,
        "tools": found,
        "recovery": "point-in-time" if logs is not None else "end of backup",
        "start": bool(request.options.get("start")),
    }
    if logs is not None:
        positions = manifest.get("positions") or {}
        plan["binlogs"] = {"files": [e["name"] for e in logs], "start_file": positions.get("binlog_file"),
                           "start_position": positions.get("binlog_pos"), "stop_datetime": stop_datetime(request.restore_time) + " UTC"}
    return plan


def restore(repository, manifest, request, logs=None):
    """Extract, prepare and move the backup into the data directory; replay binlogs to the target; optionally start."""
    data_dir = request.target
    owner = _owner(request)
    group = request.options.get("group")
    conn = _restore_conn(manifest, request)
    user = hostfiles.lookup_user(owner, "MySQL/MariaDB")
    parent = os.path.dirname(data_dir.rstrip("/")) or "/"
    hostfiles.make_dirs(parent)
    result = {"data_dir": data_dir, "owner": owner}
    with hostfiles.Target(data_dir, 0o750):
        # Staging next to the target: the prepared files are renamed into it, not copied.
        staging = tempfile.mkdtemp(prefix=".dp-restore-", dir=parent)
        try:
            backup_dir = os.path.join(staging, "backup")
            os.mkdir(backup_dir, 0o700)
            result["bytes"] = extract(repository, manifest, conn, backup_dir)
            info = prepare(conn, backup_dir)
            move_back(conn, backup_dir, data_dir)
            os.chmod(data_dir, 0o750)
            hostfiles.chown_tree(data_dir, owner, group)
            if logs is not None:
                log_dir = os.path.join(staging, "binlogs")
                os.mkdir(log_dir, 0o700)
                paths = binlog.fetch(repository, logs, log_dir)
                start = info or (manifest.get("positions") or {})
                result["replay"] = replay(conn, data_dir, staging, user, paths, start, request)
                result["binlogs"] = len(paths)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if request.options.get("start"):
        result["server"] = start_server(conn, data_dir, owner, request)
    return result


def extract(repository, manifest, conn, directory):
    record = [o for o in manifest["objects"] if o["name"].startswith(BACKUP_OBJECT)][0]
    stream = conn.tool("stream")
    return hostfiles.feed_object(repository, manifest, record, [stream, "-x", "-C", directory], os.path.basename(stream))


def prepare(conn, directory):
    """Apply the redo log copied during the backup; return the binlog position the backup recorded."""
    tool = conn.tool("backup")
    argv = [tool] + conn.defaults() + ["--prepare", "--target-dir=%s" % directory]
    try:
        dummy, stderr = tools.run(argv, timeout=6 * 3600, what="%s --prepare" % os.path.basename(tool))
    except ToolError as exc:
        raise EngineError("preparing the backup failed: %s" % exc, hint="The target was left empty; nothing else changed")
    if "completed OK!" not in stderr:
        raise EngineError("%s --prepare did not report completed OK: %s" % (os.path.basename(tool), stderr[-2000:]))
    path = os.path.join(directory, "xtrabackup_binlog_info")
    if os.path.exists(path):
        with open(path) as handle:
            return parse_binlog_info(handle.read())
    return None


def move_back(conn, directory, data_dir):
    tool = conn.tool("backup")
    argv = [tool] + conn.defaults() + ["--move-back", "--target-dir=%s" % directory, "--datadir=%s" % data_dir]
    try:
        tools.run(argv, timeout=6 * 3600, what="%s --move-back" % os.path.basename(tool))
    except ToolError as exc:
        raise EngineError("moving the prepared backup into %s failed: %s" % (data_dir, exc))


def server_argv(conn, data_dir, owner, socket, pid_file, log_file, port=None, bind=None, private=False):
    argv = [conn.tool("server")] + conn.defaults() + ["--datadir=%s" % data_dir, "--socket=%s" % socket, "--pid-file=%s" % pid_file,
                                                      "--log-error=%s" % log_file]
    if private:
        # Nobody but the replay reaches this server; grants are not checked, so no credentials are needed.
        argv += ["--skip-networking", "--skip-grant-tables", "--skip-slave-start", "--skip-log-bin"]
    else:
        argv.append("--port=%d" % int(port))
        if bind or not conn.defaults_file:
            # Without the server's option file the restored server listens on loopback only.
            argv.append("--bind-address=%s" % (bind or "127.0.0.1"))
    if os.geteuid() == 0:
        argv.append("--user=%s" % owner)
    return argv


class _Server(object):
    """A server process started on a restored directory."""

    def __init__(self, conn, argv, socket, log_file, timeout, detach=False):
        self.conn = conn
        self.socket = socket
        self.log_file = log_file
        log = open(log_file + ".out", "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=tools.tool_env({"TZ": "UTC"}), start_new_session=detach, close_fds=True)
        except OSError as exc:
            raise ToolError("cannot run %s: %s" % (argv[0], exc))
        finally:
            log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout):
        client = self.conn.tool("client")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                tail = hostfiles.log_tail(self.log_file, 40)
                errors = [line for line in tail.splitlines() if "[ERROR]" in line] or tail.splitlines()[-5:]
                raise EngineError("the server exited (%s) on the restored directory: %s" % (self.proc.returncode, " | ".join(errors)),
                                  hint="Read %s" % self.log_file)
            if os.path.exists(self.socket):
                probe = [client, "--no-defaults", "--socket=%s" % self.socket, "--user=root", "--batch", "--skip-column-names", "-e", "SELECT 1"]
                out, dummy = tools.run(probe, env={"MYSQL_PWD": None}, timeout=30, check=False)
                if out.strip() == "1" or "Access denied" in dummy:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise EngineError("the server on the restored directory did not answer in %ds" % timeout, hint="Read %s" % self.log_file)
            time.sleep(0.3)

    def stop(self, timeout=600):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def replay(conn, data_dir, staging, user, paths, start, request):
    """Start a private server on the restored directory and apply the binlogs from the backup's position to the target."""
    socket = os.path.join(staging, "replay.sock")
    os.chown(staging, user.pw_uid, user.pw_gid)
    log_file = os.path.join(staging, "replay.err")
    timeout = int(request.options.get("wait_timeout") or 300)
    argv = server_argv(conn, data_dir, user.pw_name, socket, os.path.join(staging, "replay.pid"), log_file, private=True)
    server = _Server(conn, argv, socket, log_file, timeout)
    try:
        stop = stop_datetime(request.restore_time)
        reader_argv = [conn.tool("binlog"), "--no-defaults", "--start-position=%d" % int(start["binlog_pos"]), "--stop-datetime=%s" % stop] + paths
        if os.path.basename(paths[0]) != start["binlog_file"]:
            raise EngineError("the replay would start in %s, but the backup's position is in %s" % (os.path.basename(paths[0]), start["binlog_file"]))
        client_argv = [conn.tool("client"), "--no-defaults", "--socket=%s" % socket, "--user=root", "--binary-mode", "--batch"]
        applier = tools.FeedingTool(client_argv, env={"MYSQL_PWD": None, "TZ": "UTC"}, what="mysql client (binlog replay)")
        try:
            # Grant statements in the binlogs need the grant tables loaded in this session.
            applier.write(b"FLUSH PRIVILEGES;\n")
            with tools.StreamingTool(reader_argv, env={"TZ": "UTC"}, what=os.path.basename(reader_argv[0])) as reader:
                for chunk in iter(lambda: reader.stdout.read(1024 * 1024), b""):
                    applier.write(chunk)
                reader.finish()
            applier.finish(timeout=24 * 3600)
        except BaseException:
            applier.kill()
            raise
        applied = {"from": "%s:%s" % (start["binlog_file"], start["binlog_pos"]), "stop_datetime": stop + " UTC",
                   "files": [os.path.basename(p) for p in paths]}
    except ToolError as exc:
        raise EngineError("replaying the binary logs failed: %s" % exc, hint="Read %s; the target was left empty" % log_file)
    finally:
        server.stop()
    return applied


def start_server(conn, data_dir, owner, request):
    """Start the server on the restored directory for use, detached, and wait until it answers."""
    options = request.options
    port = int(options.get("port") or 3306)
    socket_dir = options.get("socket_dir") or "/tmp"
    socket = os.path.join(socket_dir, "mysqld-%d.sock" % port)
    log_file = os.path.join(data_dir, "restore-start.err")
    argv = server_argv(conn, data_dir, owner, socket, os.path.join(data_dir, "restore-start.pid"), log_file,
                       port=port, bind=options.get("listen_addresses"))
    server = _Server(conn, argv, socket, log_file, int(options.get("wait_timeout") or 300), detach=True)
    return {"port": port, "socket": socket, "pid": server.proc.pid, "log": log_file}


# Volume snapshots ---------------------------------------------------------
#
# The snapshot is taken under FLUSH TABLES WITH READ LOCK, held by one client
# session: no commit and no binlog write happens while the provider fixes the
# snapshot's point in time, and the binlog position and GTID set read under the
# lock are those of the snapshot (what binlog.plan_pitr starts a replay from).
# InnoDB recovers the snapshot's files on the first start, as after a crash.
# The session's lock_wait_timeout bounds how long the lock request may wait
# behind running statements (blocking every writer meanwhile); the end of the
# session releases the lock on every failure path.

SNAPSHOT_PRIVILEGES = ("RELOAD", ("BINLOG MONITOR", "REPLICATION CLIENT"))
LOCK_WAIT_TIMEOUT = 60
# Files of a data directory a server leaves behind that must not reach a new start.
_STALE = re.compile(r"(\.pid|\.sock|\.sock\.lock)$")
INNODB_DIRS = ("innodb_data_home_dir", "innodb_log_group_home_dir", "innodb_undo_directory")


def _lock_wait_timeout(request):
    value = request.options.get("lock_wait_timeout")
    if value is None:
        return LOCK_WAIT_TIMEOUT
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise ConfigError("lock_wait_timeout must be a positive number of seconds, got %r" % (request.options.get("lock_wait_timeout"),))
    return value


def _outside(path, data_dir):
    """Whether a server path setting (relative ones are below the data directory) lies outside data_dir."""
    if not path:
        return False
    full = os.path.realpath(os.path.join(data_dir, path))
    return not (full + "/").startswith(os.path.realpath(data_dir).rstrip("/") + "/")


def plan_snapshot(request, local=False):
    """What a volume snapshot of this server needs, read-only: its data directory, the privileges of the read lock."""
    conn = Connection(request.connection)
    server = inspect(conn)
    check_privileges(conn, SNAPSHOT_PRIVILEGES, "a volume-snapshot backup (FLUSH TABLES WITH READ LOCK, SHOW MASTER STATUS)")
    data_dir = os.path.normpath(server["datadir"] or "")
    rows = conn.query("SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s)"
                      % ", ".join("'%s'" % name for name in INNODB_DIRS + ("innodb_flush_log_at_trx_commit",)))
    settings = dict((row[0].lower(), row[1] if len(row) > 1 else "") for row in rows if row)
    warnings = []
    if local:
        if not os.path.isdir(os.path.join(data_dir, "mysql")):
            raise EngineError(
                "the server's data directory %s is not on this host" % data_dir,
                hint="A btrfs or lvm snapshot is taken on the database host: run the backup there",
            )
        outside = ["%s=%s" % (name, settings[name]) for name in INNODB_DIRS if _outside(settings.get(name), data_dir)]
        if outside:
            raise EngineError(
                "the server keeps InnoDB files outside its data directory %s (%s): a snapshot of the data directory's volume would miss them"
                % (data_dir, ", ".join(outside)),
                hint="Back it up with method xtrabackup, or snapshot every volume with a cloud provider",
            )
        if server["log_bin_basename"] and _outside(server["log_bin_basename"], data_dir):
            warnings.append("the binary logs (%s) are outside the data directory: the snapshot does not hold them; a point-in-time restore "
                            "replays them from the binlog archive" % server["log_bin_basename"])
    if settings.get("innodb_flush_log_at_trx_commit") == "0" or not local and settings.get("innodb_flush_log_at_trx_commit") == "2":
        warnings.append("innodb_flush_log_at_trx_commit is %s: transactions committed in the last second before the snapshot may be "
                        "missing from it" % settings["innodb_flush_log_at_trx_commit"])
    if not server["log_bin"]:
        warnings.append("log_bin is off: this backup can be restored, but no point-in-time restore can start from it")
    return {
        "identity": server["identity"],
        "server": conn.target(),
        "server_version": server["version_full"],
        "flavor": server["flavor"],
        "data_dir": data_dir,
        "log_bin": server["log_bin"],
        "quiesce": "FLUSH TABLES WITH READ LOCK ... UNLOCK TABLES (lock_wait_timeout %ds)" % _lock_wait_timeout(request),
        "engine_version": server["version"],
        "server_id": server["server_id"],
        "server_uuid": server["server_uuid"],
        "warnings": warnings,
    }


class ReadLock(Quiesce):
    """FLUSH TABLES WITH READ LOCK on one client session, around the snapshot; the binlog position read under it."""

    consistency = "application"

    def __init__(self, conn, plan, lock_wait_timeout=LOCK_WAIT_TIMEOUT):
        super(ReadLock, self).__init__()
        self.conn = conn
        self.plan = plan
        self.lock_wait_timeout = lock_wait_timeout
        self.session = None
        self.connection_id = None

    def _call(self, sql, timeout=None):
        try:
            reply = self.session.call(sql, timeout=timeout)
        except ToolError as exc:
            text = str(exc)
            if "ERROR 1205" in text or "Lock wait timeout exceeded" in text:
                raise EngineError(
                    "FLUSH TABLES WITH READ LOCK on %s waited %ds for running statements and gave up; nothing was snapshotted"
                    % (self.conn.target(), self.lock_wait_timeout),
                    hint="Run the backup when no long query or transaction holds tables, or raise lock_wait_timeout",
                )
            raise self.conn.explain(exc)
        return [[_unescape(field) for field in line.split("\t")] for line in reply.splitlines()]

    def hold(self):
        flavor = self.plan["flavor"]
        argv = ([self.conn.tool("client", flavor)] + self.conn.defaults() + self.conn.address()
                + ["--batch", "--skip-column-names", "--unbuffered", "--skip-reconnect", "--connect-timeout=10"])
        self.session = tools.ClientSession(argv, lambda token: "SELECT '%s';" % token, env=self.conn.env(), what="mysql client (read lock)",
                                           timeout=self.lock_wait_timeout + 60)
        self.connection_id = int(self._call("SELECT CONNECTION_ID();")[0][0])
        self._call("SET SESSION lock_wait_timeout = %d;" % self.lock_wait_timeout)
        self._call("FLUSH TABLES WITH READ LOCK;")
        self.facts["locked"] = utcnow()
        status = "SHOW BINARY LOG STATUS;" if flavor == MYSQL and _version(self.plan["server_version"]) >= (8, 2, 0) else "SHOW MASTER STATUS;"
        rows = [row for row in self._call(status) if row and row[0]]
        gtid = self._call("SELECT @@GLOBAL.gtid_binlog_pos;" if flavor == MARIADB else "SELECT @@GLOBAL.gtid_executed;")
        positions = {}
        if rows:
            positions = {"binlog_file": rows[0][0], "binlog_pos": int(rows[0][1]), "gtid": "".join(" ".join(r[0] for r in gtid if r).split())}
        elif self.plan["log_bin"]:
            raise EngineError("SHOW MASTER STATUS on %s returned no binlog position under the read lock" % self.conn.target(),
                              hint="Check that the backup user holds BINLOG MONITOR (REPLICATION CLIENT on MySQL)")
        self.facts["positions"] = positions

    def _release(self):
        # The client does not reconnect: a session lost while the snapshot was taken fails here, and the backup with it.
        self._call("UNLOCK TABLES;", timeout=60)
        self.facts["unlocked"] = utcnow()

    def abort(self):
        if self.session is None:
            return
        try:
            self.session.call("UNLOCK TABLES;", timeout=10)
            return
        except Exception:  # pylint: disable=broad-except
            pass
        if self.connection_id is not None:
            # The session hangs (behind FLUSH TABLES WITH READ LOCK): end it from another connection.
            try:
                self.conn.query("KILL %d" % self.connection_id)
            except Exception:  # pylint: disable=broad-except
                pass

    def close(self):
        if self.session is not None:
            self.session.close()


def _version(text):
    match = _VERSION.search(text or "")
    return tuple(int(x) for x in match.groups()) if match else (0, 0, 0)


def quiesce(request, plan):
    conn = Connection(request.connection)
    conn.flavor = plan["flavor"]
    return ReadLock(conn, plan, _lock_wait_timeout(request))


def snapshot_facts(request, ctx, held):
    """The manifest's facts of a snapshot under the read lock: the binlog position and GTID set of its point in time."""
    plan = held.plan
    return {
        "end_time": held.facts["locked"],
        "engine_version": plan["engine_version"],
        "flavor": plan["flavor"],
        "positions": held.facts["positions"],
        "server_uuid": plan["server_uuid"],
        "server_id": plan["server_id"],
        "data_dir": held.plan["data_dir"],
        "lock_wait_timeout": held.lock_wait_timeout,
    }


def plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=False):
    """Checks before a snapshot restore touches anything; returns the engine's part of the plan."""
    owner = _owner(request)
    user = hostfiles.lookup_user(owner, "MySQL/MariaDB")
    if mounted:
        if not os.path.isdir(os.path.join(data_dir, "mysql")):
            raise ConfigError(
                "data_dir %s holds no MySQL/MariaDB data directory (no mysql/ schema)" % data_dir,
                hint="Mount the volume restored from the snapshot so that data_dir is the data directory in it",
            )
        busy = _server_running(data_dir)
        if busy:
            raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop that server first")
    else:
        check_target(data_dir, request.force)
    conn = _restore_conn(manifest, request)
    needed = []
    if logs is not None or request.options.get("start"):
        hostfiles.check_reachable(data_dir, user, "mysqld")
        needed += ["server", "client"]
    positions = manifest.get("positions") or {}
    if logs is not None:
        needed.append("binlog")
        if not positions.get("binlog_file"):
            raise EngineError("backup %s recorded no binlog position: no point-in-time restore can start from it" % manifest["backup_id"],
                              hint="Choose a restore_time served by another backup (backup_info lists the windows)")
    plan = {
        "data_dir": data_dir,
        "owner": owner,
        "flavor": conn.flavor,
        "tools": dict((role, conn.tool(role)) for role in needed),
        "start": bool(request.options.get("start")),
    }
    if logs is not None:
        plan["binlogs"] = {"files": [e["name"] for e in logs], "start_file": positions.get("binlog_file"),
                           "start_position": positions.get("binlog_pos"), "stop_datetime": stop_datetime(request.restore_time) + " UTC"}
    return plan


def finish_snapshot_restore(repository, manifest, request, logs, data_dir):
    """Make the snapshot's copy of the data directory start cleanly, replay the binlogs to restore_time, optionally start it."""
    owner = _owner(request)
    group = request.options.get("group")
    user = hostfiles.lookup_user(owner, "MySQL/MariaDB")
    conn = _restore_conn(manifest, request)
    removed = []
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        if stat.S_ISSOCK(os.lstat(path).st_mode) or (_STALE.search(name) and not os.path.isdir(path)):
            os.unlink(path)
            removed.append(name)
    os.chmod(data_dir, 0o750)
    hostfiles.chown_tree(data_dir, owner, group)
    result = {"data_dir": data_dir, "owner": owner, "removed": removed}
    if logs is not None:
        parent = os.path.dirname(data_dir.rstrip("/")) or "/"
        staging = tempfile.mkdtemp(prefix=".dp-restore-", dir=parent)
        try:
            log_dir = os.path.join(staging, "binlogs")
            os.mkdir(log_dir, 0o700)
            paths = binlog.fetch(repository, logs, log_dir)
            result["replay"] = replay(conn, data_dir, staging, user, paths, manifest.get("positions") or {}, request)
            result["binlogs"] = len(paths)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if request.options.get("start"):
        result["server"] = start_server(conn, data_dir, owner, request)
    return result


def remote_restore_next(manifest, logs):
    return ("Mount the new volume on the database host, then run restore again with backup_id %s, source: mounted and data_dir set to "
            "the data directory on it: that removes the source server's pid and socket files%s and gives the files to the owner; InnoDB "
            "recovers them on the first start" % (manifest["backup_id"], " and replays the archived binary logs up to restore_time"
                                                  if logs is not None else ""))


# Binary log archiving -----------------------------------------------------

SCHEDULERS = ("auto", "systemd", "cron", "none")


def check_binlog_settings(server, target):
    if not server["log_bin"]:
        raise EngineError(
            "log_bin is off on %s: there are no binary logs to archive" % target,
            hint="Set log_bin (for example log_bin = mysql-bin) and a server_id in the server's option file, then restart the server",
        )
    if server["binlog_format"].upper() != "ROW":
        raise EngineError(
            "binlog_format is %s on %s; binary log archiving needs ROW (statement-based logs can replay to different data)"
            % (server["binlog_format"], target),
            hint="Set binlog_format = ROW in the server's option file and SET GLOBAL binlog_format = 'ROW' (or restart)",
        )


SHIPPING = logarchive.Shipping(
    "binlog", "binlog-ship",
    "Archive binary logs of %s into the backup repository (dataprotection.databases)",
    "mariadb.service mysql.service",
    "# Binary log archiving of %s (dataprotection.databases log_backup); rotation and shipping every minute.",
)


def ship_command(agent, config_path, follow=False):
    return SHIPPING.command(agent, config_path, follow)


def scheduler_files(scheduler, cluster, owner, agent, config_path, options):
    """The files that run the shipping: {path: content}."""
    return SHIPPING.files(scheduler, cluster, owner, agent, config_path, options)


def log_backup(repository, request, state, check_mode=False):
    """Enable, disable or sync binary log archiving of the server in ``request.connection``."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import check_identity  # pylint: disable=import-outside-toplevel

    options = request.options
    config_path = os.path.join(options.get("config_dir") or "/etc/dataprotection", "%s.json" % request.cluster)
    agent = options.get("agent_command") or "/usr/local/bin/dataprotection"
    conn = Connection(request.connection)
    server = inspect(conn)
    result = {"changed": False, "restart_required": False, "config_path": config_path}

    if state == "disabled":
        existing = [p for p in list(scheduler_files("systemd", request.cluster, "-", agent, config_path, options))
                    + list(scheduler_files("cron", request.cluster, "-", agent, config_path, options)) + [config_path] if os.path.exists(p)]
        result["changed"] = bool(existing)
        result["plan"] = {"remove": existing}
        if check_mode or not existing:
            return result
        for path in existing:
            if path.endswith(".service"):
                try:
                    hostfiles.systemctl("disable", "--now", os.path.basename(path))
                except ToolError:
                    pass
            os.unlink(path)
        return result

    check_binlog_settings(server, conn.target())
    check_privileges(conn, LOG_PRIVILEGES, "binary log archiving (FLUSH BINARY LOGS, SHOW BINARY LOGS)")
    index_path = server["log_bin_index"]
    if not index_path or not os.path.isfile(index_path):
        raise EngineError("the server's binary log index %s is not on this host" % index_path,
                          hint="Run log_backup on the database host itself: the binary logs are read from disk there")
    owner_stat = os.stat(index_path)

    if state == "synced":
        if check_mode:
            result["plan"] = {"rotate": True, "ship": "closed binary logs not yet archived"}
            return result
        shipped = ship(repository, request.cluster, conn, index_path, rotate="now",
                       compression=options.get("compression") or "zstd", level=options.get("compression_level"))
        result.update({"changed": bool(shipped["shipped"]), "shipped": shipped["shipped"], "synced_binlog": shipped["last_closed"]})
        return result

    # enabled
    hostfiles.check_agent(agent, "nothing")
    hostfiles.check_repo_owner(repository.repo, owner_stat.st_uid, "MySQL/MariaDB", "the binary log shipping")
    check_identity(repository.repo, request.cluster, ENGINE, server["identity"], write=not check_mode)
    check_history(repository, request.cluster, index_path)
    import pwd  # pylint: disable=import-outside-toplevel

    owner = pwd.getpwuid(owner_stat.st_uid).pw_name
    scheduler = hostfiles.pick_scheduler(options.get("scheduler") or "auto", "the binary log shipping",
                                         "Set scheduler: none and keep `dataprotection binlog-ship --follow` running under your own supervisor")
    config = {
        "repo": request.repo_spec,
        "cluster": request.cluster,
        "engine": ENGINE,
        "identity": server["identity"],
        "binlog_index": index_path,
        "rotate_interval": int(options.get("rotate_interval") or 300),
        "rotate_size_mb": int(options.get("rotate_size_mb") or 256),
        "compression": options.get("compression") or "zstd",
        "compression_level": options.get("compression_level"),
        "connection": dict((k, v) for k, v in request.connection.items() if v is not None),
    }
    files = scheduler_files(scheduler, request.cluster, owner, agent, config_path, options)
    config_changed = hostfiles.config_differs(config_path, config)
    to_write = sorted(path for path, content in files.items() if hostfiles.read_text(path) != content)
    result.update({"changed": config_changed or bool(to_write), "scheduler": scheduler,
                   "ship_command": ship_command(agent, config_path, follow=scheduler in ("systemd", "none"))})
    if check_mode:
        result["plan"] = {"write_config": config_changed, "write": to_write, "scheduler": scheduler}
        return result
    if config_changed:
        hostfiles.write_config(config_path, config, owner_stat.st_uid, owner_stat.st_gid)
    for path in to_write:
        hostfiles.write_text(path, files[path])
    if scheduler == "systemd" and (to_write or config_changed) and not hostfiles.systemd_running():
        result["notes"] = ["systemd is not running on this host: the service was written but not started"]
    elif scheduler == "systemd" and (to_write or config_changed):
        hostfiles.systemctl("daemon-reload")
        hostfiles.systemctl("enable", "--now", os.path.basename(list(files)[0]))
        if not to_write:
            hostfiles.systemctl("restart", os.path.basename(list(files)[0]))
    return result


def check_history(repository, cluster, index_path):
    """Refuse a server whose binary logs restart a sequence the cluster's archive already holds with other content."""
    archive = binlog.archived(repository.repo, cluster)
    for path in binlog.read_index(index_path)[:-1]:
        name = os.path.basename(path)
        base, number = binlog.sequence(name)
        entry = archive.get(base, {}).get(number)
        if entry is None or not os.path.exists(path):
            continue
        if logarchive.sha256_file(path) != entry["sha256"]:
            highest = max(archive[base])
            raise EngineError(
                "this server's binary log %s differs from the one archived in cluster %s under that name" % (name, cluster),
                hint="A restored server numbers its binary logs from the start again. Give it its own cluster name, or continue "
                "the numbering after the archive's (RESET MASTER TO %d) before enabling log_backup" % (highest + 1),
            )
        return


def ship(repository, cluster, conn, index_path, rotate=None, interval=300, size_mb=256, compression="zstd", level=None):
    """One pass: rotate the active binlog when due (or ``rotate='now'``), then archive every closed binlog not yet archived."""
    files = binlog.read_index(index_path)
    rotated = False
    if files:
        active = files[-1]
        due = rotate == "now"
        if not due and os.path.exists(active):
            summary = binlog.read_events(active)
            age = (utcnow() - summary["created"]).total_seconds() if summary["created"] else 0
            due = summary["first"] is not None and (age >= interval or os.path.getsize(active) >= size_mb * 1024 * 1024)
        if due:
            conn.query("FLUSH BINARY LOGS")
            rotated = True
            files = binlog.read_index(index_path)
    archive = binlog.archived(repository.repo, cluster)
    shipped = []
    gaps = []
    for path in files[:-1]:
        name = os.path.basename(path)
        base, number = binlog.sequence(name)
        if number in archive.get(base, {}):
            continue
        if not os.path.exists(path):
            gaps.append(name)
            continue
        record = binlog.push(repository, cluster, path, compression=compression, level=level)
        if record["stored"]:
            shipped.append(record["name"])
    return {"rotated": rotated, "shipped": shipped, "missing_on_server": gaps,
            "last_closed": os.path.basename(files[-2]) if len(files) > 1 else None, "time": format_time(utcnow())}
