# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pytest fixtures that start real, throwaway database servers.

Every server runs from its own temporary directory, listens on a free port of
127.0.0.1 only and is stopped and removed at teardown (also when the test or
the start fails).  Nothing here needs systemd or a package's default instance.

Fixtures (function scope: a clean server per test):

``postgres_factory(**options)``     PostgreSQL 15 -> :class:`PostgresServer`
``postgres_on_datadir(path, ...)``  PostgreSQL on an existing data directory (restores)
``mariadb_factory(**options)``      MariaDB -> :class:`MariaDBServer`
``mariadb_on_datadir(path, ...)``   MariaDB on an existing data directory (restores)
``redis_factory(**config)``         Redis -> :class:`RedisServer`
``prometheus_factory(**options)``   Prometheus -> :class:`PrometheusServer`
``server_tmp_path``                 a temporary directory every OS user can traverse

Session scope (shared, for tests that only read): ``postgres_server``,
``mariadb_server``, ``redis_server``, ``prometheus_server``.

A missing server binary fails the test naming the Debian package to install.
When running as root, PostgreSQL runs as the ``postgres`` OS user (through
``runuser``) and MariaDB as ``mysql``; passwords are handed to the clients in
the environment, never on a command line.

Environment knobs: ``DP_SERVER_START_TIMEOUT`` (seconds, default 60),
``DP_PG_BIN_DIR`` (PostgreSQL binaries), ``DP_KEEP_SERVER_DIRS=1`` (keep the
temporary directories of stopped servers for debugging).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import glob
import json
import os
import pathlib
import pwd
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

import pytest

START_TIMEOUT = float(os.environ.get("DP_SERVER_START_TIMEOUT", "60"))
STOP_TIMEOUT = 60.0
COMMAND_TIMEOUT = 300.0
PROBE_TIMEOUT = 5.0
LOG_TAIL_LINES = 40
LOOPBACK = "127.0.0.1"

PG_VERSION = "15"
PG_PACKAGE = "postgresql-15"

# Environment variables of client tools that would redirect or authenticate
# a client somewhere else than the server under test.
_CLIENT_ENV_PREFIXES = ("PG", "MYSQL", "MARIADB", "REDISCLI_")

_LIVE = []


class ServerStartError(Exception):
    """A server did not come up; the message holds the tail of its log."""

    def __init__(self, message, log_tail=""):
        super(ServerStartError, self).__init__(message)
        self.log_tail = log_tail

    def port_in_use(self):
        return "address already in use" in (self.log_tail + str(self)).lower()


class CommandError(subprocess.CalledProcessError):
    """A client command failed; str() shows its stderr."""

    def __str__(self):
        text = "command %s exited with %s" % (" ".join(shlex.quote(str(a)) for a in self.cmd), self.returncode)
        details = (self.stderr or "").strip() or (self.output or "").strip()
        if details:
            text += ":\n" + _tail_text(details, LOG_TAIL_LINES)
        return text


# --------------------------------------------------------------------------- helpers


def _tail_text(text, lines):
    return "\n".join(text.splitlines()[-lines:])


def _tail_file(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, "rb") as handle:
            try:
                handle.seek(-65536, os.SEEK_END)
            except OSError:
                handle.seek(0)
            data = handle.read().decode("utf-8", "replace")
    except (IOError, OSError) as exc:
        return "(log %s unreadable: %s)" % (path, exc)
    return _tail_text(data, lines)


# Ports for the servers tests start: below Linux's default ephemeral range (32768-60999), where client
# connections get their local ports: a port picked there (bind to port 0) can be taken by one of the
# many connections the other test workers open before the server binds it.  Each pytest-xdist worker
# draws from its own block, and a process never hands out a port twice.
PORT_BASE = 20000
PORT_BLOCK = 3000
PORT_BLOCKS = 4
_handed_out = set()


def free_port():
    """Return a TCP port of 127.0.0.1 that nothing listens on right now, for a server a test starts."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    low = PORT_BASE + (index % PORT_BLOCKS) * PORT_BLOCK
    candidates = [p for p in range(low, low + PORT_BLOCK) if p not in _handed_out]
    random.shuffle(candidates)
    for port in candidates:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            sock.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port left in %d-%d" % (low, low + PORT_BLOCK - 1))


def require_binary(path_or_name, package):
    """Return the binary's absolute path or fail the test naming its package."""
    found = path_or_name if os.path.isabs(path_or_name) and os.access(path_or_name, os.X_OK) else shutil.which(path_or_name)
    if not found:
        pytest.fail("%s not found: install the Debian package '%s' to run the tests that need real servers" % (path_or_name, package),
                    pytrace=False)
    return found


def _is_root():
    return os.geteuid() == 0


def _service_account(name):
    """(user name, uid, gid) a server runs as: ``name`` when root, else the current user."""
    if not _is_root():
        entry = pwd.getpwuid(os.geteuid())
        return entry.pw_name, entry.pw_uid, entry.pw_gid
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        pytest.fail("OS user '%s' does not exist: it is created by the server's Debian package" % name, pytrace=False)
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def _as_user(user, argv):
    """Prefix argv so that it runs as ``user`` (only needed, and only possible, as root)."""
    if _is_root() and user != "root":
        return [require_binary("runuser", "util-linux"), "-u", user, "--"] + list(argv)
    return list(argv)


