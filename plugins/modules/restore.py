#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: restore
short_description: Restore a backup set, or restore to a point in time
version_added: 1.0.0
description:
  - Restores a database from the repository into a data directory, either a backup set (O(backup_id)) or to a point in time
    (O(restore_time)).
  - For a point-in-time restore the module picks the newest full backup whose consistent point is at or before
    O(restore_time) and whose archived log chain reaches it without a gap. When no such backup exists it refuses before
    touching anything and names the recoverable windows.
  - A non-empty O(data_dir) is refused unless O(force=true); a directory a running server uses is always refused.
  - If the restore fails half-way, the target is emptied (or removed when the module created it), so no half-restored
    directory is left that looks usable.
  - "PostgreSQL: the data directory gets the right owner and modes, archiving
    stays off on the restored server (C(archive_mode=off) in C(postgresql.auto.conf)) until
    M(dataprotection.databases.log_backup) enables it, and for a point in time the WAL up to the target is placed in
    C(pg_wal) with C(recovery.signal), C(recovery_target_time) and C(recovery_target_action=promote), so that starting
    PostgreSQL recovers exactly to the target and promotes."
  - "MySQL/MariaDB: the backup stream is extracted next to O(data_dir), prepared (C(mariabackup --prepare) or
    C(xtrabackup --prepare)) and moved into O(data_dir), owned by O(owner) with mode 0750. For a point in time the
    module then starts the server on the restored directory on a private socket, with networking and grant checks off
    and its own binary log off, replays the archived binary logs from the backup's binlog position with
    C(mysqlbinlog --start-position --stop-datetime), and stops it again (or, with O(start=true), starts it for use).
    Binlog event times have one-second resolution: the replay applies the events stamped before the whole second of
    O(restore_time) and none stamped in it or later."
  - "Redis: the RDB (and the AOF and ACL files when the backup has them) are written into O(data_dir) under the names of
    the target's configuration when O(defaults_file) (its C(redis.conf)) is given, else Redis's defaults (C(dump.rdb),
    C(appendonlydir), C(users.acl)). With O(start=true) a C(redis-server) is started on it and its keyspace is compared
    with the manifest's."
  - "Prometheus: the snapshot's blocks are laid into O(data_dir), the C(--storage.tsdb.path) Prometheus is to start on,
    owned by O(owner) (directories 0750, files 0640). O(force=true) replaces only a directory holding a Prometheus TSDB.
    A directory a running server uses (its C(lock) file held, or a process holding one of its files open) is always
    refused. Prometheus applies its retention to restored blocks too, measured from the newest data: start it with a
    C(--storage.tsdb.retention.time) covering the backup (the plan returns C(retention_days)). With O(start=true)
    Prometheus is started as O(owner) on 127.0.0.1:O(port) with a minimal configuration (no scrape jobs) and that
    retention, from a directory C(.dp-prometheus-<port>-*) next to O(data_dir), and the module waits until C(/-/ready)
    answers; stop it by the returned pid."
  - "Qdrant (C(qdrant-snapshot) backups, B(experimental): never run against a real Qdrant): restores through the
    API of the server O(connection) names (no O(data_dir)), or of the nodes O(nodes) lists - as many as the backup has,
    in the backup's node order, each getting its own node's snapshots. Each snapshot is streamed from the repository as a
    multipart upload to C(POST /collections/{name}/snapshots/upload?priority=snapshot&checksum=<sha256>) (Qdrant checks
    the checksum before recovering), then the collection's point count is compared with the backup's. O(collections)
    restores some of the backup's collections. A collection that exists on the target is refused before anything changes
    unless O(force=true), which overwrites it with the snapshot's data."
  - "Weaviate (C(method: weaviate-backup) backups, B(experimental): never run against a real Weaviate): restores through
    C(POST /v1/backups/{backend}/{id}/restore) into the server O(connection) names (no O(data_dir)), polled until
    C(SUCCESS); O(collections) restores some of the backup's classes. A backup held in the repository is first put back
    into the target's C(BACKUP_FILESYSTEM_PATH) (a directory on this host: run on the Weaviate host) and removed from there
    afterwards. Weaviate restores no class that exists: such classes are refused before anything changes unless
    O(force=true), which deletes them on the target first."
  - "Nebula Graph (C(method: nebula-br) backups, B(experimental): never run against a real Nebula Graph or BR): runs
    C(br restore full --meta <addr> --storage s3://... --name <BACKUP_...>) with the repository's S3 flags against the cluster
    O(connection) names (graphd; the meta address is read with C(SHOW HOSTS META); no O(data_dir)). BR stops the cluster's meta
    and storage services through its agents and replaces the data of every graph space, so O(force=true) is required; the
    target needs the topology of the backed-up cluster. The BR backup's files must still be in the bucket (checked first).
    BR takes the S3 secret key only on its command line (visible in the process list while it runs)."
  - "Nebula Graph O(backend=local) backups (B(experimental)): one node per run (O(nodes) names it when the backup holds several)
    into O(data_dir), the data path of that node's stopped storaged or metad: the checkpoint's C(data) and C(wal) become
    C(nebula/<space id>/data) and C(wal). Restore every node this way on its own host, then start metad, then storaged yourself."
  - "MongoDB (B(experimental): never run against a real MongoDB or its tools): a C(method: dump) backup restores through the
    server O(connection) names (no O(data_dir)) with C(mongorestore --archive --oplogReplay) fed from the repository, so the
    data is consistent at the backup's oplog point. A server that already holds user databases is refused unless
    O(force=true) (then C(--drop) replaces the restored collections); O(collections) takes C(db.collection) patterns
    (C(--nsInclude); the oplog replay, which covers every collection, is then left out). For O(restore_time) the newest dump
    before it is restored, then the archived oplog after the dump's point and before O(restore_time) is applied with
    C(mongorestore --oplogReplay --oplogLimit). A C(method: datafile) backup is extracted into O(data_dir) (mongod stopped; a
    directory a running mongod uses is refused), without the source's C(mongod.lock), owned by O(owner) (default C(mongodb))."
  - "Milvus (C(milvus-export) backups, proven against milvus-lite's server mode): restores through pymilvus into the
    server O(connection) names (no O(data_dir)). A collection of the backup that exists there is refused before anything
    changes unless O(force=true), which drops it first; O(collections) restores some of them. Each collection is created
    with the saved schema, its partitions, its rows inserted in batches, flushed, its indexes created and loaded, and its
    row count compared with the backup's. A collection with C(auto_id) primary keys is created with C(auto_id) off, because
    Milvus refuses explicit keys in an C(auto_id) collection, so that the restored rows keep their ids: new inserts into
    it must then give their ids (the result lists such collections under C(auto_id_disabled))."
  - "Milvus (C(milvus-backup) backups, B(experimental): never run against the real tool): runs C(milvus-backup restore
    -n <name> --restore_index), with C(--drop_exist_collection) when O(force=true) (without it the tool refuses existing
    collections), with the configuration file named by O(backend) (its bucket must be the backup's) and the server of
    O(connection); C(milvus-backup) is found on PATH or in O(bin_dir)."
  - "A volume-snapshot backup restores from its snapshot (O(source)): C(btrfs) makes a writable subvolume at O(data_dir) on the
    snapshot's file system, C(lvm) a new logical volume mounted at O(data_dir); the engine then finishes the data directory
    (PostgreSQL - the manifest's C(backup_label), the WAL from the backup's start to its stop, and for O(restore_time) the
    archived WAL and recovery settings) and, with O(start=true), starts it. C(aws_ebs) and C(kubernetes) make new volumes or
    PersistentVolumeClaims from the snapshots as O(snapshot) says and return the next step - mount them, then run this module
    again with O(source=mounted) and O(data_dir) on the mounted volume. A streamed backup also restores from the repository."
author:
  - dataprotection.databases maintainers (@dataprotection-databases)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataprotection.databases.repo
  - dataprotection.databases.snapshot.restore
  - dataprotection.databases.connection
  - dataprotection.databases.native
attributes:
  check_mode:
    support: full
    details: Returns the plan (the base backup, the WAL range, the target) and changes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
options:
  engine:
    description: The database engine of the backup.
    type: str
    required: true
    choices: [postgresql, mysql, mongodb, redis, prometheus, nebula, milvus, qdrant, weaviate]
  cluster:
    description: The cluster whose backups to restore from.
    type: str
    required: true
  backup_id:
    description: Restore this backup set. Mutually exclusive with O(restore_time).
    type: str
  restore_time:
    description:
      - Restore to this moment (ISO-8601; without an offset, UTC), for example V(2026-11-25T10:00:00Z).
        Mutually exclusive with O(backup_id).
      - It must lie inside a recoverable window (M(dataprotection.databases.backup_info) lists them).
    type: str
  data_dir:
    description:
      - The directory to restore into. Created when missing.
      - Required, except for a volume-snapshot backup restored into new cloud volumes (O(snapshot), providers C(aws_ebs)
        and C(kubernetes)), and for backups restored through the target server's own API or client (MongoDB C(dump);
        Qdrant, Weaviate, Milvus and Nebula native methods), which go to the server O(connection) names.
    type: path
  force:
    description: Replace the contents of a non-empty O(data_dir). The server using it must be stopped.
    type: bool
    default: false
  owner:
    description:
      - The user that owns the restored files (the user the server runs as). The engine's usual user when omitted
        (V(postgres), V(mysql), V(redis), V(prometheus)).
    type: str
  group:
    description: The group of the restored files. The primary group of O(owner) when omitted.
    type: str
  start:
    description:
      - Start the server on the restored directory and wait until recovery has reached the target and the server
        has been promoted (accepts writes).
      - The server runs as O(owner); a O(data_dir) below a directory that user may not search is refused before
        anything is written (parents the restore creates get mode 0755).
    type: bool
    default: false
  port:
    description:
      - The port the started server listens on, with O(start=true). The engine's default port when omitted (5432, 3306,
        6379, 9090).
      - A MySQL/MariaDB server started without O(defaults_file) listens on 127.0.0.1 only; with it, the option file's
        C(bind-address) applies.
    type: int
  socket_dir:
    description:
      - The Unix socket directory of the started server, with O(start=true). A MySQL/MariaDB server's socket there is
        named C(mysqld-<port>.sock).
    type: path
    default: /tmp
  wait_timeout:
    description: Seconds to wait for the started server to finish recovery.
    type: int
    default: 300
  bin_dir:
    description: Directory of the engine's server tools (C(pg_ctl); C(mariadbd), C(mariabackup), C(mbstream)), when not in the usual places.
    type: path
  defaults_file:
    description:
      - "MySQL/MariaDB: the server's option file, used by the prepare step and by the server started for the replay and with
        O(start=true) (C(--defaults-file)). Without it they run with C(--no-defaults). Give it when the server uses settings
        the data files depend on, such as C(innodb_page_size) or separate InnoDB directories."
      - "Redis: the target server's C(redis.conf), read for the file names (C(dbfilename), C(appenddirname),
        C(appendfilename), C(aclfile)) and C(appendonly)."
    type: path
