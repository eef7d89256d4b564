# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nebula Graph method nebula-br (EXPERIMENTAL), against a fake ``br`` and a fake ``nebula-console``.

No Nebula Graph and no BR can run on the test machines.  The fake ``br``
(tests/unit/fixtures/nebula/br) follows BR's README (vesoft-inc/nebula-br), the
Nebula docs pages "Use BR to back up data" / "Use BR to restore data", and
what BR's published source prints (``Start to backup cluster...``, logrus JSON
log lines carrying the backup name, ``Backup succeed.``, ``Backup failed: ...,
will try to clean the remaining garbage...``, ``Cleanup backup <name>
successfully after backup failed.``, cobra's ``Error: ...`` on stderr); it
writes BR's layout (``<name>/<name>.meta``, ``meta/``, ``data/<host>/data0/<space
id>/``) into the bucket of the real S3 protocol server of tests/harness/s3server.py
(moto) with boto3, as BR's agents would.  The fake console answers SHOW SPACES
and SHOW HOSTS META/STORAGE in the format of the nGQL guide's "SHOW HOSTS" page.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import types

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import engines
from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import nebula
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError, EngineError, MissingDependency, RepositoryError
from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import new_config, write_config
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import LocalRepo, open_repo
from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nebula")
PASSWORD = "s3cret-nebula-pw"
PREFIX = "team/graphs"
CLUSTER = "graph"


def install(bin_dir, name):
    """A fixture tool in bin_dir, run by the tests' Python (boto3 is there)."""
    with open(os.path.join(FIXTURES, name)) as handle:
        body = handle.read().split("\n", 1)[1]
    target = bin_dir / name
    target.write_text("#!%s\n%s" % (sys.executable, body))
    os.chmod(str(target), 0o755)


