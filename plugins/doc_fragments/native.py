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
      - "Weaviate (C(weaviate-backup)): the server's backup module to use, V(filesystem) or V(s3)
        (C(backup-filesystem), C(backup-s3)); the module must be enabled on the server."
      - "Nebula (C(nebula-br)): V(s3) - the BR tool writes into the repository's S3 bucket (the default for an S3 repository) -
        or V(local) - C(CREATE SNAPSHOT) checkpoints of the storage hosts on this machine are streamed into the repository."
      - "Milvus (C(milvus-backup)): the path of the milvus-backup tool's C(backup.yaml); a private copy with the connection's
        settings is used for the run."
    type: str
  nodes:
    description:
      - "Qdrant: the REST base URLs of every node of a cluster (each node's shards are snapshotted on that node). A cluster of
        more than one peer is refused without it: the cluster API names the peers' internal addresses only."
      - "Nebula (V(local) backend): the hosts on this machine and their data paths, as C(host:port=<data path>[,<data path>]);
        required. On restore, the one node to restore into the restore module's C(data_dir)."
    type: list
    elements: str
  operation_timeout:
    description: Seconds to wait for a server-side operation (a snapshot being created, a backup or restore being polled) to finish.
    type: int
    default: 3600
"""
