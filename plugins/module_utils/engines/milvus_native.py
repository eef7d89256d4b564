# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Milvus native methods: ``milvus-export`` (a logical export through pymilvus) and ``milvus-backup`` (EXPERIMENTAL).

milvus-export
-------------
Needs the Python package pymilvus (2.5 or later; requirement line
``pymilvus>=2.5``) on the host that runs the task.  For every collection named
(option ``collections``; by default every collection of the databases in
``connection.databases``, default ``[default]``) the backup

1. flushes the collection (its growing segments are sealed and persisted);
2. records its schema (fields with types, type parameters, primary key,
   auto_id, nullable, default values, partition key, dynamic field,
   functions), its indexes (``describe_index``) and its partitions;
3. reads its rows partition by partition with ``query_iterator`` (batches of
   1000 rows, or ``batch_size`` of the request's options, which the modules
   do not expose) and streams them into one repository object per partition,
   never holding more than a batch:
   ``milvus/<database>/<collection>/part-<n>.jsonl``, one JSON object per row.

Row layout: every field under its name, dynamic fields as extra keys.  Float
vectors, FLOAT and DOUBLE values are JSON numbers written with Python's
shortest round-trip representation of the value read (a float32 read as a
double), so reading them back as float32 gives the same bits.  A sparse float
vector is written as ``{"$sparse": [[index, value], ...]}``.  Fields produced
by a function (BM25 outputs) are not written: Milvus computes them again.
Binary, float16, bfloat16 and int8 vectors, GEOMETRY, TIMESTAMPTZ and any
type this version does not know are refused before anything is stored (the
error names the collection, the field and the type): their query
representation could not be proven here.

The export reads each collection at the time its iterator starts: the
collections are not one point in time together (``consistency: collection``).

Restore (into the server ``connection`` names) refuses a collection that
already exists unless ``force: true`` (which drops it first), then creates it
with the saved schema and properties (TTL, mmap, ...), its partitions, inserts
the rows in batches, flushes, creates the indexes, loads it and compares the
row count with the manifest; a collection whose restore fails is dropped
again, so that no half-restored collection looks usable.
Decision on ``auto_id``: Milvus refuses explicit primary keys in an auto_id
collection, so a collection exported with ``auto_id: true`` is restored with
``auto_id: false`` and its original ids (vector ids are what applications
keep).  New inserts into the restored collection must then give their ids;
the restore result lists those collections under ``auto_id_disabled``.

Proven against milvus-lite's gRPC server mode (a single-process
re-implementation, not a distributed Milvus); what milvus-lite does not do
(authentication, binary vectors, distributed flush and segment sealing) is
not proven.

milvus-backup (EXPERIMENTAL)
----------------------------
Runs the upstream ``milvus-backup`` tool (github.com/zilliztech/milvus-backup,
found on PATH, or in ``bin_dir`` for a restore).  Option ``backend`` names
the tool's configuration file (``backup.yaml``: its ``minio`` section says
which object storage Milvus uses and where backups go,
``backupBucketName``/``backupRootPath``).  Its ``milvus`` section is replaced
by the server and credentials of ``connection`` in a copy written to a
private temporary directory (mode 0600, removed afterwards): the password
never reaches a command line.  Backup: ``milvus-backup create -n <name> [-d
<databases>] [-c <collections>] --config <copy>``, then ``milvus-backup get
-n <name>``, whose answer is stored in the repository; the data itself stays
in the object storage, and the manifest records the backup name, the bucket
and the path.  Restore: ``milvus-backup restore -n <name> --restore_index
[--drop_exist_collection] --config <copy>`` (the flag with ``force: true``;
without it the tool refuses collections that exist).
EXPERIMENTAL: never run against the real tool, only against a fake that
behaves as its documentation says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import enum
import json
import logging
import os
import shutil
import tempfile

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, MissingDependency, ToolError
from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import object_key
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import utcnow
from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import ObjectSource

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 19530
DEFAULT_DATABASE = "default"
DEFAULT_BATCH = 1000
DEFAULT_TIMEOUT = 3600
READ_CHUNK = 1024 * 1024
FORMAT = "milvus-export/1"
PYMILVUS_REQUIREMENT = "pymilvus>=2.5"
MILVUS_BACKUP_URL = "https://github.com/zilliztech/milvus-backup/releases"
# Types whose query representation this version writes and reads back (proven on milvus-lite).
SCALAR_TYPES = ("BOOL", "INT8", "INT16", "INT32", "INT64", "FLOAT", "DOUBLE", "VARCHAR", "STRING", "JSON", "ARRAY")
VECTOR_TYPES = ("FLOAT_VECTOR", "SPARSE_FLOAT_VECTOR")
INDEX_INFO_KEYS = ("field_name", "index_name", "index_type", "metric_type", "total_rows", "indexed_rows", "pending_index_rows", "state",
                   "params", "index_state_fail_reason")
