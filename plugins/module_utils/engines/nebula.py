# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nebula Graph: volume snapshots after a flush of every graph space, and the BR tool (both EXPERIMENTAL).

Method ``nebula-br`` is described in the second half of this docstring.

EXPERIMENTAL: this code has never run against a real Nebula Graph (none can
run on the machines that test this collection).  It is tested against a fake
``nebula-console`` built from the documented statements and output: the nGQL
guide's "Job statements" page (``SUBMIT JOB FLUSH``, ``SHOW JOB <id>`` and its
columns ``Job Id(TaskId) | Command(Dest) | Status | Start Time | Stop Time |
Error Code``), "SHOW HOSTS", "SHOW ROLES", "Roles and privileges", the Nebula
Console page (``-addr -port -u -p -e``) and nebula-console's source (how
``-e`` echoes each statement after a ``(user@nebula) [space]>`` prompt, prints
go-pretty tables, and prints ``[ERROR (code)]: message`` for a failed
statement while still exiting 0).

Before the volumes are snapshotted, every graph space the user sees gets
``USE <space>; SUBMIT JOB FLUSH``, and the job is polled with ``SHOW JOB <id>``
until it is FINISHED (FAILED or STOPPED refuses the backup before any
snapshot).  The job makes the storage hosts write the space's RocksDB
memtables to SST files.

Consistency, decided: the manifest says ``consistency: crash`` with
``flushed: true``, the spaces and the job ids.  A flush does not stop writes:
whatever is written between the flush and the snapshot lives only in the
memtables and in the write-ahead log, exactly as after a power loss.  What
makes a volume snapshot restorable is that the storage host's data path (the
RocksDB files and the raft write-ahead log Nebula keeps next to them) is
captured at one instant, which is crash consistency; the flush only shortens
the log a restarted storaged replays.  It is therefore not recorded as
``application``.  A host whose ``--wal_path`` lies on another volume than
its ``--data_path`` is not even crash-consistent unless the provider
snapshots both volumes at the same instant.

A cluster with several storage hosts is several volumes, which the provider
snapshots one after the other: not one point in time across the hosts (raft
replicas of a partition may disagree).  The plan warns.  The meta service
(metad) keeps the schema and the spaces in its own data path: a restorable
cluster needs its volume too.

``nebula-console`` takes the password on its command line only: it has no
environment variable and no file for it (without ``-p`` it prompts on a
terminal).  So the password is visible in the process list of this host while
a console runs (one short run per statement batch).  It is kept out of every
error message and result: what the console prints is scrubbed of it.

Options: ``connection.host`` (default 127.0.0.1, a graphd), ``connection.port``
(default 9669), ``connection.user`` (default root, the only GOD user),
``connection.password`` (required).  ``snapshot.data_dir`` names the storage
data path on this host for a local provider (btrfs, lvm), as with Qdrant:
the server is not asked where it is.  Nebula exposes no stable cluster
identity through nGQL, so none is recorded.

Method ``nebula-br`` (EXPERIMENTAL, never run against a real Nebula Graph or a
real BR): the upstream Backup & Restore tool ``br`` (vesoft-inc/nebula-br, its
README and the docs' "Use BR to back up data" / "restore" pages; its
subcommands ``br backup full --meta <addr> --storage <uri> [--spaces <name>]...
[--s3.endpoint --s3.region --s3.access_key --s3.secret_key] [--log <file>]``,
``br restore full ... --name <backup>``, ``br cleanup ... --name <backup>``).
It is tested against a fake ``br`` built from that documentation and from
BR's published source: on success it prints ``Start to backup cluster...``,
its logrus JSON log lines (one carries ``"name": "BACKUP_<yyyy_mm_dd_hh_mm_ss>"``)
and ``Backup succeed.``; on failure ``Backup failed: <error>, will try to
clean the remaining garbage...``, then ``Cleanup backup <name> successfully
after backup failed.`` when its own cleanup worked, and exits non-zero.  The
backup is laid out under ``<storage>/<name>/``: ``<name>.meta``, ``meta/``
and ``data/<host:port>/data<n>/<space id>/``.

``backend: s3`` (the default; it needs an S3 repository): BR's agents on the
cluster hosts upload the checkpoints straight into the repository's bucket,
under ``<repo prefix>/<cluster>/nebula-br/`` (next to the cluster's backups,
outside the ``backups/`` tree the catalog reads).  The collection's own backup
stores one small object, ``nebula-br.json``, the list of BR's files with
their sizes as read back from the bucket after BR finished; the manifest
records ``nebula_br`` (the BR backup name, the storage URI, the meta address,
the spaces).  BR takes S3 credentials only as flags (no environment variable
and no file: its agents get them in each request), so the repository's
``secret_key`` is on BR's command line while it runs; the plan warns, and
every message is scrubbed of it.  A repository without static keys
(credential chain) or with a session token cannot be used.  Restores run
``br restore full --name``: BR stops metad and storaged through its agents and
replaces the whole cluster's data, so ``force: true`` is required.  Deleting a
backup (backup_retention) leaves BR's files in the bucket: remove them with
``br cleanup --name``.

