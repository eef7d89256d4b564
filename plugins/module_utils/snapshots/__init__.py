# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume snapshot providers: one module per provider, named after it (``btrfs``, ``aws_ebs``, ...).

Every provider module offers the same functions:

``plan(spec, data_dir=None)``
    Check, without changing anything, that the provider can snapshot what
    ``spec`` (the ``snapshot`` option, a dict) names, and for a local
    provider that ``data_dir`` lies on it.  Returns a plan dict (the volumes,
    where snapshots go); raises ConfigError/EngineError naming what to change.
``create(plan, backup_id, labels=None, timeout=None, taken=None)``
    Take the snapshots; return one record per snapshot, each a dict with at
    least ``provider``, ``id`` (what deletes it), ``source`` (what was
    snapshotted) and ``created``.  On any failure, snapshots already made by
    this call are deleted before the error is raised: nothing half-made
    stays behind.  ``taken``, when given, is called (without arguments,
    once) as soon as the point in time of every snapshot is fixed, before
    waiting for them to become ready or completed: the caller releases the
    database's quiesce there, so a lock is not held while a cloud uploads.
``exists(record)`` / ``delete(record)``
    Whether the snapshot of a record still exists / delete it (True when it
    was deleted, False when it was already gone; any other problem raises).
``restore(record, target, check_mode=False, **options)``
    Make a new volume (or directory) from a snapshot; returns what was made.

Local providers (``LOCAL = True``: btrfs, lvm) snapshot volumes of this host:
``plan`` checks that ``data_dir`` lies on the volume, ``restore`` takes a
path as ``target``, and ``mounted(record)`` is a context manager yielding the
directory inside the snapshot that holds the data directory (readable; what
it mounted is unmounted on exit), from which a backup can stream the files
into the repository.  A local provider whose restore takes options lists them in
``TARGET_KEYS`` and accepts a dict target (lvm: the new volume's name, mounted
at ``data_dir``); one without takes the path.  Other providers (``LOCAL = False``: aws_ebs,
kubernetes) take a dict as ``target`` and cannot see the host's files.

Records are what a backup's manifest keeps under ``snapshots``; retention
deletes them through ``delete_record``.  Providers are imported here
statically, by name, for the same reason as the engines.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, UnsupportedError

# The longest a provider waits for snapshots or volumes to become ready.
MAX_WAIT_TIMEOUT = 7 * 24 * 3600

# The implemented providers.  Each is imported when first used (aws_ebs brings boto3, half a second of
# import that a retention run on a directory repository should not pay); the imports are written out
# below so that Ansible, which ships the module_utils a module's imports name, still finds them.
NAMES = ("aws_ebs", "btrfs", "kubernetes", "lvm")
# provider name -> module, filled as providers are first used.
REGISTRY = {}


def _load(name):
    # pylint: disable=import-outside-toplevel
    if name == "aws_ebs":
        from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import aws_ebs as module
    elif name == "btrfs":
        from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import btrfs as module
    elif name == "kubernetes":
        from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import kubernetes as module
    elif name == "lvm":
        from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import lvm as module
    else:
        return None
    REGISTRY[name] = module
    return module


def provider(name):
    """The provider module, or UnsupportedError naming the implemented ones."""
    module = REGISTRY.get(name) or _load(name)
    if module is None:
        raise UnsupportedError(
            "snapshot provider %s is not implemented in this version of the collection" % name,
            hint="Implemented providers: %s" % ", ".join(sorted(set(NAMES) | set(REGISTRY))),
        )
    return module


def can_delete(record):
    return record.get("provider") in REGISTRY or record.get("provider") in NAMES


def delete_record(record):
    """Delete one snapshot through its provider; True when deleted, False when it was already gone."""
    return provider(record.get("provider")).delete(record)


def seconds(value, name, default, maximum=MAX_WAIT_TIMEOUT):
    """A positive number of seconds (fractions allowed), at most ``maximum``; ``default`` when not given."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ConfigError("%s must be a number of seconds, got %r" % (name, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError("%s must be a number of seconds, got %r" % (name, value))
    if not 0 < number <= maximum:
        raise ConfigError("%s must be more than 0 and at most %d seconds, got %r" % (name, maximum, value))
    return int(number) if number == int(number) else number


def text(value):
    """A stripped string, or None for None and blanks."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def wait_until(check, timeout, describe, hint, interval, max_interval):
    """Call ``check()`` until it returns True: at once, then with pauses from ``interval`` doubling up to ``max_interval``.

    ``check`` raises when what it waits for reached a state it cannot leave; the
    deadline raises EngineError naming ``describe()``, what is still waited for.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        if check():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EngineError("%s did not finish within %ss" % (describe(), timeout), hint=hint)
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, max_interval)


def with_leftovers(error, leftovers, kind):
    """The same error, saying which objects a failed run made and could not remove ({name: problem})."""
    if not leftovers:
        return error
    names = ", ".join(sorted(leftovers))
    details = dict(error.details, left_behind=sorted(leftovers))
    hint = "%s%sThe %s %s made by this run could not be deleted (%s): delete %s by hand" % (
        error.hint or "", ". " if error.hint else "", kind, names, "; ".join(sorted(set(leftovers.values()))),
        "it" if len(leftovers) == 1 else "them")
    return type(error)(error.message, hint=hint, **details)