AUTH_CODES = (1800, 2)
HIDDEN = "********"


def _pymilvus():
    try:
        import pymilvus  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise MissingDependency(
            "method milvus-export needs the Python package pymilvus, which is not installed for the Python that runs the task",
            hint="Install it (pip install '%s') for the Python interpreter Ansible uses on that host" % PYMILVUS_REQUIREMENT,
        )
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    return pymilvus


class Settings(object):
    """What both ways of reaching Milvus (REST, pymilvus) read of ``connection``: port, credentials, databases."""

    def __init__(self, params):
        params = dict(params or {})
        self.port = int(params.get("port") or DEFAULT_PORT)
        self.user = params.get("user")
        self.password = params.get("password")
        self.token = params.get("token")
        if self.token and (self.user or self.password):
            raise ConfigError("connection.token and connection.user/password are exclusive for Milvus", hint="Give one of them")
        databases = params.get("databases") or params.get("database") or [DEFAULT_DATABASE]
        self.databases = [databases] if isinstance(databases, str) else list(databases)

    def secret(self):
        """The bearer token Milvus takes: the API key, or user:password."""
        if self.token:
            return self.token
        if self.user or self.password:
            return "%s:%s" % (self.user or "", self.password or "")
        return None

    def scrub(self, text):
        text = str(text or "")
        for secret in (self.secret(), self.password, self.token):
            if secret:
                text = text.replace(secret, HIDDEN)
        return text


class Client(Settings):
    """pymilvus' MilvusClient for one server, one client per database; every error becomes an EngineError without secrets."""

    def __init__(self, params):
        super(Client, self).__init__(params)
        params = dict(params or {})
        self.uri = tools.http_base_url(params.get("host") or DEFAULT_HOST, self.port, DEFAULT_HOST)
        if params.get("tls") and self.uri.startswith("http://"):
            self.uri = "https://" + self.uri[len("http://"):]
        self.ca_file = params.get("tls_ca_file")
        self.timeout = None
        self.module = None
        self.clients = {}

    def client(self, database):
        if database not in self.clients:
            self.module = self.module or _pymilvus()
            kwargs = {"uri": self.uri, "db_name": database}
            if self.secret():
                kwargs["token"] = self.secret()
            if self.ca_file:
                kwargs["server_pem_path"] = self.ca_file
            if self.timeout:
                kwargs["timeout"] = self.timeout
            self.clients[database] = self.call(None, "connect", lambda: self.module.MilvusClient(**kwargs))
        return self.clients[database]

    def call(self, database, what, function):
        """Run ``function``; turn pymilvus' exceptions into EngineError naming the server and the call."""
        try:
            return function()
        except Exception as exc:  # pylint: disable=broad-except
            if isinstance(exc, EngineError):
                raise
            self._raise(database, what, exc)

    def _raise(self, database, what, exc):
        code = getattr(exc, "code", None)
        message = self.scrub(getattr(exc, "message", None) or exc)
        lower = message.lower()
        who = "user %s" % self.user if self.user else ("the token" if self.token else "no credentials")
        if code in AUTH_CODES or "authenticat" in lower or "credential" in lower or "unauthenticated" in lower:
            raise EngineError("Milvus at %s did not accept %s (%s)" % (self.uri, who, message),
                              hint="Check connection.user and connection.password (or connection.token); authorization is on for this server")
        if "permission" in lower or "privilege" in lower:
            raise EngineError("Milvus at %s denies %s %s%s: %s" % (self.uri, who, what, " in database %s" % database if database else "", message),
                              hint="Grant that user's role the privileges the export or restore needs (DescribeCollection, Query, Flush; "
                                   "CreateCollection, Insert, CreateIndex, Load for a restore)")
        if "connect" in lower or "unavailable" in lower or "deadline" in lower or "timeout" in lower:
            raise EngineError("cannot reach Milvus at %s: %s" % (self.uri, message),
                              hint="Check connection.host and connection.port (the gRPC port, default 19530) and that Milvus is running")
        raise EngineError("Milvus at %s: %s%s failed: %s" % (self.uri, what, " in database %s" % database if database else "", message))

    def do(self, database, what, method, *args, **kwargs):
        client = self.client(database)
        return self.call(database, what, lambda: getattr(client, method)(*args, **kwargs))


