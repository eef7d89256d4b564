# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL/MariaDB engine: command lines, tool checks, client errors, tool reports, privileges, host files, restore targets.

The xtrabackup (MySQL 8) path cannot run here: its command lines, version
rules and report formats are checked against the formats of Percona
XtraBackup 8.0 (fixtures/mysql/README.md says where each sample comes from).
The mariabackup path is checked against files and stderr produced by the real
tool (fixtures/mysql/mariadb_*), and the tests whose docstring says so run a
throwaway MariaDB server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import contextlib
import datetime
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import hostfiles, tools
from ansible_collections.dataprotection.databases.plugins.module_utils.engines import mysql
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    ConfigError,
    EngineError,
    MissingDependency,
    ToolError,
)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mysql")
UUID1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID2 = "4b272950-e317-11eb-a829-d45d64347a19"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def executable(path, text="#!/bin/sh\nexit 0\n"):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o755)
    return path


def client_failure(line):
    """A ToolError as tools.run raises it when the mysql client exits 1 with ``line`` on stderr."""
    return ToolError("mysql client failed (exit 1): %s" % line, returncode=1)


@pytest.fixture(scope="module")
def mariadb():
    """A throwaway MariaDB server for the tests of this module that need one."""
    from harness.dbservers import start_mariadb  # pylint: disable=import-outside-toplevel

    server = start_mariadb()
    yield server
    server.cleanup()


# xtrabackup / mariabackup command lines -----------------------------------


def test_backup_argv_mariadb_socket_with_option_file():
    conn = mysql.Connection({"socket": "/run/mysqld/mysqld.sock", "user": "backup", "password": "s3cret",
                             "defaults_file": "/etc/mysql/backup.cnf"})
    argv = mysql.backup_argv("/usr/bin/mariabackup", conn, mysql.MARIADB, "/tmp/scratch")
    assert argv == ["/usr/bin/mariabackup", "--defaults-file=/etc/mysql/backup.cnf", "--backup", "--stream=mbstream",
                    "--target-dir=/tmp/scratch", "--socket=/run/mysqld/mysqld.sock", "--user=backup"]
    assert "s3cret" not in " ".join(argv)
    assert conn.env() == {"MYSQL_PWD": "s3cret", "TZ": "UTC"}


def test_backup_argv_mysql_tcp_without_option_file_and_parallel():
    conn = mysql.Connection({"host": "db1.example.com", "port": "3307", "password": "s3cret"})
    argv = mysql.backup_argv("/usr/bin/xtrabackup", conn, mysql.MYSQL, "/tmp/scratch", parallel="4")
    assert argv == ["/usr/bin/xtrabackup", "--no-defaults", "--backup", "--stream=xbstream", "--target-dir=/tmp/scratch",
                    "--protocol=TCP", "--host=db1.example.com", "--port=3307", "--user=root", "--parallel=4"]
    assert "s3cret" not in " ".join(argv)


def test_backup_argv_defaults():
    """No host means the loopback address over TCP, port 3306, user root; no --parallel unless asked."""
    conn = mysql.Connection({})
    argv = mysql.backup_argv("xtrabackup", conn, mysql.MYSQL, "/t", parallel=None)
    assert argv[1] == "--no-defaults"
    assert argv[-4:] == ["--protocol=TCP", "--host=127.0.0.1", "--port=3306", "--user=root"]
    assert not [a for a in argv if a.startswith("--parallel")]
    assert conn.target() == "localhost:3306"
    assert mysql.Connection({"host": "db1", "port": 3310}).target() == "db1:3310"
    assert mysql.Connection({"socket": "/s.sock", "host": "db1"}).target() == "/s.sock"


def test_server_command_lines_keep_the_option_file_first(tmp_path):
    """The replay server is private (no network, no grant checks, no binlog of its own); the started one listens."""
    mysqld = executable(str(tmp_path / "mysqld"))
    conn = mysql.Connection({"defaults_file": "/etc/mysql/my.cnf", "flavor": mysql.MYSQL, "bin_dir": str(tmp_path)})
    private = mysql.server_argv(conn, "/var/lib/mysql", "mysql", "/tmp/r.sock", "/tmp/r.pid", "/tmp/r.err", private=True)
    assert private[:6] == [mysqld, "--defaults-file=/etc/mysql/my.cnf", "--datadir=/var/lib/mysql", "--socket=/tmp/r.sock",
                           "--pid-file=/tmp/r.pid", "--log-error=/tmp/r.err"]
    assert {"--skip-networking", "--skip-grant-tables", "--skip-log-bin"} <= set(private)
    assert not [a for a in private if a.startswith("--port")]
    public = mysql.server_argv(mysql.Connection({"bin_dir": str(tmp_path), "flavor": mysql.MYSQL}), "/d", "mysql", "/s", "/p", "/l",
                               port="3307", bind="0.0.0.0")
    assert public[1] == "--no-defaults" and "--port=3307" in public and "--bind-address=0.0.0.0" in public
    assert "--skip-grant-tables" not in public
    assert ("--user=mysql" in public) == (os.geteuid() == 0)


