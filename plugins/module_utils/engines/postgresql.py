# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: pg_basebackup full backups and restores into a data directory.

The backup is ``pg_basebackup -D - -F tar -X fetch -c fast``: one tar stream
with the data directory and the WAL needed to make it consistent, read from
the tool's stdout straight into the repository.  The password goes to the
tools in PGPASSWORD, never on a command line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import re

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import pgwal
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, utcnow

METHODS = ("pg-basebackup", "volume-snapshot", "wal-archive")
ENGINE = "postgresql"
LOG_ARCHIVE = pgwal
BIN_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql@*/bin")
PACKAGE_HINT = "the PostgreSQL client tools (Debian: postgresql-client-<major>; RHEL: postgresql<major>)"
BASE_OBJECT = "base.tar"
RESTORE_MARK = "# dataprotection.databases restore"

_START = re.compile(r"write-ahead log start point: ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)", re.I)
_END = re.compile(r"write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)", re.I)


class Connection(object):
    """How to reach the server: a dict with host, port, user, password, socket, database."""

    def __init__(self, params):
        params = dict(params or {})
        self.host = params.get("host")
        self.socket = params.get("socket")
        self.port = params.get("port") or 5432
        self.user = params.get("user") or "postgres"
        self.password = params.get("password")
        self.database = params.get("database") or "postgres"
        self.bin_dir = params.get("bin_dir")

    def env(self):
        return {
            "PGHOST": self.socket or self.host or "localhost",
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
            "PGPASSWORD": self.password,
            "PGCONNECT_TIMEOUT": "10",
            "PGAPPNAME": "dataprotection.databases",
            "PGTZ": "UTC",
        }

    def target(self):
        return "%s:%s" % (self.socket or self.host or "localhost", self.port)

    def tool(self, name, major=None):
        dirs = []
        if self.bin_dir:
            dirs.append(self.bin_dir)
        if major:
            dirs.append("/usr/lib/postgresql/%s/bin" % major)
            dirs.append("/usr/pgsql-%s/bin" % major)
        for directory in dirs:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return tools.find_tool(name, BIN_DIRS, PACKAGE_HINT)

    def query(self, sql, major=None):
        """Run one query with psql; return rows as lists of strings."""
        argv = [self.tool("psql", major), "-X", "-A", "-t", "-q", "-w", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", "-c", sql]
        try:
            out, dummy = tools.run(argv, env=self.env(), timeout=60, what="psql")
        except ToolError as exc:
            raise self.explain(exc)
        return [line.split("\x1f") for line in out.splitlines() if line != ""]

    def explain(self, exc):
        text = str(exc)
        if "password authentication failed" in text or "no password supplied" in text:
            return EngineError(
                "PostgreSQL at %s refused user %s: password authentication failed" % (self.target(), self.user),
                hint="Check connection.password (and that pg_hba.conf allows this user from this host)",
            )
        if "Connection refused" in text or "could not connect" in text or "timeout expired" in text or "No such file or directory" in text:
            return EngineError(
                "cannot reach PostgreSQL at %s" % self.target(),
                hint="Check connection.host / connection.port / connection.socket and that the server is running: %s" % text.splitlines()[-1],
            )
        if "permission denied" in text or "must be superuser" in text or "replication" in text and "pg_hba" in text:
            return EngineError(
                "PostgreSQL user %s lacks a privilege: %s" % (self.user, text),
                hint="Use a superuser or a role with REPLICATION and pg_read_all_settings, and a pg_hba.conf replication entry",
            )
        return EngineError("PostgreSQL at %s: %s" % (self.target(), text))


def inspect(conn):
    """What the backup needs to know about the server, read-only."""
    rows = conn.query(
        "SELECT current_setting('server_version_num'), current_setting('server_version'), "
        "(SELECT system_identifier FROM pg_control_system()), current_setting('wal_level'), "
        "pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint()), "
        "current_setting('archive_mode'), current_setting('archive_command'), current_setting('data_directory')"
    )
    row = rows[0]
    return {
        "version_num": int(row[0]),
        "version": row[1].split()[0],
        "major": int(row[0]) // 10000,
        "system_identifier": row[2],
        "wal_level": row[3],
        "in_recovery": row[4] == "t",
        "timeline": int(row[5]),
        "archive_mode": row[6],
        "archive_command": row[7],
        "data_directory": row[8],
    }


def tool_version(path):
    out, dummy = tools.run([path, "--version"], timeout=30)
    match = re.search(r"(\d+(?:\.\d+)*)", out)
    return match.group(1) if match else out.strip()


def plan_backup(request):
    conn = Connection(request.connection)
    server = inspect(conn)
    if server["wal_level"] == "minimal":
        raise EngineError(
            "PostgreSQL at %s runs with wal_level=minimal; pg_basebackup needs replica or logical" % conn.target(),
            hint="ALTER SYSTEM SET wal_level = replica; then restart PostgreSQL (and make sure max_wal_senders > 0)",
        )
    basebackup = conn.tool("pg_basebackup", server["major"])
    version = tool_version(basebackup)
    if int(version.split(".")[0]) < server["major"]:
        raise EngineError(
            "%s is version %s, older than the server (%s)" % (basebackup, version, server["version"]),
            hint="Install the PostgreSQL %d client tools, or set connection.bin_dir to their directory" % server["major"],
        )
    return {
        "identity": server["system_identifier"],
        "server": conn.target(),
        "server_version": server["version"],
        "system_identifier": server["system_identifier"],
        "timeline": server["timeline"],
        "tools": {"pg_basebackup": {"path": basebackup, "version": version}},
        "objects": [BASE_OBJECT],
    }


def run_backup(request, ctx):
    conn = Connection(request.connection)
    server = inspect(conn)
    basebackup = conn.tool("pg_basebackup", server["major"])
    started = utcnow()
    argv = [basebackup, "-D", "-", "-F", "t", "-X", "fetch", "-c", "fast", "-v", "-w", "-l", ctx.backup_id]
    with tools.StreamingTool(argv, env=conn.env(), what="pg_basebackup") as proc:
        ctx.store(BASE_OBJECT, proc.stdout)
        try:
            stderr = proc.finish()
        except ToolError as exc:
            raise conn.explain(exc)
    ended = utcnow()
    start = _START.search(stderr)
    end = _END.search(stderr)
    if not start or not end:
        raise EngineError("pg_basebackup did not report its WAL start and end points: %s" % stderr[-2000:])
    timeline = int(start.group(2))
    return {
        "start_time": started,
        "end_time": ended,
        "engine_version": server["version"],
        "positions": {
            "start_lsn": start.group(1),
            "stop_lsn": end.group(1),
            "timeline": timeline,
            "start_wal": wal_segment_name(timeline, start.group(1)),
            "stop_wal": wal_segment_name(timeline, end.group(1)),
        },
        "tools": {"pg_basebackup": tool_version(basebackup)},
        "system_identifier": server["system_identifier"],
    }


def pg_time(value):
    """A UTC time as PostgreSQL's timestamptz input reads it in recovery_target_time."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def parse_lsn(text):
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def wal_segment_name(timeline, lsn, segment_size=16 * 1024 * 1024):
    value = parse_lsn(lsn) if isinstance(lsn, str) else lsn
    segno = value // segment_size
    per_id = 0x100000000 // segment_size
    return "%08X%08X%08X" % (timeline, segno // per_id, segno % per_id)


# Restore ------------------------------------------------------------------


def _postmaster_running(data_dir):
    pid = hostfiles.read_pid(os.path.join(data_dir, "postmaster.pid"))
    if pid and hostfiles.pid_alive(pid):
        return "a PostgreSQL server (pid %d) runs on it" % pid
    return None


def check_target(data_dir, force):
    """Refuse a non-empty data directory unless ``force``, and a running server's always; return what is there."""
    return hostfiles.check_target(data_dir, force, _postmaster_running, server="the PostgreSQL server")


def plan_pitr(repo, cluster, manifests, target):
    return pgwal.plan_pitr(repo, cluster, manifests, target)


def plan_restore(repository, manifest, request, wal=None):
    """What a restore would do; checks the target and the objects without changing anything."""
    data_dir = request.target
    entries = check_target(data_dir, request.force)
    owner = _restore_owner(request, data_dir)
    base = [o for o in manifest["objects"] if o["name"].startswith(BASE_OBJECT)]
    if len(base) != 1:
        raise EngineError("backup %s has no %s object" % (manifest["backup_id"], BASE_OBJECT))
    tools.find_tool("tar", package="tar")
    plan = {
        "backup_id": manifest["backup_id"],
        "base_end_time": manifest["end_time"],
        "data_dir": data_dir,
        "owner": owner,
        "replaces_entries": len(entries),
        "bytes": base[0]["size"],
        "recovery": "point-in-time" if wal is not None else "end of backup",
        "start": bool(request.options.get("start")),
    }
    if wal is not None:
        plan["wal"] = {"segments": len(wal), "first": wal[0]["name"] if wal else None, "last": wal[-1]["name"] if wal else None}
    return plan


def restore(repository, manifest, request, wal=None):
    """Lay down the data directory (and the WAL up to the target); optionally start and wait."""
    data_dir = request.target
    owner = request.options.get("owner") or "postgres"
    group = request.options.get("group")
    with hostfiles.Target(data_dir):
        size = restore_files(repository, manifest, data_dir, owner, group)
        fetched = 0
        if wal is not None:
            entry = _user(owner)
            wal_dir = os.path.join(data_dir, "pg_wal")
            fetched = pgwal.fetch_segments(repository, wal, wal_dir, entry.pw_uid, entry.pw_gid)
            write_recovery_settings(data_dir, owner, group, target_time=pg_time(request.restore_time))
        else:
            write_recovery_settings(data_dir, owner, group)
    result = {"data_dir": data_dir, "bytes": size, "wal_segments": fetched, "owner": owner}
    if request.options.get("start"):
        result["server"] = start_and_wait(data_dir, owner, request, manifest.get("engine_version"))
    return result


def _user(name):
    return hostfiles.lookup_user(name, "PostgreSQL")


def _restore_owner(request, data_dir):
    """The user the restored files go to (``owner``, default postgres); with ``start``, it must reach ``data_dir``."""
    owner = request.options.get("owner") or "postgres"
    user = _user(owner)
    if request.options.get("start"):
        hostfiles.check_reachable(data_dir, user, "PostgreSQL")
    return owner


def start_and_wait(data_dir, owner, request, server_version=None):
    """Start PostgreSQL on the restored directory and wait until it accepts writes (recovery done, promoted)."""
    import time  # pylint: disable=import-outside-toplevel

    options = request.options
    port = int(options.get("port") or 5432)
    socket_dir = options.get("socket_dir") or "/tmp"
    major = (server_version or "").split(".")[0] or None
    pg_ctl = Connection({"bin_dir": options.get("bin_dir")}).tool("pg_ctl", major)
    log = os.path.join(data_dir, "restore-start.log")
    argv = [pg_ctl, "-D", data_dir, "-l", log, "-w", "-t", str(int(options.get("wait_timeout") or 300)),
            "-o", "-p %d -k %s -c listen_addresses=%s" % (port, socket_dir, options.get("listen_addresses") or "localhost"), "start"]
    if os.geteuid() == 0 and owner != "root":
        argv = [tools.find_tool("runuser", package="util-linux"), "-u", owner, "--"] + argv
    try:
        tools.run(argv, timeout=int(options.get("wait_timeout") or 300) + 30, what="pg_ctl start")
    except ToolError as exc:
        raise EngineError("PostgreSQL did not start on %s: %s" % (data_dir, hostfiles.log_tail(log) or exc),
                          hint="Read %s; the restored files are in place" % log)
    conn = Connection({"socket": socket_dir, "port": port, "user": owner if owner != "root" else "postgres",
                       "password": options.get("password"), "bin_dir": options.get("bin_dir")})
    deadline = time.monotonic() + int(options.get("wait_timeout") or 300)
    while True:
        try:
            if conn.query("SELECT pg_is_in_recovery()")[0][0] == "f":
                break
        except EngineError:
            pass
        if time.monotonic() > deadline:
            raise EngineError("PostgreSQL on %s did not finish recovery in time" % data_dir, hint="Read %s" % log)
        time.sleep(0.5)
    return {"port": port, "socket_dir": socket_dir, "log": log, "promoted": True}


def restore_files(repository, manifest, data_dir, owner="postgres", group=None):
    """Lay down the data directory from the backup's tar stream."""
    record = [o for o in manifest["objects"] if o["name"].startswith(BASE_OBJECT)][0]
    tar = tools.find_tool("tar", package="tar")
    hostfiles.feed_object(repository, manifest, record, [tar, "-x", "-f", "-", "-C", data_dir, "--no-same-owner"], "tar", timeout=600)
    for stale in ("postmaster.pid", "postmaster.opts"):
        try:
            os.unlink(os.path.join(data_dir, stale))
        except OSError:
            pass
    os.chmod(data_dir, 0o700)
    hostfiles.chown_tree(data_dir, owner, group)
    return record["size"]


def write_recovery_settings(data_dir, owner, group=None, target_time=None, restore_command=None):
    """Settings so that starting PostgreSQL recovers to the target and promotes.

    Archiving stays off on the restored server until log_backup enables it
    for the restored cluster: it must not push into the history it came from.
    """
    lines = ["", RESTORE_MARK, "archive_mode = 'off'"]
    if target_time is not None:
        lines += [
            "restore_command = '%s'" % (restore_command or "false").replace("'", "''"),
            "recovery_target_time = '%s'" % target_time,
            "recovery_target_inclusive = true",
            "recovery_target_action = 'promote'",
            "recovery_target_timeline = 'current'",
        ]
    path = os.path.join(data_dir, "postgresql.auto.conf")
    with open(path, "a") as handle:
        handle.write("\n".join(lines) + "\n")
    if target_time is not None:
        open(os.path.join(data_dir, "recovery.signal"), "w").close()
    hostfiles.chown_tree(data_dir, owner, group)


def windows(repo, cluster, manifests):
    return pgwal.windows(repo, cluster, manifests)


# Volume snapshots ---------------------------------------------------------
#
# The snapshot is taken between pg_backup_start and pg_backup_stop, on one session
# (a non-exclusive backup: the session's end aborts it, so every failure path
# releases it).  pg_backup_stop returns the backup_label, kept in the manifest;
# the WAL from the backup's start to its stop is read from the server and stored
# as objects, so the snapshot restores without a WAL archive.

WAL_OBJECT_PREFIX = "wal-"
SNAPSHOT_SEPARATOR = "\x1f"
_LABEL_TIMELINE = re.compile(r"^START TIMELINE: (\d+)$", re.M)
_LABEL_START = re.compile(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)$", re.M)


def _backup_functions(version_num):
    """The (start, stop) functions of a non-exclusive backup: renamed in PostgreSQL 15."""
    if version_num >= 150000:
        return "pg_backup_start(text, boolean)", "pg_backup_stop(boolean)"
    return "pg_start_backup(text, boolean, boolean)", "pg_stop_backup(boolean, boolean)"


def plan_snapshot(request, local=False):
    """What a volume snapshot of this server needs, read-only: its data directory, the privileges of the backup mode."""
    conn = Connection(request.connection)
    server = inspect(conn)
    if server["wal_level"] == "minimal":
        raise EngineError("PostgreSQL at %s runs with wal_level=minimal; its backup mode needs replica or logical" % conn.target(),
                          hint="ALTER SYSTEM SET wal_level = replica; then restart PostgreSQL")
    if server["in_recovery"]:
        raise EngineError("PostgreSQL at %s is a standby; a volume-snapshot backup is taken on the primary" % conn.target(),
                          hint="Point connection at the primary and snapshot its volumes")
    start, stop = _backup_functions(server["version_num"])
    row = conn.query(
        "SELECT has_function_privilege('%s', 'EXECUTE'), has_function_privilege('%s', 'EXECUTE'), "
        "has_function_privilege('pg_read_binary_file(text)', 'EXECUTE'), "
        "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "
        "(SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))" % (start, stop))[0]
    missing = [name for name, held in zip((start, stop, "pg_read_binary_file(text)"), row[:3]) if held != "t"]
    if missing:
        raise EngineError(
            "PostgreSQL user %s may not run %s, which a volume-snapshot backup needs" % (conn.user, ", ".join(missing)),
            hint="Use a superuser, or GRANT EXECUTE ON FUNCTION %s TO %s" % (", ".join(missing), conn.user),
        )
    data_dir = server["data_directory"]
    warnings = []
    wal_dir = None
    if local:
        if not os.path.isfile(os.path.join(data_dir, "PG_VERSION")):
            raise EngineError(
                "the server's data directory %s is not on this host" % data_dir,
                hint="A btrfs or lvm snapshot is taken on the database host: run the backup there",
            )
        found = control_system_identifier(data_dir)
        if found != server["system_identifier"]:
            raise EngineError(
                "%s on this host is the data directory of another PostgreSQL (system identifier %s), not of the server at %s (%s)"
                % (data_dir, found, conn.target(), server["system_identifier"]),
                hint="Run the backup on the host of the server that connection names, or point connection at the local server",
            )
        wal_dir = os.path.join(data_dir, "pg_wal")
        if int(row[4]):
            raise EngineError(
                "PostgreSQL at %s has %s tablespaces outside its data directory; a snapshot of the data directory's volume would miss them"
                % (conn.target(), row[4]),
                hint="Back it up with method pg-basebackup, or snapshot every volume with a cloud provider",
            )
        wal = os.path.join(data_dir, "pg_wal")
        real = os.path.realpath(wal)
        if os.path.islink(wal) and not real.startswith(os.path.realpath(data_dir).rstrip("/") + "/"):
            raise EngineError(
                "pg_wal of %s is a link to %s, outside the data directory: the snapshot would not hold it" % (data_dir, real),
                hint="Back it up with method pg-basebackup, or keep pg_wal inside the data directory",
            )
    elif int(row[4]):
        warnings.append("the server has %s tablespaces: the snapshot must cover every volume that holds one" % row[4])
    return {
        "identity": server["system_identifier"],
        "server": conn.target(),
        "server_version": server["version"],
        "version_num": server["version_num"],
        "system_identifier": server["system_identifier"],
        "timeline": server["timeline"],
        "data_dir": data_dir,
        "wal_segment_size": int(row[3]),
        "wal_dir": wal_dir,
        "quiesce": "%s ... %s" % (start.split("(", 1)[0], stop.split("(", 1)[0]),
        "warnings": warnings,
    }


class BackupMode(Quiesce):
    """PostgreSQL's backup mode on one psql session, around the snapshot."""

    consistency = "application"

    def __init__(self, conn, plan, label):
        super(BackupMode, self).__init__()
        self.conn = conn
        self.plan = plan
        self.label = label
        self.session = None

    def _call(self, sql):
        try:
            return self.session.call(sql).split(SNAPSHOT_SEPARATOR)
        except ToolError as exc:
            raise self.conn.explain(exc)

    def hold(self):
        major = self.plan["version_num"] // 10000
        argv = [self.conn.tool("psql", major), "-X", "-A", "-t", "-q", "-w", "-F", SNAPSHOT_SEPARATOR, "-v", "ON_ERROR_STOP=1"]
        self.session = tools.ClientSession(argv, lambda token: "\\echo %s" % token, env=self.conn.env(), what="psql")
        self._call("SET statement_timeout = 0;")
        start = "pg_backup_start(%s, true)" if self.plan["version_num"] >= 150000 else "pg_start_backup(%s, true, false)"
        row = self._call("SELECT %s;" % (start % _sql_literal(self.label)))
        self.facts["start_lsn"] = row[0]

    def _release(self):
        stop = "pg_backup_stop(false)" if self.plan["version_num"] >= 150000 else "pg_stop_backup(false, false)"
        row = self._call("SELECT lsn, encode(convert_to(labelfile, 'UTF8'), 'hex'), encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') "
                         "FROM %s;" % stop)
        self.facts.update({
            "stop_lsn": row[0],
            "backup_label": bytes.fromhex(row[1]).decode("utf-8"),
            "tablespace_map": bytes.fromhex(row[2]).decode("utf-8") or None,
            "stopped": utcnow(),
        })

    def close(self):
        if self.session is not None:
            self.session.close()


def quiesce(request, plan):
    return BackupMode(Connection(request.connection), plan, getattr(request, "backup_id", None) or "dataprotection.databases")


def _segments(timeline, first, last, segment_size):
    """WAL segment names of ``timeline`` from the one holding LSN ``first`` to the one holding ``last``."""
    per_id = 0x100000000 // segment_size
    return ["%08X%08X%08X" % (timeline, segno // per_id, segno % per_id) for segno in range(first // segment_size, last // segment_size + 1)]


def control_system_identifier(data_dir):
    """The system identifier in a data directory's ``global/pg_control`` (its first 8 bytes, native order), or None."""
    import struct  # pylint: disable=import-outside-toplevel

    try:
        with open(os.path.join(data_dir, "global", "pg_control"), "rb") as handle:
            head = handle.read(8)
    except (IOError, OSError):
        return None
    return str(struct.unpack("=Q", head)[0]) if len(head) == 8 else None


def _read_segment(conn, plan, name):
    """A WAL segment of the server: from its pg_wal on this host when the plan found it there, else through SQL."""
    if plan.get("wal_dir"):
        try:
            with open(os.path.join(plan["wal_dir"], name), "rb") as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            raise EngineError("cannot read WAL segment %s of the backup: %s" % (name, exc),
                              hint="A checkpoint may have recycled it already; run the backup again")
    rows = conn.query("SELECT encode(pg_read_binary_file('pg_wal/%s'), 'hex')" % name, plan["version_num"] // 10000)
    return bytes.fromhex(rows[0][0])


def snapshot_facts(request, ctx, held):
    """The manifest's facts of a snapshot in backup mode, and the WAL from its start to its stop stored as objects."""
    facts = held.facts
    label = facts["backup_label"]
    timeline = _LABEL_TIMELINE.search(label)
    start = _LABEL_START.search(label)
    if not timeline or not start:
        raise EngineError("pg_backup_stop returned a backup_label without its start: %r" % label[:300])
    timeline = int(timeline.group(1))
    segment_size = held.plan["wal_segment_size"]
    # The backup ends in the segment holding the byte before the stop LSN (pg_backup_stop switched to the next one).
    names = _segments(timeline, parse_lsn(start.group(1)), parse_lsn(facts["stop_lsn"]) - 1, segment_size)
    conn = Connection(request.connection)
    for name in names:
        data = _read_segment(conn, held.plan, name)
        if len(data) != segment_size:
            raise EngineError("WAL segment %s read from the server has %d bytes, not %d" % (name, len(data), segment_size))
        ctx.store(WAL_OBJECT_PREFIX + name, io.BytesIO(data))
    return {
        "end_time": facts["stopped"],
        "engine_version": held.plan["server_version"],
        "system_identifier": held.plan["system_identifier"],
        "positions": {
            "start_lsn": start.group(1),
            "stop_lsn": facts["stop_lsn"],
            "timeline": timeline,
            "start_wal": names[0],
            "stop_wal": names[-1],
        },
        "backup_label": label,
        "tablespace_map": facts.get("tablespace_map"),
        "data_dir": held.plan["data_dir"],
    }


def _wal_objects(manifest):
    return [o for o in manifest["objects"] if o["name"].startswith(WAL_OBJECT_PREFIX)]


def plan_snapshot_restore(repository, manifest, request, wal, data_dir, mounted=False):
    """Checks before a snapshot restore touches anything; returns the engine's part of the plan."""
    owner = _restore_owner(request, data_dir)
    if not manifest.get("backup_label"):
        raise EngineError("backup %s has no backup_label in its manifest" % manifest["backup_id"])
    if mounted:
        if not os.path.isfile(os.path.join(data_dir, "PG_VERSION")):
            raise ConfigError(
                "data_dir %s holds no PostgreSQL data directory (no PG_VERSION)" % data_dir,
                hint="Mount the volume restored from the snapshot so that data_dir is the data directory in it",
            )
        busy = _postmaster_running(data_dir)
        if busy:
            raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop that server first")
        if os.path.exists(os.path.join(data_dir, "backup_label")):
            raise ConfigError(
                "data_dir %s already holds a backup_label: it was prepared before" % data_dir,
                hint="Start PostgreSQL on it, or restore the volume again from the snapshot",
            )
    else:
        check_target(data_dir, request.force)
    plan = {
        "data_dir": data_dir,
        "owner": owner,
        "backup_label": True,
        "wal_from_backup": [o["name"] for o in _wal_objects(manifest)],
        "start": bool(request.options.get("start")),
    }
    if wal is not None:
        plan["wal"] = {"segments": len(wal), "first": wal[0]["name"] if wal else None, "last": wal[-1]["name"] if wal else None}
    return plan


def finish_snapshot_restore(repository, manifest, request, wal, data_dir):
    """Make the snapshot's copy of the data directory recover to the backup's stop (or to restore_time), owned by owner."""
    owner = request.options.get("owner") or "postgres"
    group = request.options.get("group")
    entry = _user(owner)
    for stale in ("postmaster.pid", "postmaster.opts"):
        if os.path.lexists(os.path.join(data_dir, stale)):
            os.unlink(os.path.join(data_dir, stale))
    wal_dir = os.path.join(data_dir, "pg_wal")
    placed = 0
    for record in _wal_objects(manifest):
        name = record["name"][len(WAL_OBJECT_PREFIX):].split(".")[0]
        hostfiles.write_object(repository, manifest, record, os.path.join(wal_dir, name))
        placed += 1
    fetched = 0
    if wal is not None:
        fetched = pgwal.fetch_segments(repository, wal, wal_dir, entry.pw_uid, entry.pw_gid)
    for name in ("backup_label", "tablespace_map"):
        if manifest.get(name):
            hostfiles.write_text(os.path.join(data_dir, name), manifest[name], mode=0o600)
    write_recovery_settings(data_dir, owner, group, target_time=pg_time(request.restore_time) if wal is not None else None)
    os.chmod(data_dir, 0o700)
    hostfiles.chown_tree(data_dir, owner, group)
    result = {"data_dir": data_dir, "wal_segments": placed + fetched, "owner": owner}
    if request.options.get("start"):
        result["server"] = start_and_wait(data_dir, owner, request, manifest.get("engine_version"))
    return result


def remote_restore_next(manifest, wal):
    return ("Mount the new volume on the database host, then run restore again with backup_id %s, source: mounted and data_dir set to "
            "the data directory on it: that writes the backup_label, the WAL from the backup's start to its stop%s and the recovery "
            "settings, so PostgreSQL recovers to a consistent state" % (
                manifest["backup_id"], " and the archived WAL up to restore_time" if wal is not None else ""))


# Continuous WAL archiving -------------------------------------------------

ARCHIVE_SETTINGS = ("archive_mode", "archive_command", "archive_timeout")


def archive_command(agent, config_path):
    for path in (agent, config_path):
        if "'" in path or "%" in path:
            raise ConfigError("%r cannot be used in archive_command (it contains ' or %%)" % path, hint="Choose a path without those characters")
    return "'%s' --config '%s' wal-push \"%%p\"" % (agent, config_path)


def _sql_literal(value):
    return "'%s'" % str(value).replace("'", "''")


def archive_state(conn):
    """Running values, values in the configuration files, and pending restarts of the archive settings."""
    rows = conn.query(
        "SELECT s.name, s.setting, s.pending_restart, "
        "(SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1) "
        "FROM pg_settings s WHERE s.name IN ('archive_mode', 'archive_command', 'archive_timeout')"
    )
    state = {}
    for name, running, pending, configured in rows:
        state[name] = {"running": running, "configured": configured if configured != "" else None, "pending_restart": pending == "t"}
    return state


def log_backup(repository, request, state, check_mode=False):
    """Enable, disable or sync continuous WAL archiving for the server in ``request.connection``."""
    import time  # pylint: disable=import-outside-toplevel

    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import check_identity  # pylint: disable=import-outside-toplevel

    conn = Connection(request.connection)
    server = inspect(conn)
    options = request.options
    config_path = os.path.join(options.get("config_dir") or "/etc/dataprotection", "%s.json" % request.cluster)
    agent = options.get("agent_command") or "/usr/local/bin/dataprotection"
    current = archive_state(conn)
    result = {"changed": False, "restart_required": False, "config_path": config_path, "archive_command": None,
              "settings_before": dict((k, v["configured"] or v["running"]) for k, v in current.items())}

    if state == "enabled":
        if server["wal_level"] == "minimal":
            raise EngineError("wal_level is minimal on %s; WAL archiving needs replica or logical" % conn.target(),
                              hint="ALTER SYSTEM SET wal_level = replica; then restart PostgreSQL")
        hostfiles.check_agent(agent, "archive_command")
        data_dir = server["data_directory"]
        if not os.path.isdir(data_dir):
            raise EngineError(
                "the server's data directory %s is not on this host" % data_dir,
                hint="Run log_backup on the database host itself: archive_command runs there",
            )
        owner = os.stat(data_dir)
        hostfiles.check_repo_owner(repository.repo, owner.st_uid, "PostgreSQL", "archive_command")
        check_identity(repository.repo, request.cluster, ENGINE, server["system_identifier"], write=not check_mode)
        waldump = conn.tool("pg_waldump", server["major"])
        config = {
            "repo": request.repo_spec,
            "cluster": request.cluster,
            "engine": ENGINE,
            "system_identifier": server["system_identifier"],
            "waldump": waldump,
            "compression": options.get("compression") or "zstd",
            "compression_level": options.get("compression_level"),
            "connection": dict((k, v) for k, v in request.connection.items() if k != "password" and v is not None),
        }
        config_changed = hostfiles.config_differs(config_path, config)
        command = archive_command(agent, config_path)
        desired = {"archive_mode": "on", "archive_command": command, "archive_timeout": "%ds" % int(options.get("archive_timeout") or 60)}
        to_set = dict((k, v) for k, v in desired.items() if not _same(current[k], v))
        result.update({"archive_command": command, "settings_after": dict(result["settings_before"], **desired)})
        result["changed"] = bool(to_set) or config_changed
        if check_mode:
            result["plan"] = {"write_config": config_changed, "alter_system": to_set}
            result["restart_required"] = current["archive_mode"]["running"] != "on"
            return result
        if config_changed:
            hostfiles.write_config(config_path, config, owner.st_uid, owner.st_gid)
        for name, value in to_set.items():
            conn.query("ALTER SYSTEM SET %s = %s" % (name, _sql_literal(value)))
        if to_set:
            conn.query("SELECT pg_reload_conf()")
            time.sleep(0.2)
        after = archive_state(conn)
        result["restart_required"] = after["archive_mode"]["running"] != "on"
        return result

    if state == "disabled":
        to_reset = [k for k in ARCHIVE_SETTINGS if current[k]["configured"] is not None]
        result["changed"] = bool(to_reset) or os.path.exists(config_path)
        if check_mode:
            result["plan"] = {"alter_system_reset": to_reset, "remove_config": os.path.exists(config_path)}
            result["restart_required"] = current["archive_mode"]["running"] == "on"
            return result
        for name in to_reset:
            conn.query("ALTER SYSTEM RESET %s" % name)
        if to_reset:
            conn.query("SELECT pg_reload_conf()")
            time.sleep(0.2)
        if os.path.exists(config_path):
            os.unlink(config_path)
        after = archive_state(conn)
        result["restart_required"] = after["archive_mode"]["pending_restart"] or after["archive_mode"]["running"] == "on"
        return result

    # synced: a commit now, a segment switch, and wait until that segment is in the repository.
    if current["archive_mode"]["running"] != "on" or "wal-push" not in (current["archive_command"]["running"] or ""):
        raise EngineError(
            "WAL archiving into the repository is not active on %s (archive_mode=%s)" % (conn.target(), current["archive_mode"]["running"]),
            hint="Enable it with state: enabled, and restart PostgreSQL if that reported restart_required",
        )
    if check_mode:
        result["plan"] = {"switch_wal": True}
        return result
    rows = conn.query("SELECT txid_current()")
    rows = conn.query("SELECT pg_walfile_name(pg_switch_wal())")
    segment = rows[0][0]
    deadline = time.monotonic() + int(options.get("wait_timeout") or 120)
    while True:
        archived = conn.query("SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''), failed_count FROM pg_stat_archiver")[0]
        if archived[0] and archived[0][:24] >= segment and pgwal.is_archived(repository.repo, request.cluster, segment):
            break
        if time.monotonic() > deadline:
            raise EngineError(
                "WAL segment %s was not archived within %ss (last archived: %s, last failed: %s, failures: %s)"
                % (segment, options.get("wait_timeout") or 120, archived[0] or "none", archived[1] or "none", archived[2]),
                hint="Read the PostgreSQL log for archive_command errors",
            )
        time.sleep(0.2)
    result["synced_segment"] = segment
    return result


def _same(current, desired):
    value = current["configured"] if current["configured"] is not None else current["running"]
    if value == desired:
        return True
    # archive_timeout reads back in seconds without a unit.
    return desired.endswith("s") and value == desired[:-1]
