# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test session setup.

Makes the checkout importable as ``ansible_collections.dataprotection.databases``
(a symlink tree in a temporary directory, also handed to ansible-playbook runs
through ``COLLECTIONS_ROOT``) and loads the fixtures that start real servers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import os
import shutil
import sys
import tempfile

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(TESTS_DIR)


def _collections_root():
    """Return a directory holding ansible_collections/dataprotection/databases -> checkout."""
    parent = os.path.dirname(CHECKOUT)
    if os.path.basename(parent) == "dataprotection" and os.path.basename(os.path.dirname(parent)) == "ansible_collections":
        return os.path.dirname(os.path.dirname(parent))
    root = tempfile.mkdtemp(prefix="dp-collections-")
    atexit.register(shutil.rmtree, root, True)
    os.makedirs(os.path.join(root, "ansible_collections", "dataprotection"))
    os.symlink(CHECKOUT, os.path.join(root, "ansible_collections", "dataprotection", "databases"))
    return root


COLLECTIONS_ROOT = os.environ.get("DP_COLLECTIONS_ROOT") or _collections_root()
os.environ["DP_COLLECTIONS_ROOT"] = COLLECTIONS_ROOT
if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import pytest  # noqa: E402  (after the import path is set up)

pytest_plugins = ["harness.dbservers", "harness.s3server"]
PYTHON_FOR_AGENT = "/usr/bin/python3"


@pytest.fixture(autouse=True)
def _same_umask_after_each_test():
    """Every test ends with the umask it started with.

    The host command's main() sets 077 for itself; a test calling it in this
    process would otherwise hand 077 to every later test of the worker and to
    the ansible-playbook runs they start (files a server's user cannot read)."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@pytest.fixture
def agent(server_tmp_path):
    """The host command as the agent role lays it out: the core copied where the server's user can
    read it, and a launcher running it with the system Python (Debian's python3-zstandard,
    python3-cryptography, python3-boto3)."""
    lib = server_tmp_path / "lib"
    shutil.copytree(os.path.join(CHECKOUT, "plugins", "module_utils"),
                    str(lib / "ansible_collections" / "dataprotection" / "databases" / "plugins" / "module_utils"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    launcher = server_tmp_path / "bin" / "dataprotection"
    launcher.parent.mkdir()
    launcher.write_text(
        "#!%s -s\nimport sys\nsys.path.insert(0, %r)\n"
        "from ansible_collections.dataprotection.databases.plugins.module_utils.cli import main\n"
        "sys.exit(main())\n" % (PYTHON_FOR_AGENT, str(lib))
    )
    for dirpath, dirnames, filenames in os.walk(str(server_tmp_path)):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    os.chmod(str(launcher), 0o755)
    config_dir = server_tmp_path / "etc"
    config_dir.mkdir()
    os.chmod(str(config_dir), 0o755)
    return {"agent_command": str(launcher), "config_dir": str(config_dir)}


@pytest.fixture
def spec(tmp_path):
    """The ``repo`` option of a new local repository (unencrypted) in the test's directory."""
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import new_config, write_config  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo  # pylint: disable=import-outside-toplevel

    path = tmp_path / "repo"
    path.mkdir()
    write_config(LocalRepo({"path": str(path)}), new_config()[0])
    return {"type": "local", "path": str(path)}
