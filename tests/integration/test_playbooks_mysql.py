# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job-template playbooks with dp_engine=mysql, run as AWX would, against a real MariaDB."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import signal
import subprocess
import time

import pytest

from harness.dbservers import free_port
from harness.playbook import run_playbook as playbook


@pytest.fixture
def started_by_restore():
    """Data directories a restore started a server on: those servers are stopped at teardown (by their pid file)."""
    data_dirs = []
    yield data_dirs
    for data_dir in data_dirs:
        pid_file = os.path.join(data_dir, "restore-start.pid")
        try:
            with open(pid_file) as handle:
                pid = int(handle.read().strip())
        except (IOError, OSError, ValueError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue
        deadline = time.time() + 60
        while time.time() < deadline and os.path.exists("/proc/%d" % pid):
            time.sleep(0.2)


def socket_sql(server, socket, statement):
    """Run SQL on another server (same root password) through its Unix socket; return stdout."""
    argv = [server.client, "--no-defaults", "--socket=%s" % socket, "--user=root", "--batch", "--skip-column-names", "-e", statement]
    return subprocess.run(argv, env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=60, check=True).stdout.strip()


def test_setup_backup_restore_and_pitr_playbooks(mariadb_factory, mariadb_on_datadir, server_tmp_path, started_by_restore):
    db = mariadb_factory()
    db.sql("CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=InnoDB;"
           "INSERT INTO t SELECT seq, 'base' FROM seq_1_to_321")
    repo = {"type": "local", "path": str(server_tmp_path / "repo")}
    connection = {"host": db.host, "port": db.port, "user": db.user, "password": db.password}
    common = {"dp_repo": repo, "dp_cluster": "job-mysql", "dp_engine": "mysql", "dp_connection": connection}

    # The repository belongs to mysql, which owns the binary logs: what log shipping needs.
    run = playbook("setup_repo.yml", {"dp_repo": repo, "dp_repo_owner": "mysql"})
    assert run.returncode == 0, run.stdout[-3000:]
    assert os.stat(repo["path"]).st_uid == pwd.getpwnam("mysql").pw_uid

    run = playbook("backup.yml", dict(common, dp_labels={"job": "nightly"}, dp_parallel=2))
    assert run.returncode == 0 and "consistent at" in run.stdout, run.stdout[-3000:]
    assert db.password not in run.stdout
    backup_id = os.listdir(os.path.join(repo["path"], "job-mysql", "backups"))[0]

    # Written after the backup: a restore of the backup set has none of them.
    db.sql("INSERT INTO shop.t VALUES (1001, 'first')")
    time.sleep(2)
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(2)
    db.sql("INSERT INTO shop.t VALUES (1002, 'second'); DELETE FROM shop.t WHERE id = 1")

    # A backup set, started by the restore itself on its own port and socket, with an option file.
    target = str(server_tmp_path / "restored")
    socket_dir = server_tmp_path / "sock"
    socket_dir.mkdir()
    mysql_user = pwd.getpwnam("mysql")
    os.chown(str(socket_dir), mysql_user.pw_uid, mysql_user.pw_gid)
    defaults_file = server_tmp_path / "my.cnf"
    defaults_file.write_text(u"[mysqld]\ninnodb_buffer_pool_size = 48M\nskip_name_resolve\n")
    os.chmod(str(defaults_file), 0o644)
    port = free_port()
    restore = dict(common, dp_backup_id=backup_id, dp_data_dir=target, dp_start=True, dp_port=port, dp_socket_dir=str(socket_dir),
                   dp_defaults_file=str(defaults_file), dp_wait_timeout=120)
    run = playbook("restore.yml", restore, check=True)
    assert run.returncode == 0 and backup_id in run.stdout and not os.path.exists(target), run.stdout[-3000:]
    started_by_restore.append(target)
    run = playbook("restore.yml", restore)
    assert run.returncode == 0, run.stdout[-3000:]
    socket = str(socket_dir / ("mysqld-%d.sock" % port))
    assert socket_sql(db, socket, "SELECT count(*), MAX(id) FROM shop.t") == "321\t321"
    assert socket_sql(db, socket, "SELECT @@innodb_buffer_pool_size") == str(48 * 1024 * 1024)
    assert os.stat(target).st_uid == mysql_user.pw_uid

    # To the moment between the two writes: pitr.yml ships the binary logs first.
    pitr_target = str(server_tmp_path / "pitr")
    run = playbook("pitr.yml", dict(common, dp_restore_time=moment, dp_data_dir=pitr_target))
    assert run.returncode == 0, run.stdout[-3000:]
    restored = mariadb_on_datadir(pitr_target, password=db.password)
    assert restored.sql("SELECT count(*), MAX(id), MIN(id) FROM shop.t") == "322\t1001\t1"