def _clean_env(extra=None):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES))
    env.setdefault("LC_ALL", "C.UTF-8")
    env.update(extra or {})
    return env


def run_command(argv, env=None, input=None, check=True, timeout=COMMAND_TIMEOUT, cwd=None):  # pylint: disable=redefined-builtin
    """Run argv, capture text output; raise :class:`CommandError` when check and it fails."""
    proc = subprocess.run([str(a) for a in argv], env=env, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, cwd=cwd, check=False)
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def _traversable_by_all(path):
    path = os.path.abspath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def shared_tmp_root():
    """A temporary directory whose ancestors every OS user can traverse."""
    candidates = [os.environ.get("DP_SERVER_TMPDIR"), tempfile.gettempdir(), "/tmp", "/var/tmp"]
    for candidate in candidates:
        if candidate and os.path.isdir(candidate) and _traversable_by_all(candidate):
            return candidate
    pytest.fail("no temporary directory that service accounts can reach (set DP_SERVER_TMPDIR)", pytrace=False)
    return None


def _make_base_dir(prefix, uid=None, gid=None, mode=0o700):
    base = tempfile.mkdtemp(prefix=prefix, dir=shared_tmp_root())
    os.chmod(base, mode)
    if uid is not None and _is_root():
        os.chown(base, uid, gid)
    return base


def _chown_tree(path, uid, gid):
    if not _is_root():
        return
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _make_reachable(path, uid):
    """Let ``uid`` traverse every ancestor of path, or fail explaining why it cannot."""
    blocked = []
    current = os.path.dirname(os.path.abspath(path))
    tmp_root = os.path.realpath(tempfile.gettempdir())
    while True:
        st = os.stat(current)
        if st.st_uid != uid and not st.st_mode & 0o001:
            blocked.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not blocked or uid == os.geteuid():
        return
    for directory in blocked:
        real = os.path.realpath(directory)
        if _is_root() and (real == tmp_root or real.startswith(tmp_root + os.sep)):
            os.chmod(directory, os.stat(directory).st_mode | 0o001)
        else:
            pytest.fail("%s cannot be reached by the server's OS user (uid %d): %s is not searchable; put the data directory under "
                        "the server_tmp_path fixture" % (path, uid, directory), pytrace=False)


