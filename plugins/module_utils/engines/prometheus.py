# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus: TSDB snapshots through the admin API, restored into a storage path.

A backup asks the server for a snapshot (``POST /api/v1/admin/tsdb/snapshot``,
head included): Prometheus hard-links its persisted blocks and writes the
samples of its head as one more block under
``<storage.tsdb.path>/snapshots/<name>``.  That directory is read from disk
and streamed into the repository as one tar stream, then removed from the
storage path, also when the streaming fails.  The manifest records the time
range of the data (the blocks' ``meta.json``) and the blocks.  The snapshot is
read from disk, so the backup runs on the Prometheus host.

The server is reached over its HTTP API with the standard library only:
``connection.host`` (default 127.0.0.1; a ``http://`` or ``https://`` URL is
used as the base URL as given, route prefix included), ``connection.port``
(default 9090), basic authentication from ``connection.user`` and
``connection.password``.  An ``https://`` URL is verified against the
system's certificate authorities; client certificates are not supported.

Prometheus has no stable identity to record (no cluster or system id), so a
cluster name is not tied to one server the way PostgreSQL's and MySQL's are.

A restore lays the blocks into an empty (or, with ``force``, a Prometheus)
storage path, owned by ``owner`` (``prometheus``), directories 0750 and files
0640, ready for Prometheus to start on.  With ``start`` it starts Prometheus on
it with a minimal configuration (no scrape jobs, a retention that covers the
backup's data) and waits until ``/-/ready`` answers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError
from ansible_collections.dataprotection.databases.plugins.module_utils.quiesce import Quiesce
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import UTC, format_time, parse_time, utcnow

METHODS = ("tsdb-snapshot", "volume-snapshot")
ENGINE = "prometheus"
SNAPSHOT_OBJECT = "snapshot.tar"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090
DEFAULT_OWNER = "prometheus"
HTTP_TIMEOUT = 60
SNAPSHOT_TIMEOUT = 3600
ADMIN_HINT = ("Start Prometheus with --web.enable-admin-api (Debian: add it to ARGS in /etc/default/prometheus) "
              "and restart it; the backup needs the admin API's snapshot endpoint")
HOST_HINT = ("The snapshot is read from disk: run the backup on the Prometheus host itself (delegate_to it), "
             "with connection.host and connection.port pointing at that server")
BIN_DIRS = ("/usr/bin", "/usr/local/bin", "/opt/prometheus", "/usr/local/prometheus")
# What Prometheus keeps in its storage path besides the blocks.
TSDB_ENTRIES = ("wal", "chunks_head", "wbl", "lock", "queries.active", "snapshots")
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}(\.tmp-for-(deletion|creation))?$")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def ms_time(value):
    """A Prometheus timestamp (milliseconds since the epoch) as an aware datetime."""
    return _EPOCH + datetime.timedelta(milliseconds=int(value))


class Connection(object):
    """How to reach the server's HTTP API: host (or a base URL), port, basic-auth user and password."""

    def __init__(self, params):
        params = dict(params or {})
        self.port = int(params.get("port") or DEFAULT_PORT)
        self.url = tools.http_base_url(params.get("host"), self.port, DEFAULT_HOST)
        self.user = params.get("user")
        self.password = params.get("password")

    def _headers(self):
        headers = {"Accept": "application/json", "User-Agent": "dataprotection.databases"}
        if self.user or self.password:
            pair = ("%s:%s" % (self.user or "", self.password or "")).encode("utf-8")
            headers["Authorization"] = "Basic %s" % base64.b64encode(pair).decode("ascii")
        return headers

    def call(self, path, method="GET", timeout=HTTP_TIMEOUT):
        """One HTTP call; return (status, body as text).  Raises EngineError when the server cannot be reached."""
        request = urllib.request.Request(self.url + path, data=b"" if method == "POST" else None, headers=self._headers(), method=method)
        # No proxy from the environment: the server is this host's (the snapshot is read from its disk).
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read().decode("utf-8", "replace")
            except (IOError, OSError):
                body = ""
            return exc.code, body
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EngineError(
                "cannot reach Prometheus at %s: %s" % (self.url, reason),
                hint="Check connection.host and connection.port and that Prometheus is running (it listens on --web.listen-address)",
            )

    def api(self, path, method="GET", timeout=HTTP_TIMEOUT):
        """Call an API endpoint; return its ``data`` or raise EngineError saying what went wrong."""
        status, body = self.call(path, method, timeout)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if status == 401:
            if self.user:
                raise EngineError(
                    "Prometheus at %s refused the credentials of user %s (HTTP 401)" % (self.url, self.user),
                    hint="Check connection.user and connection.password against basic_auth_users in the server's --web.config.file",
                )
            raise EngineError(
                "Prometheus at %s requires basic authentication (HTTP 401)" % self.url,
                hint="Set connection.user and connection.password to a user of basic_auth_users in the server's --web.config.file",
            )
        if status == 403:
            raise EngineError("Prometheus at %s forbids %s %s (HTTP 403)" % (self.url, method, path),
                              hint="Check the access rules in front of the server (a proxy) for this user")
        error = payload.get("error") if isinstance(payload, dict) else None
        if path.startswith("/api/v1/admin/") and (status == 404 or "admin APIs disabled" in (error or "")):
            raise EngineError("the admin API of Prometheus at %s is disabled (HTTP %d%s)" % (self.url, status, ": %s" % error if error else ""),
                              hint=ADMIN_HINT)
        if not isinstance(payload, dict) or "status" not in payload:
            raise EngineError(
                "%s%s did not answer like the Prometheus HTTP API (HTTP %d): %s" % (self.url, path, status, body.strip()[:200]),
                hint="Check that connection.host and connection.port point at a Prometheus server (and its route prefix, if any)",
            )
        if status != 200 or payload.get("status") != "success":
            raise EngineError("Prometheus at %s: %s %s failed (HTTP %d): %s" % (self.url, method, path, status, error or body.strip()[:200]))
        return payload.get("data")


def inspect(conn):
    """What a backup needs to know about the server, read-only."""
    flags = conn.api("/api/v1/status/flags")
    runtime = conn.api("/api/v1/status/runtimeinfo")
    build = conn.api("/api/v1/status/buildinfo")
    try:
        head = (conn.api("/api/v1/status/tsdb") or {}).get("headStats") or {}
    except EngineError:
        head = {}
    path = flags.get("storage.tsdb.path")
    if not path:
        raise EngineError("Prometheus at %s reports no storage.tsdb.path (is it running in agent mode?)" % conn.url,
                          hint="Only a Prometheus server with a local TSDB can be backed up with tsdb-snapshot")
    if not os.path.isabs(path):
        path = os.path.join(runtime.get("CWD") or "/", path)
    info = {
        "version": build.get("version"),
        "storage_path": os.path.normpath(path),
        "admin_api": str(flags.get("web.enable-admin-api")).lower() == "true",
        "head": {},
    }
    if head.get("numSeries") is not None:
        info["head"] = {"series": head.get("numSeries"), "chunks": head.get("chunkCount")}
        if head.get("numSeries") and head.get("minTime") is not None and head.get("maxTime") is not None:
            info["head"].update({"min_time": format_time(ms_time(head["minTime"])), "max_time": format_time(ms_time(head["maxTime"]))})
    return info


def _user_name():
    import pwd  # pylint: disable=import-outside-toplevel

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def check_storage(conn, path):
    """The server's storage path must be a readable Prometheus TSDB on this host, and writable (to remove the snapshot)."""
    if not os.path.isdir(path):
        raise EngineError("the storage path %s of Prometheus at %s is not on this host" % (path, conn.url), hint=HOST_HINT)
    if not os.access(path, os.R_OK | os.X_OK):
        raise EngineError("the storage path %s of Prometheus at %s cannot be read by %s" % (path, conn.url, _user_name()),
                          hint="Run the backup as root or as the user Prometheus runs as (become: true)")
    if not any(os.path.isdir(os.path.join(path, name)) for name in ("wal", "chunks_head")):
        raise EngineError("%s, the storage path Prometheus at %s reports, does not hold a Prometheus TSDB on this host" % (path, conn.url),
                          hint=HOST_HINT)
    snapshots = os.path.join(path, "snapshots")
    parent = snapshots if os.path.isdir(snapshots) else path
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EngineError("%s cannot remove the snapshot from %s afterwards: it is not writable for it" % (_user_name(), parent),
                          hint="Run the backup as root or as the user Prometheus runs as (become: true)")


def looks_like_tsdb(path, entries):
    """Whether every entry of a directory is something Prometheus keeps in its storage path."""
    for name in entries:
        full = os.path.join(path, name)
        if name in TSDB_ENTRIES:
            continue
        if _ULID.match(name) and os.path.isdir(full):
            continue
        if name.startswith("chunks_snapshot.") or name.endswith(".tmp") and os.path.isdir(full):
            continue
        return False
    return True


def read_blocks(directory):
    """The blocks of a TSDB directory, from their meta.json: ulid, times (ms and ISO-8601), samples, series; oldest first."""
    blocks = []
    for name in sorted(os.listdir(directory)):
        meta = os.path.join(directory, name, "meta.json")
        if not os.path.isfile(meta):
            continue
        try:
            with open(meta) as handle:
                data = json.load(handle)
            min_ms, max_ms = int(data["minTime"]), int(data["maxTime"])
        except (IOError, OSError, ValueError, KeyError, TypeError) as exc:
            raise EngineError("cannot read the block metadata %s: %s" % (meta, exc))
        stats = data.get("stats") or {}
        blocks.append({
            "ulid": data.get("ulid") or name,
            "min_time_ms": min_ms,
            "max_time_ms": max_ms,
            "min_time": format_time(ms_time(min_ms)),
            # maxTime is exclusive: the newest sample is one millisecond before it.
            "max_time": format_time(ms_time(max_ms - 1)),
            "samples": stats.get("numSamples"),
            "series": stats.get("numSeries"),
        })
    blocks.sort(key=lambda block: (block["min_time_ms"], block["ulid"]))
    return blocks


def data_range(blocks):
    """(first sample time, last sample time) over the blocks, as ISO-8601 strings."""
    if not blocks:
        return None, None
    return (format_time(ms_time(min(b["min_time_ms"] for b in blocks))),
            format_time(ms_time(max(b["max_time_ms"] for b in blocks) - 1)))


def plan_backup(request):
    """Check the server, the admin API, the storage path and tar, read-only."""
    conn = Connection(request.connection)
    server = inspect(conn)
    if not server["admin_api"]:
        raise EngineError("the admin API of Prometheus at %s is disabled (web.enable-admin-api is false)" % conn.url, hint=ADMIN_HINT)
    check_storage(conn, server["storage_path"])
    tar = tools.find_tool("tar", package="tar")
    # No "identity": Prometheus has none that is stable, so the cluster name is not tied to one server.
    return {
        "server": conn.url,
        "server_version": server["version"],
        "storage_path": server["storage_path"],
        "head": server["head"],
        "tools": {"tar": {"path": tar}},
        "objects": [SNAPSHOT_OBJECT],
    }


def take_snapshot(conn):
    data = conn.api("/api/v1/admin/tsdb/snapshot?skip_head=false", method="POST", timeout=SNAPSHOT_TIMEOUT)
    name = (data or {}).get("name") if isinstance(data, dict) else None
    if not name or "/" in name or name in (".", ".."):
        raise EngineError("Prometheus at %s answered the snapshot request without a snapshot name: %r" % (conn.url, data))
    return name


def remove_snapshot(storage, name, snapshots_existed):
    """Delete the snapshot directory (and ``snapshots`` when this backup created it and it is empty now)."""
    snapshots = os.path.join(storage, "snapshots")
    shutil.rmtree(os.path.join(snapshots, name), ignore_errors=True)
    if not snapshots_existed:
        try:
            os.rmdir(snapshots)
        except OSError:
            pass
    return not os.path.exists(os.path.join(snapshots, name))


def run_backup(request, ctx):
    conn = Connection(request.connection)
    server = inspect(conn)
    if not server["admin_api"]:
        raise EngineError("the admin API of Prometheus at %s is disabled (web.enable-admin-api is false)" % conn.url, hint=ADMIN_HINT)
    storage = server["storage_path"]
    check_storage(conn, storage)
    tar = tools.find_tool("tar", package="tar")
    snapshots_existed = os.path.isdir(os.path.join(storage, "snapshots"))
    started = utcnow()
    name = take_snapshot(conn)
    taken = utcnow()
    directory = os.path.join(storage, "snapshots", name)
    try:
        if not os.path.isdir(directory):
            raise EngineError(
                "Prometheus at %s wrote the snapshot %s, but %s is not on this host" % (conn.url, name, directory),
                hint="%s. Remove %s on the Prometheus host" % (HOST_HINT, directory),
            )
        blocks = read_blocks(directory)
        if not blocks:
            raise EngineError(
                "the snapshot of Prometheus at %s holds no data: the server has stored no samples yet" % conn.url,
                hint="Back up once Prometheus has scraped its targets (prometheus_tsdb_head_samples_appended_total > 0)",
            )
        with tools.StreamingTool([tar, "-C", directory, "-cf", "-", "."], what="tar") as proc:
            ctx.store(SNAPSHOT_OBJECT, proc.stdout)
            proc.finish()
    finally:
        removed = remove_snapshot(storage, name, snapshots_existed)
    if not removed:
        raise EngineError("the backup was written, but the snapshot %s could not be removed from %s" % (name, storage),
                          hint="Remove it by hand; it holds hard links to the blocks and a copy of the head")
    first, last = data_range(blocks)
    return {
        "start_time": started,
        "end_time": taken,
        "engine_version": server["version"],
        "positions": {"min_time": first, "max_time": last, "blocks": len(blocks),
                      "samples": sum(b["samples"] or 0 for b in blocks)},
        "min_time": first,
        "max_time": last,
        "blocks": blocks,
        "snapshot": name,
        "storage_path": storage,
        "server": conn.url,
    }


# Restore ------------------------------------------------------------------


def _flock_held(path):
    """Whether another open file holds a flock on ``path`` (Prometheus with --storage.tsdb.use-lockfile)."""
    import fcntl  # pylint: disable=import-outside-toplevel

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except (IOError, OSError) as exc:
        return exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
    finally:
        os.close(fd)


def _open_by(path):
    """(pid, command, file) of a process with a file under ``path`` open, else None.

    Read from /proc (Linux); without root only the processes of the same user are seen.
    """
    root = os.path.realpath(path)
    prefix = root.rstrip("/") + "/"
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        if pid == os.getpid():
            continue
        base = "/proc/%d" % pid
        try:
            links = [os.path.join(base, "fd", fd) for fd in os.listdir(os.path.join(base, "fd"))]
        except OSError:
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target == root or target.startswith(prefix):
                try:
                    with open(os.path.join(base, "comm")) as handle:
                        command = handle.read().strip()
                except (IOError, OSError):
                    command = "?"
                return pid, command, target
    return None


def server_using(directory):
    """A sentence when a running server uses the directory, else None."""
    lock = os.path.join(directory, "lock")
    if os.path.exists(lock) and _flock_held(lock):
        return "a Prometheus server holds the lock on %s" % lock
    found = _open_by(directory)
    if found:
        return "process %d (%s) has %s open" % found
    return None


def check_target(data_dir, force):
    """Refuse an in-use or non-empty target (unless ``force``), and with ``force`` anything but a Prometheus storage path."""
    entries = hostfiles.check_target(data_dir, force, server_using, server="the Prometheus server")
    if entries and not looks_like_tsdb(data_dir, entries):
        strange = [name for name in entries if not looks_like_tsdb(data_dir, [name])]
        raise ConfigError(
            "data_dir %s is not a Prometheus storage path: it holds %s" % (data_dir, ", ".join(strange[:5])),
            hint="force replaces only a Prometheus TSDB (blocks, wal, chunks_head); give an empty or new directory",
        )
    return entries


def _owner(request):
    return request.options.get("owner") or DEFAULT_OWNER


def _group_id(group, user):
    if not group:
        return user.pw_gid
    import grp  # pylint: disable=import-outside-toplevel

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError("group %r is not a group on this host" % group)


def _object(manifest):
    records = [o for o in manifest["objects"] if o["name"].startswith(SNAPSHOT_OBJECT)]
    if len(records) != 1:
        raise EngineError("backup %s has no %s object" % (manifest["backup_id"], SNAPSHOT_OBJECT))
    return records[0]


def prometheus_binary(bin_dir=None):
    if bin_dir:
        candidate = os.path.join(bin_dir, "prometheus")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return tools.find_tool("prometheus", BIN_DIRS, "prometheus (Debian: the prometheus package), or set bin_dir")


def _listen(options):
    return options.get("listen_addresses") or "127.0.0.1"


def _port(options):
    return int(options.get("port") or DEFAULT_PORT)


def port_in_use(host, port):
    try:
        probe = socket.create_connection((host, port), timeout=2)
    except (OSError, socket.timeout):
        return False
    probe.close()
    return True


def retention_days(manifest, now=None):
    """Days of retention that keep every restored block: from the oldest sample to now, plus one; at least Prometheus' 15."""
    first = manifest.get("min_time")
    if not first:
        return 15
    age = (now or utcnow()) - parse_time(first)
    return max(15, age.days + 2)


def plan_start(request, data_dir, user):
    """The checks before Prometheus is started on a restored storage path: the user reaches it, the binary, the port; the binary."""
    hostfiles.check_reachable(data_dir, user, "Prometheus")
    binary = prometheus_binary(request.options.get("bin_dir"))
    if port_in_use(_listen(request.options), _port(request.options)):
        raise ConfigError("port %d on %s is in use: Prometheus cannot be started on it" % (_port(request.options), _listen(request.options)),
                          hint="Give another port, or leave start off")
    return binary


def plan_restore(repository, manifest, request, logs=None):
    """What a restore would do; checks the target, the owner, the tools and the port without changing anything."""
    data_dir = request.target
    entries = check_target(data_dir, request.force)
    owner = _owner(request)
    user = hostfiles.lookup_user(owner, "Prometheus")
    _group_id(request.options.get("group"), user)
    if os.geteuid() != 0 and user.pw_uid != os.geteuid():
        raise ConfigError("only root can give the restored files to %s; this restore runs as %s" % (owner, _user_name()),
                          hint="Run it as root (become: true), or set owner to %s" % _user_name())
    record = _object(manifest)
    found = {"tar": tools.find_tool("tar", package="tar")}
    start = bool(request.options.get("start"))
    if start:
        found["prometheus"] = plan_start(request, data_dir, user)
    return {
        "backup_id": manifest["backup_id"],
        "base_end_time": manifest["end_time"],
        "data_dir": data_dir,
        "owner": owner,
        "replaces_entries": len(entries),
        "bytes": record["size"],
        "blocks": len(manifest.get("blocks") or []),
        "min_time": manifest.get("min_time"),
        "max_time": manifest.get("max_time"),
        "tools": found,
        "recovery": "end of backup",
        "start": start,
        "retention_days": retention_days(manifest),
    }


def extract(repository, manifest, data_dir):
    tar = tools.find_tool("tar", package="tar")
    return hostfiles.feed_object(repository, manifest, _object(manifest),
                                 [tar, "-x", "-f", "-", "-C", data_dir, "--no-same-owner", "--no-same-permissions"], "tar")


def set_modes(data_dir, uid, gid):
    """Directories 0750 and files 0640, owned by uid:gid (what Prometheus needs, nothing more)."""
    os.chmod(data_dir, 0o750)
    os.lchown(data_dir, uid, gid)
    for dirpath, dirnames, filenames in os.walk(data_dir):
        for names, mode in ((dirnames, 0o750), (filenames, 0o640)):
            for name in names:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, mode)
                os.lchown(path, uid, gid)


