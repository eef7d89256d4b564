#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_repo
short_description: Create, check or remove a backup repository
version_added: 1.0.0
description:
  - Creates a backup repository in a local directory (also NFS) or an S3 bucket, checks that it can be used, or removes it.
  - "A repository is self-describing: its C(dataprotection.json) holds the format version, the defaults and, for an encrypted
    repository, the key-derivation parameters and a key-check value (never the key)."
  - Before a new repository is written, and on every run, a pre-check writes, reads back, lists and deletes a probe object,
    like the KubeBlocks BackupRepo pre-check. Each failure is reported with what to do.
  - Every other module of the collection needs a repository created by this one.
author:
  - dataprotection.databases maintainers (@dataprotection-databases)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataprotection.databases.repo
attributes:
  check_mode:
    support: full
    details: Returns the plan (what would be created or removed) and runs only read-only checks.
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
options:
  state:
    description:
      - V(present) creates the repository when it does not exist, then checks it.
      - V(absent) removes the repository and everything in it. It refuses while the repository holds backups unless O(force=true).
    type: str
    choices: [present, absent]
    default: present
  create_bucket:
    description:
      - With O(repo.type=s3), create the bucket when it does not exist. Without it a missing bucket is an error.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), remove the repository even though it holds backups.
      - With O(state=present), create the repository in a location that already holds other objects.
    type: bool
    default: false
  checks:
    description:
      - Run the pre-check (write, read, list, delete a probe object). In check mode only the listing is tried.
    type: bool
    default: true
  owner:
    description:
      - With O(repo.type=local), the user that owns the repository directory and everything in it.
      - Set it to the database server's user (for example C(postgres)) when the server's own processes write into the
        repository (WAL archiving). Entries that root-run tasks write later are given to the same owner.
    type: str
  group:
    description: With O(repo.type=local), the group of the repository directory and everything in it.
    type: str
requirements:
  - boto3 (for O(repo.type=s3))
  - cryptography (for O(repo.encryption_key))
seealso:
  - module: dataprotection.databases.backup_info
"""

EXAMPLES = r"""
- name: Create a repository in a local directory (or an NFS mount)
  dataprotection.databases.backup_repo:
    repo:
      type: local
      path: /var/backups/dataprotection

- name: A local repository that PostgreSQL's archive_command writes into
  dataprotection.databases.backup_repo:
    repo:
      type: local
      path: /var/backups/dataprotection
    owner: postgres
    group: postgres

- name: Create an encrypted repository in a MinIO bucket, creating the bucket
  dataprotection.databases.backup_repo:
    repo:
      type: s3
      bucket: db-backups
      prefix: prod
      endpoint_url: https://minio.example.com:9000
      addressing_style: path
      access_key: "{{ minio_access_key }}"
      secret_key: "{{ minio_secret_key }}"
      ca_bundle: /etc/ssl/certs/internal-ca.pem
      encryption_key: "{{ vault_backup_passphrase }}"
    create_bucket: true

- name: Set the repository once for every module of the collection
  hosts: db
  module_defaults:
    group/dataprotection.databases.all:
      repo:
        type: s3
        bucket: db-backups
        region: eu-west-1
  tasks:
    - name: Check that the repository is usable
      dataprotection.databases.backup_repo:
      check_mode: true

- name: Remove a repository with all its backups
  dataprotection.databases.backup_repo:
    repo:
      type: local
      path: /var/backups/old
    state: absent
    force: true
"""

RETURN = r"""
repo:
  description: The repository definition, normalized, with secrets masked.
  returned: always
  type: dict
  sample: {"type": "s3", "bucket": "db-backups", "prefix": "prod", "region": "eu-west-1", "secret_key": "********"}
location:
  description: The repository's address.
  returned: always
  type: str
  sample: s3://db-backups/prod
created:
  description: Whether this run created the repository.
  returned: when O(state=present)
  type: bool
plan:
  description: What the run does (or, in check mode, would do).
  returned: always
  type: list
  elements: str
  sample: ["create bucket db-backups", "write dataprotection.json (format version 1, encrypted)"]
checks:
  description: The pre-checks that ran, in order.
  returned: when O(state=present)
  type: list
  elements: dict
  contains:
    name:
      description: V(write), V(read), V(list) or V(delete).
      type: str
    ok:
      description: Whether the check passed.
      type: bool
    latency_ms:
      description: How long the check took, in milliseconds.
      type: float
    msg:
      description: V(ok), or what failed and what to do.
      type: str
  sample: [{"name": "write", "ok": true, "latency_ms": 3.1, "msg": "ok"}]
format:
  description: The repository's C(dataprotection.json) without key material.
  returned: when the repository exists
  type: dict
  sample: {"format": "dataprotection.databases", "version": 1, "created_at": "2026-11-25T10:00:00Z", "encryption": {"algorithm": "aes-256-gcm"}}
removed:
  description: What O(state=absent) removed (or would remove).
  returned: when O(state=absent) and the repository existed
  type: dict
  sample: {"objects": 12, "bytes": 1048576, "backups": 2}
error:
  description: On failure, the kind of error, its message and a hint saying what to do.
  returned: failure
  type: dict
  sample: {"kind": "bucket_missing", "message": "bucket db-backups does not exist", "hint": "Create the bucket, or set create_bucket: true"}
"""

from ansible_collections.dataprotection.databases.plugins.module_utils.module import DataProtectionModule
from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import ensure_absent, ensure_present


def run(module):
    params = module.params
    if params["state"] == "absent":
        result = ensure_absent(module.repo_spec, force=params["force"], check_mode=module.check_mode)
        before, after = {"exists": True}, {"exists": not result["changed"]}
        if "removed" not in result:
            before = after = {"exists": False}
    else:
        result = ensure_present(
            module.repo_spec,
            create_bucket=params["create_bucket"],
            run_checks=params["checks"],
            check_mode=module.check_mode,
            force=params["force"],
            owner=params["owner"],
            group=params["group"],
        )
        before, after = {"exists": not result["changed"]}, {"exists": True}
    if module._diff:
        result["diff"] = {"before": dict(before, location=result["location"]), "after": dict(after, location=result["location"])}
    return result


def main():
    module = DataProtectionModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            create_bucket=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            checks=dict(type="bool", default=True),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    module.run(run, module)


if __name__ == "__main__":
    main()
