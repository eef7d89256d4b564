# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host tools behind one runner.

Binaries are looked up on PATH and in the engine's usual directories; secrets
go to tools through the environment (PGPASSWORD, MYSQL_PWD, REDISCLI_AUTH),
never on the command line; a tool that fails raises ToolError with the tail of
what it printed on stderr.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import queue
import subprocess
import threading
import time

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, MissingDependency, ToolError

STDERR_KEEP = 64 * 1024
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031  # Linux fcntl: resize a pipe


def widen_pipe(handle):
    """Give a pipe 1 MiB instead of 64 KiB (Linux), so the tool and this process overlap instead of taking turns."""
    try:
        import fcntl  # pylint: disable=import-outside-toplevel

        with open("/proc/sys/fs/pipe-max-size") as limits:
            size = min(PIPE_SIZE, int(limits.read().strip()))
        fcntl.fcntl(handle.fileno(), F_SETPIPE_SZ, size)
    except (ImportError, IOError, OSError, ValueError):
        pass


def find_tool(name, extra_dirs=(), package=None, required=True):
    """Absolute path of ``name``, searching PATH then ``extra_dirs`` (globs allowed, newest last wins)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]:
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    for pattern in extra_dirs:
        for directory in sorted(glob.glob(pattern), reverse=True):
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    if not required:
        return None
    raise MissingDependency(
        "the tool %s is not installed on this host" % name,
        hint="Install %s on the host that runs the task" % (package or name),
    )


def http_base_url(host, port, default_host):
    """The base URL of a server reached over HTTP (Prometheus, Milvus): ``host`` may be a host name or address (with ``port``),
    or an http:// or https:// URL of its own (route prefix included; ``port`` then does not apply)."""
    host = host or default_host
    if "://" in host:
        if not host.startswith(("http://", "https://")):
            raise ConfigError("connection.host %r is neither a host name nor an http:// or https:// URL" % host)
        return host.rstrip("/")
    return "http://%s:%d" % ("[%s]" % host if ":" in host else host, int(port))


def tool_env(extra=None):
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env.update(dict((k, v) for k, v in (extra or {}).items() if v is not None))
    return env