def restore(repository, manifest, request, logs=None):
    """Lay the backup's blocks into the storage path; optionally start Prometheus on it."""
    data_dir = request.target
    owner = _owner(request)
    user = hostfiles.lookup_user(owner, "Prometheus")
    gid = _group_id(request.options.get("group"), user)
    with hostfiles.Target(data_dir, 0o750):
        size = extract(repository, manifest, data_dir)
        blocks = read_blocks(data_dir)
        wanted = set(b["ulid"] for b in manifest.get("blocks") or [])
        missing = sorted(wanted - set(b["ulid"] for b in blocks))
        if missing:
            raise EngineError("the restored backup %s lacks the blocks %s its manifest lists" % (manifest["backup_id"], ", ".join(missing)),
                              hint="Verify the backup with backup_info verify: true; the target was left empty")
        set_modes(data_dir, user.pw_uid, gid)
    first, last = data_range(blocks)
    result = {"data_dir": data_dir, "bytes": size, "owner": owner, "blocks": len(blocks), "min_time": first, "max_time": last}
    if request.options.get("start"):
        result["server"] = start_server(data_dir, user, gid, manifest, request)
    return result


def start_server(data_dir, user, gid, manifest, request):
    """Start Prometheus on the restored storage path, detached, with a minimal configuration; wait until it is ready."""
    options = request.options
    port = _port(options)
    listen = _listen(options)
    timeout = int(options.get("wait_timeout") or 300)
    binary = prometheus_binary(options.get("bin_dir"))
    parent = os.path.dirname(data_dir.rstrip("/")) or "/"
    work = tempfile.mkdtemp(prefix=".dp-prometheus-%d-" % port, dir=parent)
    os.chmod(work, 0o750)
    os.chown(work, user.pw_uid, gid)
    config = os.path.join(work, "prometheus.yml")
    log = os.path.join(work, "prometheus.log")
    with open(config, "w") as handle:
        handle.write("# Started by dataprotection.databases on a restored storage path: no scrape jobs, the restored data only.\n"
                     "global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    os.chmod(config, 0o640)
    os.chown(config, user.pw_uid, gid)
    retention = retention_days(manifest)
    argv = [binary, "--config.file=%s" % config, "--storage.tsdb.path=%s" % data_dir,
            "--web.listen-address=%s:%d" % ("[%s]" % listen if ":" in listen else listen, port),
            "--storage.tsdb.retention.time=%dd" % retention]
    switch = {}
    if os.geteuid() == 0 and user.pw_uid != 0:
        switch = {"user": user.pw_uid, "group": gid, "extra_groups": []}
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=work,
                                    env=tools.tool_env(), start_new_session=True, close_fds=True, **switch)
        except OSError as exc:
            raise EngineError("cannot start %s: %s" % (binary, exc), hint="The restored files are in place in %s" % data_dir)
    os.chown(log, user.pw_uid, gid)
    conn = Connection({"host": "127.0.0.1" if listen in ("0.0.0.0", "::") else listen, "port": port})
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise EngineError("Prometheus exited (%s) on the restored storage path: %s" % (proc.returncode, hostfiles.log_reason(log).strip()),
                              hint="Read %s; the restored files are in place in %s" % (log, data_dir))
        try:
            status, dummy = conn.call("/-/ready", timeout=5)
        except EngineError:
            status = None
        if status == 200:
            break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise EngineError("Prometheus on %s was not ready within %ds" % (data_dir, timeout),
                              hint="Read %s; the restored files are in place" % log)
        time.sleep(0.3)
    return {"pid": proc.pid, "port": port, "url": conn.url, "log": log, "config": config, "retention": "%dd" % retention}