def _pid_alive(pid):
    """True while process pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (IOError, OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _wait_for(predicate, timeout, what, server, interval=0.2):
    deadline = time.time() + timeout
    last_error = None
    while time.time() < deadline:
        if not server.is_running():
            raise ServerStartError("%s exited while waiting for %s" % (server.kind, what), server.log_tail())
        try:
            if predicate():
                return
        except (CommandError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            last_error = exc
        time.sleep(interval)
    detail = "; last error: %s" % last_error if last_error else ""
    raise ServerStartError("%s did not %s within %ds%s" % (server.kind, what, timeout, detail), server.log_tail())


def _start_with_retries(server, attempts=3):
    """Start a server; when its port got taken meanwhile, retry on a new one. Fails the test with the log tail."""
    error = None
    try:
        for _attempt in range(attempts):
            try:
                server.start()
                return server
            except ServerStartError as exc:
                error = exc
                server.stop()
                if not exc.port_in_use():
                    break
                server.port = free_port()
    except BaseException:
        server.cleanup()
        raise
    server.cleanup()
    pytest.fail("%s\n--- %s log %s (tail; DP_KEEP_SERVER_DIRS=1 keeps the directory) ---\n%s"
                % (error, server.kind, server.log_path, error.log_tail), pytrace=False)
    return None


@atexit.register
def _stop_leftovers():
    for server in list(_LIVE):
        server.cleanup()


class _Server(object):
    """What all servers share: a private directory, a log, start/stop and cleanup."""

    kind = "server"

    def __init__(self, base_dir, port):
        self.base_dir = base_dir
        self.host = LOOPBACK
        self.port = port
        self.log_path = os.path.join(base_dir, "server.log")
        self.keep_base_dir = os.environ.get("DP_KEEP_SERVER_DIRS") == "1"
        self._cleaned = False
        _LIVE.append(self)

    def log_tail(self, lines=LOG_TAIL_LINES):
        return _tail_file(self.log_path, lines)

    def is_running(self):
        raise NotImplementedError

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def restart(self):
        self.stop()
        self.start()

    def _remove_files(self):
        if not self.keep_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def cleanup(self):
        """Stop the server (best effort) and delete its directory; safe to call twice."""
        if self._cleaned:
            return
        self._cleaned = True
        try:
            self.stop()
        except Exception as exc:  # pylint: disable=broad-except
            warnings.warn("could not stop %s on port %s: %s" % (self.kind, self.port, exc))
        self._remove_files()
        if self in _LIVE:
            _LIVE.remove(self)

    def __repr__(self):
        return "<%s %s:%s %s>" % (type(self).__name__, self.host, self.port, self.base_dir)


class _ProcessServer(_Server):
    """A server that stays in the foreground as our child process."""

    def __init__(self, base_dir, port):
        super(_ProcessServer, self).__init__(base_dir, port)
        self.process = None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def is_running(self):
        return self.process is not None and self.process.poll() is None

    def _spawn(self, argv, env=None):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=env or _clean_env(), cwd=self.base_dir)

    def stop(self, sig=signal.SIGTERM):
        """Stop the server (SIGTERM, then SIGKILL after a minute); a no-op when it is not running."""
        if not self.is_running():
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def kill(self):
        """Crash the server (SIGKILL), e.g. to test recovery."""
        self.stop(signal.SIGKILL)


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir():
    """The directory of the PostgreSQL server binaries (fails naming the package when absent)."""
    wanted = os.environ.get("DP_PG_BIN_DIR") or "/usr/lib/postgresql/%s/bin" % PG_VERSION
    if os.path.isfile(os.path.join(wanted, "postgres")):
        return wanted
    others = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    detail = " (found only %s)" % ", ".join(os.path.dirname(p) for p in others) if others else ""
    pytest.fail("PostgreSQL %s server binaries not found in %s%s: install the Debian package '%s'" % (PG_VERSION, wanted, detail, PG_PACKAGE),
                pytrace=False)
    return None


def _pg_quote(value):
    if isinstance(value, bool):
        value = "on" if value else "off"
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "''")


class PostgresServer(_Server):
    """A PostgreSQL instance started with ``pg_ctl`` as the ``postgres`` OS user.

    Attributes: host, port, user, password, database, socket_dir, data_dir, bin_dir,
    base_dir, log_path, os_user, version.  ``connection``/``dsn`` give a dict
    {host, port, user, password, database}; ``conninfo`` a libpq string.
    """

    kind = "PostgreSQL"

    def __init__(self, base_dir, data_dir, port, bin_dir, os_user, user="postgres", password=None, database="postgres", owns_data_dir=True):
        super(PostgresServer, self).__init__(base_dir, port)
        self.data_dir = data_dir
        self.bin_dir = bin_dir
        self.os_user = os_user
        self.user = user
        self.password = password
        self.database = database
        self.socket_dir = os.path.join(base_dir, "sock")
        self.owns_data_dir = owns_data_dir
        self.version = PG_VERSION
        self._pid = None

    # -- connection data
    @property
    def connection(self):
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password, "database": self.database}

    dsn = connection

    @property
    def conninfo(self):
        parts = ["host=%s" % self.host, "port=%d" % self.port, "user=%s" % self.user, "dbname=%s" % self.database]
        if self.password is not None:
            parts.append("password=%s" % _pg_quote(self.password))
        return " ".join(parts)

    def env(self, database=None, password=None):
        """Environment for libpq tools: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD (TCP on loopback)."""
        password = self.password if password is None else password
        extra = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user, "PGDATABASE": database or self.database,
                 "PGCONNECT_TIMEOUT": "10"}
        if password is not None:
            extra["PGPASSWORD"] = password
        else:
            extra["PGHOST"] = self.socket_dir
        return _clean_env(extra)

    # -- commands
    def _tool(self, name):
        return os.path.join(self.bin_dir, name)

    def run(self, tool, *args, **kwargs):
        """Run a PostgreSQL tool of bin_dir (e.g. 'pg_basebackup') as the postgres OS user with :meth:`env` set.

        Keyword arguments: input, check (default True), timeout, env (extra variables).
        Returns a CompletedProcess with text stdout/stderr.
        """
        env = self.env()
        env.update(kwargs.pop("env", None) or {})
        argv = _as_user(self.os_user, [self._tool(tool)] + [str(a) for a in args])
        return run_command(argv, env=env, cwd=self.base_dir, **kwargs)

    def psql(self, sql, database=None, user=None, password=None, check=True, timeout=COMMAND_TIMEOUT):
        """Run SQL (one or more statements) with psql over TCP; return stdout (unaligned, tuples only)."""
        env = self.env(database=database, password=password)
        if user:
            env["PGUSER"] = user
        argv = _as_user(self.os_user, [self._tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        proc = run_command(argv, env=env, input=sql, check=check, cwd=self.base_dir, timeout=timeout)
        return proc.stdout.rstrip("\n") if check else proc

    def conf(self, settings, auto=False):
        """Append settings to postgresql.conf (or postgresql.auto.conf, which wins); call reload() or restart() after."""
        name = "postgresql.auto.conf" if auto else "postgresql.conf"
        path = os.path.join(self.data_dir, name)
        lines = ["%s = %s" % (key, _pg_quote(value)) for key, value in sorted(settings.items())]
        with open(path, "a") as handle:
            handle.write("\n" + "\n".join(lines) + "\n")
        if _is_root():
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def setting(self, name):
        """Current value of a server setting (SHOW)."""
        return self.psql("SHOW %s" % name)

    # -- lifecycle
    def _pg_ctl(self, *args, **kwargs):
        argv = _as_user(self.os_user, [self._tool("pg_ctl"), "-D", self.data_dir] + list(args))
        return run_command(argv, env=_clean_env(), cwd=self.base_dir, **kwargs)

    def _read_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as handle:
                return int(handle.readline().strip())
        except (IOError, OSError, ValueError):
            return None

    def is_running(self):
        return _pid_alive(self._read_pid() or self._pid)

    def _options(self):
        return " ".join(["-p", str(self.port), "-c", "listen_addresses=%s" % self.host,
                         "-c", "unix_socket_directories=%s" % shlex.quote(self.socket_dir)])

    def start(self, timeout=START_TIMEOUT):
        """Start with pg_ctl -w; raise ServerStartError (with the log tail) when it does not come up."""
        proc = self._pg_ctl("-l", self.log_path, "-w", "-t", str(int(timeout)), "-o", self._options(), "start", check=False,
                            timeout=timeout + 30)
        self._pid = self._read_pid()
        if proc.returncode != 0:
            raise ServerStartError("pg_ctl start failed (exit %d): %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()),
                                   self.log_tail())
        if self.password is not None:
            _wait_for(lambda: self.psql("SELECT 1", check=False, timeout=PROBE_TIMEOUT).returncode == 0, timeout,
                      "accept password logins on %d" % self.port, self)

    def stop(self, mode="fast"):
        """pg_ctl stop (mode fast, smart or immediate); falls back to immediate, then SIGKILL."""
        if not self.is_running():
            return
        proc = self._pg_ctl("-m", mode, "-w", "-t", str(int(STOP_TIMEOUT)), "stop", check=False, timeout=STOP_TIMEOUT + 30)
        if proc.returncode != 0 and self.is_running() and mode != "immediate":
            self._pg_ctl("-m", "immediate", "-w", "stop", check=False, timeout=STOP_TIMEOUT + 30)
        pid = self._read_pid() or self._pid
        deadline = time.time() + 10
        while _pid_alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def kill(self):
        """Crash-stop (immediate mode: recovery runs at next start)."""
        self.stop(mode="immediate")

    def reload(self):
        self._pg_ctl("reload")


_PG_HBA = """# written by the test harness
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
"""


def start_postgres(settings=None, password=None, user="postgres"):
    """initdb + start a fresh PostgreSQL on a free loopback port; returns a :class:`PostgresServer`.

    ``settings`` is appended to postgresql.conf after the harness defaults (wal_level=replica,
    max_wal_senders=4, scram-sha-256, fsync off).  The superuser ``user`` gets ``password``
    (generated when None).
    """
    bin_dir = postgres_bin_dir()
    os_user, uid, gid = _service_account("postgres")
    password = password or secrets.token_urlsafe(18)
    base = _make_base_dir("dp-pg-", uid, gid)
    data_dir = os.path.join(base, "data")
    socket_dir = os.path.join(base, "sock")
    os.mkdir(socket_dir, 0o700)
    pwfile = os.path.join(base, "pwfile")
    with open(pwfile, "w") as handle:
        handle.write(password + "\n")
    os.chmod(pwfile, 0o600)
    for path in (socket_dir, pwfile):
        if _is_root():
            os.chown(path, uid, gid)
    try:
        run_command(_as_user(os_user, [os.path.join(bin_dir, "initdb"), "-D", data_dir, "-U", user, "--pwfile", pwfile, "-E", "UTF8",
                                       "--locale", "C", "-A", "scram-sha-256", "--auth-local", "trust", "--no-sync"]),
                    env=_clean_env(), cwd=base, timeout=START_TIMEOUT * 2)
    except CommandError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail("initdb failed: %s" % exc, pytrace=False)
    finally:
        if os.path.exists(pwfile):
            os.unlink(pwfile)
    with open(os.path.join(data_dir, "pg_hba.conf"), "w") as handle:
        handle.write(_PG_HBA)
    defaults = {
        "wal_level": "replica",
        "max_wal_senders": 4,
        "max_replication_slots": 4,
        "password_encryption": "scram-sha-256",
        "fsync": False,
        "log_line_prefix": "%m [%p] %q%u@%d ",
    }
    defaults.update(settings or {})
    lines = ["", "# test harness settings"] + ["%s = %s" % (key, _pg_quote(value)) for key, value in sorted(defaults.items())]
    with open(os.path.join(data_dir, "postgresql.conf"), "a") as handle:
        handle.write("\n".join(lines) + "\n")
    _chown_tree(base, uid, gid)
    return _start_with_retries(PostgresServer(base, data_dir, free_port(), bin_dir, os_user, user=user, password=password))


def start_postgres_on_datadir(path, password=None, user="postgres", database="postgres", settings=None, timeout=START_TIMEOUT):
    """Start PostgreSQL on an existing data directory (a restored backup, a copy ...).

    The directory is chown'ed to the postgres OS user and set to mode 0700; port, listen
    address and socket directory come from the command line, so the copied configuration
    of another instance does not clash.  ``password`` is the role's password in that data
    (None: the helpers then use the unix socket).  The data directory is left in place at teardown.
    """
    bin_dir = postgres_bin_dir()
    os_user, uid, gid = _service_account("postgres")
    path = os.path.abspath(str(path))
    if not os.path.isfile(os.path.join(path, "PG_VERSION")):
        pytest.fail("%s is not a PostgreSQL data directory (no PG_VERSION)" % path, pytrace=False)
    _make_reachable(path, uid)
    _chown_tree(path, uid, gid)
    os.chmod(path, 0o700)
    if settings:
        lines = ["", "# test harness settings"] + ["%s = %s" % (key, _pg_quote(value)) for key, value in sorted(settings.items())]
        with open(os.path.join(path, "postgresql.conf"), "a") as handle:
            handle.write("\n".join(lines) + "\n")

    base = _make_base_dir("dp-pg-", uid, gid)
    os.mkdir(os.path.join(base, "sock"), 0o700)
    _chown_tree(base, uid, gid)
    return _start_with_retries(_DatadirPostgres(base, path, free_port(), bin_dir, os_user, user=user, password=password, database=database,
                                                owns_data_dir=False, start_timeout=timeout))


class _DatadirPostgres(PostgresServer):
    def __init__(self, *args, **kwargs):
        self.start_timeout = kwargs.pop("start_timeout")
        super(_DatadirPostgres, self).__init__(*args, **kwargs)

    def start(self, timeout=None):
        super(_DatadirPostgres, self).start(timeout or self.start_timeout)


# --------------------------------------------------------------------------- MariaDB


MARIADB_PACKAGE = "mariadb-server"


class MariaDBServer(_ProcessServer):
    """A MariaDB server (mariadbd in the foreground, binary log in ROW format).

    Attributes: host, port, socket, user, password, data_dir, base_dir, log_path, pid_file,
    os_user, server_id.  ``connection`` is {host, port, user, password, database, socket}.
    """

    kind = "MariaDB"

    def __init__(self, base_dir, data_dir, port, os_user, user="root", password=None, server_id=1, extra_args=()):
        super(MariaDBServer, self).__init__(base_dir, port)
        self.data_dir = data_dir
        self.os_user = os_user
        self.user = user
        self.password = password
        self.server_id = server_id
        self.socket = os.path.join(base_dir, "mysqld.sock")
        self.pid_file = os.path.join(base_dir, "mysqld.pid")
        self.extra_args = list(extra_args)
        self.mariadbd = require_binary("mariadbd", MARIADB_PACKAGE)
        self.client = require_binary("mariadb", "mariadb-client")

    @property
    def connection(self):
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password, "database": None, "socket": self.socket}

    def env(self, password=None):
        """Environment for the mariadb tools, with MYSQL_PWD set."""
        password = self.password if password is None else password
        return _clean_env({"MYSQL_PWD": password} if password is not None else {})

    def server_args(self):
        args = [self.mariadbd, "--no-defaults", "--datadir=%s" % self.data_dir, "--socket=%s" % self.socket, "--port=%d" % self.port,
                "--bind-address=%s" % self.host, "--pid-file=%s" % self.pid_file, "--log-error=%s" % self.log_path,
                "--log-bin=mysql-bin", "--binlog-format=ROW", "--server-id=%d" % self.server_id,
                "--innodb-buffer-pool-size=64M", "--skip-name-resolve", "--max-connections=100",
                "--tmpdir=%s" % os.path.join(self.base_dir, "tmp")]
        if _is_root():
            args.append("--user=%s" % self.os_user)
        return args + self.extra_args

    def start(self, timeout=START_TIMEOUT):
        for stale in (self.socket, self.pid_file):
            if os.path.exists(stale):
                os.unlink(stale)
        self._spawn(self.server_args())
        admin = require_binary("mariadb-admin", "mariadb-client")
        _wait_for(lambda: os.path.exists(self.socket) and run_command([admin, "--no-defaults", "--socket=%s" % self.socket, "ping"],
                                                                      env=_clean_env(), check=False, timeout=PROBE_TIMEOUT).returncode == 0,
                  timeout, "answer on %s" % self.socket, self)

    def sql(self, statement, database=None, user=None, password=None, check=True):
        """Run SQL over TCP with the mariadb client (MYSQL_PWD in the environment); return stdout (batch, no column names)."""
        argv = [self.client, "--no-defaults", "--protocol=TCP", "--host=%s" % self.host, "--port=%d" % self.port,
                "--user=%s" % (user or self.user), "--batch", "--skip-column-names", "--connect-timeout=10"]
        if database:
            argv.append(database)
        proc = run_command(argv, env=self.env(password), input=statement, check=check)
        return proc.stdout.rstrip("\n") if check else proc

    def socket_sql(self, statement, database=None):
        """Run SQL as root over the unix socket without a password (only before a password is set)."""
        argv = [self.client, "--no-defaults", "--socket=%s" % self.socket, "--user=root", "--batch", "--skip-column-names"]
        if database:
            argv.append(database)
        return run_command(argv, env=_clean_env(), input=statement).stdout.rstrip("\n")

    def variable(self, name):
        """A global server variable's value."""
        return self.sql("SELECT @@GLOBAL.%s" % name)


