# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Continuous log backups, engine-neutral: enable, disable, or sync the engine's log shipping."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataprotection.databases.plugins.module_utils import catalog, engines, matrix
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import check_cluster
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository

STATES = ("enabled", "disabled", "synced")


class LogBackupRequest(object):
    def __init__(self, repo_spec, engine, cluster, connection=None, method=None, options=None):
        self.engine = matrix.check_engine(engine)
        self.method = method or matrix.default_method(engine, "log")
        matrix.check_method(engine, self.method, kind="log")
        self.cluster = check_cluster(cluster)
        self.connection = dict(connection or {})
        self.repo_spec = dict(repo_spec)
        self.options = dict(options or {})


def run_log_backup(request, state, check_mode=False):
    engine = engines.require(request.engine)
    with open_repository(request.repo_spec) as repository:
        result = engine.log_backup(repository, request, state, check_mode=check_mode)
        manifests, dummy = catalog.scan_cluster(repository.repo, request.cluster)
        result["windows"] = engines.windows(request.engine, repository.repo, request.cluster, manifests)
    return result
