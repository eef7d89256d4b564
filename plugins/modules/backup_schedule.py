#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_schedule
short_description: Install or remove a host timer that takes backups on a cron schedule and applies retention
version_added: 1.0.0
description:
  - The host-side counterpart of a KubeBlocks BackupSchedule. For a full-backup method it writes the host command's
    configuration (C(<config_dir>/schedule-<name>.json), mode 0600, owned by O(user)) and either a systemd service and
    timer (C(dataprotection-backup-<name>.service) and C(.timer)) or, where systemd does not run, a cron.d file
    (C(dataprotection-backup-<name>)).
  - Both run one command, C(dataprotection --config <file> scheduled-backup), which takes the backup and then applies the
    schedule's retention (O(retention_period), O(keep_last), O(min_window)) to the backups of this engine and method in the
    cluster, as M(dataprotection.databases.backup_retention) does. The host command is installed by the
    C(dataprotection.databases.agent) role.
  - O(cron) is a five-field cron expression in UTC, as KubeBlocks takes it. For systemd it becomes one C(OnCalendar=) line (two
    when both day fields are restricted, since cron then runs on either), verified with C(systemd-analyze calendar) when that
    is installed. A cron.d entry carries C(CRON_TZ=UTC); on a host whose local time is not UTC only a cron daemon that honours
    it (cronie) is accepted.
  - "For a continuous log method (V(wal-archive), V(binlog-archive)) the schedule is the engine's log shipping, which runs all
    the time, and the cron's period becomes its shipping interval, as KubeBlocks turns C(*/5 * * * *) into 300 s. That is
    PostgreSQL's C(archive_timeout) and the rotation interval of MySQL/MariaDB binary logs. It is set up as
    M(dataprotection.databases.log_backup) does, which it calls; retention options are refused for it."
  - Before writing anything, O(validate=true) connects to the database, checks the backup tool and the repository as a backup
    would, so that a schedule that cannot succeed (wrong credentials, a missing tool) is refused now rather than failing at night.
  - A method the support matrix does not offer for the engine, an invalid cron or retention period, and a retention policy that
    would delete every backup are refused before anything is written.
  - "With O(method=volume-snapshot), O(snapshot) is stored in the configuration and each run takes a volume-snapshot backup
    as M(dataprotection.databases.backup) does; retention deletes the expired backups' snapshots through their provider."
  - As an alternative to host timers, schedule the C(playbooks/backup.yml) job template in AWX/Tower (see the collection's
    C(docs/scheduling.md)).
author:
  - dataprotection.databases maintainers (@dataprotection-databases)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataprotection.databases.repo
  - dataprotection.databases.connection
  - dataprotection.databases.snapshot
  - dataprotection.databases.native
attributes:
  check_mode:
    support: full
    details: Returns the files it would write or remove, the OnCalendar expressions and the next runs; changes nothing.
  diff_mode:
    support: full
    details: Shows the unit or cron files before and after. The configuration file holds credentials; its diff only says it changes.
  platform:
    support: full
    platforms: posix
