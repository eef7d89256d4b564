# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host command, ``dataprotection``: the same core, run by the database host without Ansible.

It is what PostgreSQL's archive_command and restore_command call, what
ships MySQL/MariaDB binary logs (a systemd service or a cron line), and what
host timers run.  It reads one configuration file per cluster (written by the
log_backup module) or per schedule (written by backup_schedule), mode 0600,
holding the repository, the cluster, the engine and its settings::

    dataprotection wal-push %p --config /etc/dataprotection/orders-db.json
    dataprotection wal-fetch %f %p --config /etc/dataprotection/orders-db.json
    dataprotection binlog-ship [--follow] --config /etc/dataprotection/shop-db.json
    dataprotection oplog-ship [--follow] [--now] --config /etc/dataprotection/catalog-db.json
    dataprotection backup --config /etc/dataprotection/orders-db.json
    dataprotection scheduled-backup --config /etc/dataprotection/schedule-orders-nightly.json
    dataprotection restore --backup-id ID --data-dir DIR --config /etc/dataprotection/orders-db.json
    dataprotection info --config /etc/dataprotection/orders-db.json

Exit status 0 means done (for wal-push: durably stored); anything else
failed and says why on stderr: 1 wal-fetch found no such file (what
PostgreSQL expects at the end of recovery), 2 a usage error, 3 a
configuration error, 4 any other failure, 5 oplog-ship stored what it could but found a
break (the oplog rolled over past the last shipped entry; a new chain starts).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import sys

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_ERROR = 4
EXIT_GAP = 5


def load_config(path):
    from ansible_collections.dataprotection.databases.plugins.module_utils.errors import ConfigError  # pylint: disable=import-outside-toplevel

    try:
        with open(path) as handle:
            config = json.load(handle)
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read configuration %s: %s" % (path, exc),
                          hint="Enable log_backup for this cluster on this host (dataprotection.databases.log_backup)")
    except ValueError as exc:
        raise ConfigError("configuration %s is not valid JSON: %s" % (path, exc))
    for field in ("repo", "cluster", "engine"):
        if field not in config:
            raise ConfigError("configuration %s lacks %r" % (path, field))
    return config


def cmd_wal_push(args, config):
    from ansible_collections.dataprotection.databases.plugins.module_utils.engines import pgwal  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository  # pylint: disable=import-outside-toplevel

    with open_repository(config["repo"]) as repository:
        result = pgwal.push(
            repository, config["cluster"], args.path,
            system_identifier=config.get("system_identifier"),
            waldump=config.get("waldump"),
            compression=config.get("compression") or "zstd",
            level=config.get("compression_level"),
        )
    if args.verbose:
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return EXIT_OK


def cmd_binlog_ship(args, config):
    import time  # pylint: disable=import-outside-toplevel

    from ansible_collections.dataprotection.databases.plugins.module_utils.engines import mysql  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository  # pylint: disable=import-outside-toplevel

    if config["engine"] != "mysql":
        sys.stderr.write("dataprotection binlog-ship: cluster %s is a %s cluster\n" % (config["cluster"], config["engine"]))
        return EXIT_CONFIG
    conn = mysql.Connection(config.get("connection"))
    while True:
        with open_repository(config["repo"]) as repository:
            result = mysql.ship(
                repository, config["cluster"], conn, config["binlog_index"],
                rotate="now" if args.rotate else None,
                interval=int(config.get("rotate_interval") or 300),
                size_mb=int(config.get("rotate_size_mb") or 256),
                compression=config.get("compression") or "zstd",
                level=config.get("compression_level"),
            )
        if args.verbose or result["shipped"] or result["missing_on_server"]:
            sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
            sys.stdout.flush()
        if not args.follow:
            return EXIT_OK
        args.rotate = False
        time.sleep(args.poll)