# Volume snapshots ---------------------------------------------------------
#
# Before the volume snapshot Prometheus is asked for a TSDB snapshot (the head
# included): it persists the head as a block and hard-links every block under
# ``<storage>/snapshots/<name>``, on the volume.  That directory is the
# consistent copy; the rest of the storage path on the volume (wal,
# chunks_head, blocks being compacted) is left aside by the restore, which
# moves the TSDB snapshot's blocks to the top of the restored storage path.
# The TSDB snapshot is removed from the live server once the volume snapshot
# is taken (and when the backup fails).


def plan_snapshot(request, local=False):
    """What a volume snapshot of this server needs, read-only: its storage path, the admin API."""
    conn = Connection(request.connection)
    server = inspect(conn)
    if not server["admin_api"]:
        raise EngineError("the admin API of Prometheus at %s is disabled (web.enable-admin-api is false)" % conn.url, hint=ADMIN_HINT)
    storage = server["storage_path"]
    warnings = []
    if os.path.isdir(storage):
        check_storage(conn, storage)
    elif local:
        raise EngineError("the storage path %s of Prometheus at %s is not on this host" % (storage, conn.url),
                          hint="A btrfs or lvm snapshot is taken on the Prometheus host: run the backup there (delegate_to it)")
    else:
        warnings.append("the storage path %s is not on this host: the TSDB snapshot taken for the backup stays in %s/snapshots on the server; "
                        "remove it there" % (storage, storage))
    return {
        "server": conn.url,
        "server_version": server["version"],
        "data_dir": storage,
        "storage_path": storage,
        "head": server["head"],
        "quiesce": "TSDB snapshot (POST /api/v1/admin/tsdb/snapshot, head included) into snapshots/<name> on the volume",
        "warnings": warnings,
    }


