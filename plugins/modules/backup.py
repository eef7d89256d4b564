#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup
short_description: Take a full backup of a database into a repository
version_added: 1.0.0
description:
  - Takes a full backup now with the engine's own tool and streams it into the repository, through hashing,
    compression and (for an encrypted repository) encryption, with no staging copy on local disk.
  - The backup's manifest is written last; until it exists the backup does not exist, and a failed backup leaves nothing behind.
  - Only one writer works on a cluster at a time (a lease in the repository); a second one is refused, naming the first.
  - "Implemented in this version: PostgreSQL C(pg-basebackup), MySQL/MariaDB C(xtrabackup), Redis C(datafile), Prometheus
    C(tsdb-snapshot), MongoDB C(dump) and C(datafile), Qdrant C(qdrant-snapshot), Weaviate C(weaviate-backup), Milvus
    C(milvus-export) and C(milvus-backup), Nebula Graph C(nebula-br), and C(volume-snapshot) for every engine. The MongoDB,
    Qdrant, Weaviate, Nebula Graph and C(milvus-backup) methods are B(experimental): no such server or tool runs where the
    collection is tested, and they are tested against fakes built from their published APIs (see the collection's
    docs/engines.md). C(milvus-export) is tested against a real Milvus (milvus-lite's server mode)."
  - "PostgreSQL: runs C(pg_basebackup -D - -F tar -X fetch -c fast) and records the WAL start and stop points, the timeline,
    the server version and the system identifier. The server needs C(wal_level=replica) (or C(logical)) and a
    C(pg_hba.conf) entry allowing replication connections for O(connection.user). Keep enough WAL (C(wal_keep_size), or
    WAL archiving with M(dataprotection.databases.log_backup)) for the duration of the backup."
  - "MySQL/MariaDB: the flavour is read from the server. MariaDB is backed up by C(mariabackup --backup --stream=mbstream),
    MySQL by Percona C(xtrabackup --backup --stream=xbstream); the manifest records the binlog file, position and GTID set
    of the consistent point, the redo LSN range, the server version, C(server_id) and (MySQL) C(server_uuid). The tool
    copies the data files, so the module must run on the database host. O(connection.user) needs C(RELOAD), C(PROCESS),
    C(LOCK TABLES) and C(BINLOG MONITOR) (MariaDB) or C(REPLICATION CLIENT) and C(BACKUP_ADMIN) (MySQL); missing ones are
    named before anything is written. With C(log_bin) off the backup can be restored but starts no point-in-time window."
  - "Redis: C(BGSAVE), then the RDB file the save writes is streamed into the repository and checked (the save must report
    success; a failed save, for example an unwritable C(dir) or a full disk, is refused and leaves nothing behind). With
    C(appendonly yes) the multi-part AOF follows (its manifest and every file it names), and C(users.acl) when the server
    uses an ACL file; one object per file. The manifest records the Redis version, the role and the keys per database.
    The files are read from disk, so the module must run on the Redis host. Redis 7.0 or later. The password goes to
    C(redis-cli) in E(REDISCLI_AUTH); O(connection.user) needs C(+info +bgsave +config|get +echo) (C(+config|get) may be
    replaced by O(connection.defaults_file), the server's C(redis.conf)). No identity ties the cluster name to one
    server: Redis has nothing stable to record."
  - "Prometheus: asks for a TSDB snapshot through the admin API (C(POST /api/v1/admin/tsdb/snapshot); the server needs
    C(--web.enable-admin-api), which the error names), streams the snapshot directory from the storage path as one tar
    stream, and removes the snapshot from the server afterwards, also when the backup fails. The storage path comes from
    C(/api/v1/status/flags), so the module must run on the Prometheus host, as root or as the user Prometheus runs as.
    The manifest records the time range of the data (C(min_time), C(max_time)) and its blocks. A snapshot without data
    (a server that has stored no samples yet) is refused. No compression (the support matrix)."
  - "Nebula Graph, O(method=nebula-br) (B(experimental): never run against a real Nebula Graph or BR, tested against a fake
    C(br) and C(nebula-console) built from BR's README and the Nebula docs): runs the BR tool, C(br backup full --meta <addr>
    --storage s3://<bucket>/<prefix>/<cluster>/nebula-br/) with the repository's endpoint, region and keys, so the cluster's
    agents upload the backup into the repository's bucket next to its backups. With O(backend=s3) (the default) the repository must be S3 with
    static keys. The meta
    address comes from C(SHOW HOSTS META) through O(connection) (graphd, C(nebula-console)); O(collections) are graph spaces
    (BR's experimental C(--spaces)), each checked to exist before anything runs. The manifest records BR's backup name
    (C(BACKUP_<date>)), the spaces and the meta address; a small object lists BR's files. BR takes the S3 secret key only
    on its command line (visible in the process list while it runs; the plan warns; messages are scrubbed of it). When BR
    fails, its partial backup is removed (C(br cleanup --name)) and nothing is recorded. Deleting the backup later leaves
    BR's files in the bucket (remove them with C(br cleanup)). C(br) and C(nebula-console) are found in O(connection.bin_dir),
    on PATH or in C(/usr/local/nebula/bin)."
  - "Nebula Graph, O(method=nebula-br) with O(backend=local) (B(experimental), tested against a fake C(nebula-console)):
    C(CREATE SNAPSHOT) as root (Nebula blocks writes while every storage engine and the meta engine make a checkpoint), then
    the checkpoints C(<data_path>/nebula/<space id>/checkpoints/<snapshot>) of the hosts that run on this machine are streamed
    into the repository (any type), one tar object per data path, and C(DROP SNAPSHOT) removes the snapshot on every path out.
    O(nodes) names those hosts with their data paths (C(host:port=<data path>), storage or meta hosts). The module reads local
    disks only: a cluster on several hosts needs a run on each host, and each run is a snapshot of its own, at its own point in
    time (the plan names the storage hosts it does not take)."
  - "Qdrant, O(method=qdrant-snapshot) (B(experimental): written from Qdrant's published OpenAPI description and tested
    against a fake server, never run against a real Qdrant): for every collection of O(collections) (every one when
    omitted; a named one that does not exist is refused before any snapshot is made) on every node, reads its point count
    and vectors configuration (C(GET /collections/{name})), creates a snapshot (C(POST /collections/{name}/snapshots?wait=true)),
    streams its download straight into the repository, checks the bytes against the sha256 and size the server reports
    (a mismatch fails the backup and nothing is kept), and deletes the snapshot on the server, also when the backup fails.
    A collection snapshot holds only the node's local shards, so a distributed Qdrant is snapshotted on every node:
    O(nodes) lists the base URLs of every peer's REST API. Without O(nodes), C(GET /cluster) is read and a cluster of more
    than one peer is refused (it names only the peers' p2p addresses, not their REST URLs). O(connection.token) goes as the
    C(api-key) header; O(connection.host) may be an C(http(s)://) URL (port 6333 by default). The manifest records per
    snapshot the collection, node, snapshot name, sha256, point count and vectors configuration, and the nodes' peer ids;
    no identity (Qdrant has none that survives a rebuild). No compression (the support matrix). O(method=volume-snapshot)
    remains available: a crash-consistent copy of the storage directory."
  - "Weaviate (O(method=weaviate-backup), B(experimental): written from Weaviate's published REST API and tested against a
    fake server, never run against a real Weaviate): checks in C(/v1/meta) that the server's backup module
    (C(backup-filesystem), or C(backup-s3) with O(backend=s3)) is enabled (else refused, naming the module and
    C(ENABLE_MODULES)) and that every class of O(collections) exists; then C(POST /v1/backups/{backend}) under an id derived
    from the backup id (lowercase, C([a-z0-9_-])), polled until C(SUCCESS) (C(FAILED) is an error with the server's message;
    after O(operation_timeout) the error says the backup goes on on the server, naming its id). Filesystem backend: when
    the backup's directory (C(BACKUP_FILESYSTEM_PATH/<id>)) is on this host, it is streamed into the repository as one tar
    object and removed from the server's backup path; otherwise it stays on the server's disk and the manifest says so.
    S3 backend: the data stays in Weaviate's bucket and the repository holds the manifest only; retention does not
    delete it from the bucket. O(connection.token) goes as C(Authorization: Bearer). No compression."
  - "MongoDB (B(experimental): never run against a real MongoDB or its tools; tested against a fake C(mongosh), C(mongodump)
    and C(mongorestore) built from MongoDB's manual and the Database Tools' archive specification): a replica set member;
    a mongos or a member of a sharded cluster (shard or config server) is refused, and so is a standalone mongod for
    O(method=dump). O(method=dump) streams C(mongodump --oplog --archive) into the repository (no staging copy) and records
    the oplog timestamp of the point the dump is consistent at (the last oplog entry in the archive, read as it streams)
    as C(positions.oplog_ts). The password reaches the tools in a temporary 0600 file given with C(--config) (MongoDB
    Database Tools 100.3.0 or newer), removed afterwards, never on a command line. O(method=datafile) streams a tar of
    the server's C(dbPath) while the server is held by C(fsyncLock) (released once, on every path), so the module must run
    on the mongod host; the user needs the roles C(hostManager) and C(clusterMonitor)."
  - "Milvus, O(method=milvus-export) (proven against milvus-lite's gRPC server mode, a single-process Milvus, not a distributed
    one): through pymilvus, every collection of O(collections) (C(name) or C(database.name); by default every collection of
    O(connection.databases), default C([default])) is flushed, its schema (fields, types and type parameters, primary key,
    C(auto_id), nullable and default values, partition key, dynamic field, functions), indexes (C(describe_index)) and
    partitions recorded, and its rows read partition by partition with C(query_iterator) (batches of 1000) and streamed
    into one object per partition (C(milvus/<database>/<collection>/part-<n>.jsonl), one JSON row per line; float vectors
    as exact JSON numbers, sparse vectors as index/value pairs). A field type the export does not handle (binary, float16,
    bfloat16 and int8 vectors, C(GEOMETRY), C(TIMESTAMPTZ), unknown types) or a named collection that does not exist is
    refused before anything is stored, naming the collection, field and type. The exported row count must equal the
    collection's C(count(*)). The manifest records per collection the row count, schema, indexes and partitions; the
    collections are each read at their own time (C(consistency: collection)). O(connection.port) is the gRPC port (19530);
    O(connection.user)/O(connection.password) or O(connection.token) authenticate. No compression (the support matrix)."
  - "Milvus, O(method=milvus-backup) (B(experimental): never run against the real tool; tested against a fake following its
    documented command line): runs C(milvus-backup create -n <name>) (C(-d), C(-c) from O(collections)) and C(milvus-backup
    get) of the upstream tool (found on PATH), with a copy of the tool's configuration file named by O(backend) whose
    C(milvus) section is replaced by O(connection) (in a private 0600 file, removed afterwards; no password on a command
    line). The data stays in the object storage that configuration names; the manifest records the backup name, bucket
    and path, and the repository holds the tool's description of the backup."
  - "O(method=volume-snapshot) (every engine): the volumes are snapshotted by the provider
    O(snapshot.provider) while the database is held at a consistent point, and released as soon as the snapshots' point in
    time is fixed (before a cloud has finished copying them), and on every failure path. PostgreSQL runs in backup mode
    (C(pg_backup_start)/C(pg_backup_stop) on one session); the C(backup_label) goes into the manifest and the WAL from the
    backup's start to its stop is read from the server (C(pg_read_binary_file)) and stored, so the snapshot restores without
    a WAL archive and serves as the base of point-in-time restores. MySQL/MariaDB holds C(FLUSH TABLES WITH READ LOCK) and
    records the binlog position; Redis completes a C(BGSAVE) first; Prometheus takes a TSDB snapshot (the head persisted)
    onto the volume; MongoDB runs C(fsyncLock) (B(experimental)); Nebula (C(SUBMIT JOB FLUSH)) and Milvus (a REST flush of
    every collection) are flushed first, but writes go on, so theirs are crash-consistent (B(experimental)). Qdrant and Weaviate
    have no such call - their snapshots are crash-consistent (their write-ahead logs
    recover them) and the server is not contacted. The manifest records the provider's snapshot ids and C(consistency)
    (C(application) or C(crash))."
  - "The snapshot providers: C(btrfs) and C(lvm) on this host (the data directory must lie on the volume; nested
    subvolumes, mounts, tablespaces or a C(pg_wal) elsewhere are refused), C(aws_ebs) and C(kubernetes) (CSI VolumeSnapshots)
    through their APIs. O(snapshot.stream=true) also copies a local snapshot's files into the repository. A failure deletes
    the snapshots the run made; the backup's manifest is written last."
  - "Of the volume-snapshot providers, C(btrfs) and C(aws_ebs) (against an EC2 API server) are tested end to end; C(lvm)
    (no device-mapper on the test machines) and C(kubernetes) (no cluster) are tested against their command lines and
    a fake API server and are B(experimental) until proven on real systems (see the collection's docs/snapshots.md)."
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
    details: Connects to the server, checks the tools and the cluster's identity, and returns the plan; writes nothing.
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
      - The backup method. It must be a full-backup method the support matrix offers for O(engine)
        (see the C(dataprotection.databases.support_matrix) lookup).
      - Defaults to the engine's tool method (V(pg-basebackup), V(xtrabackup), V(datafile), V(tsdb-snapshot)).
      - V(volume-snapshot) takes a volume snapshot instead, as O(snapshot) says.
    type: str
  compression:
    description:
      - Compression of the stored objects. Defaults to V(zstd) where the matrix offers compression for the method, else V(none).
    type: str
    choices: [zstd, gzip, none]
  compression_level:
    description: Compression level (zstd 1-22, default 3; gzip 1-9, default 6).
    type: int
  labels:
    description: Labels recorded in the manifest, for filtering with M(dataprotection.databases.backup_info). Not secret.
    type: dict
    default: {}
  parallel:
    description: "MySQL/MariaDB: threads the backup tool copies files with (its C(--parallel)). The tool's default (1) when omitted."
    type: int
  lock_wait_timeout:
    description:
      - "MySQL/MariaDB with O(method=volume-snapshot): seconds C(FLUSH TABLES WITH READ LOCK) may wait behind running statements
        before the backup gives up (the session's C(lock_wait_timeout)), so that a long query cannot make it block every writer."
    type: int
    default: 60
requirements:
  - zstandard (for V(zstd) compression)
  - boto3 (for O(repo.type=s3))
  - cryptography (for encrypted repositories)
  - "PostgreSQL: C(pg_basebackup) and C(psql) of the server's major version or newer"
  - "MariaDB: C(mariabackup) of the server's major version (package mariadb-backup) and the C(mariadb) client"
  - "MySQL: Percona C(xtrabackup) of the server's version or newer and the C(mysql) client"
  - "Redis: C(redis-cli) (Debian package redis-tools)"
  - "Prometheus: C(tar)"
  - "MongoDB: C(mongosh); C(mongodump) of MongoDB Database Tools 100.3.0 or newer (package mongodb-database-tools) for O(method=dump)"
  - "Nebula Graph (O(method=nebula-br)): C(br) and C(nebula-console) release binaries of the cluster's version, a nebula-agent on every cluster host"
  - "Weaviate: C(tar) (O(backend=filesystem) streamed into the repository)"
  - "Milvus: the Python package pymilvus 2.5 or newer (C(pymilvus>=2.5)) for O(method=milvus-export); the C(milvus-backup)
    binary (https://github.com/zilliztech/milvus-backup/releases) for O(method=milvus-backup)"
seealso:
  - module: dataprotection.databases.restore
  - module: dataprotection.databases.backup_info
  - module: dataprotection.databases.log_backup
"""

EXAMPLES = r"""
- name: Full backup of a local PostgreSQL into an S3 repository
  dataprotection.databases.backup:
    repo:
      type: s3
      bucket: db-backups
      region: eu-west-1
    cluster: orders-db
    engine: postgresql
    method: pg-basebackup
    connection:
      socket: /var/run/postgresql
      user: postgres
    labels:
      reason: before-upgrade
  register: result

- name: Show what was stored
  ansible.builtin.debug:
    msg: "{{ result.backup.backup_id }}: {{ result.backup.stored_size }} bytes in {{ result.backup.duration_seconds }} s"

- name: Check that a backup could be taken (connects, writes nothing)
  dataprotection.databases.backup:
    repo:
      type: local
      path: /var/backups/dataprotection
    cluster: orders-db
    engine: postgresql
    connection:
      host: db1.example.com
      user: backup
      password: "{{ vault_pg_backup_password }}"
  check_mode: true

- name: Full backup of the local MariaDB (mariabackup), encrypted repository
  dataprotection.databases.backup:
    repo:
      type: local
      path: /var/backups/dataprotection
      encryption_key: "{{ vault_backup_passphrase }}"
    cluster: shop-db
    engine: mysql
    method: xtrabackup
    connection:
      socket: /run/mysqld/mysqld.sock
      user: backup
      password: "{{ vault_mysql_backup_password }}"
    parallel: 2

- name: Snapshot the btrfs subvolume of the local PostgreSQL in backup mode, and keep a copy in the repository
  dataprotection.databases.backup:
    repo:
      type: local
      path: /var/backups/dataprotection
    cluster: orders-db
    engine: postgresql
    method: volume-snapshot
    connection:
      socket: /var/run/postgresql
    snapshot:
      provider: btrfs
      stream: true

- name: EBS snapshots of the data volume of a MariaDB instance, held under FLUSH TABLES WITH READ LOCK
  dataprotection.databases.backup:
    repo:
      type: s3
      bucket: db-backups
    cluster: shop-db
    engine: mysql
    method: volume-snapshot
    connection:
      socket: /run/mysqld/mysqld.sock
      user: backup
      password: "{{ vault_mysql_backup_password }}"
    snapshot:
      provider: aws_ebs
      region: eu-west-1
      instance_id: i-0123456789abcdef0
      device_names: [/dev/sdf]
      tags:
        team: shop

- name: CSI VolumeSnapshots of a PostgreSQL's PVC in Kubernetes
  dataprotection.databases.backup:
    repo:
      type: s3
      bucket: db-backups
    cluster: orders-db
    engine: postgresql
    method: volume-snapshot
    connection:
      host: 127.0.0.1
      port: 15432
      password: "{{ vault_pg_password }}"
    snapshot:
      provider: kubernetes
      namespace: orders
      pvc_names: [data-orders-db-0]
      volume_snapshot_class: csi-snapclass
      context: prod
- name: Backup of every collection of a three-node Qdrant cluster through its snapshot API (experimental)
  dataprotection.databases.backup:
    repo:
      type: local
      path: /srv/backups
    cluster: vectors
    engine: qdrant
    method: qdrant-snapshot
    nodes: [http://qdrant-0:6333, http://qdrant-1:6333, http://qdrant-2:6333]
    connection:
      token: "{{ qdrant_api_key }}"
- name: Backup of two Weaviate classes through Weaviate's filesystem backup module, run on the Weaviate host
  dataprotection.databases.backup:
    repo:
      type: local
      path: /srv/backups
    cluster: vectors
    engine: weaviate
    method: weaviate-backup
    backend: filesystem
    collections: [Article, Author]
    connection:
      host: 127.0.0.1
      port: 8080
      token: "{{ weaviate_api_key }}"
- name: Logical export of two Milvus collections (schema, indexes, partitions and rows) through pymilvus
  dataprotection.databases.backup:
    repo:
      type: local
      path: /srv/backups
    cluster: vectors
    engine: milvus
    method: milvus-export
    collections: [articles, shop.products]
    connection:
      host: milvus.example.com
      port: 19530
      user: backup
      password: "{{ milvus_password }}"
- name: Back up a Nebula Graph cluster with BR into the S3 repository's bucket (experimental)
  dataprotection.databases.backup:
    repo:
      type: s3
      bucket: db-backups
      prefix: graphs
      endpoint_url: https://minio.example.com:9000
      access_key: nebula-backup
      secret_key: "{{ minio_secret_key }}"
    cluster: social-graph
    engine: nebula
    method: nebula-br
    connection:
      host: graphd.example.com
      password: "{{ nebula_root_password }}"
- name: Back up the CREATE SNAPSHOT checkpoints of the storage and meta hosts running here (experimental)
  dataprotection.databases.backup:
    repo:
      type: local
      path: /srv/backups
    cluster: social-graph
    engine: nebula
    method: nebula-br
    backend: local
    nodes:
      - storaged0:9779=/usr/local/nebula/data/storage
      - metad0:9559=/usr/local/nebula/data/meta
    connection:
      password: "{{ nebula_root_password }}"
- name: Dump a MongoDB replica set member with mongodump --oplog (experimental)
  dataprotection.databases.backup:
    repo:
      type: local
      path: /srv/backups
    cluster: orders-rs
    engine: mongodb
    method: dump
    connection:
      host: mongo1.example.com
      user: backup
      password: "{{ mongodb_backup_password }}"
"""

RETURN = r"""
backup:
  description: The backup that was taken.
  returned: success, not in check mode
  type: dict
  contains:
    backup_id:
      description: The backup's id.
      type: str
      sample: orders-db-pg-basebackup-20261125100000
    engine:
      description: The engine.
      type: str
    method:
      description: The method the backup was taken with.
      type: str
      sample: pg-basebackup
    status:
      description: V(completed).
      type: str
    start_time:
      description: When the backup started (UTC ISO-8601).
      type: str
    end_time:
      description: The backup's consistent point (UTC ISO-8601).
      type: str
    size:
      description: Bytes backed up, before compression.
      type: int
    stored_size:
      description: Bytes stored in the repository.
      type: int
    duration_seconds:
      description: How long the backup took.
      type: float
    throughput_mb_s:
      description: Backed-up megabytes (10^6 bytes) per second.
      type: float
    objects:
      description: Names of the stored objects.
      type: list
      elements: str
    positions:
      description: Engine positions of the backup (PostgreSQL - C(start_lsn), C(stop_lsn), C(timeline), C(start_wal), C(stop_wal);
        MySQL - C(binlog_file), C(binlog_pos), C(gtid), C(from_lsn), C(to_lsn);
        Redis - C(rdb_snapshot_time), C(master_replid), C(master_repl_offset);
        Prometheus - C(min_time), C(max_time) (first and last sample), C(blocks), C(samples)).
      type: dict
    engine_version:
      description: Version of the database server.
      type: str
    type:
      description: V(full), or V(snapshot) for O(method=volume-snapshot).
      type: str
    snapshots:
      description: With O(method=volume-snapshot), the snapshots kept (C(provider), C(id), C(source), C(created)); empty when streamed and not kept.
      type: list
      elements: dict
    consistency:
      description: With O(method=volume-snapshot), V(application) (the engine was quiesced) or V(crash).
      type: str
    quiesce_seconds:
      description: With O(method=volume-snapshot), how long the database was held.
      type: float
    streamed:
      description: With O(method=volume-snapshot), whether the snapshot's files were copied into the repository.
      type: bool
plan:
  description: In check mode, what the backup would do - the server, its version and identity, the tools, compression and encryption.
  returned: check mode
  type: dict
error:
  description: On failure, the kind of error, its message and a hint saying what to do.
  returned: failure
  type: dict
"""

from copy import deepcopy

from ansible_collections.dataprotection.databases.plugins.module_utils.args_common import (
    NATIVE_OPTIONS,
    SNAPSHOT_OPTIONS,
    engine_argument_spec,
    given,
    native_options,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.matrix import default_method
from ansible_collections.dataprotection.databases.plugins.module_utils.module import DataProtectionModule


def run(module):
    params = module.params
    request = BackupRequest(
        engine=params["engine"],
        method=params["method"] or default_method(params["engine"], "tool"),
        cluster=params["cluster"],
        connection=params["connection"],
        compression=params["compression"],
        compression_level=params["compression_level"],
        labels=params["labels"],
        options=dict(native_options(params), parallel=params["parallel"], lock_wait_timeout=params["lock_wait_timeout"]),
        snapshot=given(params["snapshot"]) or None,
    )
    result = run_backup(module.repo_spec, request, check_mode=module.check_mode)
    result.pop("manifest", None)
    return result


def main():
    module = DataProtectionModule(
        argument_spec=engine_argument_spec(
            method=dict(type="str"),
            compression=dict(type="str", choices=["zstd", "gzip", "none"]),
            compression_level=dict(type="int"),
            labels=dict(type="dict", default={}),
            parallel=dict(type="int"),
            lock_wait_timeout=dict(type="int", default=60),
            snapshot=dict(type="dict", options=deepcopy(SNAPSHOT_OPTIONS)),
            **deepcopy(NATIVE_OPTIONS)
        ),
        supports_check_mode=True,
    )
    module.run(run, module)


if __name__ == "__main__":
    main()