def cmd_oplog_ship(args, config):
    import time  # pylint: disable=import-outside-toplevel

    from ansible_collections.dataprotection.databases.plugins.module_utils.engines import mongodb, oplog  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository  # pylint: disable=import-outside-toplevel

    if config["engine"] != "mongodb":
        sys.stderr.write("dataprotection oplog-ship: cluster %s is a %s cluster\n" % (config["cluster"], config["engine"]))
        return EXIT_CONFIG
    conn = mongodb.Connection(config.get("connection"))
    status = EXIT_OK
    while True:
        # One pass at a time per cluster on this host: a cron pass that overlaps the previous one waits for it.
        with oplog.ShippingLock(args.config), open_repository(config["repo"]) as repository:
            result = oplog.ship(
                repository, config["cluster"], conn,
                interval=int(config.get("rotate_interval") or 300),
                size_mb=int(config.get("rotate_size_mb") or 256),
                force=args.now,
                compression=config.get("compression") or "zstd",
                level=config.get("compression_level"),
                identity=config.get("identity"),
            )
        result.pop("slices", None)
        if args.verbose or result["shipped"] or result.get("gap"):
            sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
            sys.stdout.flush()
        gap = result.get("gap") or {}
        if gap:
            sys.stderr.write("dataprotection oplog-ship: BREAK in the oplog archive of cluster %s: %s\n" % (config["cluster"], gap.get("message")))
            sys.stderr.flush()
            status = EXIT_GAP
        if not args.follow:
            return status
        args.now = False
        time.sleep(args.poll)


def cmd_wal_fetch(args, config):
    from ansible_collections.dataprotection.databases.plugins.module_utils.engines import pgwal  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoconfig import open_repository  # pylint: disable=import-outside-toplevel

    with open_repository(config["repo"]) as repository:
        found = pgwal.fetch_one(repository, config["cluster"], args.name, args.destination)
    return EXIT_OK if found else EXIT_NOT_FOUND


def cmd_backup(args, config):
    from ansible_collections.dataprotection.databases.plugins.module_utils.backup import BackupRequest, run_backup  # pylint: disable=import-outside-toplevel
    from ansible_collections.dataprotection.databases.plugins.module_utils.matrix import default_method  # pylint: disable=import-outside-toplevel

    request = BackupRequest(
        engine=config["engine"],
        method=args.method or config.get("method") or default_method(config["engine"], "tool"),
        cluster=config["cluster"],
        connection=config.get("connection"),
        compression=config.get("compression"),
        compression_level=config.get("compression_level"),
        labels=dict(config.get("labels") or {}, **dict(label.split("=", 1) for label in args.label or [])),
        options={"parallel": args.parallel or config.get("parallel")},
    )
    result = run_backup(config["repo"], request)
    sys.stdout.write(json.dumps(result["backup"], sort_keys=True) + "\n")
    return EXIT_OK


def cmd_scheduled_backup(args, config):
    from ansible_collections.dataprotection.databases.plugins.module_utils.schedule import run_scheduled  # pylint: disable=import-outside-toplevel

    if not config.get("method"):
        sys.stderr.write("dataprotection scheduled-backup: %s is not a schedule's configuration (no method)\n" % args.config)
        return EXIT_CONFIG
    backup, kept, failure = run_scheduled(config)
    report = {"backup": backup["backup"]}
    if failure is not None:
        report["retention_error"] = str(failure)
        sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
        sys.stderr.write("dataprotection scheduled-backup: backup %s completed; retention failed: %s\n" % (backup["backup"]["backup_id"], failure))
        return EXIT_ERROR
    if kept is not None:
        report["retention"] = {
            "expired": [row["backup_id"] for row in kept["expired"]],
            "kept": [row["backup_id"] for row in kept["kept"]],
            "logs": kept["logs"],
            "incomplete": [row["backup_id"] for row in kept["incomplete"]],
            "bytes_freed": kept["bytes_freed"],
            "windows_after": kept["windows_after"],
        }
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    return EXIT_OK


def cmd_restore(args, config):
    from ansible_collections.dataprotection.databases.plugins.module_utils.restore import RestoreRequest, run_restore  # pylint: disable=import-outside-toplevel

    request = RestoreRequest(
        engine=config["engine"], cluster=config["cluster"], target=args.data_dir,
        backup_id=args.backup_id, restore_time=args.restore_time, force=args.force,
        options={"owner": args.owner},
    )
    result = run_restore(config["repo"], request, check_mode=args.check)
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return EXIT_OK


