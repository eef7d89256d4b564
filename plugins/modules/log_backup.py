#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: log_backup
short_description: Enable, disable or sync continuous log backups (PostgreSQL WAL, MySQL/MariaDB binary logs, MongoDB oplog)
version_added: 1.0.0
description:
  - Manages the continuous shipping of a database's logs into the repository, the basis of point-in-time restore.
  - Log shipping runs on the database host without Ansible, through the host command installed by the
    C(dataprotection.databases.agent) role. The module must run on the database host.
  - "PostgreSQL, method V(wal-archive): O(state=enabled) writes the cluster's
    host-command configuration (mode 0600, owned by the server's user) and sets C(archive_mode), C(archive_command) and
    C(archive_timeout) with C(ALTER SYSTEM), then reloads. C(archive_mode) takes effect only after a restart:
    RV(restart_required) says when one is needed."
  - "The archive command stores each WAL file durably (fsync, or a completed S3 upload) before it reports success, so
    PostgreSQL never recycles a segment that is not in the repository. An identical re-push succeeds; a different file
    under an already archived name is refused, and so is a segment of another database system."
  - O(state=disabled) resets the three settings and removes the configuration. O(state=synced) makes a commit, switches
    to a new WAL segment and returns once everything up to that moment is in the repository, with the cluster's
    recoverable windows.
  - "MySQL/MariaDB, method V(binlog-archive): O(state=enabled) refuses a server with C(log_bin) off or a C(binlog_format)
    other than C(ROW), naming the setting to change, and a user without C(RELOAD) and C(BINLOG MONITOR) (or
    C(REPLICATION CLIENT)). It writes the cluster's host-command configuration (mode 0600, owned by the binary logs'
    owner; it holds O(connection.password) when one is given, for C(FLUSH BINARY LOGS)) and what runs
    C(dataprotection binlog-ship) (O(scheduler)). Each pass rotates the active binary log once it is
    O(rotate_interval) seconds old or O(rotate_size_mb) large and holds a transaction, then archives every closed binary log
    not yet in the repository, recording its first commit and last event times. The server itself is not changed."
  - "MySQL/MariaDB: O(state=synced) rotates now and archives every closed binary log, so everything committed before the
    call is in the repository when it returns. O(state=disabled) removes the configuration and the scheduler's file.
    A restored server numbers its binary logs from the start again; enabling it under the cluster it was restored from
    is refused until the numbering continues after the archive's (C(RESET MASTER TO <n>)) or it gets its own cluster."
  - "MongoDB, method V(oplog-archive), B(experimental) (never run against a real MongoDB; tested against fakes of
    C(mongosh) and C(mongodump) and real-shaped oplog entries): continuous archiving of a replica set member's
    oplog. A standalone mongod (no oplog), a mongos and a shard or config server member are refused and nothing is
    written. O(state=enabled) writes the cluster's host-command configuration (mode 0600, holding the connection and
    its password) and what runs C(dataprotection oplog-ship) (O(scheduler)), as the user running the module. Each pass
    reads C(local.oplog.rs) with C(mongodump) from the last archived entry on (the password in a 0600 C(--config)
    file, never on a command line) and stores slices of at most O(rotate_size_mb), the last one once its oldest entry is
    O(rotate_interval) seconds old. When the oplog rolled over past the last archived entry, a new chain starts: the
    recoverable windows show the break, and the host command says so on stderr and exits 5.
    O(state=synced) ships everything now and returns RV(synced_oplog_ts) (and C(gap) when a break was found);
    O(state=disabled) removes the configuration and the scheduler's file."
author:
  - dataprotection.databases maintainers (@dataprotection-databases)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataprotection.databases.repo
  - dataprotection.databases.connection
attributes:
  check_mode:
    support: full
    details: Returns the plan (settings to change, configuration to write) and changes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