def _sql_string(value):
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")


def start_mariadb(password=None, server_id=1, extra_args=()):
    """mariadb-install-db + start mariadbd on a free loopback port; returns a :class:`MariaDBServer`.

    root@localhost and root@127.0.0.1 get ``password`` (generated when None) and all privileges;
    anonymous accounts are removed.
    """
    install_db = require_binary("mariadb-install-db", MARIADB_PACKAGE)
    require_binary("mariadbd", MARIADB_PACKAGE)
    os_user, uid, gid = _service_account("mysql")
    password = password or secrets.token_urlsafe(18)
    base = _make_base_dir("dp-mariadb-", uid, gid)
    data_dir = os.path.join(base, "data")
    # Each instance has its own tmpdir: instances sharing /tmp (tests run side by side) removed each
    # other's temporary tables while mariadb-install-db bootstrapped ("Could not remove temporary table").
    tmp_dir = _mariadb_tmpdir(base, uid, gid)
    argv = [install_db, "--no-defaults", "--datadir=%s" % data_dir, "--auth-root-authentication-method=normal", "--skip-test-db",
            "--skip-name-resolve", "--tmpdir=%s" % tmp_dir]
    if _is_root():
        argv.append("--user=%s" % os_user)
    try:
        run_command(argv, env=_clean_env(), cwd=base, timeout=START_TIMEOUT * 2)
    except CommandError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail("mariadb-install-db failed: %s" % exc, pytrace=False)
    _chown_tree(base, uid, gid)
    server = _start_with_retries(MariaDBServer(base, data_dir, free_port(), os_user, password=None, server_id=server_id, extra_args=extra_args))
    try:
        _secure_mariadb(server, password)
    except BaseException:
        server.cleanup()
        raise
    return server