def cmd_info(args, config):
    from ansible_collections.dataprotection.databases.plugins.module_utils.repoadmin import repository_info  # pylint: disable=import-outside-toplevel

    result = repository_info(config["repo"], cluster=config["cluster"], verify=args.verify)
    result.pop("support_matrix", None)
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if args.verify and not result["verification"]["ok"]:
        return EXIT_ERROR
    return EXIT_OK


def parser():
    # --config and -v are accepted before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="the cluster's configuration file")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    top = argparse.ArgumentParser(prog="dataprotection", description="dataprotection.databases host command", parents=[common])
    sub = top.add_subparsers(dest="command", parser_class=lambda **kw: argparse.ArgumentParser(parents=[common], **kw))
    sub.required = True
    push = sub.add_parser("wal-push", help="archive one WAL file (archive_command %%p)")
    push.add_argument("path")
    push.set_defaults(run=cmd_wal_push)
    fetch = sub.add_parser("wal-fetch", help="fetch one WAL file (restore_command %%f %%p)")
    fetch.add_argument("name")
    fetch.add_argument("destination")
    fetch.set_defaults(run=cmd_wal_fetch)
    ship = sub.add_parser("binlog-ship", help="rotate the binary log when due and archive the closed ones (MySQL/MariaDB)")
    ship.add_argument("--follow", action="store_true", help="keep running: a pass every --poll seconds")
    ship.add_argument("--poll", type=float, default=10.0, help="seconds between passes with --follow")
    ship.add_argument("--rotate", action="store_true", help="rotate now, whatever the interval and size")
    ship.set_defaults(run=cmd_binlog_ship)
    oplog_ship = sub.add_parser("oplog-ship", help="archive the oplog from the last shipped entry on (MongoDB replica sets)")
    oplog_ship.add_argument("--follow", action="store_true", help="keep running: a pass every --poll seconds")
    oplog_ship.add_argument("--poll", type=float, default=10.0, help="seconds between passes with --follow")
    oplog_ship.add_argument("--now", action="store_true", help="store what is pending now, whatever the interval and size")
    oplog_ship.set_defaults(run=cmd_oplog_ship)
    backup = sub.add_parser("backup", help="take a full backup now")
    backup.add_argument("--method")
    backup.add_argument("--label", action="append", help="key=value, repeatable")
    backup.add_argument("--parallel", type=int, help="MySQL/MariaDB: threads the backup tool copies files with")
    backup.set_defaults(run=cmd_backup)
    scheduled = sub.add_parser("scheduled-backup", help="what a schedule's timer runs: a full backup, then the schedule's retention")
    scheduled.set_defaults(run=cmd_scheduled_backup)
    restore = sub.add_parser("restore", help="restore a backup set (--backup-id) or to a time (--restore-time) into a directory")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--backup-id")
    target.add_argument("--restore-time")
    restore.add_argument("--data-dir", required=True)
    restore.add_argument("--owner", help="owner of the restored files (default: the engine's user: postgres, mysql, redis, prometheus)")
    restore.add_argument("--force", action="store_true")
    restore.add_argument("--check", action="store_true", help="print the plan, change nothing")
    restore.set_defaults(run=cmd_restore)
    info = sub.add_parser("info", help="list the cluster's backups and windows")
    info.add_argument("--verify", action="store_true")
    info.set_defaults(run=cmd_info)
    return top


def main(argv=None):
    os.umask(0o077)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    if not getattr(args, "config", None):
        sys.stderr.write("dataprotection: --config is required\n")
        return EXIT_USAGE
    from ansible_collections.dataprotection.databases.plugins.module_utils import errors  # pylint: disable=import-outside-toplevel

    try:
        config = load_config(args.config)
        return args.run(args, config)
    except errors.ConfigError as exc:
        sys.stderr.write("dataprotection %s: %s\n" % (args.command, exc))
        return EXIT_CONFIG
    except errors.DataProtectionError as exc:
        sys.stderr.write("dataprotection %s: %s\n" % (args.command, exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