options:
  engine:
    description: The database engine.
    type: str
    required: true
    choices: [postgresql, mysql, mongodb, redis, prometheus, nebula, milvus, qdrant, weaviate]
  method:
    description:
      - The log method; the engine's log method of the support matrix when omitted (V(wal-archive) for PostgreSQL,
        V(binlog-archive) for MySQL, V(oplog-archive) for MongoDB).
    type: str
  state:
    description: V(enabled), V(disabled), or V(synced) (ship everything up to now and wait for it).
    type: str
    choices: [enabled, disabled, synced]
    default: enabled
  agent_command:
    description: Path of the host command installed by the C(dataprotection.databases.agent) role.
    type: path
    default: /usr/local/bin/dataprotection
  config_dir:
    description: Directory of the host command's per-cluster configuration files.
    type: path
    default: /etc/dataprotection
  archive_timeout:
    description:
      - Seconds after which PostgreSQL switches to a new WAL segment even when it is not full. It bounds how far
        the repository may be behind the server.
    type: int
    default: 60
  compression:
    description: Compression of archived WAL.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  compression_level:
    description: Compression level.
    type: int
  wait_timeout:
    description: With O(state=synced), seconds to wait for the switched segment to reach the repository.
    type: int
    default: 120
  rotate_interval:
    description:
      - "MySQL/MariaDB: seconds after which an active binary log holding a transaction is rotated and archived."
      - "MongoDB: seconds after which the oplog entries not yet archived are stored as a slice."
      - It bounds how far the repository may be behind the server.
    type: int
    default: 300
  rotate_size_mb:
    description: "MySQL/MariaDB: size in MiB at which the active binary log is rotated and archived, whatever its age.
      MongoDB: the largest size in MiB of an oplog slice."
    type: int
    default: 256
  scheduler:
    description:
      - "MySQL/MariaDB: what runs the shipping. V(systemd) writes and starts C(dataprotection-binlog-<cluster>.service)
        running C(binlog-ship --follow) as the binary logs' owner; V(cron) writes C(/etc/cron.d/dataprotection-binlog-<cluster>)
        running one pass a minute; V(none) writes neither (run RV(ship_command) under your own supervisor).
        V(auto) picks V(systemd) on a host booted with systemd, else V(cron) when cron is installed, else fails."
      - "MongoDB: the same with C(dataprotection-oplog-<cluster>.service) (C(oplog-ship --follow)) and
        C(/etc/cron.d/dataprotection-oplog-<cluster>), run as the user running the module."
    type: str
    choices: [auto, systemd, cron, none]
    default: auto
  scheduler_dir:
    description: "MySQL/MariaDB: directory for the scheduler's file instead of C(/etc/systemd/system) or C(/etc/cron.d)."
    type: path
requirements:
  - "The host command (C(dataprotection.databases.agent) role) on the database host"
  - "PostgreSQL: a superuser connection (C(ALTER SYSTEM)), C(pg_waldump) of the server's version"
  - "MySQL/MariaDB: the binary logs readable on this host, and the C(mariadb) or C(mysql) client"
  - "MongoDB: a replica set member, C(mongosh) and C(mongodump) (package C(mongodb-database-tools)) on this host, a user with the
    C(backup) role"
seealso:
  - module: dataprotection.databases.restore
  - module: dataprotection.databases.backup_info
"""

EXAMPLES = r"""
- name: Archive WAL into the repository
  dataprotection.databases.log_backup:
    repo:
      type: s3
      bucket: db-backups
      region: eu-west-1
    cluster: orders-db
    engine: postgresql
    connection:
      socket: /var/run/postgresql
    archive_timeout: 60
  register: wal
  notify: Restart PostgreSQL

- name: Make sure everything up to now is archived before a risky change
  dataprotection.databases.log_backup:
    repo:
      type: s3
      bucket: db-backups
    cluster: orders-db
    engine: postgresql
    connection:
      socket: /var/run/postgresql
    state: synced
  register: synced

- name: Show the recoverable windows
  ansible.builtin.debug:
    var: synced.windows

- name: Archive MariaDB binary logs, rotated every 5 minutes, shipped by a systemd service
  dataprotection.databases.log_backup:
    repo:
      type: local
      path: /var/backups/dataprotection
    cluster: shop-db
    engine: mysql
    connection:
      socket: /run/mysqld/mysqld.sock
      user: backup
      password: "{{ vault_mysql_backup_password }}"
    rotate_interval: 300
    scheduler: systemd