``backend: local`` (EXPERIMENTAL too, tested against the fake console's
``CREATE SNAPSHOT`` / ``SHOW SNAPSHOTS`` / ``DROP SNAPSHOT``, built from the
docs' "Manage snapshots" page, with real directories): ``CREATE SNAPSHOT``
(GOD, i.e. root; the meta service's CreateSnapshotProcessor in Nebula's
source blocks writes on every storage engine, makes the checkpoints of every
storage engine and of the meta engine, then unblocks), then the checkpoints
``<data_path>/nebula/<space id>/checkpoints/<snapshot>`` of the hosts on this
machine are streamed as one tar object per data path, then ``DROP SNAPSHOT``
on every path out (success or failure).  The module reads local disks only:
``nodes`` names the hosts that run here with their data paths
(``host:port=<data path>[,<data path>]``, storage or meta hosts); the plan lists
the storage hosts it does not take.  A multi-host cluster needs a run on each
host, and each run makes a snapshot of its own, at its own point in time: the
plan says so.  Restore (into ``data_dir``, one node per run, ``nodes:
[host:port]`` when the backup has several): the checkpoint's ``data`` and
``wal`` become ``<data_dir>/nebula/<space id>/data`` and ``wal`` of a stopped
storaged (or metad, ``nebula/0``) - the docs' manual snapshot restore steps;
starting the services, metad first, is left to the user.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    DataProtectionError,
    EngineError,
    RepositoryError,
    ToolError,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import volume
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import utcnow

METHODS = ("volume-snapshot", "nebula-br")
ENGINE = "nebula"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9669
DEFAULT_USER = "root"
CONSOLE = "nebula-console"
CONSOLE_PACKAGE = "nebula-console (a release binary from https://github.com/vesoft-inc/nebula-console/releases)"
CONSOLE_DIRS = ("/usr/local/nebula/bin", "/usr/local/nebula/console", "/opt/nebula*/bin")
CONSOLE_TIMEOUT = 300
FLUSH_TIMEOUT = 3600
POLL_SECONDS = 1.0
# Roles that may submit jobs in a space (the 2.x role table has SUBMIT JOB FLUSH for GOD only; later versions also ADMIN).
JOB_ROLES = ("GOD", "ADMIN")
E_BAD_PERMISSION = -1008
HIDDEN = "********"
_PROMPT = re.compile(r"^\(.*@nebula\) \[.*\]> ?(.*)$")
_ERROR = re.compile(r"^\[ERROR \((-?\d+)\)\]: ?(.*)$")
_BORDER = re.compile(r"^\+[-+]+\+$")


def find_binary(name, bin_dir, dirs, package):
    """``name`` in ``bin_dir`` (connection.bin_dir) when given, else on PATH or in the usual directories."""
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return tools.find_tool(name, extra_dirs=dirs, package=package)


def quote_name(name):
    """A space name as an nGQL identifier in backquotes."""
    if "`" in name or "\n" in name:
        raise EngineError("the graph space name %r cannot be quoted for nGQL" % name)
    return "`%s`" % name


def _value(text):
    """A cell as nebula-console prints it: strings in double quotes (Go-escaped), numbers bare, __NULL__ for null."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text[1:-1]
    if text in ("__NULL__", "__EMPTY__"):
        return None
    if re.match(r"^-?\d+$", text):
        return int(text)
    return text


def _cells(line, border):
    """The cells of one table line, cut where the border line has its ``+`` (go-pretty aligns them); ``|``-split otherwise."""
    if len(line) == len(border):
        cuts = [i for i, char in enumerate(border) if char == "+"]
        if all(line[i] == "|" for i in cuts):
            return [line[cuts[k] + 1:cuts[k + 1]] for k in range(len(cuts) - 1)]
    return line.strip().strip("|").split(" | ")


def parse_table(lines):
    """Columns and rows (values decoded) of the go-pretty table in ``lines``; ([], []) when there is none."""
    borders = [i for i, line in enumerate(lines) if _BORDER.match(line.strip())]
    if len(borders) < 2:
        return [], []
    border = lines[borders[0]].strip()
    header = lines[borders[0] + 1].strip()
    columns = [cell.strip() for cell in _cells(header, border)]
    rows = []
    for line in lines[borders[1] + 1:borders[-1]]:
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [_value(cell) for cell in _cells(line, border)]
        rows.append(dict(zip(columns, cells)))
    return columns, rows


def parse_output(text, statements):
    """One result per statement of a ``nebula-console -e`` run: {statement, columns, rows} or {statement, error_code, error}."""
    blocks = []
    for line in text.splitlines():
        match = _PROMPT.match(line)
        if match:
            blocks.append({"echo": match.group(1), "lines": []})
        elif blocks:
            blocks[-1]["lines"].append(line)
    if len(blocks) != len(statements):
        return None
    results = []
    for statement, block in zip(statements, blocks):
        result = {"statement": statement}
        for line in block["lines"]:
            error = _ERROR.match(line.strip())
            if error:
                result.update({"error_code": int(error.group(1)), "error": error.group(2).strip()})
                break
        if "error" not in result:
            result["columns"], result["rows"] = parse_table(block["lines"])
        results.append(result)
    return results


class Connection(object):
    """How to reach a graphd with ``nebula-console``: host, port, user, password; one console run per batch of statements."""

    def __init__(self, params, console=None):
        params = dict(params or {})
        self.host = params.get("host") or DEFAULT_HOST
        self.port = int(params.get("port") or DEFAULT_PORT)
        self.user = params.get("user") or DEFAULT_USER
        self.password = params.get("password")
        if not self.password:
            raise ConfigError(
                "connection.password is needed for Nebula Graph: nebula-console asks for one on a terminal otherwise",
                hint="Set connection.password (with authorization off, enable_authorize=false, any value is accepted)",
            )
        self._console = console
        self.bin_dir = params.get("bin_dir")

    @property
    def console(self):
        if self._console is None:
            self._console = find_binary(CONSOLE, self.bin_dir, CONSOLE_DIRS, CONSOLE_PACKAGE)
        return self._console

    def target(self):
        return "%s:%d" % (self.host, self.port)

    def scrub(self, text):
        """``text`` without the password (nebula-console versions that echo it in a connection error)."""
        text = text or ""
        return text.replace(self.password, HIDDEN) if self.password else text

    def argv(self, statements):
        # nebula-console reads the password from -p only (no environment variable, no file): it is on the command line.
        return [self.console, "-addr", self.host, "-port", str(self.port), "-u", self.user, "-p", self.password, "-e", "\n".join(statements)]

    def run(self, statements, timeout=CONSOLE_TIMEOUT):
        """Run statements in one session; return one result per statement (see ``parse_output``).  Never raises with the password."""
        statements = list(statements)
        try:
            out, err = tools.run(self.argv(statements), input_data="", timeout=timeout, check=False, what=CONSOLE)
        except ToolError as exc:
            raise EngineError("nebula-console could not run against Nebula Graph at %s: %s" % (self.target(), self.scrub(exc.message)))
        results = parse_output(out, statements)
        if results is None:
            said = self.scrub((err or "").strip() or (out or "").strip())
            said = "\n".join(said.splitlines()[-8:])
            raise EngineError(
                "nebula-console could not connect to Nebula Graph at %s as user %s: %s" % (self.target(), self.user, said or "no output"),
                hint="Check connection.host, connection.port (graphd, default 9669), connection.user and connection.password",
            )
        for result in results:
            if "error" in result:
                result["error"] = self.scrub(result["error"])
        return results

    def query(self, statement, space=None, timeout=CONSOLE_TIMEOUT):
        """Rows of one statement (run in ``space`` when given); EngineError on an nGQL error."""
        statements = ([("USE %s" % quote_name(space))] if space else []) + [statement]
        results = self.run(statements, timeout=timeout)
        for result in results:
            if "error" in result:
                raise self.error(result, space)
        return results[-1]["rows"]

    def error(self, result, space=None):
        denied = result["error_code"] == E_BAD_PERMISSION or "permission" in result["error"].lower()
        where = " in space %s" % space if space else ""
        if denied:
            return EngineError(
                "user %s may not run %s%s on Nebula Graph at %s: %s" % (self.user, result["statement"], where, self.target(), result["error"]),
                hint="Jobs need the GOD role (root) or ADMIN of the space: GRANT ROLE ADMIN ON %s TO %s" % (quote_name(space or "<space>"), self.user),
            )
        return EngineError("Nebula Graph at %s refused %s%s: [%d] %s" % (self.target(), result["statement"], where, result["error_code"], result["error"]))


def _status(row):
    for key in ("Status", "status"):
        if key in row:
            return str(row[key] or "").upper()
    values = list(row.values())
    return str(values[2] if len(values) > 2 else "").upper()


def _first(row):
    return list(row.values())[0] if row else None


def space_role(conn, space):
    """The user's role in a space: GOD for root, else what SHOW ROLES IN says (None when it lists none); (role, problem)."""
    if conn.user == "root":
        return "GOD", None
    try:
        rows = conn.query("SHOW ROLES IN %s" % quote_name(space))
    except EngineError as exc:
        return None, exc.message
    for row in rows:
        if row.get("Account") == conn.user:
            return str(row.get("Role Type") or "").upper(), None
    return None, None


def inspect(conn):
    """What a flush needs, read-only: the spaces, the storage hosts, the user's role in each space."""
    spaces = [row.get("Name") for row in conn.query("SHOW SPACES")]
    hosts = []
    for row in conn.query("SHOW HOSTS"):
        hosts.append({"host": row.get("Host"), "port": row.get("Port"), "status": str(row.get("Status") or "").upper(),
                      "version": row.get("Version")})
    roles = {}
    problems = {}
    for space in spaces:
        roles[space], problem = space_role(conn, space)
        if problem:
            problems[space] = problem
    versions = sorted(set(h["version"] for h in hosts if h["version"]))
    return {"spaces": spaces, "hosts": hosts, "roles": roles, "problems": problems, "version": ", ".join(versions) or None}


def plan_snapshot(request, local=False):
    """Read-only: the spaces to flush, the storage hosts (all ONLINE), the user's role in every space."""
    data_dir = volume.storage_dir(request, local, "storage data path (--data_path of nebula-storaged)")
    conn = Connection(request.connection)
    server = inspect(conn)
    offline = ["%s:%s (%s)" % (h["host"], h["port"], h["status"]) for h in server["hosts"] if h["status"] != "ONLINE"]
    if offline:
        raise EngineError("storage hosts of Nebula Graph at %s are not ONLINE: %s" % (conn.target(), ", ".join(offline)),
                          hint="A flush job needs every storage host; bring them back (SHOW HOSTS) or remove them, then back up")
    missing = sorted(s for s in server["spaces"] if server["roles"].get(s) not in JOB_ROLES)
    if missing:
        said = "; ".join("%s: %s" % (s, server["problems"].get(s) or "role %s" % (server["roles"].get(s) or "none")) for s in missing)
        raise EngineError(
            "user %s may not submit the FLUSH job in the graph spaces %s of Nebula Graph at %s (%s)" % (conn.user, ", ".join(missing), conn.target(), said),
            hint="Back up as root (GOD), or GRANT ROLE ADMIN ON <space> TO %s for each of those spaces" % conn.user,
        )
    warnings = ["Nebula Graph: the snapshot is crash-consistent (consistency: crash): SUBMIT JOB FLUSH writes the memtables to SST files "
                "first but does not stop writes; later writes are recovered from the write-ahead log on start"]
    if len(server["hosts"]) > 1:
        warnings.append("Nebula Graph has %d storage hosts: their volumes are snapshotted one after the other, not at one point in time; "
                        "a restore of such a set may hold partitions at different points" % len(server["hosts"]))
    warnings.append("Nebula Graph keeps its schema and spaces in the meta service (nebula-metad): snapshot its data path too, or the storage "
                    "volumes cannot be used on their own")
    if conn.user != "root":
        warnings.append("SHOW SPACES lists only the spaces user %s has a role in: other spaces on the volumes are snapshotted unflushed" % conn.user)
    if not server["spaces"]:
        warnings.append("Nebula Graph at %s has no graph space: nothing is flushed" % conn.target())
    warnings.append("nebula-console takes the password on its command line only: it is visible in this host's process list while it runs")
    return {
        "server": conn.target(),
        "server_version": server["version"],
        "data_dir": data_dir,
        "spaces": server["spaces"],
        "storage_hosts": ["%s:%s" % (h["host"], h["port"]) for h in server["hosts"]],
        "quiesce": "SUBMIT JOB FLUSH in every graph space, each job waited for until FINISHED (writes are not stopped)",
        "warnings": warnings,
    }


class Flush(Quiesce):
    """The FLUSH job of every space, finished before the snapshot.  Nothing is held afterwards: the snapshot stays crash-consistent."""

    consistency = "crash"

    def __init__(self, conn, plan, wait_limit=FLUSH_TIMEOUT, interval=None):
        super(Flush, self).__init__()
        self.conn = conn
        self.plan = plan
        self.wait_limit = wait_limit
        self.interval = POLL_SECONDS if interval is None else interval
        self.jobs = []

    def submit(self, space):
        rows = self.conn.query("SUBMIT JOB FLUSH", space=space)
        job = _first(rows[0]) if rows else None
        if not isinstance(job, int):
            raise EngineError("SUBMIT JOB FLUSH in space %s on Nebula Graph at %s returned no job id" % (space, self.conn.target()))
        return job

    def wait(self, space, job):
        deadline = time.monotonic() + self.wait_limit
        while True:
            rows = self.conn.query("SHOW JOB %d" % job, space=space)
            mine = [r for r in rows if _first(r) == job] or rows[:1]
            status = _status(mine[0]) if mine else ""
            if status == "FINISHED":
                return rows
            if status in ("FAILED", "STOPPED"):
                tasks = ["%s %s" % (r.get("Command(Dest)", _first(r)), _status(r)) for r in rows if r is not mine[0]]
                raise EngineError(
                    "the FLUSH job %d of graph space %s on Nebula Graph at %s ended %s%s; nothing was snapshotted" % (
                        job, space, self.conn.target(), status, " (tasks: %s)" % ", ".join(tasks) if tasks else ""),
                    hint="Read the storaged logs of the failed tasks' hosts, then run the backup again",
                )
            if time.monotonic() > deadline:
                raise EngineError("the FLUSH job %d of graph space %s on Nebula Graph at %s is still %s after %gs; nothing was snapshotted" % (
                    job, space, self.conn.target(), status or "unknown", self.wait_limit),
                    hint="A job waits behind other jobs of the space (SHOW JOBS); run the backup when they are done")
            time.sleep(self.interval)

    def hold(self):
        for space in self.plan["spaces"]:
            job = self.submit(space)
            self.jobs.append({"space": space, "job_id": job})
            self.wait(space, job)
        self.facts.update({"flushed_at": utcnow(), "jobs": list(self.jobs)})


def quiesce(request, plan):
    given = request.options.get("flush_timeout")
    return Flush(Connection(request.connection), plan, wait_limit=FLUSH_TIMEOUT if given is None else float(given))


def snapshot_facts(request, ctx, held):
    """The manifest's facts: the version, the flushed spaces and their job ids."""
    return {
        "engine_version": held.plan.get("server_version"),
        "server": held.plan.get("server"),
        "data_dir": held.plan.get("data_dir"),
        "flushed": True,
        "flushed_spaces": [j["space"] for j in held.jobs],
        "flush_jobs": list(held.jobs),
        "storage_hosts": list(held.plan.get("storage_hosts") or []),
    }


def plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=False):
    if logs is not None:
        raise ConfigError("Nebula Graph volume snapshots have no log chain: point-in-time restores are not offered")
    owner = volume.check_restore(request, data_dir, mounted, "nebula-storaged", "Start nebula-metad and nebula-storaged on %s yourself" % data_dir)
    return {"data_dir": data_dir, "owner": owner, "source_version": manifest.get("engine_version"),
            "flushed_spaces": manifest.get("flushed_spaces") or []}


