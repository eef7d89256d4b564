# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The support matrix: which engine offers which backup methods and features.

``SEED`` is the product's contract (the KubeBlocks data-protection matrix).
``METHODS`` declares, per engine, the methods the collection offers and the
features each provides; the per-engine feature row is derived from them and
must never lack a cell the seed marks ``yes`` (a unit test holds that).
Whether a method is implemented in this version is read from the engine
modules under ``engines/`` (their ``METHODS`` declarations), so the matrix
never claims what the code cannot do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataprotection.databases.plugins.module_utils.engines import engine_module
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import UnsupportedError

FEATURES = ("scheduled", "continuous", "snapshot", "datafile", "log", "full", "pitr", "compression")
FEATURE_TITLES = {
    "scheduled": "Scheduled",
    "continuous": "Real-time (continuous)",
    "snapshot": "Snapshot",
    "datafile": "Data-file",
    "log": "Log",
    "full": "Full",
    "pitr": "PITR",
    "compression": "Compression",
}
ENGINES = ("postgresql", "mysql", "mongodb", "redis", "prometheus", "nebula", "milvus", "qdrant", "weaviate")
ENGINE_TITLES = {
    "postgresql": "PostgreSQL",
    "mysql": "MySQL (ApeCloud MySQL, MariaDB)",
    "mongodb": "MongoDB",
    "redis": "Redis",
    "prometheus": "Prometheus",
    "nebula": "Nebula",
    "milvus": "Milvus",
    "qdrant": "Qdrant",
    "weaviate": "Weaviate",
}


def _row(*cells):
    return dict(zip(FEATURES, cells))


# The seed matrix, cell by cell, in FEATURES order.
SEED = {
    "postgresql": _row(True, True, True, True, True, True, True, True),
    "mysql": _row(True, False, True, True, True, True, True, True),
    "mongodb": _row(True, True, True, True, True, True, True, True),
    "redis": _row(True, False, True, True, False, True, False, True),
    "prometheus": _row(True, False, True, False, False, True, False, False),
    "nebula": _row(True, False, True, False, False, True, False, False),
    "milvus": _row(True, False, True, False, False, True, False, False),
    "qdrant": _row(True, False, True, False, False, True, False, False),
    "weaviate": _row(True, False, True, False, False, True, False, False),
}

_SNAPSHOT = {
    "kind": "snapshot",
    "type": "snapshot",
    "features": ["scheduled", "snapshot", "full"],
    "description": "volume snapshot (Kubernetes CSI, AWS EBS, LVM, btrfs) taken application-consistent",
}


def _snapshot(**extra):
    method = dict(_SNAPSHOT)
    method.update(extra)
    return method


# Methods per engine.  kind: tool (full backup by a tool), snapshot, log
# (continuous log shipping).  features: the matrix cells the method provides.
METHODS = {
    "postgresql": {
        "pg-basebackup": {
            "kind": "tool", "type": "full", "tools": ["pg_basebackup"],
            "features": ["scheduled", "datafile", "full", "compression"],
            "description": "physical copy of the data directory with the WAL needed to make it consistent",
        },
        "volume-snapshot": _snapshot(),
        "wal-archive": {
            "kind": "log", "type": "log", "tools": ["archive_command"],
            "features": ["scheduled", "continuous", "log", "pitr", "compression"],
            "description": "continuous WAL archiving through archive_command; enables point-in-time restore",
        },
    },
    "mysql": {
        "xtrabackup": {
            "kind": "tool", "type": "full", "tools": ["xtrabackup", "mariabackup"],
            "features": ["scheduled", "datafile", "full", "compression"],
            "description": "hot physical backup by xtrabackup (MySQL) or mariabackup (MariaDB)",
        },
        "volume-snapshot": _snapshot(),
        "binlog-archive": {
            "kind": "log", "type": "log", "tools": ["mysqlbinlog"],
            "features": ["scheduled", "log", "pitr", "compression"],
            "description": "binary log archiving on an interval and size; enables point-in-time restore",
        },
    },
    "mongodb": {
        "dump": {
            "kind": "tool", "type": "full", "tools": ["mongodump", "mongorestore"],
            "features": ["scheduled", "full", "compression"],
            "description": "mongodump --oplog archive of a replica set",
        },
        "datafile": {
            "kind": "tool", "type": "full", "tools": [],
            "features": ["scheduled", "datafile", "full", "compression"],
            "description": "copy of the data files under fsyncLock",
        },
        "volume-snapshot": _snapshot(),
        "oplog-archive": {
            "kind": "log", "type": "log", "tools": [],
            "features": ["scheduled", "continuous", "log", "pitr", "compression"],
            "description": "continuous oplog archiving; enables point-in-time restore",
        },
    },
    "redis": {
        "datafile": {
            "kind": "tool", "type": "full", "tools": ["redis-cli"],
            "features": ["scheduled", "datafile", "full", "compression"],
            "description": "RDB after BGSAVE, plus AOF files and users.acl when used",
        },
        "volume-snapshot": _snapshot(),
    },
    "prometheus": {
        "tsdb-snapshot": {
            "kind": "tool", "type": "full", "tools": [],
            "features": ["scheduled", "full"],
            "description": "TSDB snapshot through the admin API, streamed into the repository",
        },
        "volume-snapshot": _snapshot(),
    },
    "nebula": {
        "nebula-br": {
            "kind": "tool", "type": "full", "tools": ["br"],
            "features": ["scheduled", "full"],
            "description": "Nebula BR tool, or CREATE SNAPSHOT checkpoints of each storage host",
        },
        "volume-snapshot": _snapshot(),
    },
    "milvus": {
        "milvus-export": {
            "kind": "tool", "type": "full", "tools": [],
            "features": ["scheduled", "full"],
            "description": "logical export of collections (schema, indexes, data) through pymilvus",
        },
        "milvus-backup": {
            "kind": "tool", "type": "full", "tools": ["milvus-backup"],
            "features": ["scheduled", "full"],
            "description": "the upstream milvus-backup tool",
        },
        "volume-snapshot": _snapshot(),
    },
    "qdrant": {
        "qdrant-snapshot": {
            "kind": "tool", "type": "full", "tools": [],
            "features": ["scheduled", "full"],
            "description": "per-collection snapshots through the Qdrant API, every node",
        },
        "volume-snapshot": _snapshot(),
    },
    "weaviate": {
        "weaviate-backup": {
            "kind": "tool", "type": "full", "tools": [],
            "features": ["scheduled", "full"],
            "description": "Weaviate backup API (filesystem or S3 backend)",
        },
        "volume-snapshot": _snapshot(),
    },
}