# Schema, indexes, rows ------------------------------------------------------


def _name(value):
    """A pymilvus enum (DataType, FunctionType) by its name; anything else unchanged."""
    return value.name if isinstance(value, enum.Enum) else value


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if hasattr(value, "WhichOneof"):  # a protobuf value (a field's default_value)
        which = value.WhichOneof("data")
        return getattr(value, which) if which else None
    named = getattr(value, "name", None)
    return named if isinstance(named, str) else str(value)


def schema_of(description):
    """The JSON-able schema of a collection from ``describe_collection``."""
    fields = []
    for field in description.get("fields") or []:
        entry = dict((key, _plain(_name(value))) for key, value in field.items() if key not in ("field_id",))
        fields.append(entry)
    functions = []
    for function in description.get("functions") or []:
        functions.append(dict((key, _plain(_name(value))) for key, value in dict(function).items() if key not in ("id",)))
    return {
        "fields": fields,
        "functions": functions,
        "auto_id": bool(description.get("auto_id")),
        "enable_dynamic_field": bool(description.get("enable_dynamic_field")),
        "description": description.get("description") or "",
        "num_shards": description.get("num_shards"),
        "num_partitions": description.get("num_partitions"),
        "consistency_level": _plain(description.get("consistency_level_name") or description.get("consistency_level")),
        "properties": _plain(description.get("properties") or {}),
    }


def primary_field(schema):
    for field in schema["fields"]:
        if field.get("is_primary"):
            return field
    return None


def function_outputs(schema):
    names = set()
    for function in schema.get("functions") or []:
        names.update(function.get("output_field_names") or [])
    for field in schema["fields"]:
        if field.get("is_function_output"):
            names.add(field["name"])
    return names


def check_types(database, collection, schema):
    """Refuse, before anything is stored, a field whose type this version cannot export."""
    skipped = function_outputs(schema)
    for field in schema["fields"]:
        kind = str(field.get("type"))
        if field["name"] in skipped:
            continue
        if kind not in SCALAR_TYPES + VECTOR_TYPES:
            raise ConfigError(
                "collection %s (database %s): field %s has type %s, which method milvus-export cannot export" % (collection, database, field["name"], kind),
                hint="Exportable types: %s. Back this collection up with method volume-snapshot or milvus-backup, or leave it out of "
                     "collections" % ", ".join(SCALAR_TYPES + VECTOR_TYPES),
            )
        if kind == "ARRAY" and str(field.get("element_type")) not in SCALAR_TYPES:
            raise ConfigError(
                "collection %s (database %s): field %s is an ARRAY of %s, which method milvus-export cannot export"
                % (collection, database, field["name"], field.get("element_type")),
                hint="Leave this collection out of collections, or back it up with method volume-snapshot or milvus-backup")


def index_of(info):
    """An index definition from ``describe_index``: field, name, type, metric and build parameters."""
    params = info.get("params") if isinstance(info.get("params"), dict) else {}
    params = dict(params)
    for key, value in info.items():
        if key not in INDEX_INFO_KEYS:
            params[key] = value
    return {
        "field_name": info.get("field_name"),
        "index_name": info.get("index_name"),
        "index_type": info.get("index_type"),
        "metric_type": info.get("metric_type"),
        "params": _plain(params),
    }


def encode_row(row, sparse_fields, dropped):
    plain = {}
    for key, value in row.items():
        if key in dropped:
            continue
        if key in sparse_fields and value is not None:
            plain[key] = {"$sparse": sorted([int(i), float(v)] for i, v in dict(value).items())}
        else:
            plain[key] = _jsonable(value)
    return plain


def _jsonable(value):
    if isinstance(value, dict):
        return dict((str(k), _jsonable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, bool, type(None))):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    if hasattr(value, "items"):
        return _jsonable(dict(value.items()))
    raise EngineError("a value of Python type %s in a query result cannot be exported" % type(value).__name__)


def decode_row(row, sparse_fields):
    for key in sparse_fields:
        value = row.get(key)
        if isinstance(value, dict) and "$sparse" in value:
            row[key] = dict((int(i), float(v)) for i, v in value["$sparse"])
    return row


# Backup -----------------------------------------------------------------------------


def _batch_size(options):
    size = int(options.get("batch_size") or DEFAULT_BATCH)
    if size < 1:
        raise ConfigError("batch_size must be at least 1")
    return size