def _mariadb_tmpdir(base, uid, gid):
    path = os.path.join(base, "tmp")
    if not os.path.isdir(path):
        os.mkdir(path, 0o700)
    if _is_root():
        os.chown(path, uid, gid)
    return path


def _secure_mariadb(server, password):
    pw = _sql_string(password)
    server.socket_sql(
        "DELETE FROM mysql.global_priv WHERE User = '';\n"
        "FLUSH PRIVILEGES;\n"
        "ALTER USER 'root'@'localhost' IDENTIFIED BY %s;\n"
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY %s;\n"
        "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY %s;\n"
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n"
        "FLUSH PRIVILEGES;\n" % (pw, pw, pw))
    server.password = password
    server.sql("SELECT 1")


def start_mariadb_on_datadir(path, password=None, user="root", server_id=1, extra_args=()):
    """Start mariadbd on an existing (prepared) data directory; it is chown'ed to mysql and kept at teardown."""
    require_binary("mariadbd", MARIADB_PACKAGE)
    os_user, uid, gid = _service_account("mysql")
    path = os.path.abspath(str(path))
    if not os.path.isdir(os.path.join(path, "mysql")):
        pytest.fail("%s is not a MariaDB data directory (no mysql/ schema)" % path, pytrace=False)
    _make_reachable(path, uid)
    _chown_tree(path, uid, gid)

    base = _make_base_dir("dp-mariadb-", uid, gid)
    _mariadb_tmpdir(base, uid, gid)
    return _start_with_retries(MariaDBServer(base, path, free_port(), os_user, user=user, password=password, server_id=server_id,
                                             extra_args=extra_args))


