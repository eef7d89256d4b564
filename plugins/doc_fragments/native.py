# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the engines' native, API-driven methods (Qdrant, Weaviate, Milvus, Nebula), shared by backup and restore."""

    DOCUMENTATION = r"""
options:
  collections:
    description:
      - "The collections to back up or restore: Qdrant and Milvus collections, Weaviate classes (collections). Every one
        the server (or the backup) has when omitted."
      - A named collection that does not exist is refused before anything is written.
      - Ignored by the other engines' methods.
    type: list
    elements: str
  backend:
    description:
      - "Weaviate (O(method=weaviate-backup)): the server's backup module to use, V(filesystem) or V(s3)
        (C(backup-filesystem), C(backup-s3)); the module must be enabled on the server."
      - "Nebula (O(method=nebula-br)): where the BR tool writes, V(s3) (the repository's S3 bucket) or V(local)."
    type: str
  nodes:
    description:
      - "Qdrant: the base URLs of every node of a cluster (each node's collections and shards are snapshotted on that node).
        Read from the cluster API when omitted."
      - "Nebula: the storage hosts (C(host:port)) whose checkpoints to take. Read from C(SHOW HOSTS STORAGE) when omitted."
    type: list
    elements: str
  operation_timeout:
    description: Seconds to wait for a server-side operation (a snapshot being created, a backup or restore being polled) to finish.
    type: int
    default: 3600
"""