requirements:
  - tar
  - "PostgreSQL: the server binaries of the backup's major version, to start the restored server"
  - "MariaDB: C(mbstream) and C(mariabackup) of the backup's version; for a point in time also C(mariadbd), C(mariadb) and C(mariadb-binlog)"
  - "MySQL: C(xbstream) and C(xtrabackup); for a point in time also C(mysqld), C(mysql) and C(mysqlbinlog)"
  - "Redis: C(redis-server) and C(redis-cli) to start and check the restored server"
  - "Prometheus: C(tar); C(prometheus) to start the restored server"
  - "MongoDB: C(mongosh) and C(mongorestore) of MongoDB Database Tools 100.3.0 or newer (package mongodb-database-tools) for a dump"
  - "Weaviate: C(tar), for a backup held in the repository"
  - "Nebula Graph (C(method: nebula-br)): C(br) and C(nebula-console), a nebula-agent on every cluster host"
  - "Milvus: the Python package pymilvus 2.5 or newer (C(pymilvus>=2.5)) for a C(milvus-export) backup; C(milvus-backup)
    for a C(milvus-backup) backup"
seealso:
  - module: dataprotection.databases.backup
  - module: dataprotection.databases.backup_info
"""

EXAMPLES = r"""
- name: Restore a backup set into a new data directory
  dataprotection.databases.restore:
    repo:
      type: local
      path: /var/backups/dataprotection
    engine: postgresql
    cluster: orders-db
    backup_id: orders-db-pg-basebackup-20261125100000
    data_dir: /var/lib/postgresql/15/restored