# --------------------------------------------------------------------------- Redis


REDIS_PACKAGE = "redis-server"


def _redis_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if text == "" or any(c.isspace() or c in "\"'" for c in text):
        return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')
    return text


class RedisServer(_ProcessServer):
    """A redis-server started from a generated config file.

    Attributes: host, port, password, data_dir, config_path, base_dir, log_path, config (dict).
    """

    kind = "Redis"

    def __init__(self, base_dir, port, config, password=None):
        super(RedisServer, self).__init__(base_dir, port)
        self.password = password
        self.config = dict(config)
        self.data_dir = self.config.get("dir") or os.path.join(base_dir, "data")
        self.config_path = os.path.join(base_dir, "redis.conf")
        self.server = require_binary("redis-server", REDIS_PACKAGE)
        self.client = require_binary("redis-cli", "redis-tools")

    @property
    def connection(self):
        return {"host": self.host, "port": self.port, "password": self.password}

    @property
    def rdb_path(self):
        return os.path.join(self.data_dir, self.config.get("dbfilename", "dump.rdb"))

    def _write_config(self):
        settings = {"port": self.port, "bind": self.host, "dir": self.data_dir, "dbfilename": "dump.rdb", "daemonize": False,
                    "logfile": self.log_path, "pidfile": os.path.join(self.base_dir, "redis.pid"), "protected-mode": True}
        if self.password is not None:
            settings["requirepass"] = self.password
        for key, value in self.config.items():
            settings[key.replace("_", "-")] = value
        lines = ["# written by the test harness"]
        for key, value in settings.items():
            if key == "save" and value in ("", None, False):
                lines.append('save ""')
            else:
                lines.append("%s %s" % (key, _redis_value(value)))
        with open(self.config_path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(self.config_path, 0o600)

    def start(self, timeout=START_TIMEOUT):
        if not os.path.isdir(self.data_dir):
            os.makedirs(self.data_dir)
        self._write_config()
        self._spawn([self.server, self.config_path])
        _wait_for(lambda: self.cli("PING", check=False, timeout=PROBE_TIMEOUT).stdout.strip() == "PONG", timeout,
                  "answer PING on %d" % self.port, self)

    def cli(self, *args, **kwargs):
        """Run redis-cli with args (REDISCLI_AUTH in the environment); return stdout.

        Keywords: password (default: the server's; pass '' to connect unauthenticated), check
        (default True: raise CommandError on an error reply; False returns the CompletedProcess),
        input (text piped to redis-cli), timeout (seconds).
        """
        password = kwargs.pop("password", self.password)
        check = kwargs.pop("check", True)
        stdin = kwargs.pop("input", None)
        timeout = kwargs.pop("timeout", COMMAND_TIMEOUT)
        if kwargs:
            raise TypeError("unexpected keyword arguments: %s" % ", ".join(sorted(kwargs)))
        env = _clean_env({"REDISCLI_AUTH": password} if password else {})
        proc = run_command([self.client, "-e", "-h", self.host, "-p", str(self.port)] + [str(a) for a in args], env=env, input=stdin,
                           check=check, timeout=timeout)
        return proc.stdout.rstrip("\n") if check else proc


def start_redis(password=None, **config):
    """Start redis-server on a free loopback port; returns a :class:`RedisServer`.

    ``password`` (or ``requirepass=``) turns on authentication; other keywords are config
    directives (underscores become dashes; True/False become yes/no), e.g. appendonly=True,
    save="" or dir=<existing data directory>.
    """
    require_binary("redis-server", REDIS_PACKAGE)
    require_binary("redis-cli", "redis-tools")
    if password is None and config.get("requirepass"):
        password = config.pop("requirepass")
    config.pop("requirepass", None)
    for key in ("port", "bind"):
        if key in config:
            raise ValueError("the harness chooses %r itself" % key)

    return _start_with_retries(RedisServer(_make_base_dir("dp-redis-"), free_port(), config, password=password))


# --------------------------------------------------------------------------- Prometheus


PROMETHEUS_PACKAGE = "prometheus"


class PrometheusServer(_ProcessServer):
    """A Prometheus server that scrapes itself.

    Attributes: host, port, url, storage_path, config_path, base_dir, log_path, admin_api.
    """

    kind = "Prometheus"

    def __init__(self, base_dir, port, storage_path=None, admin_api=True, scrape_interval="1s", extra_args=(), wait_for_scrape=True):
        super(PrometheusServer, self).__init__(base_dir, port)
        self.storage_path = storage_path or os.path.join(base_dir, "data")
        self.config_path = os.path.join(base_dir, "prometheus.yml")
        self.admin_api = admin_api
        self.scrape_interval = scrape_interval
        self.extra_args = list(extra_args)
        self.wait_for_scrape = wait_for_scrape
        self.binary = require_binary("prometheus", PROMETHEUS_PACKAGE)

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def _write_config(self):
        config = (
            "global:\n"
            "  scrape_interval: %(interval)s\n"
            "  evaluation_interval: %(interval)s\n"
            "scrape_configs:\n"
            "  - job_name: prometheus\n"
            "    static_configs:\n"
            "      - targets: ['%(host)s:%(port)d']\n" % {"interval": self.scrape_interval, "host": self.host, "port": self.port})
        with open(self.config_path, "w") as handle:
            handle.write(config)

    def api(self, path, method="GET", params=None, timeout=30):
        """Call the HTTP API; return (HTTP status, decoded JSON or text) without raising on HTTP errors."""
        url = self.url + path
        data = None
        if params:
            encoded = urllib.parse.urlencode(params)
            if method == "GET":
                url += "?" + encoded
            else:
                data = encoded.encode("ascii")
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        text = body.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def query(self, expr):
        """Instant query; return the result list (raises ValueError on an API error)."""
        status, payload = self.api("/api/v1/query", params={"query": expr})
        if status != 200 or not isinstance(payload, dict) or payload.get("status") != "success":
            raise ValueError("query %r failed: HTTP %s %s" % (expr, status, payload))
        return payload["data"]["result"]

    def snapshot(self, skip_head=False):
        """Ask the admin API for a TSDB snapshot; return its directory (under storage_path/snapshots)."""
        status, payload = self.api("/api/v1/admin/tsdb/snapshot", method="POST", params={"skip_head": "true" if skip_head else "false"})
        if status != 200:
            raise ValueError("snapshot failed: HTTP %s %s" % (status, payload))
        return os.path.join(self.storage_path, "snapshots", payload["data"]["name"])

    def _ready(self):
        try:
            status, _body = self.api("/-/ready", timeout=2)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return status == 200

    def start(self, timeout=START_TIMEOUT, wait_for_scrape=None):
        """Start; unless told otherwise wait until a first scrape is stored (``up`` has a sample)."""
        self._write_config()
        argv = [self.binary, "--config.file=%s" % self.config_path, "--storage.tsdb.path=%s" % self.storage_path,
                "--web.listen-address=%s:%d" % (self.host, self.port)]
        if self.admin_api:
            argv.append("--web.enable-admin-api")
        self._spawn(argv + self.extra_args)
        _wait_for(self._ready, timeout, "become ready on %d" % self.port, self)
        if self.wait_for_scrape if wait_for_scrape is None else wait_for_scrape:
            _wait_for(lambda: bool(self.query("up")), timeout, "scrape itself", self)


def start_prometheus(admin_api=True, scrape_interval="1s", storage_path=None, wait_for_scrape=True, extra_args=()):
    """Start Prometheus on a free loopback port, scraping itself; returns a :class:`PrometheusServer`.

    Waits until a first scrape is stored (``up`` has a sample) unless wait_for_scrape is False.
    ``storage_path`` may point at an existing TSDB directory (e.g. a restored snapshot).
    """
    require_binary("prometheus", PROMETHEUS_PACKAGE)

    server = PrometheusServer(_make_base_dir("dp-prometheus-"), free_port(), storage_path=storage_path, admin_api=admin_api,
                              scrape_interval=scrape_interval, extra_args=extra_args, wait_for_scrape=wait_for_scrape)
    return _start_with_retries(server)


# --------------------------------------------------------------------------- fixtures


class _Tracker(object):
    """Collects the servers a fixture started and cleans them all up."""

    def __init__(self):
        self.servers = []

    def add(self, server):
        self.servers.append(server)
        return server

    def close(self):
        for server in reversed(self.servers):
            server.cleanup()
        self.servers = []


def _factory_fixture(starter):
    tracker = _Tracker()

    def make(*args, **kwargs):
        return tracker.add(starter(*args, **kwargs))

    return tracker, make


@pytest.fixture
def server_tmp_path():
    """A fresh temporary directory (pathlib.Path) that service accounts (postgres, mysql) can traverse."""
    path = tempfile.mkdtemp(prefix="dp-tmp-", dir=shared_tmp_root())
    os.chmod(path, 0o711)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def postgres_factory():
    """``postgres_factory(settings=None, password=None, user='postgres')`` -> a fresh :class:`PostgresServer`."""
    tracker, make = _factory_fixture(start_postgres)
    yield make
    tracker.close()


@pytest.fixture
def postgres_on_datadir():
    """``postgres_on_datadir(path, password=None, user='postgres', settings=None)`` -> :class:`PostgresServer` on that data."""
    tracker, make = _factory_fixture(start_postgres_on_datadir)
    yield make
    tracker.close()


@pytest.fixture
def mariadb_factory():
    """``mariadb_factory(password=None, server_id=1, extra_args=())`` -> a fresh :class:`MariaDBServer`."""
    tracker, make = _factory_fixture(start_mariadb)
    yield make
    tracker.close()


@pytest.fixture
def mariadb_on_datadir():
    """``mariadb_on_datadir(path, password=None, user='root')`` -> :class:`MariaDBServer` on a prepared data directory."""
    tracker, make = _factory_fixture(start_mariadb_on_datadir)
    yield make
    tracker.close()


@pytest.fixture
def redis_factory():
    """``redis_factory(password=None, **config)`` -> a fresh :class:`RedisServer`."""
    tracker, make = _factory_fixture(start_redis)
    yield make
    tracker.close()


@pytest.fixture
def prometheus_factory():
    """``prometheus_factory(admin_api=True, scrape_interval='1s', storage_path=None)`` -> a fresh :class:`PrometheusServer`."""
    tracker, make = _factory_fixture(start_prometheus)
    yield make
    tracker.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL shared by the session: read-only use, please."""
    tracker, make = _factory_fixture(start_postgres)
    yield make()
    tracker.close()


@pytest.fixture(scope="session")
def mariadb_server():
    """A MariaDB shared by the session: read-only use, please."""
    tracker, make = _factory_fixture(start_mariadb)
    yield make()
    tracker.close()


@pytest.fixture(scope="session")
def redis_server():
    """A Redis (no password) shared by the session: read-only use, please."""
    tracker, make = _factory_fixture(start_redis)
    yield make()
    tracker.close()


@pytest.fixture(scope="session")
def prometheus_server():
    """A Prometheus (admin API on) shared by the session: read-only use, please."""
    tracker, make = _factory_fixture(start_prometheus)
    yield make()
    tracker.close()


# --------------------------------------------------------------------------- helpers for servers a restore started


def stop_pid(pid, timeout=60):
    """Stop a server a restore started (not one of the fixtures'): SIGTERM, wait until it is gone (or a zombie), SIGKILL after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (IOError, OSError):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def mysql_uid():
    return int(subprocess.check_output(["id", "-u", "mysql"]))


def socket_query(socket, password, sql):
    """Run SQL as root on a MariaDB reached through its socket (a server a restore started); return the rows."""
    out = subprocess.run(["mariadb", "--no-defaults", "--socket=%s" % socket, "--user=root", "--batch", "--skip-column-names", "-e", sql],
                         env=dict(os.environ, MYSQL_PWD=password), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()
