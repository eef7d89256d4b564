#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_info
short_description: List backups, recoverable windows and the support matrix; verify stored backups
version_added: 1.0.0
description:
  - Lists the committed backups of a repository (every backup whose manifest exists), newest first, with filters.
  - Lists the clusters with their recoverable point-in-time windows (empty until log backups exist for a cluster),
    and the backup directories of interrupted runs (no manifest).
  - Returns the support matrix of engines, methods and features.
  - With O(verify=true), re-reads every stored object of the selected backups, decrypts and decompresses it, checks its
    size and sha256 against the manifest and reports each damaged or missing object by name; the task then fails.
author:
  - dataprotection.databases maintainers (@dataprotection-databases)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataprotection.databases.repo
attributes:
  check_mode:
    support: full
    details: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
options:
  cluster:
    description:
      - Only this cluster (the name that groups one database's backups). All clusters when omitted.
    type: str
  engine:
    description:
      - Only backups of this engine.
    type: str
    choices: [postgresql, mysql, mongodb, redis, prometheus, nebula, milvus, qdrant, weaviate]
  method:
    description:
      - Only backups taken with this method, for example V(pg-basebackup).
    type: str
  since:
    description:
      - Only backups whose consistent point is at or after this time (ISO-8601; without an offset, UTC).
    type: str
  until:
    description:
      - Only backups whose consistent point is at or before this time (ISO-8601; without an offset, UTC).
    type: str
  labels:
    description:
      - Only backups that carry all these labels with these values.
    type: dict
    default: {}
  verify:
    description:
      - Re-read and check every stored byte of the selected backups. An encrypted repository needs O(repo.encryption_key).
      - The task fails when an object is damaged or missing, and RV(verification) names each one.
    type: bool
    default: false
requirements:
  - boto3 (for O(repo.type=s3))
  - zstandard (to verify zstd-compressed objects)
  - cryptography (for encrypted repositories)
seealso:
  - module: dataprotection.databases.backup_repo
"""

EXAMPLES = r"""
- name: List every backup and the recoverable windows of one cluster
  dataprotection.databases.backup_info:
    repo:
      type: local
      path: /var/backups/dataprotection
    cluster: orders-db
  register: info

- name: Show the newest backup
  ansible.builtin.debug:
    msg: "{{ info.backups[0].backup_id }} ended at {{ info.backups[0].end_time }}"
  when: info.backups | length > 0

- name: Verify last week's PostgreSQL backups byte by byte
  dataprotection.databases.backup_info:
    repo:
      type: s3
      bucket: db-backups
      encryption_key: "{{ vault_backup_passphrase }}"
    engine: postgresql
    since: "2026-11-18T00:00:00Z"
    verify: true
"""

RETURN = r"""
repo:
  description: The repository definition, normalized, with secrets masked.
  returned: always
  type: dict
format:
  description: The repository's C(dataprotection.json) without key material.
  returned: always
  type: dict
backups:
  description: The committed backups that match the filters, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    backup_id:
      description: The backup's id, C(<cluster>-<method>-<UTC yyyymmddHHMMSS>).
      type: str
    cluster:
      description: The cluster the backup belongs to.
      type: str
    engine:
      description: The database engine.
      type: str
    method:
      description: The backup method.
      type: str
    type:
      description: V(full) or V(snapshot).
      type: str
    consistency:
      description: V(application) when the engine was quiesced for the backup, V(crash) for a crash-consistent volume snapshot.
      type: str
    snapshots:
      description: For a V(snapshot) backup, its volume snapshots (C(provider), C(id), C(source), C(created)); empty when only a streamed copy is kept.
      type: list
      elements: dict
    streamed:
      description: For a V(snapshot) backup, whether a copy of the snapshot's files is in the repository.
      type: bool
    start_time:
      description: When the backup started (UTC ISO-8601).
      type: str
    end_time:
      description: The consistent point of the backup (UTC ISO-8601).
      type: str
    size:
      description: Size of the backed-up data in bytes, before compression.
      type: int
    stored_size:
      description: Bytes stored in the repository.
      type: int
    objects:
      description: Number of stored objects.
      type: int
  sample: [{"backup_id": "orders-db-pg-basebackup-20261125100000", "engine": "postgresql", "end_time": "2026-11-25T10:00:07Z"}]
clusters:
  description: Per cluster, its backup count, newest backup, recoverable windows and interrupted runs.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The cluster name.
      type: str
    backups:
      description: How many committed backups it has.
      type: int
    latest_backup:
      description: Id of the newest backup.
      type: str
    windows:
      description: Recoverable point-in-time windows, each with C(start), C(end) and the C(base_backups) it can start from.
      type: list
      elements: dict
    incomplete:
      description: Backup directories without a manifest (interrupted runs, or a backup running now).
      type: list
      elements: dict
support_matrix:
  description: Per engine, its features (derived from its methods), the seed matrix, and its methods with their status.
  returned: always
  type: dict
verification:
  description: The result of O(verify=true).
  returned: when O(verify=true)
  type: dict
  contains:
    ok:
      description: Whether every object matched its manifest.
      type: bool
    backups:
      description: Backups checked.
      type: int
    objects:
      description: Objects checked.
      type: int
    bytes:
      description: Plain bytes checked.
      type: int
    problems:
      description: Each damaged or missing object, with C(backup_id), C(object), C(key) and C(problem).
      type: list
      elements: dict
"""

from ansible_collections.dataprotection.databases.plugins.module_utils.module import DataProtectionModule
from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import repository_info
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import parse_time


def run(module):
    params = module.params
    filters = {
        "engine": params["engine"],
        "method": params["method"],
        "since": parse_time(params["since"], "since") if params["since"] else None,
        "until": parse_time(params["until"], "until") if params["until"] else None,
        "labels": params["labels"],
    }
    result = repository_info(module.repo_spec, cluster=params["cluster"], filters=filters, verify=params["verify"])
    verification = result.get("verification")
    if verification and not verification["ok"]:
        names = ", ".join("%s/%s (%s)" % (p["backup_id"], p["object"], p["problem"]) for p in verification["problems"][:10])
        module.fail_json(
            msg="verification found %d damaged or missing objects: %s" % (len(verification["problems"]), names),
            **result
        )
    return result


def main():
    module = DataProtectionModule(
        argument_spec=dict(
            cluster=dict(type="str"),
            engine=dict(type="str", choices=["postgresql", "mysql", "mongodb", "redis", "prometheus", "nebula", "milvus", "qdrant", "weaviate"]),
            method=dict(type="str"),
            since=dict(type="str"),
            until=dict(type="str"),
            labels=dict(type="dict", default={}),
            verify=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.run(run, module)


if __name__ == "__main__":
    main()