def _wanted(conn, options):
    """[(database, collection)] named by option collections (``name`` or ``database.name``), else every collection of the databases."""
    named = options.get("collections") or []
    existing = dict((database, conn.do(database, "list_collections", "list_collections")) for database in conn.databases)
    if not named:
        return [(database, name) for database in conn.databases for name in sorted(existing[database])]
    result = []
    for entry in named:
        if "." in entry:
            database, name = entry.split(".", 1)
            if database not in existing:
                existing[database] = conn.do(database, "list_collections", "list_collections")
            candidates = [database]
        else:
            name = entry
            candidates = [database for database in conn.databases if name in existing[database]] or conn.databases[:1]
        database = candidates[0]
        if name not in existing[database]:
            raise ConfigError("collection %s does not exist in database %s of Milvus at %s" % (name, database, conn.uri),
                              hint="Collections there: %s" % (", ".join(sorted(existing[database])) or "none"))
        result.append((database, name))
    return result


def inspect(conn, database, name):
    description = conn.do(database, "describe_collection %s" % name, "describe_collection", name)
    schema = schema_of(description)
    check_types(database, name, schema)
    indexes = []
    for index_name in conn.do(database, "list_indexes %s" % name, "list_indexes", name) or []:
        info = conn.do(database, "describe_index %s.%s" % (name, index_name), "describe_index", name, index_name)
        indexes.append(index_of(dict(info or {})))
    partitions = list(conn.do(database, "list_partitions %s" % name, "list_partitions", name) or [])
    stats = conn.do(database, "get_collection_stats %s" % name, "get_collection_stats", name) or {}
    return {"database": database, "name": name, "schema": schema, "indexes": indexes, "partitions": partitions,
            "row_count": int(stats.get("row_count") or 0)}


def plan_export(request):
    conn = Client(request.connection)
    collections = [inspect(conn, database, name) for database, name in _wanted(conn, request.options)]
    warnings = []
    if not collections:
        warnings.append("Milvus at %s has no collection in %s: the backup holds nothing" % (conn.uri, ", ".join(conn.databases)))
    auto = ["%s.%s" % (c["database"], c["name"]) for c in collections if c["schema"]["auto_id"]]
    if auto:
        warnings.append("collections with auto_id primary keys (%s) are restored with auto_id off, to keep their ids" % ", ".join(auto))
    return {
        "server": conn.uri,
        "databases": list(conn.databases),
        "batch_size": _batch_size(request.options),
        "collections": [dict((k, c[k]) for k in ("database", "name", "row_count", "schema", "partitions", "indexes")) for c in collections],
        "warnings": warnings,
    }


def _row_stream(conn, database, name, partition, batch_size, sparse_fields, dropped, counter):
    """Bytes of the rows of one partition (of the whole collection when ``partition`` is None), a batch at a time."""
    client = conn.client(database)
    extra = {"partition_names": [partition]} if partition else {}
    iterator = conn.call(database, "query_iterator %s" % name,
                         lambda: client.query_iterator(name, batch_size=batch_size, output_fields=["*"], **extra))
    try:
        while True:
            rows = conn.call(database, "query_iterator %s" % name, iterator.next)
            if not rows:
                break
            lines = [json.dumps(encode_row(row, sparse_fields, dropped), sort_keys=True, separators=(",", ":")) for row in rows]
            counter[0] += len(lines)
            yield ("\n".join(lines) + "\n").encode("utf-8")
    finally:
        try:
            iterator.close()
        except Exception:  # pylint: disable=broad-except
            pass


def run_export(request, ctx):
    conn = Client(request.connection)
    options = request.options
    batch_size = _batch_size(options)
    wanted = _wanted(conn, options)
    # Every schema is checked before the first object is written.
    collections = [inspect(conn, database, name) for database, name in wanted]
    started = utcnow()
    version = None
    try:
        version = conn.do(conn.databases[0], "get_server_version", "get_server_version")
    except EngineError:
        pass
    saved = []
    for info in collections:
        database, name = info["database"], info["name"]
        conn.do(database, "flush %s" % name, "flush", name)
        # Queries need a loaded collection: one that was released is loaded for the export and released again afterwards.
        state = conn.do(database, "get_load_state %s" % name, "get_load_state", name) or {}
        loaded = "loaded" in str(state.get("state", "")).lower() and "notload" not in str(state.get("state", "")).lower()
        if not loaded:
            conn.do(database, "load_collection %s" % name, "load_collection", name)
        try:
            saved.append(_export_collection(conn, ctx, info, batch_size))
        except BaseException:
            if not loaded:
                try:
                    conn.do(database, "release_collection %s" % name, "release_collection", name)
                except EngineError:
                    pass
            raise
        if not loaded:
            conn.do(database, "release_collection %s" % name, "release_collection", name)
    return {
        "start_time": started,
        "end_time": utcnow(),
        "engine_version": version,
        "consistency": "collection",
        "milvus": {"format": FORMAT, "server": conn.uri, "databases": list(conn.databases), "batch_size": batch_size, "collections": saved},
    }


