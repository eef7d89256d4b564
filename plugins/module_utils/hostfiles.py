# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files on the database host, shared by the engines.

Restore targets (refuse a non-empty or in-use directory, empty it again when a
restore fails), owners, and the host command's per-cluster configuration
files (written atomically, mode 0600, owned by the database's user).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import shutil

from ansible_collections.dataprotection.databases.plugins.module_utils import tools
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError


def lookup_user(name, what="the server"):
    """The passwd entry of ``name``, or ConfigError."""
    import pwd  # pylint: disable=import-outside-toplevel

    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ConfigError("owner %r is not a user on this host" % name, hint="Create the user or set owner to the user %s runs as" % what)


def unreachable_parent(path, user):
    """The first existing parent of ``path`` that ``user`` (a passwd entry) may not search, as ``(directory, stat)``, or None.

    By the mode bits (not ACLs); parents the restore creates get 0755, and
    ``path`` itself is given to the user."""
    if user.pw_uid == 0:
        return None
    import grp  # pylint: disable=import-outside-toplevel

    groups = set([user.pw_gid] + [g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem])
    parents = []
    current = os.path.abspath(path)
    while os.path.dirname(current) != current:
        current = os.path.dirname(current)
        parents.append(current)
    for directory in reversed(parents):
        try:
            st = os.stat(directory)
        except OSError:
            return None
        if st.st_uid == user.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return directory, st
    return None


def check_reachable(path, user, server):
    """Refuse a target that ``server``, run as ``user``, could not reach (a parent it may not search)."""
    found = unreachable_parent(path, user)
    if found:
        import grp  # pylint: disable=import-outside-toplevel
        import pwd  # pylint: disable=import-outside-toplevel

        directory, st = found
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        raise ConfigError(
            "%s, run as %s, could not reach %s: %s is mode %04o, owner %s, group %s"
            % (server, user.pw_name, path, directory, st.st_mode & 0o7777, owner, group),
            hint="Restore under a directory %s can search, or let it through (for example chmod o+x %s); or leave start off" % (user.pw_name, directory),
        )


def chown_tree(path, owner, group=None):
    import grp  # pylint: disable=import-outside-toplevel

    entry = lookup_user(owner)
    try:
        gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    except KeyError:
        raise ConfigError("group %r is not a group on this host" % group)
    uid = entry.pw_uid
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def pid_alive(pid):
    """Whether a process runs (zombies do not count)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except IOError:
        return True


def read_pid(path):
    try:
        with open(path) as handle:
            return int(handle.readline().strip())
    except (IOError, OSError, ValueError):
        return None


def check_target(data_dir, force, in_use=None, server="the server"):
    """Refuse a non-empty directory unless ``force``, and an in-use one always; return its entries.

    ``in_use(data_dir)`` returns a sentence when a running server uses the
    directory, or None.
    """
    if not os.path.isabs(data_dir or ""):
        raise ConfigError("data_dir must be an absolute path, got %r" % (data_dir,))
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ConfigError("data_dir %s exists and is not a directory" % data_dir)
    entries = sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []
    if not entries:
        return entries
    busy = in_use(data_dir) if in_use else None
    if busy:
        raise ConfigError("data_dir %s is in use: %s" % (data_dir, busy), hint="Stop %s before restoring over its data directory" % server)
    if not force:
        raise ConfigError(
            "data_dir %s is not empty: it holds %d entries (%s)" % (data_dir, len(entries), ", ".join(entries[:5])),
            hint="Restore into an empty or new directory, or set force: true to replace its contents (stop %s first)" % server,
        )
    return entries


def clear_directory(path):
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def make_dirs(path, mode=0o755):
    """Create ``path`` and its missing parents, each with exactly ``mode``; return those created, outermost first.

    ``os.makedirs`` applies the process umask (root's is often 077), which
    would leave parents that the server's user cannot traverse; these get
    ``mode`` whatever the umask is.  Existing directories are not changed.
    """
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except OSError as exc:
            if exc.errno != errno.EEXIST or not os.path.isdir(directory):
                raise
            continue
        os.chmod(directory, mode)
        created.append(directory)
    return created


class Target(object):
    """A restore target: emptied (or created) on entry, emptied (or removed) again if the restore fails.

    Use as a context manager around everything that writes into it, so no
    half-restored directory is ever left that looks usable.
    """

    def __init__(self, data_dir, mode=0o700):
        self.data_dir = data_dir
        self.mode = mode
        self.created = False

    def __enter__(self):
        self.created = not os.path.exists(self.data_dir)
        if self.created:
            make_dirs(os.path.dirname(os.path.abspath(self.data_dir)))
            make_dirs(self.data_dir, self.mode)
        elif os.listdir(self.data_dir):
            clear_directory(self.data_dir)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        if self.created:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif os.path.isdir(self.data_dir):
            clear_directory(self.data_dir)
        return False


def feed_object(repository, manifest, record, argv, what, timeout=3600):
    """Stream one stored object of a backup, decoded and checked, into a tool's stdin (``tar -x``, ``mbstream -x``)."""
    from ansible_collections.dataprotection.databases.plugins.module_utils import tools  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import object_key  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import copy_object_to  # pylint: disable=import-outside-toplevel

    extractor = tools.FeedingTool(argv, what=what)
    try:
        copy_object_to(repository.repo, object_key(manifest, record), record, extractor.write, repository.master_key)
        extractor.finish(timeout=timeout)
    except BaseException:
        extractor.kill()
        raise
    return record["size"]


def write_object(repository, manifest, record, path):
    """Write one stored object of a backup, decoded and checked, to ``path`` and make it durable."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.manifest import object_key  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.transfer import copy_object_to  # pylint: disable=import-outside-toplevel

    with open(path, "wb") as handle:
        copy_object_to(repository.repo, object_key(manifest, record), record, handle.write, repository.master_key)
        handle.flush()
        os.fsync(handle.fileno())


def log_tail(path, lines=15):
    try:
        with open(path) as handle:
            return "".join(handle.readlines()[-lines:])
    except (IOError, OSError):
        return ""


def log_reason(path, lines=8, markers=("level=error", "panic:", "fatal error:")):
    """The lines of a server's log that say why it stopped (errors, a Go panic or fatal error), else its tail."""
    try:
        with open(path) as handle:
            text = handle.readlines()
    except (IOError, OSError):
        return ""
    reasons = [line for line in text if any(marker in line for marker in markers)]
    return "".join((reasons or text)[-lines:])


def config_differs(path, config):
    """Whether the JSON file at ``path`` differs from ``config`` (or is missing or unreadable)."""
    try:
        with open(path) as handle:
            return json.load(handle) != json.loads(json.dumps(config))
    except (IOError, OSError, ValueError):
        return True


def write_config(path, config, uid, gid):
    """Write a host-command configuration atomically: mode 0600, owned by uid:gid."""
    make_dirs(os.path.dirname(path))
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chown(tmp, uid, gid)
    os.rename(tmp, path)


def read_text(path):
    """A text file's content, or None when it is missing or unreadable."""
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_text(path, content, mode=0o644):
    """Write a text file atomically (a temporary name, fsync, rename)."""
    make_dirs(os.path.dirname(path))
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def systemd_running():
    return os.path.isdir("/run/systemd/system")


def systemctl(*args):
    tools.run([tools.find_tool("systemctl", package="systemd")] + list(args), timeout=120, what="systemctl")


def pick_scheduler(choice, what, hint):
    """``choice`` unless it is ``auto``: then systemd when it runs, else cron when a cron daemon is installed."""
    if choice != "auto":
        return choice
    if systemd_running():
        return "systemd"
    if os.path.isdir("/etc/cron.d") and (tools.find_tool("cron", required=False) or tools.find_tool("crond", required=False)):
        return "cron"
    raise ConfigError("neither systemd nor cron runs on this host, so nothing would run %s" % what, hint=hint)


def check_repo_owner(repo, uid, server, command):
    """A local repository written by the host command must belong to the user the server runs it as."""
    if repo.type != "local":
        return
    import pwd  # pylint: disable=import-outside-toplevel

    if os.stat(repo.root).st_uid != uid:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        raise EngineError(
            "the local repository %s is not owned by %s, the user %s runs %s as" % (repo.root, name, server, command),
            hint="Give it to that user: dataprotection.databases.backup_repo with owner: %s" % name,
        )


def check_agent(agent, untouched):
    """The host command must be installed before a server is pointed at it."""
    if not (os.path.isfile(agent) and os.access(agent, os.X_OK)):
        raise EngineError(
            "the host command %s is not installed on this host" % agent,
            hint="Install it with the dataprotection.databases.agent role, or set agent_command to where it is; %s was not changed" % untouched,
        )
