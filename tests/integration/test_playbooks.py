# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job-template playbooks, run as AWX would: ansible-playbook with extra vars, against a real PostgreSQL 15."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from harness.playbook import run_playbook as playbook


def test_setup_backup_and_restore_playbooks(tmp_path, postgres_factory, postgres_on_datadir, server_tmp_path):
    pg = postgres_factory()
    pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 321) g")
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    common = {"dp_repo": repo, "dp_cluster": "job", "dp_engine": "postgresql", "dp_connection": pg.connection}

    run = playbook("setup_repo.yml", {"dp_repo": repo})
    assert run.returncode == 0, run.stdout[-3000:]
    run = playbook("backup.yml", dict(common, dp_labels={"job": "nightly"}))
    assert run.returncode == 0 and "consistent at" in run.stdout, run.stdout[-3000:]
    assert pg.connection["password"] not in run.stdout
    backup_id = os.listdir(os.path.join(repo["path"], "job", "backups"))[0]

    target = str(server_tmp_path / "restored")
    run = playbook("restore.yml", dict(common, dp_backup_id=backup_id, dp_data_dir=target), check=True)
    assert run.returncode == 0 and backup_id in run.stdout and not os.path.exists(target), run.stdout[-3000:]
    run = playbook("restore.yml", dict(common, dp_backup_id=backup_id, dp_data_dir=target))
    assert run.returncode == 0, run.stdout[-3000:]
    restored = postgres_on_datadir(target)
    assert restored.psql("SELECT count(*) FROM t").strip() == "321"

    run = playbook("restore.yml", dict(common, dp_data_dir=target))
    assert run.returncode != 0 and "exactly one of dp_backup_id or dp_restore_time" in run.stdout
    run = playbook("backup.yml", dict(common, dp_engine="oracle"))
    assert run.returncode != 0 and "support matrix" in run.stdout


def test_backup_playbook_applies_retention_as_a_scheduled_job(tmp_path, postgres_factory):
    """What an AWX schedule on backup.yml does: a backup, then retention of this cluster's backups of that method."""
    pg = postgres_factory()
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    common = {"dp_repo": repo, "dp_cluster": "job", "dp_engine": "postgresql", "dp_connection": pg.connection, "dp_keep_last": 1}
    assert playbook("setup_repo.yml", {"dp_repo": repo}).returncode == 0
    run = playbook("backup.yml", common)
    assert run.returncode == 0 and "retention: 0 backup(s) and 0 log file(s) deleted" in run.stdout, run.stdout[-3000:]
    first = os.listdir(os.path.join(repo["path"], "job", "backups"))
    run = playbook("backup.yml", common)
    assert run.returncode == 0 and "retention: 1 backup(s) and 0 log file(s) deleted" in run.stdout, run.stdout[-3000:]
    second = os.listdir(os.path.join(repo["path"], "job", "backups"))
    assert len(first) == len(second) == 1 and first != second
    run = playbook("backup.yml", dict(common, dp_retention_period="7days"))
    assert run.returncode != 0 and "dp_retention_period is written like 7d" in run.stdout
    assert os.listdir(os.path.join(repo["path"], "job", "backups")) == second, "a refused job took a backup"
    # The standalone retention job: check mode shows what would go, the run deletes it.
    run = playbook("backup.yml", dict(common, dp_keep_last=2))
    retention = {"dp_repo": repo, "dp_cluster": "job", "dp_keep_last": 1}
    run = playbook("retention.yml", retention, check=True)
    assert run.returncode == 0 and second[0] in run.stdout.split('"expired"')[1].split("]")[0], run.stdout[-3000:]
    assert len(os.listdir(os.path.join(repo["path"], "job", "backups"))) == 2
    run = playbook("retention.yml", retention)
    assert run.returncode == 0 and os.listdir(os.path.join(repo["path"], "job", "backups")) != second, run.stdout[-3000:]
    assert len(os.listdir(os.path.join(repo["path"], "job", "backups"))) == 1