- name: Point-in-time restore over a stopped server's directory, then start it
  dataprotection.databases.restore:
    repo:
      type: s3
      bucket: db-backups
      encryption_key: "{{ vault_backup_passphrase }}"
    engine: postgresql
    cluster: orders-db
    restore_time: "2026-11-25T09:41:00Z"
    data_dir: /var/lib/postgresql/15/main
    force: true
    start: true
    port: 5432
    socket_dir: /var/run/postgresql

- name: See what a point-in-time restore would use
  dataprotection.databases.restore:
    repo:
      type: local
      path: /var/backups/dataprotection
    engine: postgresql
    cluster: orders-db
    restore_time: "2026-11-25T09:41:00Z"
    data_dir: /srv/restore
  check_mode: true
  register: plan

- name: Restore a MariaDB backup to a point in time and start it on port 3307
  dataprotection.databases.restore:
    repo:
      type: local
      path: /var/backups/dataprotection
    engine: mysql
    cluster: shop-db
    restore_time: "2026-11-25T09:41:00Z"
    data_dir: /var/lib/mysql-restored
    owner: mysql
    start: true
    port: 3307

- name: Restore a btrfs snapshot backup as a new subvolume and start PostgreSQL on it
  dataprotection.databases.restore:
    repo:
      type: local
      path: /var/backups/dataprotection
    engine: postgresql
    cluster: orders-db
    backup_id: orders-db-volume-snapshot-20261125100000
    data_dir: /srv/btrfs/pg-restored
    start: true
    port: 5433

