# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real file systems for tests of volume snapshots.

Fixtures:

``btrfs_fs``  function: a fresh 1 GiB btrfs in a sparse file on a loop device,
              mounted on a temporary directory; ``.mount`` is its path,
              ``.subvolume(relative)`` makes a subvolume in it
``other_fs``  function: a small tmpfs mounted on a temporary directory, another
              file system for the cross-file-system refusals

Both need root.  They skip, saying why, when the tests do not run as root, when
losetup or mkfs.btrfs is not installed or when no loop device can be attached;
any other failure is an error.  Teardown unmounts (lazily when the mount is
busy), detaches the loop device and removes the files, also after a failed
test; what it cannot clean up fails the test's teardown.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import tempfile

import pytest

# Sparse: only what is written takes space.  300 MiB ran out when a PITR restore of a busy server wrote
# its new timeline next to the WAL the source had preallocated.
IMAGE_SIZE = 1024 * 1024 * 1024
TMPFS_SIZE = "16m"
SBIN_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"]


def which(name):
    return shutil.which(name, path=os.pathsep.join(os.environ.get("PATH", "").split(os.pathsep) + SBIN_DIRS))


def run(argv):
    """Run a command; return its stdout, or raise RuntimeError with what it printed."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(argv), proc.returncode, (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def require(*tools):
    """Skip unless root and ``tools`` are installed; return their paths."""
    if os.geteuid() != 0:
        pytest.skip("needs root to attach loop devices and mount file systems (running as uid %d)" % os.geteuid())
    paths = []
    for name in tools:
        path = which(name)
        if path is None:
            pytest.skip("%s is not installed" % name)
        paths.append(path)
    return paths


class Mounted(object):
    """A file system mounted on a temporary directory, unmounted and removed by ``close``."""

    def __init__(self, prefix):
        self.workdir = tempfile.mkdtemp(prefix=prefix)
        self.mount = os.path.join(self.workdir, "mnt")
        os.mkdir(self.mount)
        self.mounted = False

    def path(self, *parts):
        return os.path.join(self.mount, *parts)

    def _unmount(self, problems):
        if not self.mounted:
            return
        try:
            run([which("umount"), self.mount])
        except RuntimeError:
            try:
                run([which("umount"), "--lazy", self.mount])
            except RuntimeError as exc:
                problems.append(str(exc))
                return
        self.mounted = False

    def _remove(self, problems):
        if self.mounted or os.path.ismount(self.mount):
            problems.append("%s is still mounted; %s was left in place" % (self.mount, self.workdir))
            return
        shutil.rmtree(self.workdir, ignore_errors=True)

    def close(self):
        problems = []
        self._unmount(problems)
        self._remove(problems)
        if problems:
            raise RuntimeError("cleaning up failed: %s" % "; ".join(problems))


class LoopBtrfs(Mounted):
    """A btrfs on a loop device."""

    def __init__(self):
        self.losetup, self.mkfs, self.btrfs = require("losetup", "mkfs.btrfs", "btrfs")
        super(LoopBtrfs, self).__init__("dp-btrfs-")
        self.image = os.path.join(self.workdir, "btrfs.img")
        self.device = None

    def start(self):
        with open(self.image, "wb") as handle:
            handle.truncate(IMAGE_SIZE)
        proc = subprocess.run([self.losetup, "--find", "--show", self.image], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False, timeout=60)
        if proc.returncode != 0 or not proc.stdout.strip():
            pytest.skip("cannot attach a loop device: %s" % (proc.stderr.strip() or "losetup exit %d" % proc.returncode))
        self.device = proc.stdout.strip()
        run([self.mkfs, "-q", "-f", self.device])
        run([which("mount"), "-t", "btrfs", self.device, self.mount])
        self.mounted = True
        return self

    def subvolume(self, relative):
        """Make the subvolume ``relative`` (to the mount), creating plain parent directories; return its path."""
        path = self.path(relative)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        run([self.btrfs, "subvolume", "create", path])
        return path

    def subvolume_from(self, relative, source):
        """Make the subvolume ``relative`` holding a copy of the directory ``source`` (a stopped server's data); return its path."""
        path = self.subvolume(relative)
        for name in os.listdir(source):
            item = os.path.join(source, name)
            if os.path.isdir(item) and not os.path.islink(item):
                shutil.copytree(item, os.path.join(path, name), symlinks=True)
            else:
                shutil.copy2(item, os.path.join(path, name))
        os.chmod(self.mount, 0o755)  # the server's user must reach the subvolume
        return path

    def subvolumes(self):
        """The paths (relative to the top level) of all subvolumes, sorted."""
        out = run([self.btrfs, "subvolume", "list", self.mount])
        return sorted(line.split(" path ", 1)[1] for line in out.splitlines() if " path " in line)

    def filesystem_uuid(self):
        out = run([self.btrfs, "filesystem", "show", self.mount])
        return out.split("uuid:", 1)[1].split()[0]

    def close(self):
        problems = []
        self._unmount(problems)
        if self.device is not None and not self.mounted:
            try:
                run([self.losetup, "--detach", self.device])
                self.device = None
            except RuntimeError as exc:
                problems.append(str(exc))
        if self.device is None and os.path.exists(self.image):
            os.unlink(self.image)
        self._remove(problems)
        if problems:
            raise RuntimeError("cleaning up the loop file system failed: %s" % "; ".join(problems))


class Tmpfs(Mounted):
    """A small tmpfs."""

    def __init__(self):
        require("mount", "umount")
        super(Tmpfs, self).__init__("dp-tmpfs-")

    def start(self):
        run([which("mount"), "-t", "tmpfs", "-o", "size=%s,mode=0755" % TMPFS_SIZE, "tmpfs", self.mount])
        self.mounted = True
        return self


def _started(filesystem):
    try:
        filesystem.start()
    except BaseException:
        filesystem.close()
        raise
    return filesystem


@pytest.fixture
def btrfs_fs():
    filesystem = _started(LoopBtrfs())
    try:
        yield filesystem
    finally:
        filesystem.close()


@pytest.fixture
def other_fs():
    filesystem = _started(Tmpfs())
    try:
        yield filesystem
    finally:
        filesystem.close()
