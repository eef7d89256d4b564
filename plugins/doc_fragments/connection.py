# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The shared O(cluster) and O(connection) options."""

    DOCUMENTATION = r"""
options:
  cluster:
    description:
      - The name that groups one database's backups and logs in the repository, for example C(orders-db).
      - 1 to 63 letters, digits, C(.), C(_) or C(-), starting with a letter or digit.
      - One cluster name belongs to one database for good; a different database under the same name is refused.
    type: str
    required: true
  connection:
    description:
      - How to reach the database server. Passwords go to the engine's tools through the environment
        (E(PGPASSWORD), E(MYSQL_PWD), E(REDISCLI_AUTH)), never on a command line; Prometheus gets them as HTTP basic
        authentication.
    type: dict
    default: {}
    suboptions:
      host:
        description:
          - Host name or address of the server. The engine's default (local) when omitted.
          - "Prometheus: 127.0.0.1 when omitted, or an C(http://) or C(https://) base URL (route prefix included; its own
            port applies and O(connection.port) is ignored; HTTPS is verified against the system's certificate
            authorities, no client certificates)."
        type: str
      port:
        description: TCP port of the server. The engine's default port when omitted (5432, 3306, 6379, 9090).
        type: int
      user:
        description:
          - User to connect as. The default is C(postgres) for PostgreSQL and C(root) for MySQL/MariaDB.
          - "Redis: the ACL user (C(default) when omitted). Prometheus: the HTTP basic authentication user (none when omitted)."
        type: str
      password:
        description: Password of O(connection.user).
        type: str
      socket:
        description: Unix socket (PostgreSQL - its directory; MySQL/MariaDB - the socket file) to connect through instead of TCP.
        type: path
      database:
        description: Database to connect to for queries, where the engine has one.
        type: str
      bin_dir:
        description: Directory of the engine's client tools, when they are not on E(PATH) or in the usual places.
        type: path
      defaults_file:
        description:
          - "MySQL/MariaDB: an option file handed to the client and backup tools as C(--defaults-file). Without it they
            run with C(--no-defaults), so nothing in C(~/.my.cnf) or C(/etc/mysql) changes what they do. Give the
            server's option file when its InnoDB files are not in the data directory."
        type: path
      token:
        description:
          - An API key or bearer token, for engines reached over HTTP that take one (Milvus, Qdrant, Weaviate).
          - "Milvus: exclusive with O(connection.user)/O(connection.password) (sent as C(user:password))."
        type: str
      tls:
        description: Connect with TLS (MongoDB; the HTTP engines take an C(https://) URL in O(connection.host) instead).
        type: bool
      tls_ca_file:
        description: "MongoDB with O(connection.tls=true): the CA certificate file the server's certificate is checked against."
        type: path
      databases:
        description: "Milvus: the databases whose collections are included (default V([default]))."
        type: list
        elements: str
"""
