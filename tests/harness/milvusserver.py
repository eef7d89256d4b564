# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throwaway Milvus: milvus-lite's gRPC server mode on a free loopback port, its data in a temporary directory.

``python -m milvus_lite server --data-dir DIR --host 127.0.0.1 --port PORT``
(milvus-lite 3.x) speaks Milvus' gRPC API to pymilvus.  It is a single
process, not a distributed Milvus: no etcd, no object storage, no message
queue, no authentication.  The fixture skips the test when milvus_lite is not
importable.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from harness.dbservers import free_port

START_TIMEOUT = 60


class MilvusLiteServer(object):
    def __init__(self, base_dir):
        self.base_dir = base_dir
        self.data_dir = os.path.join(base_dir, "data")
        self.log_path = os.path.join(base_dir, "server.log")
        self.port = free_port()
        self.proc = None
        self.log = None

    @property
    def uri(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def connection(self):
        return {"host": "127.0.0.1", "port": self.port}

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def start(self):
        self.log = open(self.log_path, "ab")
        argv = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", self.data_dir, "--host", "127.0.0.1", "--port", str(self.port),
                "--max-workers", "4"]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("milvus-lite exited with %s: %s" % (self.proc.returncode, self.log_tail()))
            if self._listening():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("milvus-lite did not listen on port %d within %d s: %s" % (self.port, START_TIMEOUT, self.log_tail()))

    def log_tail(self, size=4000):
        try:
            with open(self.log_path, "rb") as handle:
                return handle.read().decode("utf-8", "replace")[-size:]
        except (IOError, OSError):
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if self.log is not None:
            self.log.close()
            self.log = None


def milvus_lite_available():
    return importlib.util.find_spec("milvus_lite") is not None and importlib.util.find_spec("pymilvus") is not None


@contextlib.contextmanager
def running():
    """A running milvus-lite server (``.uri``, ``.port``, ``.connection``), stopped and removed afterwards; the test is skipped
    when milvus_lite is not importable.  A test module makes it a fixture: ``with running() as server: yield server``."""
    if not milvus_lite_available():
        pytest.skip("no Milvus server can run here: milvus_lite (and pymilvus) are not importable; pip install milvus-lite pymilvus")
    base_dir = tempfile.mkdtemp(prefix="milvus-lite-")
    server = MilvusLiteServer(base_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
