# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the collection's modules through real ansible-playbook runs.

``run_tasks`` writes a playbook for localhost, runs it with the checkout on
the collections path, and returns every registered result, so tests can
assert on what a user's play would see.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import subprocess
import sys
import tempfile

import yaml


def _ansible_playbook():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else "ansible-playbook"


class PlaybookRun(object):
    def __init__(self, returncode, stdout, stderr, results):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.results = results

    def __getitem__(self, name):
        return self.results[name]

    def __repr__(self):
        return "PlaybookRun(rc=%s)\n%s\n%s" % (self.returncode, self.stdout[-4000:], self.stderr[-2000:])


def run_tasks(tasks, check=False, diff=False, extra_env=None, module_defaults=None, play_vars=None):
    """Run ``tasks`` (a list of task dicts; give each a ``register``) on localhost.

    Every task runs with ``ignore_errors: true`` so failures are returned as
    results (``failed``, ``msg``) for the test to assert on.
    """
    workdir = tempfile.mkdtemp(prefix="dp-play-")
    dump = os.path.join(workdir, "results.json")
    names = [t["register"] for t in tasks if "register" in t]
    play_tasks = []
    for task in tasks:
        task = dict(task)
        task.setdefault("ignore_errors", True)
        play_tasks.append(task)
    play_tasks.append({
        "name": "Dump the registered results",
        "ansible.builtin.copy": {
            "dest": dump,
            "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s | default(None)" % (n, n) for n in names),
            "mode": "0600",
        },
        "check_mode": False,
        "diff": False,
    })
    play = {"name": "test", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": play_tasks}
    if module_defaults:
        play["module_defaults"] = module_defaults
    if play_vars:
        play["vars"] = play_vars
    path = os.path.join(workdir, "play.yml")
    with open(path, "w") as handle:
        yaml.safe_dump([play], handle, sort_keys=False)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.environ["DP_COLLECTIONS_ROOT"],
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
    })
    env.update(extra_env or {})
    cmd = [_ansible_playbook(), "-i", "localhost,", path]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=900, check=False)
    results = {}
    if os.path.exists(dump):
        with open(dump) as handle:
            results = json.load(handle)
    run = PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)
    if not os.path.exists(dump):
        raise AssertionError("ansible-playbook did not finish: %r" % run)
    return run


def run_playbook(name, extra, check=False):
    """Run one of the collection's playbooks with extra vars (JSON), as an AWX job template would."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.environ["DP_COLLECTIONS_ROOT"], ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="false")
    argv = [_ansible_playbook(), "-i", "localhost,", "-c", "local", os.path.join(checkout, "playbooks", name), "-e", json.dumps(extra)]
    if check:
        argv.append("--check")
    return subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600, check=False)


def task(module, register, **args):
    """A task of one of the collection's modules, registered under ``register``."""
    return {"name": register, "dataprotection.databases.%s" % module: args, "register": register}


def with_connection(args, connection):
    changed = dict(args)
    changed["connection"] = connection
    return changed


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