def finish_snapshot_restore(repository, manifest, request, logs, data_dir):
    return volume.finish_restore(request, data_dir, "nebula-storaged")


def remote_restore_next(manifest, logs):
    return ("Mount the new volumes where each storage host (and the meta service) keeps its data path, with the same host names and "
            "ports as when backup %s was taken, and start nebula-metad, then nebula-storaged: the copy is crash-consistent and each "
            "storage host recovers it from its write-ahead log" % manifest["backup_id"])


# Method nebula-br: the BR tool writing into the repository's bucket ----------------------------------------------------------------

BR = "br"
BR_PACKAGE = "br, the Nebula Graph Backup & Restore tool (a release binary from https://github.com/vesoft-inc/nebula-br/releases)"
BR_DIRS = ("/usr/local/nebula/bin", "/usr/local/bin", "/opt/nebula*/bin")
BR_SUBDIR = "nebula-br"
BR_RECORD = "nebula-br.json"
BACKENDS = ("s3", "local")
_BR_NAME = re.compile(r"^BACKUP_\d{4}(_\d{2}){5}(_\d+)?$")


def _option(request, name, default=None):
    value = request.options.get(name)
    return default if value is None else value


def check_backend(request):
    """The backend asked for: s3, local, or None (s3, which needs an S3 repository)."""
    backend = request.options.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError("backend %r is not a backend of method nebula-br" % backend,
                          hint="Set backend: s3 (BR into an S3 repository) or local (CREATE SNAPSHOT checkpoints of this host)")
    return backend