# Tool versions and lookup ------------------------------------------------


@pytest.mark.parametrize("tool_ver,server_ver", [("10.11.19", "10.11.6"), ("10.11.2", "10.11.19"), ("11.4.3", "11.4.3")])
def test_mariabackup_of_the_servers_major_minor_is_accepted(tool_ver, server_ver):
    assert mysql.check_tool_version("/usr/bin/mariabackup", tool_ver, server_ver, mysql.MARIADB) is None


@pytest.mark.parametrize("tool_ver,server_ver", [("10.6.16", "10.11.6"), ("11.4.3", "10.11.6"), ("10.11.6", "10.1.48")])
def test_mariabackup_of_another_major_minor_is_refused(tool_ver, server_ver):
    with pytest.raises(EngineError) as err:
        mysql.check_tool_version("/usr/bin/mariabackup", tool_ver, server_ver, mysql.MARIADB)
    message = str(err.value)
    assert tool_ver in message and server_ver in message and "must match" in message
    assert "mariadb-backup" in err.value.hint


@pytest.mark.parametrize("tool_ver,server_ver", [("8.0.35", "8.0.35"), ("8.0.36", "8.0.35"), ("8.4.3", "8.4.3")])
def test_xtrabackup_at_least_the_server_is_accepted(tool_ver, server_ver):
    assert mysql.check_tool_version("/usr/bin/xtrabackup", tool_ver, server_ver, mysql.MYSQL) is None


@pytest.mark.parametrize("tool_ver,server_ver", [("8.0.35", "8.4.0"), ("2.4.29", "8.0.35"), ("8.0.35", "9.1.0"), ("8.4.0", "8.0.35")])
def test_xtrabackup_of_another_series_or_older_than_the_server_is_refused(tool_ver, server_ver):
    """Percona XtraBackup X.Y backs up MySQL X.Y servers of its release or older (8.4 refuses 8.0 servers)."""
    with pytest.raises(EngineError) as err:
        mysql.check_tool_version("/usr/bin/xtrabackup", tool_ver, server_ver, mysql.MYSQL)
    series = ".".join(server_ver.split(".")[:2])
    assert "needs Percona XtraBackup of the %s series, release %s or later" % (series, server_ver) in str(err.value), str(err.value)


def test_xtrabackup_older_patch_release_than_the_server_is_refused():
    with pytest.raises(EngineError):
        mysql.check_tool_version("/usr/bin/xtrabackup", "8.0.30", "8.0.35", mysql.MYSQL)


def test_xtrabackup_that_cannot_report_its_version_is_refused_cleanly(tmp_path):
    fake = executable(str(tmp_path / "xtrabackup"),
                      "#!/bin/sh\necho 'xtrabackup: error while loading shared libraries: libev.so.4: "
                      "cannot open shared object file: No such file or directory' >&2\nexit 127\n")
    version = mysql.tool_version(fake)
    assert version.startswith("xtrabackup: error while loading shared libraries")
    with pytest.raises(EngineError):
        mysql.check_tool_version(fake, version, "8.0.35", mysql.MYSQL)


def test_tool_version_reads_the_xtrabackup_version_line(tmp_path):
    """xtrabackup prints its version on stderr; the version is the first x.y.z of it (not the MySQL base)."""
    fake = executable(str(tmp_path / "xtrabackup"),
                      "#!/bin/sh\necho 'xtrabackup version 8.0.35-30 based on MySQL server 8.0.35 "
                      "Linux (x86_64) (revision id: 6beb4b49)' >&2\n")
    assert mysql.tool_version(fake) == "8.0.35"


def test_tool_version_of_the_installed_mariabackup_matches_the_server_binary():
    """Needs the MariaDB packages (mariadb-backup, mariadb-server), not a running server."""
    backup = mysql.Connection({}).tool("backup", mysql.MARIADB)
    server = mysql.Connection({}).tool("server", mysql.MARIADB)
    version = mysql.tool_version(backup)
    assert re.match(r"^\d+\.\d+\.\d+$", version)
    assert version == mysql.tool_version(server)
    mysql.check_tool_version(backup, version, version, mysql.MARIADB)