- name: Archive the oplog of a MongoDB replica set member (experimental), a slice a minute, shipped by cron
  dataprotection.databases.log_backup:
    repo:
      type: local
      path: /var/backups/dataprotection
    cluster: catalog-db
    engine: mongodb
    method: oplog-archive
    connection:
      host: 127.0.0.1
      port: 27017
      user: backup
      password: "{{ vault_mongodb_backup_password }}"
    rotate_interval: 60
    scheduler: cron
"""

RETURN = r"""
restart_required:
  description: Whether PostgreSQL must be restarted for the change to take effect (C(archive_mode) changed). Always false for MySQL.
  returned: always
  type: bool
archive_command:
  description: The archive_command set on the server.
  returned: PostgreSQL, when O(state=enabled)
  type: str
  sample: "'/usr/local/bin/dataprotection' --config '/etc/dataprotection/orders-db.json' wal-push \"%p\""
config_path:
  description: The host command's configuration file for the cluster.
  returned: always
  type: str
settings_before:
  description: The archive settings before the run.
  returned: PostgreSQL
  type: dict
settings_after:
  description: The archive settings the run sets.
  returned: when O(state=enabled)
  type: dict
plan:
  description: In check mode, what would change.
  returned: check mode
  type: dict
synced_segment:
  description: With O(state=synced), the WAL segment that was switched and is now in the repository.
  returned: PostgreSQL, when O(state=synced)
  type: str
synced_binlog:
  description: With O(state=synced), the last closed binary log, now in the repository.
  returned: MySQL, when O(state=synced)
  type: str
shipped:
  description: With O(state=synced), the binary logs or oplog slices this run archived.
  returned: MySQL and MongoDB, when O(state=synced)
  type: list
  elements: str
synced_oplog_ts:
  description: With O(state=synced), the timestamp (C(t), C(i)) of the last oplog entry now in the repository.
  returned: MongoDB, when O(state=synced)
  type: dict
scheduler:
  description: The scheduler that runs the binary log or oplog shipping.
  returned: MySQL and MongoDB, when O(state=enabled)
  type: str
ship_command:
  description: The shipping command the scheduler runs.
  returned: MySQL and MongoDB, when O(state=enabled)
  type: str
  sample: /usr/local/bin/dataprotection --config /etc/dataprotection/shop-db.json binlog-ship --follow
windows:
  description: The cluster's recoverable point-in-time windows (C(start), C(end), C(base_backups)).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.dataprotection.databases.plugins.module_utils.args_common import engine_argument_spec
from ansible_collections.dataprotection.databases.plugins.module_utils.logbackup import LogBackupRequest, run_log_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.module import DataProtectionModule


def run(module):
    params = module.params
    request = LogBackupRequest(
        repo_spec=module.repo_spec,
        engine=params["engine"],
        cluster=params["cluster"],
        connection=params["connection"],
        method=params["method"],
        options=dict((k, params[k]) for k in ("agent_command", "config_dir", "archive_timeout", "compression", "compression_level", "wait_timeout",
                                              "rotate_interval", "rotate_size_mb", "scheduler", "scheduler_dir")),
    )
    return run_log_backup(request, params["state"], check_mode=module.check_mode)


def main():
    module = DataProtectionModule(
        argument_spec=engine_argument_spec(
            method=dict(type="str"),
            state=dict(type="str", default="enabled", choices=["enabled", "disabled", "synced"]),
            agent_command=dict(type="path", default="/usr/local/bin/dataprotection"),
            config_dir=dict(type="path", default="/etc/dataprotection"),
            archive_timeout=dict(type="int", default=60),
            compression=dict(type="str", default="zstd", choices=["zstd", "gzip", "none"]),
            compression_level=dict(type="int"),
            wait_timeout=dict(type="int", default=120),
            rotate_interval=dict(type="int", default=300),
            rotate_size_mb=dict(type="int", default=256),
            scheduler=dict(type="str", default="auto", choices=["auto", "systemd", "cron", "none"]),
            scheduler_dir=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    module.run(run, module)


if __name__ == "__main__":
    main()