def _hosts(conn, kind):
    rows = conn.query("SHOW HOSTS %s" % kind)
    return [{"host": row.get("Host"), "port": row.get("Port"), "status": str(row.get("Status") or "").upper(), "version": row.get("Version")}
            for row in rows]


def inspect_br(conn, wanted=None):
    """Read-only, through graphd: the spaces (the wanted ones must exist), the meta and storage hosts (all ONLINE)."""
    spaces = [row.get("Name") for row in conn.query("SHOW SPACES")]
    if wanted:
        unknown = [s for s in wanted if s not in spaces]
        if unknown:
            raise ConfigError("graph spaces %s do not exist on Nebula Graph at %s" % (", ".join(unknown), conn.target()),
                              hint="Spaces there: %s; fix collections or leave it unset to back up every space" % (", ".join(spaces) or "none"))
    metas = _hosts(conn, "META")
    storages = _hosts(conn, "STORAGE")
    offline = ["%s:%s (%s)" % (h["host"], h["port"], h["status"]) for h in metas + storages if h["status"] != "ONLINE"]
    if offline:
        raise EngineError("hosts of Nebula Graph at %s are not ONLINE: %s" % (conn.target(), ", ".join(offline)),
                          hint="BR needs every meta and storage host (and the nebula-agent on each); bring them back (SHOW HOSTS), then retry")
    if not metas:
        raise EngineError("SHOW HOSTS META on Nebula Graph at %s lists no meta host" % conn.target())
    versions = sorted(set(str(h["version"]) for h in metas + storages if h["version"]))
    return {"spaces": spaces, "meta": "%s:%s" % (metas[0]["host"], metas[0]["port"]), "metas": ["%s:%s" % (h["host"], h["port"]) for h in metas],
            "storage_hosts": ["%s:%s" % (h["host"], h["port"]) for h in storages], "version": ", ".join(versions) or None}


