# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules' argument handling, check mode and error shaping, called in-process."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dataprotection.databases.plugins.modules import backup_info, backup_repo


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


@pytest.fixture(autouse=True)
def exits(monkeypatch):
    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        kwargs["failed"] = True
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "DATAPROTECTION_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)


def call(module, args, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises((ExitJson, FailJson)) as outcome:
            module.main()
    return outcome.value.args[0]


def test_check_mode_returns_the_plan_and_writes_nothing(tmp_path):
    path = str(tmp_path / "repo")
    result = call(backup_repo, {"repo": {"path": path}}, check_mode=True)
    assert result["changed"] is True and not result.get("failed")
    assert result["plan"][0] == "create directory %s" % path
    assert not os.path.exists(path)


def test_real_run_then_no_change(tmp_path):
    path = str(tmp_path / "repo")
    assert call(backup_repo, {"repo": {"path": path}})["changed"] is True
    second = call(backup_repo, {"repo": {"path": path}})
    assert second["changed"] is False and second["created"] is False


@pytest.mark.parametrize("repo,expected", [
    ({"type": "s3"}, "bucket"),
    ({"type": "local"}, "path"),
    ({"type": "nfs", "path": "/x"}, "local, s3"),
    ({"type": "s3", "bucket": "b", "addressing_style": "sideways"}, "auto, path, virtual"),
])
def test_argument_errors(repo, expected):
    result = call(backup_repo, {"repo": repo})
    assert result["failed"] and expected in result["msg"]


def test_core_errors_carry_kind_and_hint(tmp_path):
    result = call(backup_info, {"repo": {"path": str(tmp_path / "none")}})
    assert result["failed"]
    assert result["error"]["kind"] == "repository_not_found"
    assert "backup_repo" in result["error"]["hint"]
    assert result["msg"].startswith("no repository at")


def test_secrets_are_masked_in_results(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
    result = call(backup_repo, {"repo": {"path": str(tmp_path / "r"), "encryption_key": "pass-phrase-1"}})
    text = json.dumps(result)
    assert "pass-phrase-1" not in text and "env-secret-value" not in text
    assert result["format"]["encryption"]["algorithm"] == "aes-256-gcm"


def test_info_refuses_malformed_times(tmp_path):
    call(backup_repo, {"repo": {"path": str(tmp_path / "r")}})
    result = call(backup_info, {"repo": {"path": str(tmp_path / "r")}, "until": "2026-02-30T00:00:00Z"})
    assert result["failed"] and "until" in result["msg"]
