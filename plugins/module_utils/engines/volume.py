# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Qdrant and Weaviate: crash-consistent volume snapshots, the one method of this version for them.

Neither server has a call that makes its files consistent on disk on demand
(Qdrant's own snapshots and Weaviate's backup API are separate methods): both
write ahead to a log and recover from a crash, so a snapshot of a running
server's volume, taken at one instant, restores like a server after a power
loss.  The manifest says ``consistency: crash`` and the server is not
contacted.  For a local provider (btrfs, lvm) ``snapshot.data_dir`` names the
storage directory, since no server is asked where it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce

METHODS = ("volume-snapshot",)


def storage_dir(request, local, where):
    """``snapshot.data_dir``, checked: for an engine whose server is not asked where its data is, a local provider other than
    btrfs (which can be given the subvolume instead) needs it.  ``where`` says what the directory is, for the hints."""
    data_dir = request.snapshot.get("data_dir")
    if data_dir is not None and (not os.path.isabs(data_dir) or not os.path.isdir(data_dir)):
        raise ConfigError("snapshot.data_dir %s is not an existing directory (an absolute path)" % data_dir,
                          hint="Give the %s on this host" % where)
    if local and data_dir is None and request.snapshot.get("provider") != "btrfs":
        raise ConfigError(
            "engine %s with provider %s needs snapshot.data_dir: the server is not asked where its data is"
            % (request.engine, request.snapshot.get("provider")),
            hint="Set snapshot.data_dir to the %s on this host" % where,
        )
    return data_dir


def plan_snapshot(request, local=False):
    data_dir = storage_dir(request, local, "%s storage directory" % request.engine)
    return {
        "data_dir": data_dir,
        "quiesce": "none (crash-consistent)",
        "warnings": ["%s has no call that makes its files consistent on disk: the snapshot is crash-consistent, as after a power loss, "
                     "which its write-ahead log recovers from on start" % request.engine],
    }


def quiesce(request, plan):
    return Quiesce()


def snapshot_facts(request, ctx, held):
    return {}


def owner_of(request, server):
    """The ``owner`` option, checked to exist; None when not given."""
    owner = request.options.get("owner")
    if owner:
        hostfiles.lookup_user(owner, server)
    return owner


def check_restore(request, data_dir, mounted, server, start_hint):
    """What a snapshot restore of an engine this collection does not start checks first; returns the owner."""
    if request.options.get("start"):
        raise ConfigError("start is not offered for engine %s in this version" % request.engine, hint=start_hint)
    if not mounted:
        hostfiles.check_target(data_dir, request.force, server=server)
    return owner_of(request, server)


def finish_restore(request, data_dir, server):
    """Hand the restored files to the owner, when one was given."""
    owner = owner_of(request, server)
    if owner:
        hostfiles.chown_tree(data_dir, owner, request.options.get("group"))
    return {"data_dir": data_dir, "owner": owner}


def plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=False):
    owner = check_restore(request, data_dir, mounted, request.engine, "Start the server on %s yourself" % data_dir)
    return {"data_dir": data_dir, "owner": owner}


def finish_snapshot_restore(repository, manifest, request, logs, data_dir):
    return finish_restore(request, data_dir, request.engine)


def remote_restore_next(manifest, logs):
    return ("Mount the new volume where the server keeps its storage and start it: the copy is crash-consistent and the server "
            "recovers it from its write-ahead log")
