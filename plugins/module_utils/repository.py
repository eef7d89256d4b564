# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repositories: where backups are stored.

A repository is a flat key space of objects addressed by ``/``-separated keys
relative to its root.  ``LocalRepo`` keeps them under a directory (local disk
or NFS); ``S3Repo`` (in ``repository_s3``) keeps them in a bucket under a
prefix.  Both guarantee that an object is visible under its final key only
once it is completely and durably written: a local object is written to a
temporary name, fsynced and renamed; an S3 object is a single PUT or a
multipart upload that is completed only after its last part.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat as stat_mod
import time
import uuid

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    NotARepository,
    NotWritable,
    ObjectExists,
    ObjectNotFound,
    RepositoryError,
    RepositoryNotFound,
)

TMP_MARK = ".tmp-"
FILE_MODE = 0o640
DIR_MODE = 0o750
READ_CHUNK = 1024 * 1024


class ObjectInfo(object):
    """What a listing knows about one object."""

    __slots__ = ("key", "size", "mtime")

    def __init__(self, key, size, mtime):
        self.key = key
        self.size = size
        self.mtime = mtime

    def __repr__(self):
        return "ObjectInfo(%r, %r, %r)" % (self.key, self.size, self.mtime)


def check_key(key):
    """Refuse keys that could escape the repository root."""
    if not key or key.startswith("/") or key.endswith("/"):
        raise ConfigError("invalid object key %r" % key)
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ConfigError("invalid object key %r" % key)
    return key