class TsdbSnapshot(Quiesce):
    """A TSDB snapshot on the volume before the volume snapshot; removed from the live server afterwards."""

    consistency = "application"

    def __init__(self, conn, plan):
        super(TsdbSnapshot, self).__init__()
        self.conn = conn
        self.plan = plan
        self.storage = plan["storage_path"]
        self.local = os.path.isdir(self.storage)
        self.snapshots_existed = os.path.isdir(os.path.join(self.storage, "snapshots"))
        self.name = None

    def hold(self):
        self.name = take_snapshot(self.conn)
        self.facts.update({"name": self.name, "taken": utcnow(), "blocks": None})
        if not self.local:
            return
        directory = os.path.join(self.storage, "snapshots", self.name)
        if not os.path.isdir(directory):
            raise EngineError("Prometheus at %s wrote the snapshot %s, but %s is not on this host" % (self.conn.url, self.name, directory),
                              hint=HOST_HINT)
        blocks = read_blocks(directory)
        if not blocks:
            raise EngineError(
                "the TSDB snapshot of Prometheus at %s holds no data: the server has stored no samples yet" % self.conn.url,
                hint="Back up once Prometheus has scraped its targets (prometheus_tsdb_head_samples_appended_total > 0)",
            )
        self.facts["blocks"] = blocks

    def close(self):
        if self.name is None or not self.local:
            return
        try:
            self.facts["removed"] = remove_snapshot(self.storage, self.name, self.snapshots_existed)
        except Exception:  # pylint: disable=broad-except
            self.facts["removed"] = False


