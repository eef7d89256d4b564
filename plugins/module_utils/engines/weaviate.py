# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Weaviate: volume snapshots (crash-consistent, shared with the other storage-directory engines in ``volume``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataprotection.databases.plugins.module_utils.engines import volume

METHODS = ("volume-snapshot",)
ENGINE = "weaviate"

# Volume snapshots: the storage directory as it is on disk, crash-consistent.
plan_snapshot = volume.plan_snapshot
quiesce = volume.quiesce
snapshot_facts = volume.snapshot_facts
plan_snapshot_restore = volume.plan_snapshot_restore
finish_snapshot_restore = volume.finish_snapshot_restore
remote_restore_next = volume.remote_restore_next