def implemented_methods(engine):
    """Methods the engine module implements in this version (empty if none yet)."""
    return tuple(getattr(engine_module(engine), "METHODS", ()))


def default_method(engine, kind):
    """The engine's method of ``kind`` to use when none is named: an implemented one first."""
    check_engine(engine)
    names = [m for m, spec in METHODS[engine].items() if spec["kind"] == kind]
    done = [m for m in names if m in implemented_methods(engine)]
    if not names:
        raise UnsupportedError("engine %s has no %s method in the support matrix" % (engine, kind))
    return (done or names)[0]


def features(engine):
    """The engine's feature row, derived from its methods."""
    row = dict((f, False) for f in FEATURES)
    for method in METHODS[engine].values():
        for feature in method["features"]:
            row[feature] = True
    return row


def support_matrix(engine=None):
    """The matrix as data: per engine, features and methods with their status."""
    engines = [check_engine(engine)] if engine else list(ENGINES)
    result = {}
    for name in engines:
        done = implemented_methods(name)
        methods = {}
        for method, spec in METHODS[name].items():
            entry = dict(spec)
            entry["features"] = list(spec["features"])
            entry["implemented"] = method in done
            methods[method] = entry
        result[name] = {"title": ENGINE_TITLES[name], "features": features(name), "seed": dict(SEED[name]), "methods": methods}
    return result


def check_engine(engine):
    if engine not in METHODS:
        raise UnsupportedError(
            "unknown engine %r" % (engine,),
            hint="Supported engines: %s" % ", ".join(ENGINES),
        )
    return engine


def check_method(engine, method, kind=None, implemented=True):
    """Return the method's declaration or raise UnsupportedError saying what is offered."""
    check_engine(engine)
    offered = METHODS[engine]
    candidates = dict((m, s) for m, s in offered.items() if kind is None or s["kind"] in (kind if isinstance(kind, tuple) else (kind,)))
    if method not in candidates:
        what = "backup method" if kind is None else "%s method" % (kind if isinstance(kind, str) else "/".join(kind))
        raise UnsupportedError(
            "%s is not a %s of engine %s" % (method, what, engine),
            hint="The support matrix offers for %s: %s" % (engine, ", ".join(sorted(candidates)) or "none"),
        )
    if implemented and method not in implemented_methods(engine):
        raise UnsupportedError(
            "method %s of engine %s is in the support matrix but not implemented in this version of the collection" % (method, engine),
            hint="Implemented for %s: %s" % (engine, ", ".join(implemented_methods(engine)) or "nothing yet"),
        )
    return candidates[method]


def check_feature(engine, feature):
    """Refuse a feature (e.g. pitr, log, compression) the engine does not offer."""
    check_engine(engine)
    if feature not in FEATURES:
        raise UnsupportedError("unknown feature %r" % (feature,), hint="Features: %s" % ", ".join(FEATURES))
    if not features(engine)[feature]:
        offering = [e for e in ENGINES if features(e)[feature]]
        raise UnsupportedError(
            "engine %s does not support %s (%s) in the support matrix" % (engine, feature, FEATURE_TITLES[feature]),
            hint="Engines with %s: %s" % (feature, ", ".join(offering)),
        )


def markdown_table():
    """The README's matrix table, generated from the declarations above."""
    lines = [
        "| Engine | %s | Methods |" % " | ".join(FEATURE_TITLES[f] for f in FEATURES),
        "|---|%s---|" % ("---|" * len(FEATURES)),
    ]
    for engine in ENGINES:
        row = features(engine)
        done = implemented_methods(engine)
        methods = ", ".join("`%s`%s" % (m, "" if m in done else " (planned)") for m in METHODS[engine])
        lines.append("| %s | %s | %s |" % (ENGINE_TITLES[engine], " | ".join("yes" if row[f] else "no" for f in FEATURES), methods))
    return "\n".join(lines) + "\n"