def test_bin_dir_is_searched_first(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    xtrabackup = executable(str(bin_dir / "xtrabackup"))
    xbstream = executable(str(bin_dir / "xbstream"))
    conn = mysql.Connection({"bin_dir": str(bin_dir)})
    assert conn.tool("backup", mysql.MYSQL) == xtrabackup
    assert conn.tool("stream", mysql.MYSQL) == xbstream
    # MariaDB: mariabackup is preferred over mariadb-backup, and either in bin_dir beats the system's.
    second = executable(str(bin_dir / "mariadb-backup"))
    assert conn.tool("backup", mysql.MARIADB) == second
    first = executable(str(bin_dir / "mariabackup"))
    assert conn.tool("backup", mysql.MARIADB) == first
    assert mysql.Connection({"bin_dir": str(bin_dir), "flavor": mysql.MARIADB}).tool("backup") == first


def test_bin_dir_entries_that_are_not_executable_are_skipped(tmp_path):
    """Falls back to the installed mariabackup (needs the mariadb-backup package)."""
    (tmp_path / "mariabackup").write_text("#!/bin/sh\n")
    (tmp_path / "mariadb-backup").mkdir()
    found = mysql.Connection({"bin_dir": str(tmp_path)}).tool("backup", mysql.MARIADB)
    assert not found.startswith(str(tmp_path)) and os.access(found, os.X_OK)
    assert os.path.basename(found) in ("mariabackup", "mariadb-backup")


def test_missing_xtrabackup_names_the_package(tmp_path):
    if tools.find_tool("xtrabackup", mysql.BIN_DIRS, required=False):
        pytest.skip("the missing-tool error cannot be produced: xtrabackup is installed on this host")
    with pytest.raises(MissingDependency) as err:
        mysql.Connection({"bin_dir": str(tmp_path)}).tool("backup", mysql.MYSQL)
    assert "xtrabackup is not installed" in str(err.value)
    assert "percona-xtrabackup-80" in err.value.hint


# Client errors ------------------------------------------------------------

MYSQL8_CLIENT_ERRORS = {
    # Message formats of the MySQL 8.0 client and server (ER_ACCESS_DENIED_ERROR, CR_CONNECTION_ERROR,
    # CR_CONN_HOST_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR) as the mysql client prints them.
    "1045": "ERROR 1045 (28000): Access denied for user 'backup'@'10.0.0.5' (using password: YES)",
    "2002": "ERROR 2002 (HY000): Can't connect to local MySQL server through socket '/var/run/mysqld/mysqld.sock' (2)",
    "2003": "ERROR 2003 (HY000): Can't connect to MySQL server on 'db1.example.com:3306' (111)",
    "1227": "ERROR 1227 (42000) at line 1: Access denied; you need (at least one of) the BACKUP_ADMIN privilege(s) for this operation",
}


def test_explain_wrong_password():
    conn = mysql.Connection({"host": "db1.example.com", "user": "backup"})
    err = conn.explain(client_failure(MYSQL8_CLIENT_ERRORS["1045"]))
    assert isinstance(err, EngineError)
    assert err.message == "the server at db1.example.com:3306 refused user backup: wrong user name or password"
    assert "connection.password" in err.hint


@pytest.mark.parametrize("code", ["2002", "2003"])
def test_explain_cannot_connect(code):
    conn = mysql.Connection({"host": "db1.example.com"})
    err = conn.explain(client_failure("some earlier line\n" + MYSQL8_CLIENT_ERRORS[code]))
    assert err.message == "cannot reach the MySQL/MariaDB server at db1.example.com:3306"
    assert err.hint.endswith(MYSQL8_CLIENT_ERRORS[code])
    assert "some earlier line" not in err.hint


def test_explain_missing_privilege():
    conn = mysql.Connection({"socket": "/run/mysqld/mysqld.sock", "user": "backup"})
    err = conn.explain(client_failure(MYSQL8_CLIENT_ERRORS["1227"]))
    assert err.message.startswith("user backup lacks a privilege on /run/mysqld/mysqld.sock: ")
    assert "BACKUP_ADMIN" in err.message and "GRANT" in err.hint


def test_explain_other_errors_keep_the_text():
    conn = mysql.Connection({"host": "db1"})
    text = "ERROR 1064 (42000) at line 1: You have an error in your SQL syntax"
    err = conn.explain(client_failure(text))
    assert err.message == "MySQL/MariaDB at db1:3306: mysql client failed (exit 1): %s" % text
    assert err.hint is None


def test_query_without_a_server_socket_is_explained():
    """Runs the real mariadb client (mariadb-client package) against a socket nobody listens on."""
    directory = tempfile.mkdtemp(prefix="dp-")  # short: a socket path has at most 107 bytes
    try:
        socket = os.path.join(directory, "none.sock")
        with pytest.raises(EngineError) as err:
            mysql.Connection({"socket": socket, "password": "x"}).query("SELECT 1")
    finally:
        shutil.rmtree(directory)
    assert err.value.message == "cannot reach the MySQL/MariaDB server at %s" % socket
    assert err.value.hint.endswith("ERROR 2002 (HY000): Can't connect to local server through socket '%s' (2)" % socket)


def test_query_to_a_closed_port_is_explained():
    """Runs the real mariadb client (mariadb-client package) against a loopback port nobody listens on."""
    from harness.dbservers import free_port  # pylint: disable=import-outside-toplevel

    port = free_port()
    with pytest.raises(EngineError) as err:
        mysql.Connection({"host": "127.0.0.1", "port": port, "password": "x"}).query("SELECT 1")
    assert err.value.message == "cannot reach the MySQL/MariaDB server at 127.0.0.1:%d" % port
    assert re.search(r"ERROR 200[23]", err.value.hint)


def test_real_client_errors_are_explained(mariadb):
    """Needs a real MariaDB: wrong password (1045), a missing privilege (1227), a syntax error."""
    tcp = {"host": "127.0.0.1", "port": mariadb.port}
    with pytest.raises(EngineError) as err:
        mysql.Connection(dict(tcp, user="root", password="wrong-" + mariadb.password)).query("SELECT 1")
    assert err.value.message == "the server at 127.0.0.1:%d refused user root: wrong user name or password" % mariadb.port

    mariadb.sql("CREATE USER IF NOT EXISTS 'limited'@'127.0.0.1' IDENTIFIED BY 'limited-pw';"
                "GRANT RELOAD, PROCESS ON *.* TO 'limited'@'127.0.0.1';")
    limited = mysql.Connection(dict(tcp, user="limited", password="limited-pw"))
    assert limited.query("SELECT CURRENT_USER()") == [["limited@127.0.0.1"]]
    with pytest.raises(EngineError) as err:
        limited.query("SHOW MASTER STATUS")
    assert err.value.message.startswith("user limited lacks a privilege on 127.0.0.1:%d: " % mariadb.port)
    assert "ERROR 1227" in err.value.message and "BINLOG MONITOR" in err.value.message

    with pytest.raises(EngineError) as err:
        mysql.Connection(dict(tcp, password=mariadb.password)).query("SELEC 1")
    assert err.value.message.startswith("MySQL/MariaDB at 127.0.0.1:%d: " % mariadb.port) and "ERROR 1064" in err.value.message


# Privileges ---------------------------------------------------------------


def test_all_privileges_cover_everything():
    for required in (mysql.BACKUP_PRIVILEGES[mysql.MARIADB], mysql.BACKUP_PRIVILEGES[mysql.MYSQL], mysql.LOG_PRIVILEGES):
        assert mysql.missing_privileges({"ALL PRIVILEGES"}, required) == []
        assert mysql.missing_privileges({"ALL"}, required) == []


def test_alternative_privilege_names():
    base = {"RELOAD", "PROCESS", "LOCK TABLES"}
    required = mysql.BACKUP_PRIVILEGES[mysql.MARIADB]
    assert mysql.missing_privileges(base | {"BINLOG MONITOR"}, required) == []
    assert mysql.missing_privileges(base | {"REPLICATION CLIENT"}, required) == []
    assert mysql.missing_privileges(base, required) == ["BINLOG MONITOR"]
    assert mysql.missing_privileges({"REPLICATION CLIENT"}, mysql.LOG_PRIVILEGES) == ["RELOAD"]


def test_missing_privileges_are_named_in_order():
    required = mysql.BACKUP_PRIVILEGES[mysql.MYSQL]
    assert mysql.missing_privileges({"RELOAD", "PROCESS", "LOCK TABLES", "REPLICATION CLIENT"}, required) == ["BACKUP_ADMIN"]
    assert mysql.missing_privileges({"PROCESS", "BACKUP_ADMIN"}, required) == ["RELOAD", "LOCK TABLES", "REPLICATION CLIENT"]
    assert mysql.missing_privileges(set(), mysql.BACKUP_PRIVILEGES[mysql.MARIADB]) == ["RELOAD", "PROCESS", "LOCK TABLES", "BINLOG MONITOR"]


class _Grants(object):
    """A connection whose SHOW GRANTS answers fixed lines."""

    user = "backup"

    def __init__(self, lines):
        self.lines = lines

    def query(self, sql):
        assert sql == "SHOW GRANTS"
        return [[line] for line in self.lines]

    def target(self):
        return "db1:3306"


def test_global_privileges_of_mysql8_grant_lines():
    """MySQL 8 lists static privileges and dynamic ones (comma without space) on separate lines."""
    conn = _Grants(["GRANT RELOAD, PROCESS, LOCK TABLES, REPLICATION CLIENT ON *.* TO `backup`@`%`",
                    "GRANT BACKUP_ADMIN,CONNECTION_ADMIN ON *.* TO `backup`@`%`",
                    "GRANT SELECT ON `shop`.* TO `backup`@`%`"])
    held = mysql.global_privileges(conn)
    assert held == {"RELOAD", "PROCESS", "LOCK TABLES", "REPLICATION CLIENT", "BACKUP_ADMIN", "CONNECTION_ADMIN"}
    mysql.check_privileges(conn, mysql.BACKUP_PRIVILEGES[mysql.MYSQL], "a backup")


def test_check_privileges_names_what_is_missing():
    conn = _Grants(["GRANT RELOAD, PROCESS ON *.* TO `backup`@`localhost`", "GRANT ALL PRIVILEGES ON `shop`.* TO `backup`@`localhost`"])
    with pytest.raises(EngineError) as err:
        mysql.check_privileges(conn, mysql.BACKUP_PRIVILEGES[mysql.MARIADB], "a mariabackup backup")
    assert err.value.message == "user backup on db1:3306 lacks the privileges a mariabackup backup needs: LOCK TABLES, BINLOG MONITOR"
    assert err.value.hint == "GRANT LOCK TABLES, BINLOG MONITOR ON *.* TO the backup user"


def test_privileges_of_real_accounts(mariadb):
    """Needs a real MariaDB: SHOW GRANTS of root (ALL PRIVILEGES) and of an account with REPLICATION CLIENT."""
    tcp = {"host": "127.0.0.1", "port": mariadb.port}
    root = mysql.Connection(dict(tcp, password=mariadb.password))
    assert "ALL PRIVILEGES" in mysql.global_privileges(root)
    mysql.check_privileges(root, mysql.BACKUP_PRIVILEGES[mysql.MARIADB], "a backup")

    mariadb.sql("CREATE USER IF NOT EXISTS 'shipper'@'127.0.0.1' IDENTIFIED BY 'shipper-pw';"
                "GRANT RELOAD, REPLICATION CLIENT ON *.* TO 'shipper'@'127.0.0.1';")
    shipper = mysql.Connection(dict(tcp, user="shipper", password="shipper-pw"))
    mysql.check_privileges(shipper, mysql.LOG_PRIVILEGES, "binary log archiving")
    with pytest.raises(EngineError) as err:
        mysql.check_privileges(shipper, mysql.BACKUP_PRIVILEGES[mysql.MARIADB], "a mariabackup backup")
    assert err.value.message.endswith("needs: PROCESS, LOCK TABLES")


# Tool reports -------------------------------------------------------------


def _master_status():
    """File, position and GTID recorded by SHOW MASTER STATUS right after the fixture backup."""
    lines = fixture("mariadb_master_status.txt").splitlines()
    fields = lines[0].split("\t")
    return fields[0], int(fields[1]), lines[1].strip()


def test_mariadb_binlog_info_of_a_real_backup():
    info = mysql.parse_binlog_info(fixture("mariadb_xtrabackup_binlog_info"))
    name, pos, gtid = _master_status()
    assert info == {"binlog_file": name, "binlog_pos": pos, "gtid": gtid}
    assert info == {"binlog_file": "mysql-bin.000001", "binlog_pos": 2061, "gtid": "0-1-10"}


def test_mariadb_backup_report_of_a_real_backup():
    stderr = fixture("mariadb_backup.stderr")
    assert "completed OK!" in stderr
    report = mysql.parse_backup_report(stderr)
    assert report == {"binlog_file": "mysql-bin.000001", "binlog_pos": 2061, "gtid": "0-1-10", "from_lsn": 44894, "to_lsn": 48798}
    binlog_info = mysql.parse_binlog_info(fixture("mariadb_xtrabackup_binlog_info"))
    assert dict((k, report[k]) for k in binlog_info) == binlog_info


def test_mariadb_xtrabackup_info_of_a_real_backup():
    info = mysql.parse_info(fixture("mariadb_xtrabackup_info"))
    assert info["tool_name"] == "mariabackup"
    assert info["name"] == ""
    assert info["format"] == "mbstream"
    assert info["binlog_pos"] == "filename 'mysql-bin.000001', position '2061', GTID of the last change '0-1-10'"
    assert info["tool_command"].startswith("--no-defaults --backup --stream=mbstream --socket=")
    assert len(info) == 17


def test_xtrabackup80_binlog_info():
    assert mysql.parse_binlog_info(fixture("xtrabackup80_binlog_info")) == {
        "binlog_file": "binlog.000002", "binlog_pos": 157, "gtid": UUID1 + ":1-10"}
    assert mysql.parse_binlog_info(fixture("xtrabackup80_binlog_info_nogtid")) == {"binlog_file": "binlog.000002", "binlog_pos": 157}
    # mariabackup writes "%s\t%s\t%s\n" also when the server has no GTID yet.
    assert mysql.parse_binlog_info("mysql-bin.000001\t329\t\n") == {"binlog_file": "mysql-bin.000001", "binlog_pos": 329}


def test_xtrabackup80_binlog_info_with_a_gtid_set_over_two_lines():
    text = fixture("xtrabackup80_binlog_info_multiline")
    assert ",\n" in text
    assert mysql.parse_binlog_info(text) == {
        "binlog_file": "binlog.000002", "binlog_pos": 157, "gtid": "%s:1-10,%s:1-2" % (UUID1, UUID2)}


@pytest.mark.parametrize("text", ["", "\n", "binlog.000002\n", "binlog.000002\tabc\t%s:1-10\n" % UUID1, "garbage"])
def test_unreadable_binlog_info_is_refused(text):
    with pytest.raises(EngineError) as err:
        mysql.parse_binlog_info(text)
    assert "cannot read xtrabackup_binlog_info" in str(err.value)


def test_xtrabackup80_info():
    info = mysql.parse_info(fixture("xtrabackup80_info"))
    assert info["tool_name"] == "xtrabackup" and info["tool_version"] == "8.0.35-30"
    assert info["binlog_pos"] == "filename 'binlog.000002', position '157', GTID of the last change '%s:1-10'" % UUID1
    assert info["innodb_to_lsn"] == "18118747" and info["format"] == "xbstream" and info["name"] == ""
    assert len(info) == 18


def test_xtrabackup_info_with_a_gtid_set_over_two_lines():
    info = mysql.parse_info(fixture("xtrabackup80_info_multiline"))
    assert info["innodb_from_lsn"] == "0"
    assert UUID2 + ":1-2" in info["binlog_pos"]


def test_xtrabackup80_backup_report_binlog_position():
    stderr = fixture("xtrabackup80_backup.stderr")
    report = mysql.parse_backup_report(stderr)
    assert report["binlog_file"] == "binlog.000002" and report["binlog_pos"] == 157
    assert report["gtid"] == UUID1 + ":1-10"
    binlog_info = mysql.parse_binlog_info(fixture("xtrabackup80_binlog_info"))
    assert dict((k, report[k]) for k in binlog_info) == binlog_info


def test_xtrabackup80_backup_report_lsn_range():
    report = mysql.parse_backup_report(fixture("xtrabackup80_backup.stderr"))
    assert (report.get("from_lsn"), report.get("to_lsn")) == (18118747, 18118757)


def test_backup_report_variants():
    # Without GTIDs (xtrabackup with gtid_mode OFF), and older unquoted positions.
    assert mysql.parse_backup_report("MySQL binlog position: filename 'binlog.000007', position '4711'\ncompleted OK!\n") == {
        "binlog_file": "binlog.000007", "binlog_pos": 4711}
    assert mysql.parse_backup_report("xtrabackup: MySQL binlog position: filename 'mysql-bin.000002', position 1232, "
                                     "GTID of the last change '%s:1-4'\n" % UUID1) == {
        "binlog_file": "mysql-bin.000002", "binlog_pos": 1232, "gtid": UUID1 + ":1-4"}
    # A replica's line is not the server's own position; the last own position wins.
    text = ("MySQL binlog position: filename 'binlog.000001', position '100'\n"
            "MySQL slave binlog position: master host '10.0.0.1', filename 'binlog.000042', position '999'\n"
            "MySQL binlog position: filename 'binlog.000002', position '157'\n")
    assert mysql.parse_backup_report(text) == {"binlog_file": "binlog.000002", "binlog_pos": 157}
    # A GTID set cut off by the tool's line length limit: the position still counts, the set does not.
    cut = "MySQL binlog position: filename 'binlog.000002', position '157', GTID of the last change '%s:1-10,%s" % (UUID1, UUID2[:8])
    assert mysql.parse_backup_report(cut) == {"binlog_file": "binlog.000002", "binlog_pos": 157}
    assert mysql.parse_backup_report("completed OK!\n") == {}


def test_backup_command_line_runs_mariabackup(mariadb, tmp_path):
    """Needs a real MariaDB: the mariabackup command line of backup_argv streams a backup whose report and
    xtrabackup_binlog_info agree with SHOW MASTER STATUS; a wrong password is explained as such."""
    mariadb.sql("CREATE DATABASE IF NOT EXISTS argv_check; CREATE TABLE IF NOT EXISTS argv_check.t (id INT PRIMARY KEY) ENGINE=InnoDB;"
                "REPLACE INTO argv_check.t VALUES (1);")
    name, pos = mariadb.sql("SHOW MASTER STATUS").split("\t")[:2]
    gtid = mariadb.sql("SELECT @@gtid_binlog_pos")
    conn = mysql.Connection({"socket": mariadb.socket, "user": "root", "password": mariadb.password})
    tool = conn.tool("backup", mysql.MARIADB)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    stream = tmp_path / "backup.mbstream"
    argv = mysql.backup_argv(tool, conn, mysql.MARIADB, str(scratch), parallel=2)
    with open(str(stream), "wb") as out:
        proc = subprocess.run(argv, env=tools.tool_env(conn.env()), stdout=out, stderr=subprocess.PIPE, timeout=120, check=False)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, stderr[-2000:]
    assert "completed OK!" in stderr
    report = mysql.parse_backup_report(stderr)
    assert (report["binlog_file"], report["binlog_pos"], report["gtid"]) == (name, int(pos), gtid)
    assert report["to_lsn"] >= report["from_lsn"] > 0
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    with open(str(stream), "rb") as source:
        subprocess.run([conn.tool("stream", mysql.MARIADB), "-x", "-C", str(extracted)], stdin=source, check=True, timeout=120)
    assert mysql.parse_binlog_info((extracted / "xtrabackup_binlog_info").read_text()) == {
        "binlog_file": name, "binlog_pos": int(pos), "gtid": gtid}
    assert mysql.parse_info((extracted / "xtrabackup_info").read_text())["format"] == "mbstream"

    wrong = mysql.Connection({"socket": mariadb.socket, "user": "root", "password": "wrong"})
    with pytest.raises(ToolError) as failure:
        tools.run(mysql.backup_argv(tool, wrong, mysql.MARIADB, str(scratch)), env=wrong.env(), timeout=120)
    explained = wrong.explain(failure.value)
    assert explained.message == "the server at %s refused user root: wrong user name or password" % mariadb.socket


# Binary log settings, replay stop time, scheduler files ------------------


def test_binlog_settings():
    target = "db1:3306"
    assert mysql.check_binlog_settings({"log_bin": True, "binlog_format": "ROW"}, target) is None
    assert mysql.check_binlog_settings({"log_bin": True, "binlog_format": "row"}, target) is None
    with pytest.raises(EngineError) as err:
        mysql.check_binlog_settings({"log_bin": False, "binlog_format": "ROW"}, target)
    assert err.value.message == "log_bin is off on db1:3306: there are no binary logs to archive"
    assert "log_bin" in err.value.hint and "server_id" in err.value.hint
    for fmt in ("STATEMENT", "MIXED"):
        with pytest.raises(EngineError) as err:
            mysql.check_binlog_settings({"log_bin": True, "binlog_format": fmt}, target)
        assert err.value.message.startswith("binlog_format is %s on db1:3306" % fmt)
        assert "binlog_format = ROW" in err.value.hint


def test_stop_datetime_is_the_whole_second_in_utc():
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    assert mysql.stop_datetime(datetime.datetime(2026, 11, 1, 10, 30, 15, 999999, tzinfo=plus2)) == "2026-11-01 08:30:15"
    minus5 = datetime.timezone(datetime.timedelta(hours=-5))
    assert mysql.stop_datetime(datetime.datetime(2026, 12, 31, 20, 0, 0, 1, tzinfo=minus5)) == "2027-01-01 01:00:00"
    assert mysql.stop_datetime(datetime.datetime(2026, 3, 29, 1, 59, 59, tzinfo=datetime.timezone.utc)) == "2026-03-29 01:59:59"


def test_systemd_unit(tmp_path):
    files = mysql.scheduler_files("systemd", "db1", "mysql", "/usr/local/bin/dataprotection", "/etc/dataprotection/db1.json",
                                  {"scheduler_dir": str(tmp_path)})
    assert list(files) == [str(tmp_path / "dataprotection-binlog-db1.service")]
    content = list(files.values())[0]
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str
    unit.read_string(content)
    assert unit["Service"]["User"] == "mysql"
    assert unit["Service"]["ExecStart"] == "/usr/local/bin/dataprotection --config /etc/dataprotection/db1.json binlog-ship --follow"
    assert unit["Service"]["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "db1" in unit["Unit"]["Description"]
    default = mysql.scheduler_files("systemd", "db1", "mysql", "/a", "/c.json", {})
    assert list(default) == ["/etc/systemd/system/dataprotection-binlog-db1.service"]


def test_cron_file(tmp_path):
    files = mysql.scheduler_files("cron", "db1", "mysqlsrv", "/usr/local/bin/dataprotection", "/etc/dataprotection/db1.json",
                                  {"scheduler_dir": str(tmp_path)})
    assert list(files) == [str(tmp_path / "dataprotection-binlog-db1")]
    lines = [line for line in list(files.values())[0].splitlines() if line and not line.startswith("#")]
    assert lines == ["* * * * * mysqlsrv /usr/local/bin/dataprotection --config /etc/dataprotection/db1.json binlog-ship >/dev/null 2>&1"]
    assert list(files.values())[0].endswith("\n")
    assert "--follow" not in list(files.values())[0]
    assert list(mysql.scheduler_files("cron", "db1", "mysql", "/a", "/c.json", {})) == ["/etc/cron.d/dataprotection-binlog-db1"]


def test_no_scheduler_writes_nothing():
    assert mysql.scheduler_files("none", "db1", "mysql", "/a", "/c.json", {}) == {}


def test_cron_file_name_is_one_cron_reads():
    path = list(mysql.scheduler_files("cron", "db1.example", "mysql", "/a", "/c.json", {}))[0]
    assert re.match(r"^[A-Za-z0-9_-]+$", os.path.basename(path))


def test_ship_command():
    assert mysql.ship_command("/a", "/c.json") == "/a --config /c.json binlog-ship"
    assert mysql.ship_command("/a", "/c.json", follow=True) == "/a --config /c.json binlog-ship --follow"


# Restore target: in use, non-empty ---------------------------------------


@contextlib.contextmanager
def lock_held(path):
    """Another process holding an exclusive fcntl lock on ``path``, as InnoDB does on ibdata1."""
    code = ("import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(30)


def test_locked_ibdata1_means_in_use(tmp_path):
    ibdata = tmp_path / "ibdata1"
    ibdata.write_bytes(b"\0" * 4096)
    assert mysql._server_running(str(tmp_path)) is None
    with lock_held(str(ibdata)):
        assert mysql._server_running(str(tmp_path)) == "a MySQL/MariaDB server holds a lock on its ibdata1"
    assert mysql._server_running(str(tmp_path)) is None


def test_live_pid_file_means_in_use(tmp_path):
    proc = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "db1.pid").write_text("%d\n" % proc.pid)
        assert mysql._server_running(str(tmp_path)) == "a server (pid %d, db1.pid) runs on it" % proc.pid
    finally:
        proc.kill()
        proc.wait()
    # The process is gone (reaped): the pid file is stale.
    assert mysql._server_running(str(tmp_path)) is None


def test_stale_or_unreadable_pid_files_are_ignored(tmp_path):
    proc = subprocess.Popen(["true"])
    proc.wait()
    (tmp_path / "old.pid").write_text("%d\n" % proc.pid)
    (tmp_path / "garbage.pid").write_text("not a pid\n")
    (tmp_path / "ibdata1").write_bytes(b"\0" * 16)
    assert mysql._server_running(str(tmp_path)) is None


def test_running_mariadb_is_detected(mariadb):
    """Needs a real MariaDB: InnoDB's lock on ibdata1 marks its data directory in use, even with force."""
    assert mysql._server_running(mariadb.data_dir) == "a MySQL/MariaDB server holds a lock on its ibdata1"
    with pytest.raises(ConfigError) as err:
        mysql.check_target(mariadb.data_dir, True)
    assert "is in use" in err.value.message and "Stop the MySQL/MariaDB server" in err.value.hint


def test_check_target(tmp_path):
    assert mysql.check_target(str(tmp_path / "new"), False) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert mysql.check_target(str(empty), False) == []
    full = tmp_path / "full"
    full.mkdir()
    (full / "ibdata1").write_bytes(b"\0" * 16)
    (full / "mysql").mkdir()
    with pytest.raises(ConfigError) as err:
        mysql.check_target(str(full), False)
    assert "is not empty" in err.value.message and "2 entries (ibdata1, mysql)" in err.value.message
    assert "force: true" in err.value.hint and "MySQL/MariaDB" in err.value.hint
    assert mysql.check_target(str(full), True) == ["ibdata1", "mysql"]
    with lock_held(str(full / "ibdata1")):
        with pytest.raises(ConfigError) as err:
            mysql.check_target(str(full), True)
        assert "is in use: a MySQL/MariaDB server holds a lock on its ibdata1" in err.value.message


@pytest.mark.parametrize("bad", ["relative/dir", "", None])
def test_check_target_needs_an_absolute_path(bad):
    with pytest.raises(ConfigError) as err:
        mysql.check_target(bad, True)
    assert "absolute path" in str(err.value)


def test_check_target_refuses_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ConfigError) as err:
        mysql.check_target(str(path), True)
    assert "is not a directory" in str(err.value)


# hostfiles.Target ---------------------------------------------------------


class _Boom(Exception):
    pass


def test_target_failure_empties_a_directory_that_existed(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(_Boom):
        with hostfiles.Target(str(target)):
            assert os.listdir(str(target)) == []
            (target / "half").mkdir()
            (target / "half" / "ibdata1").write_text("partial")
            os.symlink("/nonexistent", str(target / "link"))
            raise _Boom()
    assert target.is_dir() and os.listdir(str(target)) == []


def test_target_failure_removes_a_directory_it_created(tmp_path):
    target = tmp_path / "parent" / "data"
    with pytest.raises(_Boom):
        with hostfiles.Target(str(target), 0o750) as handle:
            assert handle.created and target.is_dir()
            (target / "ibdata1").write_text("partial")
            raise _Boom()
    assert not target.exists()


def test_target_success_keeps_the_contents(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old").write_text("old")
    with hostfiles.Target(str(target)) as handle:
        assert not handle.created
        (target / "ibdata1").write_text("restored")
    assert sorted(os.listdir(str(target))) == ["ibdata1"]
    created = tmp_path / "fresh"
    old_umask = os.umask(0o022)
    try:
        with hostfiles.Target(str(created), 0o750):
            (created / "ibdata1").write_text("restored")
    finally:
        os.umask(old_umask)
    assert (created / "ibdata1").read_text() == "restored"
    assert stat.S_IMODE(os.stat(str(created)).st_mode) == 0o750


def test_target_does_not_swallow_the_error(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with hostfiles.Target(str(tmp_path / "x")):
            raise KeyboardInterrupt()
    assert not (tmp_path / "x").exists()