def run(argv, env=None, input_data=None, timeout=None, check=True, what=None):
    """Run a tool to completion; return (stdout, stderr) as text."""
    try:
        proc = subprocess.run(
            argv, env=tool_env(env), input=input_data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=timeout, universal_newlines=True, check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError("%s did not finish within %s seconds" % (what or os.path.basename(argv[0]), timeout))
    except OSError as exc:
        raise ToolError("cannot run %s: %s" % (argv[0], exc))
    if check and proc.returncode != 0:
        raise ToolError(
            "%s failed (exit %d): %s" % (what or os.path.basename(argv[0]), proc.returncode, _tail(proc.stderr) or _tail(proc.stdout)),
            returncode=proc.returncode,
        )
    return proc.stdout, proc.stderr


def _tail(text, lines=12):
    text = (text or "").strip()
    return "\n".join(text.splitlines()[-lines:])


class StreamingTool(object):
    """A tool whose stdout is read as a stream while stderr is collected aside.

    Use as a context manager; ``stdout`` is the binary pipe.  ``finish()``
    waits for the exit and raises ToolError on failure.
    """

    def __init__(self, argv, env=None, what=None, cwd=None, stdin=None):
        self.argv = argv
        self.what = what or os.path.basename(argv[0])
        self.stderr_chunks = []
        self.stderr_size = 0
        try:
            self.proc = subprocess.Popen(argv, env=tool_env(env), stdin=subprocess.DEVNULL if stdin is None else stdin,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, bufsize=0)
        except OSError as exc:
            raise ToolError("cannot run %s: %s" % (argv[0], exc))
        self.stdout = self.proc.stdout
        widen_pipe(self.stdout)
        self.reader = threading.Thread(target=self._drain_stderr)
        self.reader.daemon = True
        self.reader.start()

    def _drain_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_chunks.append(line)
            self.stderr_size += len(line)
            while self.stderr_size > STDERR_KEEP and len(self.stderr_chunks) > 1:
                self.stderr_size -= len(self.stderr_chunks.pop(0))

    @property
    def stderr(self):
        return b"".join(self.stderr_chunks).decode("utf-8", "replace")

    def finish(self, timeout=None):
        rc = self.proc.wait(timeout)
        self.reader.join(10)
        if rc != 0:
            raise ToolError("%s failed (exit %d): %s" % (self.what, rc, _tail(self.stderr)), returncode=rc)
        return self.stderr

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.kill()
        for handle in (self.proc.stdout, self.proc.stderr):
            try:
                handle.close()
            except OSError:
                pass
        return False


class FeedingTool(object):
    """A tool fed on stdin (e.g. ``tar -x``) while its output is collected aside.

    ``write`` hands chunks to a writer thread through a small bounded queue, so
    decoding the next chunk (decryption, decompression, hashing) overlaps with
    the tool reading the previous one, as it would in a shell pipeline.
    """

    QUEUE_CHUNKS = 8

    def __init__(self, argv, env=None, what=None, cwd=None):
        self.what = what or os.path.basename(argv[0])
        try:
            self.proc = subprocess.Popen(argv, env=tool_env(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, cwd=cwd, bufsize=0)
        except OSError as exc:
            raise ToolError("cannot run %s: %s" % (argv[0], exc))
        widen_pipe(self.proc.stdin)
        self.output = []
        self.reader = threading.Thread(target=self._drain)
        self.reader.daemon = True
        self.reader.start()
        self.queue = queue.Queue(self.QUEUE_CHUNKS)
        self.failed = None
        self.writer = threading.Thread(target=self._feed)
        self.writer.daemon = True
        self.writer.start()

    def _drain(self):
        for line in iter(self.proc.stdout.readline, b""):
            if len(self.output) < 200:
                self.output.append(line)

    def _feed(self):
        while True:
            data = self.queue.get()
            if data is None:
                return
            if self.failed is not None:
                continue
            try:
                self.proc.stdin.write(data)
            except (OSError, ValueError) as exc:
                # A broken pipe, or the pipe closed by kill().
                self.failed = exc

    def _stopped_reading(self):
        self.proc.wait()
        self.reader.join(10)
        return ToolError("%s stopped reading its input (exit %s): %s" % (self.what, self.proc.returncode, self.text()))

    def write(self, data):
        if self.failed is not None:
            self._close_queue()
            raise self._stopped_reading()
        self.queue.put(bytes(data))
        return len(data)

    def _close_queue(self):
        if self.writer.is_alive():
            while True:
                try:
                    self.queue.put(None, timeout=1)
                    break
                except queue.Full:
                    if not self.writer.is_alive():
                        break
            self.writer.join()

    def text(self):
        return _tail(b"".join(self.output).decode("utf-8", "replace"))

    def finish(self, timeout=None):
        self._close_queue()
        if self.failed is not None:
            raise self._stopped_reading()
        self.proc.stdin.close()
        rc = self.proc.wait(timeout)
        self.reader.join(10)
        if rc != 0:
            raise ToolError("%s failed (exit %d): %s" % (self.what, rc, self.text()), returncode=rc)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.failed = self.failed or OSError("killed")
        # Unblock the writer (the pipe is gone) and let it finish.
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self._close_queue()
        self.reader.join(10)


def end_client(proc, wait=10):
    """End an interactive client fed on stdin: close its input, wait (kill after ``wait`` seconds), close its pipes."""
    try:
        proc.stdin.close()
    except (IOError, OSError):
        pass
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for handle in (proc.stdout, proc.stderr):
        try:
            handle.close()
        except (IOError, OSError):
            pass


class ClientSession(object):
    """One interactive client process (``psql``, ``mariadb``) fed statements on stdin, one at a time.

    For work that must stay on one connection: a lock held while a volume is
    snapshotted, a backup started and stopped by the same session.  After each
    statement ``marker(token)`` is sent, a statement that makes the client
    print ``token`` on a line of its own; what came before it is the reply.  A
    client that stops its output (it exits on the first error) raises ToolError
    with what it printed on stderr.  ``close()`` ends the client, which ends its
    session and so releases whatever the session held.
    """

    def __init__(self, argv, marker, env=None, what=None, timeout=120):
        self.what = what or os.path.basename(argv[0])
        self.marker = marker
        self.timeout = timeout
        self.token = "dataprotection-%s" % os.urandom(8).hex()
        self.out = bytearray()
        self.err = bytearray()
        try:
            self.proc = subprocess.Popen(argv, env=tool_env(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         bufsize=0, close_fds=True)
        except OSError as exc:
            raise ToolError("cannot run %s: %s" % (argv[0], exc))

    @property
    def stderr(self):
        return bytes(self.err).decode("utf-8", "replace")

    def _pump(self, timeout):
        """Read what the client printed within ``timeout``; False once its stdout has ended."""
        import select  # pylint: disable=import-outside-toplevel

        handles = [h for h in (self.proc.stdout, self.proc.stderr) if not h.closed]
        ready = select.select(handles, [], [], max(timeout, 0))[0]
        alive = True
        for handle in ready:
            data = os.read(handle.fileno(), 65536)
            if handle is self.proc.stdout:
                alive = bool(data)
                self.out += data
            else:
                self.err += data
        return alive

    def _failed(self):
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        while self._pump(0.2):
            pass
        return ToolError("%s failed (exit %s): %s" % (self.what, self.proc.returncode, _tail(self.stderr) or _tail(bytes(self.out).decode("utf-8", "replace"))),
                         returncode=self.proc.returncode)

    def call(self, statement, timeout=None):
        """Send one statement; return what the client printed for it (text, the last line terminator removed)."""
        try:
            self.proc.stdin.write(("%s\n%s\n" % (statement, self.marker(self.token))).encode("utf-8"))
        except (IOError, OSError):
            raise self._failed()
        deadline = time.monotonic() + (timeout or self.timeout)
        end = ("\n%s\n" % self.token).encode("ascii")
        while True:
            at = (b"\n" + bytes(self.out)).find(end)
            if at >= 0:
                reply = bytes(self.out[:max(at - 1, 0)]).decode("utf-8", "replace")
                del self.out[:at - 1 + len(end)]
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ToolError("%s did not answer within %s seconds" % (self.what, timeout or self.timeout))
            if not self._pump(remaining):
                raise self._failed()

    def close(self):
        """End the client (and so its session); never raises."""
        end_client(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False
