# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The quiesce of a volume-snapshot backup: what holds a database at a consistent point while it is snapshotted.

Engines subclass :class:`Quiesce` (PostgreSQL's backup mode, MySQL's global
read lock, ...); the snapshot backup in ``snapshot_backup.py`` drives it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time


class Quiesce(object):
    """What holds a database at a consistent point while its volumes are snapshotted.

    ``hold()`` brings it there (on entering the context), ``release()`` lets
    it go on once the snapshots' point in time is fixed (idempotent: the
    provider may call it early through ``taken``), ``abort()`` undoes the hold
    when the backup fails, and ``close()`` always runs last.  ``facts`` is what
    the engine learnt for the manifest.  This base class holds nothing: the
    snapshot is crash-consistent.
    """

    consistency = "crash"

    def __init__(self):
        self.facts = {}
        self.held = False
        self.released = False
        self.held_seconds = None
        self._clock = None

    def hold(self):
        """Bring the database to a consistent point."""

    def _release(self):
        """Let the database go on (success path)."""

    def abort(self):
        """Undo the hold after a failure; must not raise."""

    def close(self):
        """Free what the hold used (sessions, temporary files); must not raise."""

    def release(self):
        if self.held and not self.released:
            self.released = True
            try:
                self._release()
            finally:
                self.held_seconds = round(time.monotonic() - self._clock, 3)

    def __enter__(self):
        self._clock = time.monotonic()
        try:
            self.hold()
        except BaseException:
            self.abort()
            self.close()
            raise
        self.held = True
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.release()
            elif not self.released:
                self.abort()
                self.held_seconds = round(time.monotonic() - self._clock, 3)
        finally:
            self.close()
        return False
