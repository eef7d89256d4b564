# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository's own description: ``<root>/dataprotection.json``.

It makes the repository self-describing: the format version, when it was
created, the defaults, and (for an encrypted repository) the key derivation
parameters and a key-check value.  Never the key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.dataprotection.databases.plugins.module_utils import crypto
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    FormatVersionError,
    NotARepository,
    ObjectExists,
    RepositoryError,
    RepositoryNotFound,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import open_repo
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, utcnow

CONFIG_KEY = "dataprotection.json"
FORMAT_NAME = "dataprotection.databases"
FORMAT_VERSION = 1


def read_config(repo):
    """Return the parsed dataprotection.json, or None when the repository has none."""
    if repo.stat(CONFIG_KEY) is None:
        return None
    raw = repo.get_bytes(CONFIG_KEY)
    try:
        config = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise NotARepository(
            "%s/%s is not valid JSON" % (repo.location(), CONFIG_KEY),
            hint="The location holds something that is not a dataprotection.databases repository; choose another path or prefix",
        )
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise NotARepository(
            "%s/%s does not describe a dataprotection.databases repository" % (repo.location(), CONFIG_KEY),
            hint="Choose another repo.path or repo.prefix",
        )
    version = config.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FormatVersionError(
            "repository %s has format version %s; this collection reads version %d and older" % (repo.location(), version, FORMAT_VERSION),
            hint="Upgrade the dataprotection.databases collection (and the agent on the hosts) before using this repository",
        )
    return config


def new_config(encryption_key=None, defaults=None):
    """Return (config dict, master key or None) for a new repository."""
    config = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created_at": format_time(utcnow()),
        "defaults": dict(defaults or {"compression": "zstd", "compression_level": 3}),
        "encryption": None,
    }
    master = None
    if encryption_key:
        config["encryption"], master = crypto.new_encryption_record(encryption_key)
    return config, master


def write_config(repo, config):
    """Write dataprotection.json; refuse to replace one written concurrently."""
    data = json.dumps(config, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    try:
        repo.put_bytes(CONFIG_KEY, data, overwrite=False)
    except ObjectExists:
        raise RepositoryError(
            "another run created %s/%s at the same time" % (repo.location(), CONFIG_KEY),
            hint="Run the task again; it will find and check the existing repository",
        )


def public_config(config):
    """The config without key material, for module results."""
    if config is None:
        return None
    result = dict(config)
    if result.get("encryption"):
        result["encryption"] = {"algorithm": config["encryption"].get("algorithm"), "kdf": config["encryption"].get("kdf", {}).get("name")}
    return result


class Repository(object):
    """An opened repository: the backend, its description and the unlocked key."""

    def __init__(self, repo, config, master_key):
        self.repo = repo
        self.config = config
        self.master_key = master_key

    @property
    def encrypted(self):
        return self.master_key is not None

    @property
    def defaults(self):
        return self.config.get("defaults") or {}

    def close(self):
        self.repo.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


def open_repository(spec, repo=None):
    """Open an existing repository and unlock it with ``spec['encryption_key']``."""
    repo = repo or open_repo(spec)
    try:
        config = read_config(repo)
        if config is None:
            raise RepositoryNotFound(
                "no repository at %s (%s is missing)" % (repo.location(), CONFIG_KEY),
                hint="Create it first with dataprotection.databases.backup_repo (state: present), or check repo.path / repo.bucket / repo.prefix",
            )
        master = crypto.unlock(config.get("encryption"), spec.get("encryption_key"), repo.location())
    except Exception:
        repo.close()
        raise
    return Repository(repo, config, master)
