#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_retention
short_description: Delete the backups and archived logs of a cluster that a retention policy no longer keeps
version_added: 1.0.0
description:
  - Applies a retention policy to one cluster of a repository, as KubeBlocks' retentionPeriod and backup garbage collection do.
  - A backup is kept when any rule keeps it; it is deleted only when none does. Rules are O(retention_period) (keep what is
    younger), O(keep_last) (keep the newest N), O(retain_latest) (keep the newest) and O(min_window) (keep the bases that
    point-in-time restore needs to reach back that far).
  - Archived log files (PostgreSQL WAL, MySQL/MariaDB binary logs) are deleted when they precede the oldest backup that stays;
    timeline history files stay. The recoverable windows of the backups that stay are computed with and without the log
    files that would go; when they differ nothing is deleted.
  - Removes the objects of interrupted runs (a backup directory without a manifest) and never-committed uploads (S3 multipart
    uploads, temporary files of a local repository) older than O(incomplete_grace).
  - A backup's manifest is deleted first, durably, then its objects; a run stopped anywhere leaves every remaining manifest
    complete, and a rerun finishes the work. The cluster's writer lease is held throughout, so a running backup is never touched
    (the task fails with the holder's name instead).
  - A policy that would delete every backup in scope is refused unless O(allow_empty=true).
  - The volume snapshots of a deleted backup are deleted through their provider right after its manifest; they are listed in the
    repository first, so a deletion that fails is retried by the next run. Backups whose snapshots no provider of this version
    can delete are kept and listed in RV(blocked).
  - Data an engine keeps for a backup outside the backup's own directory (the files BR wrote for a Nebula Graph C(nebula-br)
    backup under C(<cluster>/nebula-br/<name>/)) is deleted with the backup the same way, listed first so that a rerun finishes
    an interrupted deletion.
author:
  - dataprotection.databases maintainers (@dataprotection-databases)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataprotection.databases.repo
attributes:
  check_mode:
    support: full
    details: Returns the exact plan (what would be deleted, why, and the bytes freed) and changes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
