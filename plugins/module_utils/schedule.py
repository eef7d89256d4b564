# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup schedules on the host: a systemd timer or a cron.d entry that runs the host command.

A schedule of a full-backup method writes three things: the host command's
configuration (``<config_dir>/schedule-<name>.json``, mode 0600, owned by the
user the backup runs as), and either a systemd service + timer
(``dataprotection-backup-<name>.service/.timer``, ``OnCalendar=`` produced
from the cron, in UTC) or a cron.d file.  Both run exactly one command:
``dataprotection --config <file> scheduled-backup``, which takes the backup
and then applies the schedule's retention to the cluster.

A schedule of a continuous log method is the engine's log shipping, which
runs all the time; the cron's period becomes its shipping interval (as
KubeBlocks turns ``*/5 * * * *`` into 300 s): PostgreSQL's
``archive_timeout``, MySQL/MariaDB's binary log rotation interval.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import re
import time

from ansible_collections.dataprotection.databases.plugins.module_utils import cronspec, hostfiles, matrix, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, DataProtectionError, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import check_cluster
from ansible_collections.dataprotection.databases.plugins.module_utils.retention import Policy
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow

SCHEDULERS = ("auto", "systemd", "cron")
STATES = ("present", "absent")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
RETENTION_FIELDS = ("retention_period", "keep_last", "min_window", "retain_latest", "incomplete_grace", "allow_empty")


