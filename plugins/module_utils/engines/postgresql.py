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

import os
import re

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import pgwal
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, utcnow

METHODS = ("pg-basebackup", "wal-archive")
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
    owner = request.options.get("owner") or "postgres"
    _user(owner)
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