def br_binary(request):
    return find_binary(BR, request.connection.get("bin_dir"), BR_DIRS, BR_PACKAGE)


def br_warnings(spaces):
    warnings = [
        "nebula-br: BR takes the S3 secret key as a command-line flag only (no environment variable, no file): the repository's "
        "secret_key is visible in this host's process list while br runs, and BR hands it to the nebula-agent of every host",
        "nebula-br: while BR creates the backup, the meta service blocks DDL and DML statements of the cluster",
    ]
    if spaces:
        warnings.append("nebula-br: --spaces is EXPERIMENTAL in BR, and restoring such a backup erases every other space of the cluster")
    return warnings


def plan_backup(request):
    if request.method != "nebula-br":
        raise ConfigError("method %s of Nebula Graph is not a tool method" % request.method)
    backend = check_backend(request)
    if backend == "local":
        return plan_local(request)
    storage = BrTarget(request.repository.repo, request.cluster, backend).uri
    br = br_binary(request)
    conn = Connection(request.connection)
    wanted = list(request.options.get("collections") or [])
    server = inspect_br(conn, wanted)
    return {
        "server": conn.target(),
        "server_version": server["version"],
        "br": br,
        "backend": backend or "s3 (the repository must be S3)",
        "meta": server["meta"],
        "spaces": wanted or server["spaces"],
        "all_spaces": not wanted,
        "storage_hosts": server["storage_hosts"],
        "storage": storage,
        "warnings": br_warnings(wanted),
    }


class BrTarget(object):
    """Where BR reads and writes: ``s3://<bucket>/<prefix>/<cluster>/nebula-br`` of an S3 repository, with its flags."""

    def __init__(self, repo, cluster, backend=None):
        if getattr(repo, "type", None) != "s3":
            if backend == "s3":
                raise ConfigError("backend s3 of method nebula-br needs an S3 repository; %s is not one" % repo.location(),
                                  hint="Use a repository with type s3, or method volume-snapshot")
            raise ConfigError("method nebula-br writes through BR into an S3 bucket by default; repository %s is not on S3" % repo.location(),
                              hint="Use a repository with type s3, or set backend: local (CREATE SNAPSHOT checkpoints of this host, with nodes)")
        spec = repo.spec
        if not spec.get("access_key") or spec.get("session_token"):
            raise ConfigError(
                "BR needs a static access key and secret key for repository %s (it takes no session token and no credential chain)" % repo.location(),
                hint="Give the repository access_key and secret_key of a user allowed to write under its prefix",
            )
        self.repo = repo
        self.secret = spec["secret_key"]
        self.dir_key = "%s/%s/" % (cluster, BR_SUBDIR)
        path = "/".join(p for p in (spec.get("prefix"), cluster, BR_SUBDIR) if p)
        self.uri = "s3://%s/%s/" % (spec["bucket"], path)
        region = spec.get("region")
        endpoint = spec.get("endpoint_url") or ("https://s3.%s.amazonaws.com" % region if region else "https://s3.amazonaws.com")
        self.flags = ["--storage", self.uri, "--s3.endpoint", endpoint]
        if region:
            self.flags += ["--s3.region", region]
        self.flags += ["--s3.access_key", spec["access_key"], "--s3.secret_key", self.secret]
        self.ca_bundle = spec.get("ca_bundle")

    def scrub(self, text):
        text = text or ""
        return text.replace(self.secret, HIDDEN) if self.secret else text

    def shown(self, argv):
        return [self.scrub(a) for a in argv]

    def names(self):
        """The BR backups in the directory (from the bucket's listing)."""
        found = set()
        for info in self.repo.list(self.dir_key):
            first = info.key[len(self.dir_key):].split("/", 1)[0]
            if _BR_NAME.match(first):
                found.add(first)
        return found

    def files(self, name):
        prefix = "%s%s/" % (self.dir_key, name)
        return [(info.key[len(prefix):], info.size) for info in self.repo.list(prefix)]

    def delete(self, name):
        self.repo.delete_many([info.key for info in self.repo.list("%s%s/" % (self.dir_key, name))])


def _br_name(text):
    """The backup name BR logged (its JSON log lines carry ``name``), or None."""
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        name = record.get("name") if isinstance(record, dict) else None
        if isinstance(name, str) and _BR_NAME.match(name):
            return name
    return None


def _tail(text, lines=12):
    return "\n".join((text or "").strip().splitlines()[-lines:])


class BrRun(object):
    """One br invocation with its own log file (BR appends to ``br.log`` in the working directory otherwise)."""

    def __init__(self, br, target, meta, timeout):
        self.br = br
        self.target = target
        self.meta = meta
        self.timeout = timeout

    def run(self, words, extra=()):
        """(stdout, stderr, exit code) of ``br <words> --meta ... <storage flags> <extra>``, scrubbed of the secret key."""
        workdir = tempfile.mkdtemp(prefix="dp-nebula-br-")
        try:
            argv = [self.br] + list(words) + ["--meta", self.meta] + list(self.target.flags) + list(extra) + ["--log", os.path.join(workdir, "br.log")]
            try:
                proc = subprocess.run(argv, env=tools.tool_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      timeout=self.timeout, universal_newlines=True, cwd=workdir, check=False)
            except subprocess.TimeoutExpired:
                raise EngineError("br %s did not finish within %s seconds (operation_timeout)" % (" ".join(words), self.timeout))
            except OSError as exc:
                raise EngineError("br %s could not run: %s" % (" ".join(words), self.target.scrub(str(exc))))
            return self.target.scrub(proc.stdout), self.target.scrub(proc.stderr), proc.returncode
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _cleanup(runner, target, name, own_cleanup_done):
    """Remove a failed BR backup: ``br cleanup --name`` (unless BR's own cleanup said it worked), then whatever is left in the bucket.

    Never raises: returns what was done, for the error message of the failed backup."""
    said = "BR cleaned up %s itself" % name if own_cleanup_done else None
    try:
        if not own_cleanup_done:
            out, err, rc = runner.run(["cleanup"], ["--name", name])
            said = "br cleanup --name %s %s" % (name, "done" if rc == 0 else "failed (exit %d): %s" % (rc, _tail(err or out, 4)))
        left = target.files(name)
        if left:
            target.delete(name)
            said += "; %d files left in the repository were deleted" % len(left)
    except DataProtectionError as exc:
        said = "%s; removing %s failed: %s (remove it with br cleanup --name %s)" % (said or "cleanup", name, target.scrub(exc.message), name)
    return said