def quiesce(request, plan):
    return TsdbSnapshot(Connection(request.connection), plan)


def snapshot_facts(request, ctx, held):
    """The manifest's facts: the TSDB snapshot's name and, read on this host, its blocks and time range."""
    facts = held.facts
    blocks = facts.get("blocks") or []
    first, last = data_range(blocks)
    result = {
        "end_time": facts["taken"],
        "engine_version": held.plan["server_version"],
        "tsdb_snapshot": facts["name"],
        "storage_path": held.storage,
        "data_dir": held.storage,
        "server": held.conn.url,
        "blocks": blocks,
        "min_time": first,
        "max_time": last,
        "positions": {"min_time": first, "max_time": last, "blocks": len(blocks), "samples": sum(b["samples"] or 0 for b in blocks)},
    }
    if held.local and not facts.get("removed"):
        result["tsdb_snapshot_left"] = os.path.join(held.storage, "snapshots", facts["name"])
    return result


def _tsdb_name(manifest):
    name = manifest.get("tsdb_snapshot")
    if not name or "/" in name or name in (".", ".."):
        raise EngineError("backup %s records no TSDB snapshot name" % manifest["backup_id"])
    return name


def plan_snapshot_restore(repository, manifest, request, logs, data_dir, mounted=False):
    """Checks before a snapshot restore touches anything; returns the engine's part of the plan."""
    if logs is not None:
        raise ConfigError("Prometheus backups have no log chain: point-in-time restores are not offered")
    name = _tsdb_name(manifest)
    owner = _owner(request)
    user = hostfiles.lookup_user(owner, "Prometheus")
    _group_id(request.options.get("group"), user)
    if os.geteuid() != 0 and user.pw_uid != os.geteuid():
        raise ConfigError("only root can give the restored files to %s; this restore runs as %s" % (owner, _user_name()),
                          hint="Run it as root (become: true), or set owner to %s" % _user_name())
    if mounted:
        if not os.path.isdir(os.path.join(data_dir, "snapshots", name)):
            raise ConfigError(
                "data_dir %s does not hold the backup's TSDB snapshot snapshots/%s" % (data_dir, name),
                hint="Mount the volume restored from the snapshot so that data_dir is the storage path (--storage.tsdb.path) in it",
            )
        busy = server_using(data_dir)
        if busy:
            raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop that Prometheus first")
    else:
        check_target(data_dir, request.force)
    start = bool(request.options.get("start"))
    found = {}
    if start:
        found["prometheus"] = plan_start(request, data_dir, user)
    return {
        "data_dir": data_dir,
        "owner": owner,
        "tsdb_snapshot": name,
        "blocks": len(manifest.get("blocks") or []),
        "min_time": manifest.get("min_time"),
        "max_time": manifest.get("max_time"),
        "tools": found,
        "start": start,
        "retention_days": retention_days(manifest),
    }


