# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engines: one module per engine, named after it (``postgresql``, ``mysql``, ...).

Each engine module declares ``METHODS``, the methods it implements; the
support matrix (``matrix.py``) reads that declaration to tell implemented
methods from planned ones.  Engines are imported here statically, by name:
modules ship only the module_utils their imports name, so a dynamic import
would find nothing inside a module run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataprotection.databases.plugins.module_utils.engines import (
    milvus,
    mongodb,
    mysql,
    nebula,
    postgresql,
    prometheus,
    qdrant,
    redis,
    weaviate,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import UnsupportedError

# engine name -> implementation module; an engine appears here once implemented.
REGISTRY = {
    "postgresql": postgresql,
    "mysql": mysql,
    "redis": redis,
    "prometheus": prometheus,
    "mongodb": mongodb,
    "nebula": nebula,
    "milvus": milvus,
    "qdrant": qdrant,
    "weaviate": weaviate,
}


def engine_module(engine):
    """The engine's implementation module, or None when it implements no method yet."""
    module = REGISTRY.get(engine)
    return module if module is not None and getattr(module, "METHODS", ()) else None


def require(engine):
    """The engine's module, or UnsupportedError when this version implements nothing for it."""
    module = engine_module(engine)
    if module is None:
        raise UnsupportedError(
            "engine %s is in the support matrix but not implemented in this version of the collection" % engine,
            hint="Implemented engines: %s" % ", ".join(sorted(REGISTRY)),
        )
    return module


def log_archive(engine):
    """The engine's log archive module (``KIND``, ``load``, ``windows``, ``prunable``), or None."""
    module = engine_module(engine)
    return getattr(module, "LOG_ARCHIVE", None) if module else None


def windows(engine, repo, cluster, manifests):
    """Recoverable point-in-time windows of a cluster, from the engine's log archive."""
    module = engine_module(engine)
    reader = getattr(module, "windows", None) if module else None
    return list(reader(repo, cluster, manifests)) if reader else []
