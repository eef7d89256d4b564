# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module base class: the Ansible side of every module.

It merges the shared ``repo`` option into the argument spec, checks the
Python libraries the chosen options need, and turns the core's errors into
``fail_json`` results that say what failed and what to do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.dataprotection.databases.plugins.module_utils import crypto, transfer
from ansible_collections.dataprotection.databases.plugins.module_utils.args_common import repo_argument_spec
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import DataProtectionError

try:
    import boto3  # noqa: F401, pylint: disable=unused-import

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()


class DataProtectionModule(AnsibleModule):
    """AnsibleModule with the collection's shared options and error handling."""

    def __init__(self, argument_spec=None, needs_zstandard=False, **kwargs):
        super(DataProtectionModule, self).__init__(argument_spec=repo_argument_spec(**(argument_spec or {})), **kwargs)
        self.repo_spec = dict(self.params["repo"])
        if self.repo_spec["type"] == "s3" and not HAS_BOTO3:
            self.fail_json(msg=missing_required_lib("boto3", reason="for repo.type s3"), exception=BOTO3_IMPORT_ERROR)
        if self.repo_spec.get("encryption_key"):
            missing = crypto.cryptography_missing()
            if missing:
                self.fail_json(msg=missing_required_lib("cryptography", reason="for repo.encryption_key"), exception=missing)
        if needs_zstandard and not transfer.HAS_ZSTANDARD:
            self.fail_json(msg=missing_required_lib("zstandard", reason="for zstd compression"), exception=transfer.ZSTANDARD_IMPORT_ERROR)

    def fail_error(self, exc, **result):
        """Fail with a core error: its message and hint, and its details."""
        details = dict(exc.details)
        details.pop("traceback", None)
        for key, value in details.items():
            result.setdefault(key, value)
        result["error"] = {"kind": exc.kind, "message": exc.message, "hint": exc.hint}
        self.fail_json(msg=str(exc), **result)

    def run(self, fn, *args, **kwargs):
        """Call into the core; exit with its result or fail with its error."""
        try:
            result = fn(*args, **kwargs)
        except DataProtectionError as exc:
            self.fail_error(exc)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail_json(msg="unexpected error: %s" % exc, exception=traceback.format_exc())
        self.exit_json(**result)