def finish_snapshot_restore(repository, manifest, request, logs, data_dir):
    """Make the storage path hold exactly the TSDB snapshot's blocks, owned by owner; optionally start Prometheus on it."""
    name = _tsdb_name(manifest)
    owner = _owner(request)
    user = hostfiles.lookup_user(owner, "Prometheus")
    gid = _group_id(request.options.get("group"), user)
    source = os.path.join(data_dir, "snapshots", name)
    if not os.path.isdir(source):
        raise EngineError("the restored storage path %s lacks the backup's TSDB snapshot snapshots/%s" % (data_dir, name),
                          hint="The volume was snapshotted before Prometheus wrote it; restore another backup")
    removed = []
    for entry in sorted(os.listdir(data_dir)):
        if entry == "snapshots" or not looks_like_tsdb(data_dir, [entry]):
            continue  # what Prometheus does not keep there (lost+found of a mounted volume) stays
        path = os.path.join(data_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        removed.append(entry)
    for entry in sorted(os.listdir(source)):
        os.rename(os.path.join(source, entry), os.path.join(data_dir, entry))
    shutil.rmtree(os.path.join(data_dir, "snapshots"))
    blocks = read_blocks(data_dir)
    missing = sorted(set(b["ulid"] for b in manifest.get("blocks") or []) - set(b["ulid"] for b in blocks))
    if missing:
        raise EngineError("the restored TSDB snapshot lacks the blocks %s the backup's manifest lists" % ", ".join(missing),
                          hint="The volume does not hold this backup's snapshot; restore it again from the backup's snapshot")
    set_modes(data_dir, user.pw_uid, gid)
    first, last = data_range(blocks)
    result = {"data_dir": data_dir, "owner": owner, "blocks": len(blocks), "min_time": first, "max_time": last, "removed": removed}
    if request.options.get("start"):
        result["server"] = start_server(data_dir, user, gid, manifest, request)
    return result


def remote_restore_next(manifest, logs):
    return ("Mount the new volume on the Prometheus host, then run restore again with backup_id %s, source: mounted and data_dir set to "
            "the storage path (--storage.tsdb.path) on it: that keeps only the blocks of the TSDB snapshot %s, taken for the backup, "
            "and gives them to the owner" % (manifest["backup_id"], manifest.get("tsdb_snapshot")))