- name: New EBS volume from a snapshot backup, attached to an instance
  dataprotection.databases.restore:
    repo:
      type: s3
      bucket: db-backups
    engine: postgresql
    cluster: orders-db
    backup_id: orders-db-volume-snapshot-20261125100000
    snapshot:
      availability_zone: eu-west-1a
      instance_id: i-0123456789abcdef0
      device_name: /dev/sdg
  register: volumes

- name: After mounting it, finish the data directory on it (backup_label, WAL, recovery settings)
  dataprotection.databases.restore:
    repo:
      type: s3
      bucket: db-backups
    engine: postgresql
    cluster: orders-db
    backup_id: orders-db-volume-snapshot-20261125100000
    source: mounted
    data_dir: /mnt/restored/pgdata
- name: Restore one collection of a Qdrant backup into a single Qdrant server (experimental)
  dataprotection.databases.restore:
    repo:
      type: local
      path: /srv/backups
    cluster: vectors
    engine: qdrant
    backup_id: vectors-qdrant-snapshot-20261203210500
    collections: [docs]
    connection:
      host: https://qdrant.example.com
      token: "{{ qdrant_api_key }}"
- name: Restore the Article class of a Weaviate backup, replacing the class on the target
  dataprotection.databases.restore:
    repo:
      type: local
      path: /srv/backups
    cluster: vectors
    engine: weaviate
    backup_id: vectors-weaviate-backup-20261203210500
    collections: [Article]
    force: true
    connection:
      host: https://weaviate.example.com
      token: "{{ weaviate_api_key }}"
- name: Restore a Milvus export into an empty Milvus
  dataprotection.databases.restore:
    repo:
      type: local
      path: /srv/backups
    cluster: vectors
    engine: milvus
    backup_id: vectors-milvus-export-20261203210500
    connection:
      host: milvus-dr.example.com
      port: 19530
      user: root
      password: "{{ milvus_password }}"
- name: Restore a Nebula Graph BR backup; BR replaces every graph space of the cluster (experimental)
  dataprotection.databases.restore:
    repo:
      type: s3
      bucket: db-backups
      prefix: graphs
      endpoint_url: https://minio.example.com:9000
      access_key: nebula-backup
      secret_key: "{{ minio_secret_key }}"
    cluster: social-graph
    engine: nebula
    backup_id: social-graph-nebula-br-20261203210500
    force: true
    connection:
      host: graphd.example.com
      password: "{{ nebula_root_password }}"
- name: Lay storaged0's checkpoints out in its data path, nebula-storaged stopped (experimental)
  dataprotection.databases.restore:
    repo:
      type: local
      path: /srv/backups
    cluster: social-graph
    engine: nebula
    backup_id: social-graph-nebula-br-20261203220000
    nodes: [storaged0:9779]
    data_dir: /usr/local/nebula/data/storage
    force: true
- name: Restore a MongoDB replica set to a point in time from a dump and the archived oplog, through its primary (experimental)
  dataprotection.databases.restore:
    repo:
      type: local
      path: /srv/backups
    cluster: orders-rs
    engine: mongodb
    restore_time: "2026-12-03T21:40:00Z"
    connection:
      host: mongo0.example.com
      user: restorer
      password: "{{ mongodb_restore_password }}"