def run_backup(request, ctx):
    backend = check_backend(request)
    if backend == "local":
        return run_local(request, ctx)
    target = BrTarget(ctx.repository.repo, request.cluster, backend)
    br = br_binary(request)
    conn = Connection(request.connection)
    wanted = list(request.options.get("collections") or [])
    server = inspect_br(conn, wanted)
    runner = BrRun(br, target, server["meta"], int(_option(request, "operation_timeout", 3600)))
    before = target.names()
    started = utcnow()
    extra = []
    for space in wanted:
        extra += ["--spaces", space]
    try:
        out, err, rc = runner.run(["backup", "full"], extra)
    except EngineError as exc:
        # br did not finish (operation_timeout): a backup it started is named by its new directory only.
        new = sorted(target.names() - before)
        exc.message += "; %s" % "; ".join(_cleanup(runner, target, n, False) for n in new) if new else ""
        raise
    name = _br_name(out) or _br_name(err)
    if name is None:
        new = sorted(target.names() - before)
        name = new[0] if len(new) == 1 else None
    if rc != 0:
        cleaned = None
        if name:
            own = ("Cleanup backup %s successfully" % name) in out
            cleaned = _cleanup(runner, target, name, own)
        raise EngineError(
            "br backup full of Nebula Graph (meta %s) failed (exit %d): %s%s" % (
                server["meta"], rc, _tail(err) or _tail(out), "; %s" % cleaned if cleaned else "; BR named no backup, nothing to clean"),
            hint="Every host needs a running nebula-agent and BR the same version as the cluster; read BR's messages above",
        )
    try:
        if name is None:
            raise EngineError("br backup full reported success but named no backup, and none appeared under %s" % target.uri)
        files = target.files(name)
        if not any(path == "%s.meta" % name for path, dummy in files):
            raise EngineError("br backup full reported success but %s%s/%s.meta is not in the bucket" % (target.uri, name, name))
        record = {
            "name": name,
            "storage": target.uri,
            "meta": server["meta"],
            "spaces": wanted or server["spaces"],
            "all_spaces": not wanted,
            "files": [{"path": path, "size": size} for path, size in sorted(files)],
            "size": sum(size for dummy, size in files),
        }
        ctx.store(BR_RECORD, [json.dumps(record, indent=1, sort_keys=True).encode("utf-8")])
    except BaseException:
        if name:
            _cleanup(runner, target, name, False)
        raise
    return {
        "start_time": started,
        "end_time": utcnow(),
        "engine_version": server["version"],
        "server": conn.target(),
        "positions": {"br_backup": name, "spaces": record["spaces"]},
        "nebula_br": {"name": name, "storage": target.uri, "meta": server["meta"], "spaces": record["spaces"], "all_spaces": not wanted,
                      "files": len(files), "size": record["size"], "storage_hosts": server["storage_hosts"]},
    }


def owned_prefixes(manifest):
    """BR's files of a ``nebula-br`` backup into S3: under ``<cluster>/nebula-br/<name>/`` of the repository, outside the backup's own prefix.

    Retention deletes them with the backup."""
    info = manifest.get("nebula_br") or {}
    name = info.get("name")
    if manifest.get("method") != "nebula-br" or "nebula_snapshot" in manifest or not name or not _BR_NAME.match(name):
        return []
    return ["%s/%s/%s/" % (manifest["cluster"], BR_SUBDIR, name)]


def restores_into_server(manifest):
    return manifest.get("method") == "nebula-br" and "nebula_snapshot" not in manifest


def _restore_checks(repository, manifest, request, logs):
    if logs is not None:
        raise ConfigError("method nebula-br has no log chain: point-in-time restores are not offered")
    info = manifest.get("nebula_br") or {}
    if not info.get("name"):
        raise ConfigError("backup %s records no BR backup name (nebula_br.name)" % manifest["backup_id"])
    if request.options.get("collections"):
        raise ConfigError("br restore full restores every space of the BR backup; collections cannot choose among them",
                          hint="Remove collections")
    if request.options.get("backend") not in (None, "s3"):
        check_backend(request)
    if not request.force:
        raise ConfigError(
            "br restore full replaces all data of the Nebula Graph cluster behind connection (BR stops its meta and storage services "
            "and puts the backup's data in place of every space)",
            hint="Set force: true to replace the cluster's data with backup %s" % manifest["backup_id"],
        )
    target = BrTarget(repository.repo, manifest["cluster"], "s3")
    name = info["name"]
    if not any(path == "%s.meta" % name for path, dummy in target.files(name)):
        raise RepositoryError("the BR backup %s of backup %s is not under %s any more" % (name, manifest["backup_id"], target.uri),
                              hint="It was deleted outside the collection; restore another backup")
    br = br_binary(request)
    conn = Connection(request.connection)
    server = inspect_br(conn)
    return target, br, conn, server, name


def plan_restore(repository, manifest, request, logs=None):
    if "nebula_snapshot" in manifest:
        return plan_local_restore(repository, manifest, request, logs)
    target, br, conn, server, name = _restore_checks(repository, manifest, request, logs)
    info = manifest["nebula_br"]
    return {
        "server": conn.target(),
        "meta": server["meta"],
        "br": br,
        "br_backup": name,
        "storage": target.uri,
        "spaces": info.get("spaces") or [],
        "replaces": "the whole cluster's data (every graph space), as br restore full does",
        "warnings": [br_warnings([])[0], "nebula-br: BR stops and restarts the cluster's meta and storage services through its agents; "
                     "the target must have the same topology (meta and storage hosts) as the backed-up cluster"],
    }