class State(object):
    def __init__(self, path, data):
        self.path = path
        self.path.write_text(json.dumps(data))

    def read(self):
        return json.loads(self.path.read_text())

    def update(self, **changes):
        data = self.read()
        data.update(changes)
        self.path.write_text(json.dumps(data))


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """The fake br and nebula-console in a bin_dir (given as connection.bin_dir, not on PATH); their state files."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install(bin_dir, "br")
    install(bin_dir, "nebula-console")
    console = State(tmp_path / "console.json", {
        "spaces": ["basketballplayer", "docs"], "password": PASSWORD, "version": "3.6.0",
        "hosts": [{"host": "storaged0", "port": 9779, "status": "ONLINE"}, {"host": "storaged1", "port": 9779, "status": "ONLINE"}],
        "metas": [{"host": "metad0", "port": 9559, "status": "ONLINE"}], "roles": {}})
    br = State(tmp_path / "br.json", {"meta": "metad0:9559", "spaces": {"basketballplayer": 1, "docs": 2},
                                      "hosts": ["storaged0:9779", "storaged1:9779"]})
    monkeypatch.setenv("NEBULA_FAKE_STATE", str(console.path))
    monkeypatch.setenv("NEBULA_BR_STATE", str(br.path))
    monkeypatch.setitem(engines.REGISTRY, "nebula", nebula)
    return types.SimpleNamespace(bin_dir=str(bin_dir), console=console, br=br)


@pytest.fixture
def s3spec(s3_server):
    spec = s3_server.repo_spec(s3_server.make_bucket(), prefix=PREFIX)
    write_config(open_repo(spec), new_config()[0])
    return spec


def request(fakes, **options):
    return BackupRequest("nebula", "nebula-br", CLUSTER, connection={"password": PASSWORD, "bin_dir": fakes.bin_dir}, options=options)


def keys(spec, prefix):
    return sorted(info.key for info in open_repo(spec).list(prefix))


def br_calls(fakes):
    return [argv[1:] for argv in fakes.br.read().get("calls", [])]


def storage_flags(spec):
    return ["--storage", "s3://%s/%s/%s/nebula-br/" % (spec["bucket"], PREFIX, CLUSTER), "--s3.endpoint", spec["endpoint_url"],
            "--s3.region", spec["region"], "--s3.access_key", spec["access_key"], "--s3.secret_key", spec["secret_key"]]


def without_log(argv):
    """argv without the trailing ``--log <file in a temporary directory>`` (checked separately)."""
    assert argv[-2] == "--log" and argv[-1].endswith("/br.log")
    return argv[:-2]


def test_backup_runs_br_into_the_repository_prefix_and_records_it(fakes, s3spec):
    result = run_backup(s3spec, request(fakes))
    (argv,) = br_calls(fakes)
    assert without_log(argv) == ["backup", "full", "--meta", "metad0:9559"] + storage_flags(s3spec)
    manifest = result["manifest"]
    info = manifest["nebula_br"]
    assert info["name"].startswith("BACKUP_") and info["meta"] == "metad0:9559" and info["all_spaces"] is True
    assert info["spaces"] == ["basketballplayer", "docs"] and info["storage_hosts"] == ["storaged0:9779", "storaged1:9779"]
    assert info["storage"] == "s3://%s/%s/%s/nebula-br/" % (s3spec["bucket"], PREFIX, CLUSTER)
    # BR's files are in the bucket next to the cluster's backups: meta file, meta SST, 2 hosts x 2 spaces x (sst + wal).
    stored = keys(s3spec, "%s/nebula-br/%s/" % (CLUSTER, info["name"]))
    assert len(stored) == 10 and info["files"] == 10 and "%s/nebula-br/%s/%s.meta" % (CLUSTER, info["name"], info["name"]) in stored
    assert "%s/nebula-br/%s/data/storaged1:9779/data0/2/data/000009.sst" % (CLUSTER, info["name"]) in stored
    # The collection's own object lists them; the manifest is committed.
    assert [o["name"] for o in manifest["objects"]] == ["nebula-br.json"] and manifest["compression"] == "none"
    backup_keys = keys(s3spec, "%s/backups/%s/" % (CLUSTER, manifest["backup_id"]))
    assert any(k.endswith("/manifest.json") for k in backup_keys)
    assert manifest["engine_version"] == "3.6.0" and manifest["consistency"] == "application"
    assert result["backup"]["positions"] == {"br_backup": info["name"], "spaces": ["basketballplayer", "docs"]}
    assert s3spec["secret_key"] not in json.dumps(result, default=str)


def test_backup_names_spaces_and_refuses_an_unknown_one_before_br(fakes, s3spec):
    with pytest.raises(ConfigError) as caught:
        run_backup(s3spec, request(fakes, collections=["docs", "nope"]))
    assert "nope" in caught.value.message and "basketballplayer" in caught.value.hint
    assert br_calls(fakes) == [] and keys(s3spec, CLUSTER + "/") == []
    result = run_backup(s3spec, request(fakes, collections=["docs"]))
    (argv,) = br_calls(fakes)
    assert without_log(argv)[-2:] == ["--spaces", "docs"]
    assert result["manifest"]["nebula_br"]["spaces"] == ["docs"] and result["manifest"]["nebula_br"]["all_spaces"] is False


def test_check_mode_plan_changes_nothing_and_warns_of_the_secret(fakes, s3spec):
    result = run_backup(s3spec, request(fakes, collections=["docs"]), check_mode=True)
    plan = result["plan"]
    assert plan["meta"] == "metad0:9559" and plan["spaces"] == ["docs"] and plan["br"] == os.path.join(fakes.bin_dir, "br")
    assert any("process list" in w for w in plan["warnings"]) and any("EXPERIMENTAL" in w for w in plan["warnings"])
    assert br_calls(fakes) == [] and keys(s3spec, CLUSTER + "/") == []
    assert plan["storage"].startswith("s3://") and plan["storage"].endswith("/%s/nebula-br/" % CLUSTER), plan["storage"]


def test_br_missing_names_the_release_binaries(fakes, s3spec, tmp_path, monkeypatch):
    os.remove(os.path.join(fakes.bin_dir, "br"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(nebula, "BR_DIRS", ())
    with pytest.raises(MissingDependency) as caught:
        run_backup(s3spec, request(fakes))
    assert "br" in caught.value.message and "github.com/vesoft-inc/nebula-br/releases" in caught.value.hint


def test_local_repository_needs_backend_local_and_nodes(fakes, tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    write_config(LocalRepo({"path": str(path)}), new_config()[0])
    spec = {"type": "local", "path": str(path)}
    for check_mode in (True, False):
        with pytest.raises(ConfigError, match="backend s3 of method nebula-br needs an S3 repository"):
            run_backup(spec, request(fakes, backend="s3"), check_mode=check_mode)
        with pytest.raises(ConfigError, match="not on S3"):
            run_backup(spec, request(fakes), check_mode=check_mode)
    with pytest.raises(ConfigError, match="backend local reads the checkpoints from this host's disks: nodes must name"):
        run_backup(spec, request(fakes, backend="local"))
    with pytest.raises(ConfigError, match="not a backend"):
        run_backup(spec, request(fakes, backend="nfs"))
    assert br_calls(fakes) == []
    assert not [k.key for k in LocalRepo({"path": str(path)}).list("graph/backups/")]


def test_br_target_needs_static_keys():
    repo = types.SimpleNamespace(type="s3", spec={"bucket": "b", "prefix": "", "access_key": None, "secret_key": None, "session_token": None},
                                 location=lambda: "s3://b")
    with pytest.raises(ConfigError, match="static access key"):
        nebula.BrTarget(repo, CLUSTER)
    repo.spec.update(access_key="AK", secret_key="SK", session_token="TOKEN")
    with pytest.raises(ConfigError, match="session token"):
        nebula.BrTarget(repo, CLUSTER)
    repo.spec.update(session_token=None, region="eu-west-1", endpoint_url=None)
    target = nebula.BrTarget(repo, CLUSTER)
    assert target.uri == "s3://b/graph/nebula-br/"
    assert target.flags == ["--storage", "s3://b/graph/nebula-br/", "--s3.endpoint", "https://s3.eu-west-1.amazonaws.com",
                            "--s3.region", "eu-west-1", "--s3.access_key", "AK", "--s3.secret_key", "SK"]


def test_br_failure_after_its_own_cleanup_stores_nothing(fakes, s3spec):
    fakes.br.update(fail="upload", echo_argv=True)
    with pytest.raises(EngineError) as caught:
        run_backup(s3spec, request(fakes))
    message = str(caught.value)
    assert "exit 1" in message and "agent of storaged0:9779 is unreachable" in message and "BR cleaned up BACKUP_" in message
    # br repeated its command line, secret key included: the message shows it masked.
    assert s3spec["secret_key"] not in message and "--s3.secret_key %s" % nebula.HIDDEN in message
    # BR cleaned up itself: no second cleanup; nothing of the backup remains anywhere in the cluster's tree.
    calls = br_calls(fakes)
    assert [c[:2] for c in calls] == [["backup", "full"]]
    assert [c["by"] for c in fakes.br.read()["cleaned"]] == ["backup"]
    assert keys(s3spec, CLUSTER + "/") == []


def test_br_failure_without_its_cleanup_runs_br_cleanup(fakes, s3spec):
    fakes.br.update(fail="upload", self_cleanup_fails=True)
    with pytest.raises(EngineError) as caught:
        run_backup(s3spec, request(fakes))
    calls = br_calls(fakes)
    assert [c[:2] for c in calls] == [["backup", "full"], ["cleanup", "--meta"]]
    name = fakes.br.read()["cleaned"][0]["name"]
    assert without_log(calls[1]) == ["cleanup", "--meta", "metad0:9559"] + storage_flags(s3spec) + ["--name", name]
    assert "br cleanup --name %s done" % name in caught.value.message and "cleanup %s failed when backup failed" % name in caught.value.message
    assert keys(s3spec, CLUSTER + "/") == []


def test_br_past_operation_timeout_is_stopped_and_its_backup_cleaned(fakes, s3spec):
    fakes.br.update(hang=60)
    with pytest.raises(EngineError) as caught:
        run_backup(s3spec, request(fakes, operation_timeout=6))
    message = caught.value.message
    assert "did not finish within 6 seconds" in message and "br cleanup --name BACKUP_" in message and " done" in message
    # The killed run recorded nothing; the cleanup run did, with the name of the directory br had started.
    (argv,) = br_calls(fakes)
    assert argv[:4] == ["cleanup", "--meta", "metad0:9559", "--storage"] and argv[argv.index("--name") + 1].startswith("BACKUP_")
    assert keys(s3spec, CLUSTER + "/") == []


def test_br_that_cannot_reach_meta_names_no_backup(fakes, s3spec):
    fakes.br.update(fail="meta")
    with pytest.raises(EngineError) as caught:
        run_backup(s3spec, request(fakes))
    assert "create meta client failed" in caught.value.message and "nothing to clean" in caught.value.message
    assert len(br_calls(fakes)) == 1 and keys(s3spec, CLUSTER + "/") == []


def test_restore_needs_force_then_runs_br_restore(fakes, s3spec):
    manifest = run_backup(s3spec, request(fakes))["manifest"]
    name = manifest["nebula_br"]["name"]
    connection = {"password": PASSWORD, "bin_dir": fakes.bin_dir}
    assert nebula.restores_into_server(manifest) is True
    with pytest.raises(ConfigError) as caught:
        run_restore(s3spec, RestoreRequest("nebula", CLUSTER, None, backup_id=manifest["backup_id"], connection=connection))
    assert "replaces all data" in caught.value.message and "force: true" in caught.value.hint
    plan = run_restore(s3spec, RestoreRequest("nebula", CLUSTER, None, backup_id=manifest["backup_id"], connection=connection, force=True),
                       check_mode=True)["plan"]
    assert plan["br_backup"] == name and plan["meta"] == "metad0:9559" and "restored" not in fakes.br.read()
    result = run_restore(s3spec, RestoreRequest("nebula", CLUSTER, None, backup_id=manifest["backup_id"], connection=connection, force=True))
    argv = br_calls(fakes)[-1]
    assert without_log(argv) == ["restore", "full", "--meta", "metad0:9559"] + storage_flags(s3spec) + ["--name", name]
    assert fakes.br.read()["restored"] == [{"name": name, "meta": "metad0:9559", "spaces": ["basketballplayer", "docs"],
                                            "storage": "s3://%s/%s/%s/nebula-br" % (s3spec["bucket"], PREFIX, CLUSTER)}]
    assert result["restored"]["br_backup"] == name and s3spec["secret_key"] not in json.dumps(result, default=str)


def test_restore_failure_and_missing_br_files(fakes, s3spec):
    manifest = run_backup(s3spec, request(fakes))["manifest"]
    connection = {"password": PASSWORD, "bin_dir": fakes.bin_dir}
    fakes.br.update(restore_fails=True, echo_argv=True)
    with pytest.raises(EngineError) as caught:
        run_restore(s3spec, RestoreRequest("nebula", CLUSTER, None, backup_id=manifest["backup_id"], connection=connection, force=True))
    assert "restore storage of %s failed" % manifest["nebula_br"]["name"] in caught.value.message
    assert s3spec["secret_key"] not in str(caught.value) and "--s3.secret_key %s" % nebula.HIDDEN in caught.value.message
    repo = open_repo(s3spec)
    repo.delete_many([info.key for info in repo.list("%s/nebula-br/" % CLUSTER)])
    calls = len(br_calls(fakes))
    with pytest.raises(RepositoryError, match="is not under"):
        run_restore(s3spec, RestoreRequest("nebula", CLUSTER, None, backup_id=manifest["backup_id"], connection=connection, force=True))
    assert len(br_calls(fakes)) == calls


def test_offline_meta_host_is_refused_before_br(fakes, s3spec):
    fakes.console.update(metas=[{"host": "metad0", "port": 9559, "status": "OFFLINE"}])
    with pytest.raises(EngineError, match="metad0:9559 \\(OFFLINE\\)"):
        run_backup(s3spec, request(fakes))
    assert br_calls(fakes) == []


def test_retention_deletes_br_files_with_the_backup_and_finishes_an_interrupted_deletion(fakes, s3spec, monkeypatch):
    from ansible_collections.dataprotection.databases.plugins.module_utils import retention  # pylint: disable=import-outside-toplevel
    names = [run_backup(s3spec, request(fakes))["manifest"]["nebula_br"]["name"] for dummy in range(3)]
    assert len(set(names)) == 3 and all(keys(s3spec, "%s/nebula-br/%s/" % (CLUSTER, n)) for n in names)
    before = keys(s3spec, CLUSTER + "/")
    plan = retention.run_retention(s3spec, CLUSTER, retention.Policy(keep_last=2), check_mode=True)
    (row,) = plan["expired"]
    (owned,) = row["owned"]
    files = keys(s3spec, "%s/nebula-br/%s/" % (CLUSTER, names[0]))
    assert owned["prefix"] == "%s/nebula-br/%s/" % (CLUSTER, names[0]) and owned["objects"] == len(files) and owned["bytes"] > 0
    assert plan["bytes_freed"] == row["stored_size"] + owned["bytes"] and plan["owned_deleted"] == []
    assert keys(s3spec, CLUSTER + "/") == before, "check mode deleted something"
    assert not any("backup_retention" in w for w in nebula.br_warnings([]))

    done = retention.run_retention(s3spec, CLUSTER, retention.Policy(keep_last=2))
    assert done["changed"] and done["owned_deleted"] == [owned["prefix"]]
    assert keys(s3spec, owned["prefix"]) == [] and all(keys(s3spec, "%s/nebula-br/%s/" % (CLUSTER, n)) for n in names[1:])

    # Interrupted after the un-commit: the BR files are listed under pending-deletions, and the next run deletes them.
    real = retention._delete_leftover  # pylint: disable=protected-access

    def interrupted(repo, record, found):
        raise RepositoryError("connection reset while deleting %s" % record["repository_prefix"])

    monkeypatch.setattr(retention, "_delete_leftover", interrupted)
    with pytest.raises(RepositoryError, match="connection reset"):
        retention.run_retention(s3spec, CLUSTER, retention.Policy(keep_last=1))
    pending = keys(s3spec, "%s/pending-deletions/" % CLUSTER)
    assert len(pending) == 1 and keys(s3spec, "%s/nebula-br/%s/" % (CLUSTER, names[1]))
    monkeypatch.setattr(retention, "_delete_leftover", real)
    done = retention.run_retention(s3spec, CLUSTER, retention.Policy(keep_last=1))
    assert done["changed"] and done["expired"] == [] and done["owned_deleted"] == ["%s/nebula-br/%s/" % (CLUSTER, names[1])]
    assert keys(s3spec, "%s/nebula-br/%s/" % (CLUSTER, names[1])) == [] and keys(s3spec, "%s/pending-deletions/" % CLUSTER) == []
    assert keys(s3spec, "%s/nebula-br/%s/" % (CLUSTER, names[2])), "the kept backup's BR files were deleted"