class ObjectWriter(object):
    """Writes one object; the object appears only on ``commit``.

    Used as a context manager: leaving the block normally commits, leaving it
    with an exception aborts and leaves nothing under the final key.
    """

    def __init__(self):
        self.closed = False
        self.size = 0

    def write(self, data):
        raise NotImplementedError

    def commit(self):
        raise NotImplementedError

    def abort(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.closed:
            return False
        if exc_type is None:
            self.commit()
        else:
            try:
                self.abort()
            except Exception:  # pylint: disable=broad-except
                pass
        return False


class Repo(object):
    """Interface of a repository backend."""

    type = None

    def describe(self):
        """The normalized definition with secrets masked."""
        raise NotImplementedError

    def location(self):
        """A short human-readable address, for messages."""
        raise NotImplementedError

    def location_exists(self):
        raise NotImplementedError

    def create_location(self):
        raise NotImplementedError

    def open_write(self, key, overwrite=True):
        """Return an ObjectWriter for ``key``."""
        raise NotImplementedError

    def open_read(self, key):
        """Return a binary file-like object (``read``, ``close``)."""
        raise NotImplementedError

    def stat(self, key):
        """Return ObjectInfo or None when the object does not exist."""
        raise NotImplementedError

    def list(self, prefix=""):
        """Yield ObjectInfo for every object whose key starts with ``prefix``."""
        raise NotImplementedError

    def list_dirs(self, prefix=""):
        """Return the sorted names of the 'directories' directly under ``prefix``."""
        raise NotImplementedError

    def delete(self, key):
        """Delete one object; a missing object is not an error."""
        raise NotImplementedError

    def delete_durably(self, key):
        """Delete one object and return only when the deletion survives a crash (manifests: the un-commit)."""
        self.delete(key)

    def list_partial(self, prefix=""):
        """Yield writes that were started under ``prefix`` and never committed (a killed writer's leftovers):
        dicts with ``key``, ``id``, ``started_epoch`` and ``size`` (None when unknown)."""
        return iter(())

    def discard_partial(self, partial):
        """Remove one leftover that ``list_partial`` returned."""
        raise NotImplementedError

    def put_if_absent(self, key, data):
        """Create ``key`` with ``data`` atomically (a no-clobber write); return False if it exists."""
        try:
            with self.open_write(key, overwrite=False) as writer:
                writer.write(data)
        except ObjectExists:
            return False
        return True

    def close(self):
        """Release clients and threads."""

    # Helpers built on the primitives -------------------------------------

    def put_bytes(self, key, data, overwrite=True):
        with self.open_write(key, overwrite=overwrite) as writer:
            writer.write(data)
        return len(data)

    def get_bytes(self, key):
        handle = self.open_read(key)
        try:
            chunks = []
            while True:
                chunk = handle.read(READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            handle.close()

    def exists(self, key):
        return self.stat(key) is not None

    def delete_many(self, keys):
        count = 0
        for key in keys:
            self.delete(key)
            count += 1
        return count

    def delete_prefix(self, prefix):
        return self.delete_many([info.key for info in self.list(prefix)])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


# ---------------------------------------------------------------------------
# Local directory (also NFS)


def fsync_dir(path):
    """fsync a directory, so the names in it are durable; best effort where the file system does not allow it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _LocalWriter(ObjectWriter):
    def __init__(self, repo, key, overwrite):
        super(_LocalWriter, self).__init__()
        self.repo = repo
        self.key = key
        self.overwrite = overwrite
        self.final = repo.path_of(key)
        directory = os.path.dirname(self.final)
        repo.makedirs(directory)
        self.tmp = os.path.join(
            directory, ".%s%s%s" % (os.path.basename(self.final), TMP_MARK, uuid.uuid4().hex[:12])
        )
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except OSError as exc:
            raise repo.os_error(exc, "create a file in %s" % directory)
        repo.adopt(self.tmp)
        self.handle = os.fdopen(fd, "wb")

    def write(self, data):
        try:
            self.handle.write(data)
        except OSError as exc:
            self.abort()
            raise self.repo.os_error(exc, "write %s" % self.final)
        self.size += len(data)

    def commit(self):
        if self.closed:
            return self.size
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            if self.overwrite:
                os.rename(self.tmp, self.final)
            else:
                # link() refuses to replace an existing name: a no-clobber commit.
                try:
                    os.link(self.tmp, self.final)
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        raise ObjectExists(
                            "object %s already exists in %s" % (self.key, self.repo.location())
                        )
                    raise
                os.unlink(self.tmp)
            fsync_dir(os.path.dirname(self.final))
        except ObjectExists:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise self.repo.os_error(exc, "commit %s" % self.final)
        self.closed = True
        return self.size

    def abort(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.handle.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class LocalRepo(Repo):
    """A repository in a local directory (or an NFS mount)."""

    type = "local"

    def __init__(self, spec):
        path = spec.get("path")
        if not path:
            raise ConfigError("repo.path is required when repo.type is local")
        if not os.path.isabs(path):
            raise ConfigError(
                "repo.path must be an absolute path, got %r" % path,
                hint="Give the full path of the repository directory, e.g. /var/backups/dataprotection",
            )
        self.root = os.path.normpath(path)
        self.spec = spec
        self._owner = False

    def describe(self):
        return {"type": "local", "path": self.root}

    def location(self):
        return self.root

    def path_of(self, key):
        return os.path.join(self.root, *check_key(key).split("/"))

    def os_error(self, exc, action):
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return NotWritable(
                "cannot %s: %s" % (action, exc.strerror),
                hint="Make %s writable by the user running the task (uid %d), "
                "or choose another repo.path" % (self.root, os.geteuid()),
            )
        if exc.errno == errno.ENOSPC:
            return RepositoryError(
                "cannot %s: no space left on the device" % action,
                hint="Free space under %s or move the repository" % self.root,
            )
        if exc.errno == errno.ENOTDIR:
            return NotARepository(
                "cannot %s: a path component is a file, not a directory" % action,
                hint="repo.path must name a directory; %s or one of its parents is a file" % self.root,
            )
        return RepositoryError("cannot %s: %s" % (action, exc))

    def location_exists(self):
        if os.path.isdir(self.root):
            return True
        if os.path.exists(self.root):
            raise NotARepository(
                "repo.path %s exists and is not a directory" % self.root,
                hint="Point repo.path at a directory, or remove the file",
            )
        return False

    def owner(self):
        """(uid, gid) new entries get when root writes into a repository another user owns, else None.

        A repository used by a database server's own processes (archive_command
        runs as the server's user) belongs to that user; entries written by
        root-run tasks are handed to the same owner so both keep full access.
        """
        if self._owner is False:
            self._owner = None
            if os.geteuid() == 0:
                try:
                    st = os.stat(self.root)
                except OSError:
                    self._owner = False
                    return None
                if st.st_uid != 0:
                    self._owner = (st.st_uid, st.st_gid)
        return self._owner

    def adopt(self, path):
        owner = self.owner()
        if owner is not None:
            os.lchown(path, owner[0], owner[1])

    def makedirs(self, directory):
        missing = []
        parent = directory
        while parent.startswith(self.root + os.sep) and not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        try:
            os.makedirs(directory, DIR_MODE)
        except OSError as exc:
            if exc.errno == errno.EEXIST and os.path.isdir(directory):
                return
            raise self.os_error(exc, "create directory %s" % directory)
        for path in missing:
            self.adopt(path)

    def create_location(self):
        self.location_exists()
        self.makedirs(self.root)

    def open_write(self, key, overwrite=True):
        return _LocalWriter(self, key, overwrite)

    def open_read(self, key):
        path = self.path_of(key)
        try:
            return open(path, "rb")
        except IOError as exc:
            if exc.errno == errno.ENOENT:
                raise ObjectNotFound("object %s not found in %s" % (key, self.root))
            raise self.os_error(exc, "read %s" % path)

    def stat(self, key):
        path = self.path_of(key)
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise self.os_error(exc, "stat %s" % path)
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def list(self, prefix=""):
        # The prefix may end inside a name ("backups/db-") or at a directory.
        if prefix and not prefix.endswith("/"):
            base_dir = os.path.dirname(prefix)
        else:
            base_dir = prefix.rstrip("/")
        start = os.path.join(self.root, *base_dir.split("/")) if base_dir else self.root
        if not os.path.isdir(start):
            if not os.path.exists(self.root):
                raise RepositoryNotFound("repository directory %s does not exist" % self.root)
            return
        for dirpath, dirnames, filenames in os.walk(start, onerror=None):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            for name in sorted(filenames):
                if name.startswith(".") and TMP_MARK in name:
                    continue
                key = rel_dir + name
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    yield ObjectInfo(key, st.st_size, st.st_mtime)

    def list_dirs(self, prefix=""):
        base = prefix.rstrip("/")
        path = os.path.join(self.root, *base.split("/")) if base else self.root
        try:
            names = os.listdir(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return []
            raise self.os_error(exc, "list %s" % path)
        return sorted(n for n in names if os.path.isdir(os.path.join(path, n)) and not n.startswith("."))

    def delete(self, key):
        path = self.path_of(key)
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise self.os_error(exc, "delete %s" % path)
        # Remove directories left empty, up to (not including) the root.
        directory = os.path.dirname(path)
        while directory != self.root and directory.startswith(self.root + os.sep):
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    def delete_durably(self, key):
        directory = os.path.dirname(self.path_of(key))
        self.delete(key)
        while not os.path.isdir(directory) and directory.startswith(self.root + os.sep):
            directory = os.path.dirname(directory)
        fsync_dir(directory)

    def list_partial(self, prefix=""):
        base = prefix.rstrip("/")
        start = os.path.join(self.root, *base.split("/")) if base else self.root
        for dirpath, dummy, filenames in os.walk(start):
            for name in filenames:
                if not (name.startswith(".") and TMP_MARK in name):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name[1:name.index(TMP_MARK)]), self.root).replace(os.sep, "/")
                yield {"key": rel, "id": name, "started_epoch": st.st_mtime, "size": st.st_size}

    def discard_partial(self, partial):
        path = os.path.join(os.path.dirname(self.path_of(partial["key"])), partial["id"])
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise self.os_error(exc, "delete %s" % path)

    def delete_many(self, keys):
        # One rmdir attempt per directory, after its files are gone, rather than one per file.
        directories = set()
        count = 0
        for key in keys:
            path = self.path_of(key)
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise self.os_error(exc, "delete %s" % path)
            directories.add(os.path.dirname(path))
            count += 1
        for directory in sorted(directories, key=len, reverse=True):
            while directory != self.root and directory.startswith(self.root + os.sep):
                try:
                    os.rmdir(directory)
                except OSError:
                    break
                directory = os.path.dirname(directory)
        return count

    def remove_root_if_empty(self):
        """Remove the root directory when nothing (but empty directories) is left."""
        for dirpath, dummy, filenames in os.walk(self.root, topdown=False):
            if filenames:
                return False
            try:
                os.rmdir(dirpath)
            except OSError:
                return False
        return True


def open_repo(spec):
    """Build the backend for a normalized ``repo`` dict."""
    repo_type = (spec or {}).get("type") or "local"
    if repo_type == "local":
        return LocalRepo(spec)
    if repo_type == "s3":
        from ansible_collections.dataprotection.databases.plugins.module_utils.repository_s3 import S3Repo

        return S3Repo(spec)
    raise ConfigError(
        "unknown repository type %r" % repo_type,
        hint="Set repo.type to 'local' (a directory, also NFS) or 's3' (AWS S3 or an S3-compatible store)",
    )


def timed(fn, *args, **kwargs):
    """Run ``fn`` and return (result, latency in milliseconds)."""
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, round((time.monotonic() - start) * 1000.0, 2)