def restore(repository, manifest, request, logs=None):
    if "nebula_snapshot" in manifest:
        return local_restore(repository, manifest, request, logs)
    target, br, conn, server, name = _restore_checks(repository, manifest, request, logs)
    runner = BrRun(br, target, server["meta"], int(_option(request, "operation_timeout", 3600)))
    out, err, rc = runner.run(["restore", "full"], ["--name", name])
    if rc != 0:
        raise EngineError("br restore full --name %s into Nebula Graph (meta %s) failed (exit %d): %s" % (name, server["meta"], rc, _tail(err) or _tail(out)),
                          hint="BR keeps the replaced data in *_old_<timestamp> directories on the hosts; read BR's messages, then retry or put them back")
    return {
        "server": conn.target(),
        "meta": server["meta"],
        "br_backup": name,
        "spaces": manifest["nebula_br"].get("spaces") or [],
        "next": "BR restarted the meta and storage services: check SHOW HOSTS and the spaces' data on %s" % conn.target(),
    }


# Method nebula-br, backend local: CREATE SNAPSHOT checkpoints of the hosts on this machine --------------------------------------------

SNAPSHOT_SERVER = "nebula-storaged and nebula-metad"
_SNAPSHOT_NAME = re.compile(r"^SNAPSHOT_\d{4}(_\d{2}){5}(_\d+)?$")


def parse_nodes(values):
    """``nodes`` entries ``host:port`` or ``host:port=<data path>[,<data path>...]``: [(node, [paths])]."""
    nodes = []
    for value in values or []:
        node, dummy, paths = str(value).partition("=")
        node = node.strip()
        if not re.match(r"^[^:\s]+:\d+$", node):
            raise ConfigError("nodes entry %r is not host:port or host:port=<data path>" % value,
                              hint="For example nodes: ['storaged0:9779=/usr/local/nebula/data/storage', 'metad0:9559=/usr/local/nebula/data/meta']")
        nodes.append((node, [p.strip() for p in paths.split(",") if p.strip()]))
    return nodes


def _snapshots(conn):
    return dict((row.get("Name"), str(row.get("Status") or "").upper()) for row in conn.query("SHOW SNAPSHOTS"))


def plan_local(request):
    """Read-only: GOD user, every host ONLINE, the nodes on this host with their data paths, the tar tool."""
    conn = Connection(request.connection)
    if conn.user != "root":
        raise ConfigError("CREATE SNAPSHOT needs the GOD role, which only root has; connection.user is %s" % conn.user,
                          hint="Back up with backend local as user root")
    if request.options.get("collections"):
        raise ConfigError("CREATE SNAPSHOT takes every graph space: collections cannot choose among them with backend local",
                          hint="Remove collections, or use backend s3 (BR's --spaces)")
    server = inspect_br(conn)
    nodes = parse_nodes(request.options.get("nodes"))
    local = [(node, paths) for node, paths in nodes if paths]
    if not local:
        raise ConfigError(
            "backend local reads the checkpoints from this host's disks: nodes must name the storage (and meta) hosts that run here, "
            "each with its data path (--data_path)",
            hint="For example nodes: ['storaged0:9779=/usr/local/nebula/data/storage', 'metad0:9559=/usr/local/nebula/data/meta']",
        )
    known = server["storage_hosts"] + server["metas"]
    unknown = [node for node, dummy in nodes if node not in known]
    if unknown:
        raise ConfigError("nodes %s are not hosts of Nebula Graph at %s" % (", ".join(unknown), conn.target()),
                          hint="Its storage hosts: %s; meta hosts: %s (SHOW HOSTS)" % (", ".join(server["storage_hosts"]), ", ".join(server["metas"])))
    for node, paths in local:
        for path in paths:
            if not os.path.isabs(path) or not os.path.isdir(os.path.join(path, "nebula")):
                raise ConfigError("%s is not the data path of %s on this host: it has no nebula directory" % (path, node),
                                  hint="Give the --data_path of that service as it runs here (run the module on the host it runs on)")
    taken = [node for node, dummy in local]
    others = [node for node in server["storage_hosts"] if node not in taken]
    warnings = ["nebula-br backend local: CREATE SNAPSHOT blocks writes while every storage host makes its checkpoints; this run "
                "stores the checkpoints of %s only (read from this host's disks) and drops the snapshot afterwards" % ", ".join(taken)]
    if others:
        warnings.append("nebula-br backend local: the checkpoints of the storage hosts %s are NOT taken by this run; a run on each of "
                        "those hosts makes a snapshot of its own, at another point in time" % ", ".join(others))
    if not [node for node in taken if node in server["metas"]]:
        warnings.append("nebula-br backend local: no meta host is taken: the schema and the spaces live in the meta service's "
                        "nebula/0 checkpoint; without it the storage checkpoints cannot be restored on their own")
    warnings.append("nebula-console takes the password on its command line only: it is visible in this host's process list while it runs")
    return {
        "server": conn.target(),
        "server_version": server["version"],
        "backend": "local",
        "snapshot": "CREATE SNAPSHOT, then the checkpoints <data path>/nebula/<space id>/checkpoints/<snapshot> of the nodes below, "
                    "then DROP SNAPSHOT",
        "nodes": [{"node": node, "data_paths": paths} for node, paths in local],
        "not_taken": others,
        "spaces": server["spaces"],
        "tar": tools.find_tool("tar", package="tar"),
        "warnings": warnings,
    }


def _object_base(node, index):
    return "checkpoints-%s-%d.tar" % (re.sub(r"[^A-Za-z0-9_.-]", "-", node), index)