options:
  name:
    description:
      - The schedule's name; it names the unit, cron and configuration files. Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  cluster:
    description:
      - The name that groups this database's backups in the repository.
    type: str
    required: true
  engine:
    description:
      - The database engine.
    type: str
    required: true
    choices: [postgresql, mysql, mongodb, redis, prometheus, nebula, milvus, qdrant, weaviate]
  method:
    description:
      - The backup method; the engine's default full-backup method when omitted.
    type: str
  cron:
    description:
      - When to run, as a five-field cron expression in UTC (C(minute hour day-of-month month day-of-week)), with names, ranges,
        steps and lists; or one of V(@hourly), V(@daily), V(@weekly), V(@monthly), V(@yearly).
      - Required with O(state=present).
    type: str
  retention_period:
    description:
      - After each backup, delete this schedule's backups older than this (KubeBlocks syntax V(7d), V(30d12h), V(6mo), V(2y)).
    type: str
  keep_last:
    description:
      - After each backup, keep only the newest this many of this schedule's backups (together with O(retention_period), a backup
        either rule keeps stays).
    type: int
  min_window:
    description:
      - Keep what point-in-time restore needs to reach back this far (see M(dataprotection.databases.backup_retention)).
    type: str
  retain_latest:
    description:
      - Never delete the newest backup.
    type: bool
    default: true
  enabled:
    description:
      - Whether the timer runs. V(false) keeps the files but stops the timer (systemd) or comments out the line (cron).
    type: bool
    default: true
  state:
    description:
      - V(present) installs or updates the schedule; V(absent) removes its files (and for a log method disables the log shipping).
    type: str
    default: present
    choices: [present, absent]
  scheduler:
    description:
      - V(auto) uses systemd when it runs, else cron when a cron daemon is installed.
    type: str
    default: auto
    choices: [auto, systemd, cron]
  scheduler_dir:
    description:
      - Where the unit files (default C(/etc/systemd/system)) or the cron file (default C(/etc/cron.d)) go.
    type: path
  config_dir:
    description:
      - Where the host command's configuration goes.
    type: path
    default: /etc/dataprotection
  agent_command:
    description:
      - The installed host command.
    type: path
    default: /usr/local/bin/dataprotection
  user:
    description:
      - The user the scheduled backup runs as; it owns the configuration file.
    type: str
    default: root
  timeout:
    description:
      - systemd only. How long one run may take before systemd stops it (C(TimeoutStartSec=)), in systemd's time syntax.
    type: str
    default: 1d
  compression:
    description:
      - Compression of the stored objects; the method's default when omitted.
    type: str
    choices: [zstd, gzip, none]
  compression_level:
    description:
      - Compression level.
    type: int
  labels:
    description:
      - Labels recorded on every backup of the schedule (the label C(schedule=<name>) is added).
    type: dict
    default: {}
  parallel:
    description:
      - MySQL/MariaDB. Threads the backup tool copies files with.
    type: int
  validate:
    description:
      - Check the connection, the tools and the repository as a backup would before writing the schedule.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Nightly pg_basebackup at 02:30 UTC, keep a week, PITR for 3 days
  dataprotection.databases.backup_schedule:
    name: orders-nightly
    repo:
      type: s3
      bucket: backups
      region: eu-west-1
    cluster: orders-db
    engine: postgresql
    method: pg-basebackup
    cron: "30 2 * * *"
    retention_period: 7d
    min_window: 3d
    connection:
      host: /var/run/postgresql
      user: postgres

- name: Ship binary logs every 5 minutes (a continuous method becomes a service)
  dataprotection.databases.backup_schedule:
    name: shop-binlogs
    repo:
      path: /var/backups/dataprotection
    cluster: shop-db
    engine: mysql
    method: binlog-archive
    cron: "*/5 * * * *"
    connection:
      user: backup
      password: "{{ vault_backup_password }}"

- name: Remove a schedule
  dataprotection.databases.backup_schedule:
    name: orders-nightly
    repo:
      path: /var/backups/dataprotection
    cluster: orders-db
    engine: postgresql
    state: absent
"""

RETURN = r"""
changed:
  description: Whether a file was (in check mode, would be) written or removed.
  type: bool
  returned: always
scheduler:
  description: V(systemd) or V(cron).
  type: str
  returned: state is present and the method is a full-backup method
command:
  description: The exact command the timer or cron entry runs.
  type: str
  returned: state is present and the method is a full-backup method
  sample: /usr/local/bin/dataprotection --config /etc/dataprotection/schedule-orders-nightly.json scheduled-backup
files:
  description: The files of the schedule (units or cron file, then the configuration).
  type: list
  elements: str
  returned: state is present and the method is a full-backup method
on_calendar:
  description: The systemd C(OnCalendar=) expressions produced from the cron.
  type: list
  elements: str
  returned: state is present and the method is a full-backup method
  sample: ["*-*-* 02:30:00 UTC"]