def _export_collection(conn, ctx, info, batch_size):
    """Store one collection's rows, partition by partition; return its manifest entry."""
    database, name, schema = info["database"], info["name"], info["schema"]
    sparse_fields = set(f["name"] for f in schema["fields"] if f.get("type") == "SPARSE_FLOAT_VECTOR")
    dropped = function_outputs(schema)
    keyed = any(f.get("is_partition_key") for f in schema["fields"])
    # With a partition key Milvus places the rows itself: they are read as a whole and inserted without partition names.
    partitions = [None] if keyed else info["partitions"]
    objects = []
    total = 0
    for part_number, partition in enumerate(partitions):
        counter = [0]
        stream = _row_stream(conn, database, name, partition, batch_size, sparse_fields, dropped, counter)
        record = ctx.store("milvus/%s/%s/part-%d.jsonl" % (database, name, part_number), stream)
        objects.append({"object": record["name"], "partition": partition, "rows": counter[0]})
        total += counter[0]
    counted = _count(conn, database, name)
    if counted is not None and counted != total:
        raise EngineError("collection %s (database %s): %d rows were exported but the collection counts %d (rows written meanwhile?)"
                          % (name, database, total, counted), hint="Run the backup again when no rows are being written or deleted")
    return {"database": database, "name": name, "row_count": total, "schema": schema, "indexes": info["indexes"],
            "partitions": info["partitions"], "partition_key": keyed, "objects": objects}


def _count(conn, database, name):
    result = conn.do(database, "count(*) of %s" % name, "query", name, filter="", output_fields=["count(*)"], consistency_level="Strong")
    for row in result or []:
        if "count(*)" in row:
            return int(row["count(*)"])
    return None


# Restore ------------------------------------------------------------------------


def _selected(manifest, options):
    saved = (manifest.get("milvus") or {}).get("collections") or []
    named = options.get("collections") or []
    if not named:
        return saved
    result = []
    for entry in named:
        found = [c for c in saved if entry in (c["name"], "%s.%s" % (c["database"], c["name"]))]
        if not found:
            raise ConfigError("collection %s is not in backup %s" % (entry, manifest["backup_id"]),
                              hint="Collections in it: %s" % ", ".join("%s.%s" % (c["database"], c["name"]) for c in saved))
        result.extend(c for c in found if c not in result)
    return result


def plan_import(repository, manifest, request):
    conn = Client(request.connection)
    selected = _selected(manifest, request.options)
    existing = {}
    clashes = []
    for saved in selected:
        database = saved["database"]
        if database not in existing:
            databases = conn.do(DEFAULT_DATABASE, "list_databases", "list_databases")
            existing[database] = conn.do(database, "list_collections", "list_collections") if database in databases else []
        if saved["name"] in existing[database]:
            clashes.append("%s.%s" % (database, saved["name"]))
    if clashes and not request.force:
        raise ConfigError("Milvus at %s already has the collections %s: a restore goes into collections that do not exist"
                          % (conn.uri, ", ".join(clashes)),
                          hint="Drop them, restore only other collections (collections), or set force: true to drop and replace them")
    for saved in selected:
        for record in saved["objects"]:
            _record(manifest, record["object"])
    return {
        "server": conn.uri,
        "collections": ["%s.%s" % (c["database"], c["name"]) for c in selected],
        "rows": dict(("%s.%s" % (c["database"], c["name"]), c["row_count"]) for c in selected),
        "replaces": clashes,
        "auto_id_disabled": ["%s.%s" % (c["database"], c["name"]) for c in selected if c["schema"]["auto_id"]],
    }


def _record(manifest, name):
    for record in manifest["objects"]:
        if record["name"] == name:
            return record
    raise EngineError("backup %s lists the object %s in its collections but not in its objects" % (manifest["backup_id"], name),
                      hint="The manifest is damaged; restore another backup")