def _store_checkpoints(ctx, tar, node, index, path, name):
    base = os.path.join(path, "nebula")
    found = sorted(os.path.relpath(d, base) for d in glob.glob(os.path.join(base, "*", "checkpoints", name)) if os.path.isdir(d))
    if not found:
        raise EngineError("snapshot %s left no checkpoint under %s/*/checkpoints/ of %s" % (name, base, node),
                          hint="Check that %s is the data path of %s on this host" % (path, node))
    object_base = _object_base(node, index)
    with tools.StreamingTool([tar, "-C", base, "-cf", "-"] + found, what="tar") as proc:
        record = ctx.store(object_base, proc.stdout)
        proc.finish()
    return {"node": node, "index": index, "data_path": path, "object": record["name"],
            "space_ids": sorted(int(f.split(os.sep)[0]) for f in found if f.split(os.sep)[0].isdigit())}


def run_local(request, ctx):
    plan = plan_local(request)
    conn = Connection(request.connection)
    timeout = int(_option(request, "operation_timeout", 3600))
    before = set(_snapshots(conn))
    started = utcnow()
    created = None
    stored = []
    try:
        result = conn.run(["CREATE SNAPSHOT"], timeout=timeout)[0]
        after = _snapshots(conn)
        new = sorted(n for n in after if n not in before)
        created = new
        if "error" in result:
            raise EngineError("CREATE SNAPSHOT on Nebula Graph at %s failed: [%d] %s" % (conn.target(), result["error_code"], result["error"]),
                              hint="Check SHOW HOSTS and the storaged logs, then back up again")
        valid = [n for n in new if after[n] == "VALID" and _SNAPSHOT_NAME.match(n)]
        if len(valid) != 1:
            raise EngineError("CREATE SNAPSHOT on Nebula Graph at %s made no single VALID snapshot (new: %s)" % (
                conn.target(), ", ".join("%s %s" % (n, after[n]) for n in new) or "none"))
        name = valid[0]
        taken = utcnow()
        for node in plan["nodes"]:
            for index, path in enumerate(node["data_paths"]):
                stored.append(_store_checkpoints(ctx, plan["tar"], node["node"], index, path, name))
    finally:
        problems = []
        for leftover in created or []:
            try:
                conn.query("DROP SNAPSHOT %s" % leftover)
            except EngineError as exc:
                problems.append(exc.message)
    if problems:
        raise EngineError("the checkpoints were stored, but DROP SNAPSHOT failed: %s" % "; ".join(problems),
                          hint="Drop the snapshot by hand (SHOW SNAPSHOTS, DROP SNAPSHOT <name>): its checkpoints hold hard links to the data")
    return {
        "start_time": started,
        "end_time": taken,
        "engine_version": plan["server_version"],
        "server": plan["server"],
        "positions": {"snapshot": name, "nodes": [n["node"] for n in plan["nodes"]]},
        "nebula_snapshot": {"name": name, "checkpoints": stored, "not_taken": plan["not_taken"], "spaces": plan["spaces"]},
    }


def _restore_archive(manifest, request):
    info = manifest["nebula_snapshot"]
    nodes = sorted(set(c["node"] for c in info["checkpoints"]))
    wanted = [node for node, dummy in parse_nodes(request.options.get("nodes"))]
    if len(wanted) > 1 or (not wanted and len(nodes) > 1):
        raise ConfigError("backup %s holds the checkpoints of %s: name the one to restore into data_dir" % (manifest["backup_id"], ", ".join(nodes)),
                          hint="Set nodes: [<host:port>], one node per restore (run it on that node's host)")
    node = wanted[0] if wanted else nodes[0]
    archives = [c for c in info["checkpoints"] if c["node"] == node]
    if not archives:
        raise ConfigError("backup %s holds no checkpoints of %s" % (manifest["backup_id"], node), hint="It holds: %s" % ", ".join(nodes))
    if len(archives) > 1:
        raise ConfigError("%s had %d data paths; restoring a node with several data paths is not offered" % (node, len(archives)),
                          hint="Restore the archives by hand: each holds <space id>/checkpoints/<snapshot>/{data,wal} of one data path")
    return node, archives[0]


def plan_local_restore(repository, manifest, request, logs):
    if logs is not None:
        raise ConfigError("Nebula Graph has no log chain: point-in-time restores are not offered")
    node, archive = _restore_archive(manifest, request)
    data_dir = request.target
    hostfiles.check_target(data_dir, request.force, server=SNAPSHOT_SERVER)
    owner = volume.owner_of(request, SNAPSHOT_SERVER)
    return {
        "data_dir": data_dir,
        "node": node,
        "snapshot": manifest["nebula_snapshot"]["name"],
        "space_ids": archive["space_ids"],
        "owner": owner,
        "layout": "<data_dir>/nebula/<space id>/data and wal, from the checkpoint's data and wal",
        "warnings": ["nebula-br backend local: stop nebula-storaged (and nebula-metad) on this host first; restore every node of the "
                     "backup set the same way (each on its own host), the meta host's nebula/0 included, then start metad, then storaged"],
    }


def local_restore(repository, manifest, request, logs):
    plan = plan_local_restore(repository, manifest, request, logs)
    node, archive = _restore_archive(manifest, request)
    data_dir = request.target
    name = manifest["nebula_snapshot"]["name"]
    record = [o for o in manifest["objects"] if o["name"] == archive["object"]][0]
    tar = tools.find_tool("tar", package="tar")
    with hostfiles.Target(data_dir, 0o755):
        staging = os.path.join(data_dir, ".dp-nebula-restore")
        os.mkdir(staging, 0o700)
        hostfiles.feed_object(repository, manifest, record, [tar, "-x", "-f", "-", "-C", staging, "--no-same-owner"], "tar")
        for space_id in archive["space_ids"]:
            checkpoint = os.path.join(staging, str(space_id), "checkpoints", name)
            target = os.path.join(data_dir, "nebula", str(space_id))
            hostfiles.make_dirs(target)
            for part in ("data", "wal"):
                if os.path.isdir(os.path.join(checkpoint, part)):
                    os.rename(os.path.join(checkpoint, part), os.path.join(target, part))
        shutil.rmtree(staging)
    result = volume.finish_restore(request, data_dir, SNAPSHOT_SERVER)
    result.update({"node": node, "snapshot": name, "space_ids": archive["space_ids"],
                   "next": "Restore the other nodes of backup %s the same way, then start nebula-metad, then nebula-storaged" % manifest["backup_id"],
                   "warnings": plan["warnings"]})
    return result