def check_name(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("schedule name %r is not valid" % (name,),
                          hint="Use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters")
    return name


class ScheduleRequest(object):
    """A validated schedule."""

    def __init__(self, repo_spec, name, cluster, engine, method=None, cron=None, retention=None, enabled=True, connection=None,
                 compression=None, compression_level=None, labels=None, parallel=None, options=None, snapshot=None, native=None):
        self.name = check_name(name)
        self.cluster = check_cluster(cluster)
        self.engine = matrix.check_engine(engine)
        self.method = method or matrix.default_method(engine, "tool")
        self.declaration = matrix.check_method(engine, self.method)
        self.kind = self.declaration["kind"]
        self.cron = cronspec.parse(cron) if cron is not None else None
        retention = dict((k, v) for k, v in (retention or {}).items() if v is not None)
        given = [k for k in retention if k not in ("retain_latest", "allow_empty", "incomplete_grace")]
        if given and self.kind == "log":
            raise ConfigError(
                "retention applies to full-backup schedules; %s of engine %s is a continuous log method" % (self.method, engine),
                hint="Set the retention on the full-backup schedule of cluster %s: the log files the kept backups do not need "
                "are pruned with them" % cluster,
            )
        # A schedule's retention applies to the backups it takes (its engine and method).
        self.retention = Policy(engine=engine, method=self.method, **retention) if given else None
        self.enabled = bool(enabled)
        self.repo_spec = dict(repo_spec)
        self.connection = dict((k, v) for k, v in (connection or {}).items() if v is not None)
        self.compression = compression
        self.compression_level = compression_level
        self.labels = dict(labels or {})
        self.parallel = parallel
        self.snapshot = dict((k, v) for k, v in (snapshot or {}).items() if v is not None)
        # The native methods' options (collections, backend, nodes, operation_timeout), as the backup module takes them.
        self.native = dict((k, v) for k, v in (native or {}).items() if v is not None)
        self.options = dict(options or {})
        self.user = self.options.get("user") or "root"
        self.agent = self.options.get("agent_command") or "/usr/local/bin/dataprotection"
        self.config_path = os.path.join(self.options.get("config_dir") or "/etc/dataprotection", "schedule-%s.json" % self.name)

    def config(self):
        """What the host command reads."""
        return {
            "repo": self.repo_spec,
            "cluster": self.cluster,
            "engine": self.engine,
            "method": self.method,
            "connection": self.connection,
            "compression": self.compression,
            "compression_level": self.compression_level,
            "labels": dict(self.labels, schedule=self.name),
            "parallel": self.parallel,
            "snapshot": self.snapshot or None,
            "native": self.native or None,
            "retention": self.retention.describe() if self.retention else None,
            "schedule": {"name": self.name, "cron": self.cron.expr},
        }

    def command(self):
        return "%s --config %s scheduled-backup" % (self.agent, self.config_path)


def unit_base(name):
    return "dataprotection-backup-%s" % name


def cron_file(name):
    # cron reads only files named with letters, digits, '_' and '-'.
    return "dataprotection-backup-%s" % name.replace(".", "_")


def all_paths(name, options):
    """Every file a schedule of this name may own, under either scheduler."""
    unit_dir = options.get("scheduler_dir") or "/etc/systemd/system"
    cron_dir = options.get("scheduler_dir") or "/etc/cron.d"
    base = unit_base(name)
    return [os.path.join(unit_dir, base + ".timer"), os.path.join(unit_dir, base + ".service"), os.path.join(cron_dir, cron_file(name))]


def systemd_units(request, on_calendar):
    unit_dir = request.options.get("scheduler_dir") or "/etc/systemd/system"
    base = unit_base(request.name)
    retention = " then retention" if request.retention else ""
    service = (
        "[Unit]\n"
        "Description=Backup %s of cluster %s (%s %s)%s, by dataprotection.databases\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "User=%s\n"
        "ExecStart=%s\n"
        "TimeoutStartSec=%s\n"
        "Nice=10\n"
        "IOSchedulingClass=best-effort\n"
        "IOSchedulingPriority=7\n"
        % (request.name, request.cluster, request.engine, request.method, retention, request.user, request.command(),
           request.options.get("timeout") or "1d")
    )
    timer = (
        "[Unit]\n"
        "Description=Schedule of backup %s (cron '%s', UTC), by dataprotection.databases\n\n"
        "[Timer]\n"
        "%s"
        "Persistent=true\n"
        "Unit=%s.service\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
        % (request.name, request.cron.expr, "".join("OnCalendar=%s\n" % expr for expr in on_calendar), base)
    )
    return {os.path.join(unit_dir, base + ".service"): service, os.path.join(unit_dir, base + ".timer"): timer}


def host_in_utc():
    return time.timezone == 0 and (not time.daylight or time.altzone == 0)


def cron_entry(request):
    cron_dir = request.options.get("scheduler_dir") or "/etc/cron.d"
    if not host_in_utc() and not tools.find_tool("crond", required=False):
        raise ConfigError(
            "this host's local time is not UTC and its cron daemon runs entries in local time; cron '%s' is meant in UTC" % request.cron.expr,
            hint="Use scheduler: systemd (OnCalendar takes UTC), run the host in UTC, or use cronie, which honours CRON_TZ",
        )
    fields = " ".join(request.cron.expr.split()) if not request.cron.expr.startswith("@") else request.cron.expr
    line = "%s %s %s\n" % (fields, request.user, request.command())
    return {os.path.join(cron_dir, cron_file(request.name)): (
        "# Backup %s of cluster %s (%s %s) by dataprotection.databases backup_schedule; times are UTC.\n"
        "CRON_TZ=UTC\n"
        "%s" % (request.name, request.cluster, request.engine, request.method, line if request.enabled else "# disabled: " + line))}


def _diff(path, before, after):
    return {"before_header": path, "after_header": path, "before": before or "", "after": after or ""}


def _owner(user):
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError("user %s does not exist on this host" % user, hint="Create the user or set user to one that runs the backups")
    return entry.pw_uid, entry.pw_gid


def ensure_present(request, check_mode=False, validate=True):
    """Write (or in check mode, show) the schedule's files; returns the module result."""
    if request.cron is None:
        raise ConfigError("cron is required with state: present", hint="For example cron: '0 2 * * *' (02:00 UTC every day)")
    if request.kind == "log":
        return _log_schedule(request, check_mode)
    uid, gid = _owner(request.user)
    scheduler = hostfiles.pick_scheduler(request.options.get("scheduler") or "auto", "the schedule",
                                         "Set scheduler: systemd or cron where one is installed, or schedule "
                                         "playbooks/backup.yml in AWX instead")
    on_calendar = request.cron.on_calendar()
    normalized = None
    if scheduler == "systemd":
        normalized = cronspec.verify_on_calendar(request.cron)
        files = systemd_units(request, on_calendar)
    else:
        files = cron_entry(request)
    if validate:
        hostfiles.check_agent(request.agent, "no file of the schedule")
        _validate_backup(request)
    config = request.config()
    config_changed = hostfiles.config_differs(request.config_path, config)
    stale = [p for p in all_paths(request.name, request.options) if p not in files and os.path.exists(p)]
    to_write = sorted(p for p, content in files.items() if hostfiles.read_text(p) != content)
    result = {
        "changed": bool(config_changed or to_write or stale),
        "scheduler": scheduler,
        "files": sorted(files) + [request.config_path],
        "command": request.command(),
        "config_path": request.config_path,
        "cron": request.cron.expr,
        "on_calendar": on_calendar if scheduler == "systemd" else [],
        "on_calendar_normalized": normalized or [],
        "next_runs": [format_time(t) for t in request.cron.next_runs(utcnow(), 5)],
        "period_seconds": request.cron.period_seconds(),
        "enabled": request.enabled,
        "retention": request.retention.describe() if request.retention else None,
        "diff": [_diff(p, hostfiles.read_text(p), files[p]) for p in to_write] + [_diff(p, hostfiles.read_text(p), None) for p in stale],
        "notes": [],
    }
    if config_changed:
        result["diff"].append(_diff(request.config_path, "(previous configuration)" if os.path.exists(request.config_path) else "",
                                    "(configuration with repository credentials, mode 0600, owner %s)" % request.user))
    if check_mode:
        result["plan"] = {"write": to_write + ([request.config_path] if config_changed else []), "remove": stale}
        return result
    if config_changed:
        hostfiles.write_config(request.config_path, config, uid, gid)
    for path in to_write:
        hostfiles.write_text(path, files[path])
    for path in stale:
        _remove(path)
    if scheduler == "systemd":
        _systemd_apply(request, result, bool(to_write or stale))
    return result


def _systemd_apply(request, result, reload_needed):
    timer = unit_base(request.name) + ".timer"
    if not hostfiles.systemd_running():
        result["notes"].append("systemd is not running on this host: the units were written but not enabled")
        return
    unit_dir = os.path.realpath(request.options.get("scheduler_dir") or "/etc/systemd/system")
    if unit_dir not in [os.path.realpath(p) for p in SYSTEMD_UNIT_DIRS]:
        result["notes"].append("%s is not a directory systemd loads units from: the units were written but not enabled" % unit_dir)
        return
    if reload_needed:
        hostfiles.systemctl("daemon-reload")
    if request.enabled:
        hostfiles.systemctl("enable", "--now", timer)
    else:
        hostfiles.systemctl("disable", "--now", timer)


def _validate_backup(request):
    """Connect, check the tools and the cluster's identity as the backup will, so a schedule that cannot work is refused now."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup  # pylint: disable=import-outside-toplevel

    backup_request = BackupRequest(engine=request.engine, method=request.method, cluster=request.cluster, connection=request.connection,
                                   compression=request.compression, compression_level=request.compression_level, labels=request.labels,
                                   options=dict(request.native, parallel=request.parallel), snapshot=request.snapshot or None)
    return run_backup(request.repo_spec, backup_request, check_mode=True)


def _log_schedule(request, check_mode):
    """A continuous log method: the engine's log shipping with the cron's period as its interval."""
    from ansible_collections.dataprotection.databases.plugins.module_utils import logbackup  # pylint: disable=import-outside-toplevel

    period = request.cron.period_seconds()
    options = dict(request.options)
    options.update({"archive_timeout": period, "rotate_interval": period, "compression": request.compression,
                    "compression_level": request.compression_level})
    if options.get("scheduler") == "auto" or not options.get("scheduler"):
        options.pop("scheduler", None)
    log_request = logbackup.LogBackupRequest(request.repo_spec, request.engine, request.cluster, connection=request.connection,
                                             method=request.method, options=options)
    result = logbackup.run_log_backup(log_request, "enabled" if request.enabled else "disabled", check_mode=check_mode)
    result.update({"cron": request.cron.expr, "period_seconds": period, "shipping_interval_seconds": period,
                   "enabled": request.enabled, "kind": "log"})
    return result


def _remove(path):
    if path.endswith(".timer") and hostfiles.systemd_running():
        try:
            hostfiles.systemctl("disable", "--now", os.path.basename(path))
        except ToolError:
            pass
    try:
        os.unlink(path)
    except OSError:
        pass


def ensure_absent(request_name, options, check_mode=False, log_request=None):
    """Remove a schedule's files (and for a log method, disable the engine's log shipping)."""
    check_name(request_name)
    config_path = os.path.join(options.get("config_dir") or "/etc/dataprotection", "schedule-%s.json" % request_name)
    existing = [p for p in all_paths(request_name, options) + [config_path] if os.path.exists(p)]
    result = {"changed": bool(existing), "removed": existing, "diff": [_diff(p, hostfiles.read_text(p), None) for p in existing], "notes": []}
    if log_request is not None:
        from ansible_collections.dataprotection.databases.plugins.module_utils.logbackup import run_log_backup  # pylint: disable=import-outside-toplevel

        logs = run_log_backup(log_request, "disabled", check_mode=check_mode)
        result["changed"] = result["changed"] or logs["changed"]
        result["log_backup"] = logs
    if check_mode:
        result["plan"] = {"remove": existing}
        return result
    for path in sorted(existing, key=lambda p: not p.endswith(".timer")):
        _remove(path)
    if existing and any(p.endswith(".service") for p in existing) and hostfiles.systemd_running():
        hostfiles.systemctl("daemon-reload")
    return result


def run_scheduled(config):
    """What the unit runs: the backup, then the schedule's retention.

    Returns (backup result, retention result or None, retention error or None): a backup that
    succeeded is reported even when the retention after it fails.
    """
    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.retention import run_retention  # pylint: disable=import-outside-toplevel

    request = BackupRequest(
        engine=config["engine"], method=config["method"], cluster=config["cluster"], connection=config.get("connection"),
        compression=config.get("compression"), compression_level=config.get("compression_level"), labels=config.get("labels"),
        options=dict(config.get("native") or {}, parallel=config.get("parallel")), snapshot=config.get("snapshot"),
    )
    backup = run_backup(config["repo"], request)
    backup.pop("manifest", None)
    policy = config.get("retention")
    if not policy:
        return backup, None, None
    fields = dict((k, policy.get(k)) for k in RETENTION_FIELDS + ("engine", "method") if k in policy)
    try:
        return backup, run_retention(config["repo"], config["cluster"], Policy(**fields)), None
    except DataProtectionError as exc:
        return backup, None, exc
