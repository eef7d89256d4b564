# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-cluster writer leases kept in the repository.

A lease is an object ``<cluster>/locks/<name>.lease`` created with an atomic
create-if-absent (a no-clobber link on a directory, a conditional PUT on S3).
It names its holder and expires after ``ttl`` seconds unless renewed, so a
writer that died does not block the cluster forever.  A lease past its expiry
may be broken by the next writer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import socket
import time
import uuid

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import LeaseHeld, RepositoryError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import check_cluster
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow

DEFAULT_TTL = 900


def lease_key(cluster, name="writer"):
    return "%s/locks/%s.lease" % (check_cluster(cluster), name)


class Lease(object):
    def __init__(self, repo, cluster, purpose, name="writer", ttl=DEFAULT_TTL):
        self.repo = repo
        self.cluster = cluster
        self.key = lease_key(cluster, name)
        self.purpose = purpose
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self.held = False

    def _body(self):
        now = time.time()
        return {
            "token": self.token,
            "purpose": self.purpose,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": format_time(utcnow()),
            "expires_epoch": now + self.ttl,
        }

    def _encode(self):
        return json.dumps(self._body(), sort_keys=True).encode("utf-8")

    def current(self):
        """The lease's holder record, or None."""
        try:
            if self.repo.stat(self.key) is None:
                return None
            return json.loads(self.repo.get_bytes(self.key).decode("utf-8"))
        except (ValueError, RepositoryError):
            return None

    def acquire(self):
        if self.repo.put_if_absent(self.key, self._encode()):
            self.held = True
            return self
        holder = self.current()
        if holder is not None and holder.get("expires_epoch", 0) < time.time():
            # Expired: break it.  Only one breaker wins the create that follows.
            self.repo.delete(self.key)
            if self.repo.put_if_absent(self.key, self._encode()):
                self.held = True
                return self
            holder = self.current()
        holder = holder or {}
        raise LeaseHeld(
            "cluster %s is busy: %s by host %s (pid %s) since %s"
            % (self.cluster, holder.get("purpose", "another writer"), holder.get("host", "?"), holder.get("pid", "?"), holder.get("acquired_at", "?")),
            hint="Wait for it to finish; if it died, its lease expires at %s, or remove %s from the repository"
            % (format_time(_epoch(holder.get("expires_epoch"))) if holder.get("expires_epoch") else "its expiry", self.key),
            holder=holder,
        )

    def renew(self):
        holder = self.current()
        if not holder or holder.get("token") != self.token:
            raise LeaseHeld(
                "the lease on cluster %s was lost (it expired and another writer took it)" % self.cluster,
                hint="Raise the lease ttl or check why the run was stalled",
            )
        self.repo.put_bytes(self.key, self._encode())

    def release(self):
        if not self.held:
            return
        self.held = False
        holder = self.current()
        if holder and holder.get("token") == self.token:
            self.repo.delete(self.key)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        self.release()
        return False


def _epoch(value):
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