"""

RETURN = r"""
plan:
  description: The base backup, the target, the WAL range and what the target directory held.
  returned: always
  type: dict
  sample:
    backup_id: orders-db-pg-basebackup-20261125100000
    base_end_time: "2026-11-25T10:00:07Z"
    data_dir: /srv/restore
    recovery: point-in-time
    restore_time: "2026-11-25T10:41:00Z"
    wal: {"segments": 3, "first": "000000010000000000000005", "last": "000000010000000000000007"}
restored:
  description: What was restored.
  returned: success, not in check mode
  type: dict
  contains:
    backup_id:
      description: The base backup used.
      type: str
    data_dir:
      description: The restored directory.
      type: str
    bytes:
      description: Bytes of the base backup written.
      type: int
    wal_segments:
      description: PostgreSQL - WAL segments placed for recovery.
      type: int
    binlogs:
      description: MySQL - binary log files replayed.
      type: int
    replay:
      description: MySQL - where the replay started (C(from)), its C(stop_datetime) and the C(files).
      type: dict
    restore_time:
      description: The recovery target.
      type: str
    from:
      description: For a volume-snapshot backup, where the files came from (the snapshot, the repository, a mounted volume).
      type: str
    snapshot:
      description: For a local snapshot restore, what the provider made (C(path), C(data_dir)).
      type: dict
    volumes:
      description: For an C(aws_ebs) or C(kubernetes) snapshot restore, the volumes or PVCs made, one per snapshot.
      type: list
      elements: dict
    next:
      description: For an C(aws_ebs) or C(kubernetes) snapshot restore, what to do once the new volumes are mounted.
      type: str
    server:
      description: With O(start=true), the started server (port, socket or socket_dir, log) once it accepts connections (PostgreSQL - once promoted).
      type: dict
error:
  description: On failure, the kind of error, its message and a hint; for a time outside the windows, C(windows) lists them.
  returned: failure
  type: dict
windows:
  description: The recoverable windows, when O(restore_time) lies outside all of them.
  returned: failure
  type: list
  elements: dict
"""

from copy import deepcopy

from ansible_collections.dataprotection.databases.plugins.module_utils.args_common import (
    CONNECTION_ARGUMENT_SPEC,
    ENGINE_OPTION,
    NATIVE_OPTIONS,
    SNAPSHOT_TARGET_OPTIONS,
    given,
    native_options,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.module import DataProtectionModule
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore


RESTORE_OPTION_NAMES = ("owner", "group", "start", "port", "socket_dir", "wait_timeout", "bin_dir", "defaults_file", "source")


def run(module):
    params = module.params
    request = RestoreRequest(
        engine=params["engine"],
        cluster=params["cluster"],
        target=params["data_dir"],
        backup_id=params["backup_id"],
        restore_time=params["restore_time"],
        force=params["force"],
        connection=params["connection"],
        options=dict(native_options(params), **dict((k, params[k]) for k in RESTORE_OPTION_NAMES)),
    )
    request.options["snapshot"] = given(params["snapshot"])
    return run_restore(module.repo_spec, request, check_mode=module.check_mode)


def main():
    module = DataProtectionModule(
        argument_spec=dict(
            engine=deepcopy(ENGINE_OPTION),
            cluster=dict(type="str", required=True),
            backup_id=dict(type="str"),
            restore_time=dict(type="str"),
            data_dir=dict(type="path"),
            force=dict(type="bool", default=False),
            owner=dict(type="str"),
            group=dict(type="str"),
            start=dict(type="bool", default=False),
            port=dict(type="int"),
            socket_dir=dict(type="path", default="/tmp"),
            wait_timeout=dict(type="int", default=300),
            bin_dir=dict(type="path"),
            defaults_file=dict(type="path"),
            source=dict(type="str", default="auto", choices=["auto", "snapshot", "repository", "mounted"]),
            snapshot=dict(type="dict", options=deepcopy(SNAPSHOT_TARGET_OPTIONS)),
            **dict(deepcopy(CONNECTION_ARGUMENT_SPEC), **deepcopy(NATIVE_OPTIONS))
        ),
        mutually_exclusive=[("backup_id", "restore_time")],
        required_one_of=[("backup_id", "restore_time")],
        supports_check_mode=True,
    )
    module.run(run, module)


if __name__ == "__main__":
    main()