options:
  cluster:
    description:
      - The cluster whose backups the policy applies to.
    type: str
    required: true
  retention_period:
    description:
      - Keep backups whose consistent point is younger than this, in KubeBlocks syntax (V(7d), V(30d12h), V(6mo), V(2y)). Units
        V(y) (365 days), V(mo) (30 days), V(w), V(d), V(h), V(m).
      - At least one of O(retention_period) and O(keep_last) is required.
    type: str
  keep_last:
    description:
      - Keep the newest this many backups in scope.
    type: int
  retain_latest:
    description:
      - Never delete the newest completed backup in scope, whatever its age (KubeBlocks' retainLatestBackup).
    type: bool
    default: true
  min_window:
    description:
      - Keep the backups (and so the log files) needed to restore to any time within this period before now that is
        recoverable today. Same syntax as O(retention_period). No effect on engines without a log archive.
    type: str
  incomplete_grace:
    description:
      - Objects of interrupted runs and never-committed uploads younger than this stay (they may belong to a run in progress).
    type: str
    default: 1d
  allow_empty:
    description:
      - Allow a policy that deletes every backup in scope.
    type: bool
    default: false
  engine:
    description:
      - Apply the policy only to backups of this engine. Needed with O(method).
    type: str
    choices: [postgresql, mysql, mongodb, redis, prometheus, nebula, milvus, qdrant, weaviate]
  method:
    description:
      - Apply the policy only to backups taken with this method (for example V(pg-basebackup)); other backups stay untouched
        but still anchor the log files they need.
    type: str
"""

EXAMPLES = r"""
- name: Keep a week of backups, and PITR for at least three days
  dataprotection.databases.backup_retention:
    repo:
      type: s3
      bucket: backups
      region: eu-west-1
    cluster: orders-db
    retention_period: 7d
    min_window: 3d

- name: Show what keeping the newest 5 would delete (check mode changes nothing)
  dataprotection.databases.backup_retention:
    repo:
      path: /var/backups/dataprotection
    cluster: orders-db
    keep_last: 5
  check_mode: true
  register: plan

- name: Keep only the newest 14 pg_basebackup backups; other methods stay
  dataprotection.databases.backup_retention:
    repo:
      path: /var/backups/dataprotection
    cluster: orders-db
    engine: postgresql
    method: pg-basebackup
    keep_last: 14
"""

RETURN = r"""
changed:
  description: Whether anything was (in check mode, would be) deleted.
  type: bool
  returned: always
expired:
  description: The backups deleted (in check mode, to be deleted), oldest first, with why, their volume snapshots, and in
    C(owned) the repository prefixes outside the backup's directory that go with it, each with C(prefix), C(objects) and C(bytes).
  type: list
  elements: dict
  returned: always
  sample:
    - backup_id: orders-db-pg-basebackup-20261101020000
      engine: postgresql
      method: pg-basebackup
      end_time: "2026-11-01T02:00:41Z"
      stored_size: 52428800
      reason: ended 2026-11-01T02:00:41Z, older than retention_period 7d
      snapshots: []
      owned: []
kept:
  description: The backups in scope that stay, newest first, with every rule that keeps them.
  type: list
  elements: dict
  returned: always
blocked:
  description: Backups the policy would delete but that hold volume snapshots no provider here can delete; they stay.
  type: list
  elements: dict
  returned: always
logs:
  description: Archived log files deleted per engine, with C(kind) (V(wal), V(binlog)), C(count), C(bytes) and the C(first) and
    C(last) file names.
  type: list
  elements: dict
  returned: always
incomplete:
  description: Backup directories of interrupted runs (no manifest) removed, with C(backup_id), C(objects) and C(bytes).
  type: list
  elements: dict
  returned: always
incomplete_left:
  description: Directories without a manifest that stay, with the reason (younger than the grace period, unreadable manifest).
  type: list
  elements: dict
  returned: always
snapshots_deleted:
  description: Volume snapshots deleted through their provider (in check mode, empty; the snapshots of RV(expired) would go).
  type: list
  elements: dict
  returned: always
owned_deleted:
  description: Repository prefixes outside a backup's own directory deleted with it (see C(owned) in RV(expired)), including those an
    interrupted earlier run had listed; in check mode, empty.
  type: list
  elements: str
  returned: always
partial_uploads:
  description: Never-committed uploads removed (S3 multipart uploads aborted, local temporary files deleted).
  type: list
  elements: dict
  returned: always
bytes_freed:
  description: Stored bytes freed (in check mode, to be freed).
  type: int
  returned: always
windows_before:
  description: Recoverable point-in-time windows before the run.
  type: list
  elements: dict
  returned: always
windows_after:
  description: Recoverable point-in-time windows after the run; each is a window of a backup that stays, unshortened.
  type: list
  elements: dict
  returned: always
policy:
  description: The policy as applied.
  type: dict
  returned: always
notes:
  description: Remarks, for example that O(min_window) has no effect on a cluster without a log archive.
  type: list
  elements: str
  returned: always
"""

from ansible_collections.dataprotection.databases.plugins.module_utils.matrix import ENGINES
from ansible_collections.dataprotection.databases.plugins.module_utils.module import DataProtectionModule
from ansible_collections.dataprotection.databases.plugins.module_utils.retention import Policy, run_retention


def run(module):
    params = module.params
    policy = Policy(
        retention_period=params["retention_period"],
        keep_last=params["keep_last"],
        retain_latest=params["retain_latest"],
        min_window=params["min_window"],
        incomplete_grace=params["incomplete_grace"],
        allow_empty=params["allow_empty"],
        engine=params["engine"],
        method=params["method"],
    )
    return run_retention(module.repo_spec, params["cluster"], policy, check_mode=module.check_mode)


def main():
    module = DataProtectionModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            retention_period=dict(type="str"),
            keep_last=dict(type="int"),
            retain_latest=dict(type="bool", default=True),
            min_window=dict(type="str"),
            incomplete_grace=dict(type="str", default="1d"),
            allow_empty=dict(type="bool", default=False),
            engine=dict(type="str", choices=list(ENGINES)),
            method=dict(type="str"),
        ),
        required_one_of=[("retention_period", "keep_last")],
        required_by={"method": "engine"},
        supports_check_mode=True,
    )
    module.run(run, module)


if __name__ == "__main__":
    main()