def build_schema(module, schema):
    datatype = module.DataType
    collection = module.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=schema.get("enable_dynamic_field", False),
                                                   description=schema.get("description") or "")
    outputs = function_outputs(schema)
    for field in schema["fields"]:
        kwargs = dict(field.get("params") or {})
        for key in ("is_primary", "nullable", "default_value", "is_partition_key", "is_clustering_key", "description", "max_length",
                    "max_capacity", "dim"):
            if field.get(key) not in (None, ""):
                kwargs[key] = field[key]
        if field.get("element_type"):
            kwargs["element_type"] = getattr(datatype, field["element_type"])
        if field["name"] in outputs:
            kwargs["is_function_output"] = True
        kwargs["auto_id"] = False
        collection.add_field(field["name"], getattr(datatype, field["type"]), **kwargs)
    for function in schema.get("functions") or []:
        kind = getattr(module.FunctionType, str(function.get("type")))
        collection.add_function(module.Function(function["name"], kind, input_field_names=function.get("input_field_names"),
                                                output_field_names=function.get("output_field_names"), params=function.get("params") or {}))
    return collection


def _rows(repository, manifest, record, batch_size, sparse_fields):
    """Batches of decoded rows of one object, read a chunk at a time."""
    source = ObjectSource(repository.repo, object_key(manifest, record), record, repository.master_key)
    batch = []
    rest = b""
    with source:
        while True:
            chunk = source.read(READ_CHUNK)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line.strip():
                    batch.append(decode_row(json.loads(line.decode("utf-8")), sparse_fields))
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
    if rest.strip():
        batch.append(decode_row(json.loads(rest.decode("utf-8")), sparse_fields))
    if batch:
        yield batch


def run_import(repository, manifest, request):
    plan = plan_import(repository, manifest, request)
    conn = Client(request.connection)
    module = _pymilvus()
    batch_size = _batch_size(request.options)
    restored = []
    for saved in _selected(manifest, request.options):
        database, name = saved["database"], saved["name"]
        if database != DEFAULT_DATABASE and database not in conn.do(DEFAULT_DATABASE, "list_databases", "list_databases"):
            conn.do(DEFAULT_DATABASE, "create_database %s" % database, "create_database", database)
        if conn.do(database, "has_collection %s" % name, "has_collection", name):
            conn.do(database, "drop_collection %s" % name, "drop_collection", name)
        try:
            restored.append(_import_collection(conn, module, repository, manifest, saved, batch_size))
        except BaseException:
            # No half-restored collection is left that looks usable.
            try:
                conn.do(database, "drop_collection %s" % name, "drop_collection", name)
            except EngineError:
                pass
            raise
    return {"server": conn.uri, "collections": restored, "auto_id_disabled": plan["auto_id_disabled"], "replaced": plan["replaces"]}


def _import_collection(conn, module, repository, manifest, saved, batch_size):
    """Create one collection as saved, insert its rows, flush, index, load and count it."""
    database, name, schema = saved["database"], saved["name"], saved["schema"]
    kwargs = {}
    if saved.get("partition_key") and schema.get("num_partitions"):
        kwargs["num_partitions"] = int(schema["num_partitions"])
    if schema.get("consistency_level"):
        kwargs["consistency_level"] = schema["consistency_level"]
    if schema.get("num_shards"):
        kwargs["shards_num"] = int(schema["num_shards"])
    conn.do(database, "create_collection %s" % name, "create_collection", name, schema=build_schema(module, schema), **kwargs)
    if schema.get("properties"):
        # Collection properties (TTL, mmap, ...) as they were.
        conn.do(database, "alter_collection_properties %s" % name, "alter_collection_properties", name, properties=dict(schema["properties"]))
    if not saved.get("partition_key"):
        present = set(conn.do(database, "list_partitions %s" % name, "list_partitions", name) or [])
        for partition in saved["partitions"]:
            if partition not in present:
                conn.do(database, "create_partition %s.%s" % (name, partition), "create_partition", name, partition)
    sparse_fields = set(f["name"] for f in schema["fields"] if f.get("type") == "SPARSE_FLOAT_VECTOR")
    inserted = 0
    for entry in saved["objects"]:
        record = _record(manifest, entry["object"])
        for batch in _rows(repository, manifest, record, batch_size, sparse_fields):
            extra = {"partition_name": entry["partition"]} if entry.get("partition") else {}
            conn.do(database, "insert into %s" % name, "insert", name, batch, **extra)
            inserted += len(batch)
    conn.do(database, "flush %s" % name, "flush", name)
    if saved["indexes"]:
        params = conn.do(database, "prepare_index_params", "prepare_index_params")
        for index in saved["indexes"]:
            extra = dict((k, index[k]) for k in ("index_name", "index_type", "metric_type") if index.get(k))
            params.add_index(field_name=index["field_name"], params=dict(index.get("params") or {}), **extra)
        conn.do(database, "create_index on %s" % name, "create_index", name, params)
    conn.do(database, "load_collection %s" % name, "load_collection", name)
    counted = _count(conn, database, name)
    if inserted != saved["row_count"] or (counted is not None and counted != saved["row_count"]):
        raise EngineError("collection %s (database %s) holds %s rows after the restore, the backup %d (%d inserted)"
                          % (name, database, counted, saved["row_count"], inserted),
                          hint="Restore again with force: true into a server nobody writes to; the collection was dropped")
    return {"database": database, "name": name, "rows": counted if counted is not None else inserted,
            "indexes": [i["index_name"] for i in saved["indexes"]], "partitions": saved["partitions"]}