on_calendar_normalized:
  description: The expressions as C(systemd-analyze calendar) normalized them (empty when it is not installed or with cron).
  type: list
  elements: str
  returned: state is present and the method is a full-backup method
next_runs:
  description: The next five run times (UTC).
  type: list
  elements: str
  returned: state is present and the method is a full-backup method
period_seconds:
  description: The shortest time between two runs; for a log method, its shipping interval.
  type: int
  returned: state is present
retention:
  description: The retention policy applied after each backup, or null.
  type: dict
  returned: state is present and the method is a full-backup method
removed:
  description: Files removed.
  type: list
  elements: str
  returned: state is absent
plan:
  description: In check mode, the files to write and remove.
  type: dict
  returned: check mode
notes:
  description: Remarks, for example that systemd is not running so the units were written but not enabled.
  type: list
  elements: str
  returned: always
"""

from copy import deepcopy

from ansible_collections.dataprotection.databases.plugins.module_utils.args_common import (
    NATIVE_OPTIONS,
    SNAPSHOT_OPTIONS,
    engine_argument_spec,
    given,
    native_options,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.logbackup import LogBackupRequest
from ansible_collections.dataprotection.databases.plugins.module_utils.matrix import check_method, default_method
from ansible_collections.dataprotection.databases.plugins.module_utils.module import DataProtectionModule
from ansible_collections.dataprotection.databases.plugins.module_utils.schedule import ScheduleRequest, ensure_absent, ensure_present

OPTION_NAMES = ("scheduler", "scheduler_dir", "config_dir", "agent_command", "user", "timeout")


def run(module):
    params = module.params
    options = dict((name, params[name]) for name in OPTION_NAMES)
    method = params["method"] or default_method(params["engine"], "tool")
    if params["state"] == "absent":
        log_request = None
        if check_method(params["engine"], method, implemented=False)["kind"] == "log":
            log_request = LogBackupRequest(module.repo_spec, params["engine"], params["cluster"], connection=params["connection"],
                                           method=method, options=options)
        result = ensure_absent(params["name"], options, check_mode=module.check_mode, log_request=log_request)
    else:
        request = ScheduleRequest(
            module.repo_spec, params["name"], params["cluster"], params["engine"], method=method, cron=params["cron"],
            retention=dict((k, params[k]) for k in ("retention_period", "keep_last", "min_window", "retain_latest")),
            enabled=params["enabled"], connection=params["connection"], compression=params["compression"],
            compression_level=params["compression_level"], labels=params["labels"], parallel=params["parallel"], options=options,
            snapshot=given(params["snapshot"]), native=native_options(params),
        )
        result = ensure_present(request, check_mode=module.check_mode, validate=params["validate"])
    diff = result.pop("diff", [])
    if module._diff:
        result["diff"] = diff
    return result


def main():
    module = DataProtectionModule(
        argument_spec=engine_argument_spec(
            name=dict(type="str", required=True),
            method=dict(type="str"),
            cron=dict(type="str"),
            retention_period=dict(type="str"),
            keep_last=dict(type="int"),
            min_window=dict(type="str"),
            retain_latest=dict(type="bool", default=True),
            enabled=dict(type="bool", default=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            scheduler=dict(type="str", default="auto", choices=["auto", "systemd", "cron"]),
            scheduler_dir=dict(type="path"),
            config_dir=dict(type="path", default="/etc/dataprotection"),
            agent_command=dict(type="path", default="/usr/local/bin/dataprotection"),
            user=dict(type="str", default="root"),
            timeout=dict(type="str", default="1d"),
            compression=dict(type="str", choices=["zstd", "gzip", "none"]),
            compression_level=dict(type="int"),
            labels=dict(type="dict", default={}),
            parallel=dict(type="int"),
            validate=dict(type="bool", default=True),
            snapshot=dict(type="dict", options=deepcopy(SNAPSHOT_OPTIONS)),
            **deepcopy(NATIVE_OPTIONS)
        ),
        required_if=[("state", "present", ["cron"])],
        supports_check_mode=True,
    )
    module.run(run, module)


if __name__ == "__main__":
    main()