# milvus-backup (EXPERIMENTAL) ----------------------------------------------------------


def milvus_backup_tool(options):
    extra = [options["bin_dir"]] if options.get("bin_dir") else []
    path = tools.find_tool("milvus-backup", extra, required=False)
    if path is None:
        raise MissingDependency("the tool milvus-backup is not installed on this host",
                                hint="Download it from %s (or brew install zilliztech/tap/milvus-backup) and put it on PATH, "
                                     "or set bin_dir to its directory" % MILVUS_BACKUP_URL)
    return path


def _backend(options):
    """The milvus-backup configuration file named by option backend, and what its minio section says."""
    path = options.get("backend")
    if not path:
        raise ConfigError("method milvus-backup needs backend: the path of a milvus-backup configuration file (backup.yaml) on the host",
                          hint="Give the file that configures milvus-backup's object storage (its minio section: bucketName, rootPath, "
                               "backupBucketName, backupRootPath, keys); its milvus section is replaced by connection")
    try:
        with open(path) as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read the milvus-backup configuration %s: %s" % (path, exc), hint="Set backend to a readable backup.yaml")
    storage = _section(text, "minio")
    bucket = storage.get("backupBucketName") or storage.get("bucketName")
    if not bucket:
        raise ConfigError("the milvus-backup configuration %s names no bucket (minio.bucketName or minio.backupBucketName)" % path,
                          hint="Configure the object storage milvus-backup and Milvus use in its minio section")
    return {"path": path, "text": text, "bucket": bucket, "root_path": storage.get("backupRootPath") or "backup"}


def _section(text, name):
    """The scalar keys of a top-level section of a simple YAML file (enough for milvus-backup's backup.yaml)."""
    values = {}
    inside = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.split("#", 1)[0].strip() == name + ":"
            continue
        if inside and ":" in line and len(line) - len(line.lstrip()) == 2:
            key, value = line.strip().split(":", 1)
            value = value.split(" #", 1)[0].strip().strip("\"'")
            if value:
                values[key.strip()] = value
    return values


def _without(text, name):
    """``text`` without its top-level section ``name``."""
    kept = []
    inside = False
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.lstrip().startswith("#"):
            inside = line.split("#", 1)[0].strip() == name + ":"
        if not inside:
            kept.append(line)
    return "\n".join(kept).rstrip("\n") + "\n"


def _q(value):
    return json.dumps(str(value))


def backup_yaml(connection, backend):
    """The user's configuration with its milvus section replaced by the connection's server and credentials."""
    conn = Client(connection)
    host = conn.uri.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
    user, password = conn.user, conn.password
    if conn.token and ":" in conn.token:
        user, password = conn.token.split(":", 1)
    lines = [
        "milvus:",
        "  address: %s" % _q(host),
        "  port: %d" % conn.port,
        "  authorizationEnabled: %s" % ("true" if (user or password) else "false"),
        "  tlsMode: %d" % (1 if conn.uri.startswith("https://") else 0),
        "  user: %s" % _q(user or ""),
        "  password: %s" % _q(password or ""),
    ]
    return _without(backend["text"], "milvus") + "\n".join(lines) + "\n"


class Config(object):
    """A private directory holding backup.yaml for one run; removed on exit."""

    def __init__(self, connection, backend):
        self.text = backup_yaml(connection, backend)
        self.directory = None
        self.path = None

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix="milvus-backup-")
        self.path = os.path.join(self.directory, "backup.yaml")
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self.text)
        return self

    def __exit__(self, exc_type, exc, tb):
        shutil.rmtree(self.directory, ignore_errors=True)


def _split_collections(options):
    databases, collections = [], []
    for entry in options.get("collections") or []:
        if "." in entry:
            database, name = entry.split(".", 1)
            databases.append(database)
            collections.append(name)
        else:
            collections.append(entry)
    return databases, collections


def _tool_run(argv, what, timeout, secrets):
    try:
        return tools.run(argv, timeout=timeout, what=what)
    except ToolError as exc:
        message = exc.message
        for secret in secrets:
            if secret:
                message = message.replace(secret, HIDDEN)
        raise ToolError(message, hint="Check the Milvus address and credentials and the object storage (backend) milvus-backup uses")


def plan_tool_backup(request):
    tool = milvus_backup_tool(request.options)
    backend = _backend(request.options)
    conn = Client(request.connection)
    return {"server": conn.uri, "tool": tool, "bucket": backend["bucket"], "root_path": backend["root_path"], "config": backend["path"],
            "collections": list(request.options.get("collections") or []), "databases": list(conn.databases),
            "warnings": ["method milvus-backup is EXPERIMENTAL: it has only run against a fake milvus-backup; the data stays in bucket %s, "
                         "and deleting the backup from the repository (backup_retention) leaves it there: remove it with milvus-backup delete -n"
                         % backend["bucket"]]}


def backup_name(ctx):
    return "dp_" + "".join(c if c.isalnum() else "_" for c in ctx.backup_id)


def run_tool_backup(request, ctx):
    tool = milvus_backup_tool(request.options)
    backend = _backend(request.options)
    conn = Client(request.connection)
    name = backup_name(ctx)
    timeout = int(request.options.get("operation_timeout") or DEFAULT_TIMEOUT)
    databases, collections = _split_collections(request.options)
    if not databases and conn.databases != [DEFAULT_DATABASE]:
        databases = list(conn.databases)
    secrets = (conn.password, conn.token)
    started = utcnow()
    with Config(request.connection, backend) as config:
        argv = [tool, "create", "-n", name]
        if databases:
            argv += ["-d", ",".join(sorted(set(databases)))]
        if collections:
            argv += ["-c", ",".join(collections)]
        _tool_run(argv + ["--config", config.path], "milvus-backup create", timeout, secrets)
        try:
            out, dummy = _tool_run([tool, "get", "-n", name, "--config", config.path], "milvus-backup get", timeout, secrets)
            ctx.store("milvus-backup-%s.txt" % name, [out.encode("utf-8")])
        except BaseException:
            try:
                tools.run([tool, "delete", "-n", name, "--config", config.path], timeout=timeout, check=False)
            except ToolError:
                pass
            raise
    return {
        "start_time": started,
        "end_time": utcnow(),
        "consistency": "collection",
        "milvus_backup": {"name": name, "bucket": backend["bucket"], "path": "%s/%s" % (backend["root_path"].strip("/"), name),
                          "server": conn.uri, "databases": databases, "collections": collections},
    }


def plan_tool_restore(manifest, request):
    tool = milvus_backup_tool(request.options)
    backend = _backend(request.options)
    info = manifest["milvus_backup"]
    if backend["bucket"] != info["bucket"]:
        raise ConfigError("backup %s is in bucket %s, but the configuration %s names bucket %s"
                          % (manifest["backup_id"], info["bucket"], backend["path"], backend["bucket"]),
                          hint="Give a configuration (backend) whose minio.backupBucketName is %s" % info["bucket"])
    return {"tool": tool, "name": info["name"], "bucket": info["bucket"], "path": info["path"], "drop_existing": bool(request.force),
            "warnings": ["method milvus-backup is EXPERIMENTAL: it has only run against a fake milvus-backup"]}


def run_tool_restore(manifest, request):
    plan = plan_tool_restore(manifest, request)
    backend = _backend(request.options)
    conn = Client(request.connection)
    timeout = int(request.options.get("operation_timeout") or DEFAULT_TIMEOUT)
    with Config(request.connection, backend) as config:
        argv = [plan["tool"], "restore", "-n", plan["name"], "--restore_index"]
        if request.force:
            argv += ["--drop_exist_collection"]
        out, dummy = _tool_run(argv + ["--config", config.path], "milvus-backup restore", timeout, (conn.password, conn.token))
    return {"server": conn.uri, "name": plan["name"], "bucket": plan["bucket"], "path": plan["path"], "output": out.strip()[-2000:]}
