# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes CSI snapshots: the ``kubernetes`` snapshot provider.

``spec`` (the ``snapshot`` option) names PersistentVolumeClaims of one
``namespace`` (required) either by name (``pvc_names``) or by a label
selector (``pvc_selector``, e.g. ``app=pg,role=primary``).  Other keys:
``volume_snapshot_class`` (else, per PVC, the VolumeSnapshotClass annotated
``snapshot.storage.kubernetes.io/is-default-class: "true"`` whose driver is
the provisioner of the PVC's StorageClass), ``wait_timeout`` (seconds,
default 600), ``labels`` (set on every VolumeSnapshot), and the connection
keys of kubernetes.core: ``kubeconfig`` (a path, or the kubeconfig as a
dict), ``context``, ``host``, ``api_key``, ``validate_certs``, ``ca_cert``,
``client_cert``, ``client_key``, ``proxy`` (each also read from the
``K8S_AUTH_*`` environment variables kubernetes.core reads).  Which
configuration is used: ``kubeconfig`` or ``context`` -> that kubeconfig (the
default one, $KUBECONFIG or ~/.kube/config, for a context alone); else
``host`` -> that API server with the other keys only; else the pod's service
account when KUBERNETES_SERVICE_HOST is set; else the default kubeconfig.
The other keys override what the configuration says.  Keys of the
``snapshot`` option that this provider does not know are left to the caller.

``plan`` only reads: it checks that the API server serves
snapshot.storage.k8s.io/v1, resolves the PVCs (they must exist and be
Bound), reads their StorageClasses, checks that the VolumeSnapshotClass
exists and that its driver is the PVCs' provisioner (a CSI snapshot is taken
by the volume's own driver), and asks the API server with
SelfSubjectAccessReviews whether the credentials may create, get and list
(and warns when they may not delete) VolumeSnapshots in the namespace.  The
plan holds no secret: ``api_key`` and an inline kubeconfig stay in this
process, and ``create`` finds them through the plan's ``credentials_ref``.
``data_dir`` is not checked: the API server cannot see a host's mounts.

``create`` makes one VolumeSnapshot per PVC, named ``<backup id>-<pvc>``
(lowercased; shortened with a hash when it would not be a valid name),
labelled ``dataprotection.databases/backup-id`` (the id, or a hash of it when
it is not a valid label value; the full id is always in the annotation of the
same name), calls ``taken`` once every snapshot has ``status.creationTime``
and then waits until every one is ``readyToUse``.  A snapshot with
``status.error``, the deadline or any other failure deletes every
VolumeSnapshot the call made before the error is raised.

Records name the namespace, the object's uid and the connection settings
that are not secret, so ``exists`` and ``delete`` need nothing else; other
connection keys can be given as keyword options.  ``delete`` deletes only the
object with the record's uid (a precondition of the DELETE request too).

``restore`` makes a new PVC with the snapshot as its ``dataSource`` in the
snapshot's namespace, and waits until it is Bound unless its StorageClass
binds on first use (``WaitForFirstConsumer``).

API failures go through :func:`k8s_error`, which names the verb, resource,
API group and namespace and, for a missing permission, the RBAC rule to add.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal
import hashlib
import json
import os
import re
import threading
import traceback
import uuid

try:
    import kubernetes.client
    import kubernetes.config
    import urllib3
    from kubernetes.client.rest import ApiException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    kubernetes = None
    urllib3 = None
    ApiException = None
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    AccessDenied,
    ConfigError,
    DataProtectionError,
    EndpointUnreachable,
    EngineError,
    InvalidCredentials,
    MissingDependency,
    ObjectExists,
    ObjectNotFound,
    TLSVerificationFailed,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import seconds as _seconds
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import text as _text
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import wait_until, with_leftovers
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time, parse_time

PROVIDER = "kubernetes"
LOCAL = False
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
SNAPSHOT_VERSION = "v1"
DEFAULT_WAIT_TIMEOUT = 600
# Polling VolumeSnapshots / PVCs: first at once, then after POLL_INTERVAL seconds, growing to MAX_POLL_INTERVAL.
POLL_INTERVAL = 2.0
MAX_POLL_INTERVAL = 10.0
# (connect, read) seconds of one API request.
REQUEST_TIMEOUT = (10, 60)
LABEL_BACKUP_ID = "dataprotection.databases/backup-id"
ANNOTATION_BACKUP_ID = "dataprotection.databases/backup-id"
ANNOTATION_RESTORED_FROM = "dataprotection.databases/restored-from"
RESERVED_PREFIX = "dataprotection.databases/"
DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
MAX_NAME = 253
MAX_LABEL = 63
OPTION_KEYS = ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert", "client_cert", "client_key", "proxy")
# key -> the environment variables kubernetes.core reads for it (K8S_AUTH_<option>, K8S_AUTH_<client attribute>).
ENVIRONMENT = {
    "kubeconfig": ("K8S_AUTH_KUBECONFIG",),
    "context": ("K8S_AUTH_CONTEXT",),
    "host": ("K8S_AUTH_HOST",),
    "api_key": ("K8S_AUTH_API_KEY",),
    "validate_certs": ("K8S_AUTH_VALIDATE_CERTS", "K8S_AUTH_VERIFY_SSL"),
    "ca_cert": ("K8S_AUTH_CA_CERT", "K8S_AUTH_SSL_CA_CERT"),
    "client_cert": ("K8S_AUTH_CLIENT_CERT", "K8S_AUTH_CERT_FILE"),
    "client_key": ("K8S_AUTH_CLIENT_KEY", "K8S_AUTH_KEY_FILE"),
    "proxy": ("K8S_AUTH_PROXY",),
}
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?$")
_SUFFIXES = {
    None: 1, "m": decimal.Decimal("0.001"), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
    "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
}
_TIMESTAMP = re.compile(r"(\d{14}|\d{8}T\d{6}Z?)$")
_FORBIDDEN_USER = re.compile(r'User "([^"]*)"')


# ---------------------------------------------------------------------------
# Small input helpers


def _as_bool(value, name):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n"):
        return False
    raise ConfigError("%s must be a boolean, got %r" % (name, value))


def _namespace(value, name):
    namespace = _text(value)
    if not namespace:
        raise ConfigError(
            "%s is required" % name,
            hint="Set it to the namespace of the PersistentVolumeClaims (the provider does not fall back to 'default')",
        )
    if len(namespace) > MAX_LABEL or not _DNS_LABEL.match(namespace):
        raise ConfigError("%s %r is not a namespace name" % (name, namespace),
                          hint="Namespace names have at most 63 lowercase letters, digits and '-'")
    return namespace


def _object_name(value, name, kind="PersistentVolumeClaim"):
    text = _text(value)
    if not text or len(text) > MAX_NAME or not _DNS_SUBDOMAIN.match(text):
        raise ConfigError(
            "%s: %r is not a %s name" % (name, value, kind),
            hint="Names have at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        )
    return text


def _name_list(value, name):
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError("%s must be a list of PersistentVolumeClaim names, got %r" % (name, value))
    names = []
    for item in value:
        text = _object_name(item, name)
        if text in names:
            raise ConfigError("%s lists %s twice" % (name, text))
        names.append(text)
    return names


def _check_label_key(key, name):
    prefix, slash, label_name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > MAX_NAME or not _DNS_SUBDOMAIN.match(prefix)):
        raise ConfigError("%s: the prefix of label %r is not a DNS subdomain" % (name, key), hint="Label keys look like team or example.com/team")
    if len(label_name) > MAX_LABEL or not _LABEL_NAME.match(label_name):
        raise ConfigError(
            "%s: label name %r is not valid" % (name, key),
            hint="A label name has at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )


def _labels(value, name, reserved=True):
    """A dict of Kubernetes labels, checked against the API server's rules."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ConfigError("%s must be a dict of label names to values, got %r" % (name, value))
    labels = {}
    for key, label_value in value.items():
        key = str(key).strip() if key is not None else ""
        if not key:
            raise ConfigError("%s: an empty label name" % name)
        _check_label_key(key, name)
        if reserved and key.startswith(RESERVED_PREFIX):
            raise ConfigError("%s: label %s is set by the collection itself (%s...)" % (name, key, RESERVED_PREFIX), hint="Choose another label name")
        if isinstance(label_value, bool):
            label_value = "true" if label_value else "false"
        label_value = "" if label_value is None else str(label_value)
        if len(label_value) > MAX_LABEL or not _LABEL_VALUE.match(label_value):
            raise ConfigError(
                "%s: the value %r of label %s is not a valid label value" % (name, label_value, key),
                hint="Label values have at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            )
        labels[key] = label_value
    return labels


def quantity(value, name):
    """A Kubernetes resource quantity (``10Gi``, ``500M``, ``1e9``, a number of bytes) -> decimal.Decimal of bytes."""
    if isinstance(value, bool) or value is None:
        raise ConfigError("%s must be a size such as 10Gi, got %r" % (name, value))
    if isinstance(value, (int, float)):
        value = "%d" % value if value == int(value) else repr(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ConfigError("%s %r is not a Kubernetes quantity" % (name, value), hint="Write sizes like 10Gi, 500Mi or 20G")
    number = decimal.Decimal(match.group(1))
    if match.group(2):
        number = number.scaleb(int(match.group(2)[1:]))
    return number * _SUFFIXES[match.group(3)]


def _size_text(value, name):
    """The size option as the quantity string sent to the API server."""
    if isinstance(value, bool):
        raise ConfigError("%s must be a size such as 10Gi, got %r" % (name, value))
    quantity(value, name)
    if isinstance(value, (int, float)):
        return "%d" % value
    return str(value).strip()


def _short_hash(text, length=8):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _fit_name(base, seed, force_hash=False):
    """``base`` as an object name (lowercase, [a-z0-9-], at most 253); a hash of ``seed`` is appended when it had to change."""
    name = re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-")
    changed = force_hash or name != base.lower() or len(name) > MAX_NAME
    if not changed:
        return name
    suffix = _short_hash(seed)
    return "%s-%s" % (name[:MAX_NAME - len(suffix) - 1].rstrip("-") or "x", suffix)


def snapshot_name(backup_id, pvc):
    """The VolumeSnapshot of ``pvc`` for a backup: ``<backup id>-<pvc>``, lowercased, shortened with a hash when needed."""
    return _fit_name("%s-%s" % (backup_id, pvc), "%s/%s" % (backup_id, pvc))


def backup_label(backup_id):
    """The value of the backup-id label: the id itself when it is a valid label value, else a hash of it."""
    if len(backup_id) <= MAX_LABEL and _LABEL_VALUE.match(backup_id):
        return backup_id
    return "sha256-%s" % _short_hash(backup_id, 40)


def restore_name(source, backup_id):
    """The default name of a PVC restored from ``source``'s snapshot: ``<source>-restore-<backup time or id hash>``."""
    match = _TIMESTAMP.search(backup_id or "")
    stamp = match.group(1).lower() if match else _short_hash(backup_id or source)
    return _fit_name("%s-restore-%s" % (source, stamp), "%s/%s" % (source, backup_id))


# ---------------------------------------------------------------------------
# Connections


def _strip_userinfo(url):
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url) if url else url


def _kubeconfig_paths(value):
    return [os.path.expanduser(p) for p in value.split(os.pathsep) if p]


def _default_kubeconfig():
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


class _Connection(object):
    """Which API server to call and as whom: a kubeconfig (file or dict), a context, a host, a token, TLS and proxy settings."""

    def __init__(self, kubeconfig=None, context=None, host=None, api_key=None, validate_certs=None, ca_cert=None,
                 client_cert=None, client_key=None, proxy=None):
        self.kubeconfig = kubeconfig
        self.context = context
        self.host = host
        self.api_key = api_key
        self.validate_certs = validate_certs
        self.ca_cert = ca_cert
        self.client_cert = client_cert
        self.client_key = client_key
        self.proxy = proxy
        self.server = host
        self.used_context = context
        self.source = None

    def __repr__(self):
        return "<kubernetes connection %s>" % self.describe()

    def mode(self):
        if self.kubeconfig is not None or self.context:
            return "inline" if isinstance(self.kubeconfig, dict) else "kubeconfig"
        if self.host:
            return "host"
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return "in-cluster"
        return "default"

    def describe(self):
        """Who requests are made as, in words (for messages and hints)."""
        if self.source:
            return self.source
        mode = self.mode()
        if mode == "inline":
            return "the kubeconfig given inline (snapshot.kubeconfig)"
        if mode == "kubeconfig":
            return "kubeconfig %s" % (self.kubeconfig or _default_kubeconfig())
        if mode == "host":
            return "API server %s" % self.host
        if mode == "in-cluster":
            return "the pod's service account (in-cluster configuration)"
        return "the default kubeconfig %s" % _default_kubeconfig()

    def settings(self):
        """The connection as records and plans keep it: what was set, minus the secrets."""
        kept = {}
        if isinstance(self.kubeconfig, str):
            kept["kubeconfig"] = self.kubeconfig
        for key in ("context", "host", "ca_cert", "client_cert", "client_key"):
            if getattr(self, key):
                kept[key] = getattr(self, key)
        if self.validate_certs is not None:
            kept["validate_certs"] = self.validate_certs
        if self.proxy:
            kept["proxy"] = _strip_userinfo(self.proxy)
        return kept

    def secrets(self):
        """What ``settings`` leaves out: the token, an inline kubeconfig, a proxy's credentials."""
        kept = {}
        if self.api_key:
            kept["api_key"] = self.api_key
        if isinstance(self.kubeconfig, dict):
            kept["kubeconfig"] = self.kubeconfig
        if self.proxy and _strip_userinfo(self.proxy) != self.proxy:
            kept["proxy"] = self.proxy
        return kept

    def _key(self):
        paths = []
        if self.mode() in ("kubeconfig", "default", "in-cluster"):
            paths = _kubeconfig_paths(self.kubeconfig or _default_kubeconfig())
        if self.mode() == "in-cluster" and HAS_KUBERNETES:
            # Whether there is a service account token decides between in-cluster and the default kubeconfig.
            paths.append(kubernetes.config.incluster_config.SERVICE_TOKEN_FILENAME)
        files = []
        for path in paths:
            try:
                files.append((path, os.stat(path).st_mtime))
            except OSError:
                files.append((path, None))
        inline = json.dumps(self.kubeconfig, sort_keys=True, default=str) if isinstance(self.kubeconfig, dict) else None
        return (self.mode(), tuple(files), inline, self.context, self.host, self.api_key, self.validate_certs, self.ca_cert,
                self.client_cert, self.client_key, self.proxy)

    def client(self):
        """The ``kubernetes.client.ApiClient`` of this configuration (one per configuration in a process)."""
        if not HAS_KUBERNETES:
            raise MissingDependency(
                "the kubernetes snapshot provider needs the Python library kubernetes, which cannot be imported",
                hint="Install it for the Python that runs the task (pip install 'kubernetes>=22.6.0'), "
                "e.g. with the agent role or in the execution environment",
                import_error=KUBERNETES_IMPORT_ERROR,
            )
        key = self._key()
        with _CLIENTS_LOCK:
            entry = _CLIENTS.get(key)
            if entry is None:
                entry = _new_client(self)
                _CLIENTS[key] = entry
        api_client, self.server, self.used_context, self.source = entry
        return api_client


_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()
# credentials_ref of a plan -> the connection's secrets (api_key, inline kubeconfig, proxy); plans never hold secrets.
_CREDENTIALS = {}


def _current_context(conn, path):
    if conn.context:
        return conn.context
    try:
        if isinstance(conn.kubeconfig, dict):
            return conn.kubeconfig.get("current-context")
        dummy, active = kubernetes.config.list_kube_config_contexts(config_file=path)
        return (active or {}).get("name")
    except Exception:  # pylint: disable=broad-except
        return None


def _load_kubeconfig(conn, configuration, path):
    if isinstance(conn.kubeconfig, dict):
        kubernetes.config.load_kube_config_from_dict(conn.kubeconfig, context=conn.context, client_configuration=configuration,
                                                     persist_config=False)
    else:
        missing = [p for p in _kubeconfig_paths(path) if not os.path.isfile(p)]
        if missing and len(missing) == len(_kubeconfig_paths(path)):
            raise ConfigError(
                "no Kubernetes configuration: kubeconfig %s does not exist" % path,
                hint="Set snapshot.kubeconfig to a kubeconfig file (or the kubeconfig as a dict), snapshot.host with "
                "snapshot.api_key, or run the task in a pod with a service account",
            )
        kubernetes.config.load_kube_config(config_file=path, context=conn.context, client_configuration=configuration, persist_config=False)


def _new_client(conn):
    """(ApiClient, server URL, context used, description) for a connection."""
    configuration = kubernetes.client.Configuration()
    mode = conn.mode()
    path = None
    context = None
    source = None
    try:
        if mode == "in-cluster":
            try:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
                source = "the pod's service account (in-cluster configuration)"
            except kubernetes.config.ConfigException:
                mode = "default"  # KUBERNETES_SERVICE_HOST is set, but there is no service account token: as kubernetes.core
        if mode in ("kubeconfig", "inline", "default"):
            path = None if mode == "inline" else (conn.kubeconfig or _default_kubeconfig())
            _load_kubeconfig(conn, configuration, path)
            context = _current_context(conn, path)
            source = "%s%s" % (
                "the kubeconfig given inline" if mode == "inline" else "kubeconfig %s" % path, " (context %s)" % context if context else "")
        elif mode == "host":
            source = "API server %s" % conn.host
    except DataProtectionError:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        # ConfigException (no such context, no cluster, a bad file), YAML errors, OSError, an exec plugin that fails...
        raise ConfigError(
            "cannot load the Kubernetes configuration from %s: %s" % (
                "the inline kubeconfig" if mode == "inline" else "kubeconfig %s" % path if path else "the in-cluster service account", exc),
            hint="Check snapshot.kubeconfig and snapshot.context (kubectl config get-contexts lists the contexts)",
        )
    if conn.host:
        configuration.host = conn.host
    if conn.api_key:
        token = conn.api_key if conn.api_key.lower().startswith("bearer ") else "Bearer %s" % conn.api_key
        # 'authorization' is the key of older clients, 'BearerToken' of newer ones; no kubeconfig token refresh over it.
        configuration.api_key = {"authorization": token, "BearerToken": token}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
        source += " with snapshot.api_key"
    if conn.validate_certs is not None:
        configuration.verify_ssl = conn.validate_certs
    if conn.ca_cert:
        configuration.ssl_ca_cert = conn.ca_cert
    if conn.client_cert:
        configuration.cert_file = conn.client_cert
    if conn.client_key:
        configuration.key_file = conn.client_key
    if conn.proxy:
        configuration.proxy = conn.proxy
    try:
        api_client = kubernetes.client.ApiClient(configuration)
    except Exception as exc:  # pylint: disable=broad-except
        raise ConfigError("cannot set up a Kubernetes client for %s: %s" % (configuration.host, exc),
                          hint="Check snapshot.ca_cert, snapshot.client_cert, snapshot.client_key and snapshot.proxy")
    api_client.user_agent = "dataprotection.databases"
    return api_client, configuration.host, context, source


def _connection_settings(source, prefix, defaults=None, environment=True):
    """The connection keys of a spec or options dict (over ``defaults``, then the K8S_AUTH_* environment)."""
    defaults = defaults or {}
    values = {}
    for key in OPTION_KEYS:
        value = source.get(key)
        if value is None or value == "":
            value = defaults.get(key)
        if (value is None or value == "") and environment:
            for variable in ENVIRONMENT[key]:
                if os.environ.get(variable):
                    value = os.environ[variable]
                    break
        values[key] = value
    kubeconfig = values["kubeconfig"]
    if isinstance(kubeconfig, dict):
        if not kubeconfig.get("clusters") or not kubeconfig.get("contexts"):
            raise ConfigError("%s.kubeconfig is a dict without clusters or contexts: not a kubeconfig" % prefix,
                              hint="Give the content of a kubeconfig file (apiVersion, clusters, users, contexts, current-context), or its path")
    elif kubeconfig is not None:
        if not isinstance(kubeconfig, str):
            raise ConfigError("%s.kubeconfig must be a path or a dict, got %r" % (prefix, kubeconfig))
        kubeconfig = _text(kubeconfig)
        if kubeconfig:
            paths = _kubeconfig_paths(kubeconfig)
            if not any(os.path.isfile(p) for p in paths):
                raise ConfigError("%s.kubeconfig %s is not a file" % (prefix, kubeconfig),
                                  hint="Point it at a kubeconfig file, or give the kubeconfig itself as a dict")
            kubeconfig = os.pathsep.join(paths)
    host = _text(values["host"])
    if host:
        host = host.rstrip("/")
        if not re.match(r"^https?://[^/]+", host):
            raise ConfigError("%s.host must be an https:// (or http://) URL of the API server, got %r" % (prefix, host),
                              hint="For example https://k8s.example.com:6443")
    proxy = _text(values["proxy"])
    if proxy and not re.match(r"^(https?|socks5h?)://[^/]+", proxy):
        raise ConfigError("%s.proxy must be a URL such as http://proxy.example.com:3128, got %r" % (prefix, proxy))
    for key in ("ca_cert", "client_cert", "client_key"):
        path = _text(values[key])
        if path:
            path = os.path.expanduser(path)
            if not os.path.isfile(path):
                raise ConfigError("%s.%s %s is not a file" % (prefix, key, path), hint="Give the path of a PEM file")
        values[key] = path
    if bool(values["client_cert"]) != bool(values["client_key"]):
        raise ConfigError("%s.client_cert and %s.client_key must be given together" % (prefix, prefix))
    validate_certs = values["validate_certs"]
    if validate_certs is not None and validate_certs != "":
        validate_certs = _as_bool(validate_certs, "%s.validate_certs" % prefix)
    else:
        validate_certs = None
    return {
        "kubeconfig": kubeconfig or None,
        "context": _text(values["context"]),
        "host": host,
        "api_key": _text(values["api_key"]),
        "validate_certs": validate_certs,
        "ca_cert": values["ca_cert"],
        "client_cert": values["client_cert"],
        "client_key": values["client_key"],
        "proxy": proxy,
    }


def normalize_spec(spec):
    """Validate the ``snapshot`` dict; returns the settings (with the credentials, for this module only)."""
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ConfigError("snapshot must be a dict, got %r" % (spec,))
    if spec.get("pvc_name") and not spec.get("pvc_names"):
        raise ConfigError("snapshot.pvc_name is not an option of the kubernetes provider", hint="Use snapshot.pvc_names, a list")
    namespace = _namespace(spec.get("namespace"), "snapshot.namespace")
    pvc_names = _name_list(spec.get("pvc_names"), "snapshot.pvc_names")
    selector = _text(spec.get("pvc_selector"))
    if selector is not None and not isinstance(spec.get("pvc_selector"), str):
        raise ConfigError("snapshot.pvc_selector must be a label selector string such as app=pg,role=primary, got %r" % (spec.get("pvc_selector"),))
    if bool(pvc_names) == bool(selector):
        raise ConfigError(
            "snapshot names %s: set exactly one of snapshot.pvc_names and snapshot.pvc_selector" % (
                "the PVCs twice" if pvc_names else "no PersistentVolumeClaim"),
            hint="For example pvc_names: [data-pg-0], or pvc_selector: app=pg,role=primary",
        )
    snapshot_class = spec.get("volume_snapshot_class")
    snapshot_class = _object_name(snapshot_class, "snapshot.volume_snapshot_class", "VolumeSnapshotClass") if _text(snapshot_class) else None
    settings = _connection_settings(spec, "snapshot")
    settings.update({
        "namespace": namespace,
        "pvc_names": pvc_names,
        "pvc_selector": selector,
        "volume_snapshot_class": snapshot_class,
        "wait_timeout": _seconds(spec.get("wait_timeout"), "snapshot.wait_timeout", DEFAULT_WAIT_TIMEOUT),
        "labels": _labels(spec.get("labels"), "snapshot.labels"),
    })
    return settings


def _make_connection(settings):
    return _Connection(**dict((key, settings.get(key)) for key in OPTION_KEYS))


def _connection_from_plan(plan):
    if not isinstance(plan, dict) or plan.get("provider") != PROVIDER:
        raise ConfigError("not a kubernetes snapshot plan: %r" % (plan,))
    settings = dict(plan.get("connection") or {})
    if plan.get("credentials_ref"):
        secrets = _CREDENTIALS.get(plan["credentials_ref"])
        if secrets is None:
            raise ConfigError(
                "the plan's credentials (%s) are not known in this process" % plan.get("credentials"),
                hint="Make the plan again with kubernetes.plan(spec) in the process that creates the snapshots: plans hold no secrets",
            )
        settings.update(secrets)
    return _make_connection(settings)


def _connection_from_record(record, options):
    """(connection, namespace, name, uid) of a snapshot record; ``options`` override the record's connection settings."""
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError("unknown kubernetes options: %s" % ", ".join(unknown), hint="Known options: %s" % ", ".join(OPTION_KEYS))
    if not isinstance(record, dict) or record.get("provider") != PROVIDER:
        raise ConfigError("not a kubernetes snapshot record: %r" % (record,))
    namespace = _namespace(record.get("namespace"), "the snapshot record's namespace")
    name = _object_name(record.get("name"), "the snapshot record's name", "VolumeSnapshot")
    defaults = dict((key, record.get(key)) for key in OPTION_KEYS if key not in ("api_key",) and record.get(key) is not None)
    settings = _connection_settings(options, "options", defaults=defaults)
    return _make_connection(settings), namespace, name, _text(record.get("uid"))


def _credentials_entry(conn):
    secrets = conn.secrets()
    if not secrets:
        return {"credentials": "none"}
    ref = uuid.uuid4().hex
    _CREDENTIALS[ref] = secrets
    return {"credentials": ", ".join("snapshot.%s" % key for key in sorted(secrets)), "credentials_ref": ref}


# ---------------------------------------------------------------------------
# API requests and error mapping


class _Action(object):
    """What a request does: verb, resource (plural), API group, namespace, object name."""

    def __init__(self, verb, resource, group="", namespace=None, name=None, text=None):
        self.text = text
        self.verb = verb
        self.resource = resource
        self.group = group
        self.namespace = namespace
        self.name = name

    def describe(self):
        if self.text:
            return self.text
        what = "%s %s" % (self.verb, self.resource)
        if self.name:
            what += " %s" % self.name
        what += " (API group %s)" % (self.group or "core")
        if self.namespace:
            what += " in namespace %s" % self.namespace
        return what


def rbac_hint(verbs, resource, group, namespace, who=None):
    """How to grant ``verbs`` on ``resource``: a Role rule for a namespace, a ClusterRole rule for cluster-scoped resources."""
    if isinstance(verbs, str):
        verbs = [verbs]
    rule = 'apiGroups: ["%s"], resources: ["%s"], verbs: [%s]' % (group, resource, ", ".join('"%s"' % v for v in verbs))
    if namespace:
        return "Grant it in a Role in namespace %s bound (RoleBinding) to %s: rules: [{%s}]" % (namespace, who or "the user or service account", rule)
    return "Grant it in a ClusterRole bound (ClusterRoleBinding) to %s: rules: [{%s}]" % (who or "the user or service account", rule)


def _status_body(exc):
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return {"message": body.strip()[:500]} if body else {}
    return data if isinstance(data, dict) else {}


def _snapshot_api_missing(conn, details=None, what=None):
    return ConfigError(
        "%sthe API server %s does not serve %s/%s: the external-snapshotter CRDs (VolumeSnapshot, VolumeSnapshotClass, "
        "VolumeSnapshotContent) are not installed" % ("%s: " % what if what else "", conn.server or conn.host, SNAPSHOT_GROUP, SNAPSHOT_VERSION),
        hint="Install the CRDs and the snapshot controller of github.com/kubernetes-csi/external-snapshotter (client/config/crd, "
        "deploy/kubernetes/snapshot-controller; v4 or later for the v1 API) and a CSI driver that supports snapshots",
        **(details or {})
    )


def k8s_error(exc, action, conn):
    """Translate any exception raised by the kubernetes client into an ``errors`` exception."""
    if isinstance(exc, DataProtectionError):
        return exc
    server = conn.server or conn.host or "the API server"
    what = "cannot %s" % action.describe()
    details = {"verb": action.verb, "resource": action.resource, "api_group": action.group, "server": server}
    if action.namespace:
        details["namespace"] = action.namespace
    if action.name:
        details["name"] = action.name
    if HAS_KUBERNETES and isinstance(exc, ApiException):
        status = int(exc.status or 0)
        body = _status_body(exc)
        message = body.get("message") or exc.reason or ""
        reason = body.get("reason") or exc.reason or ""
        body_details = body.get("details") if isinstance(body.get("details"), dict) else {}
        details.update({"status": status, "reason": reason})
        if status == 0:
            text = str(exc.reason or "")
            if "SSL" in text or "certificate" in text.lower():
                return _tls_error(what, server, conn, text, details)
            return EndpointUnreachable("%s: the request to %s failed: %s" % (what, server, text), hint="Check the network path and retry", **details)
        if status == 401:
            return InvalidCredentials(
                "%s: the API server %s rejected the credentials of %s (401 Unauthorized)" % (what, server, conn.describe()),
                hint="Check the kubeconfig's user (or snapshot.api_key): the token may be wrong or expired, or belong to another cluster",
                **details
            )
        if status == 403:
            match = _FORBIDDEN_USER.search(message)
            who = 'user "%s"' % match.group(1) if match else None
            if who:
                details["user"] = match.group(1)
            return AccessDenied(
                "%s: forbidden: %s" % (what, message),
                hint=rbac_hint(action.verb, action.resource, action.group, action.namespace, who),
                **details
            )
        if status == 404:
            if body_details.get("name") or body_details.get("kind"):
                return ObjectNotFound("%s: %s" % (what, message), **details)
            if action.group == SNAPSHOT_GROUP:
                return _snapshot_api_missing(conn, details, what)
            return EngineError("%s: the API server %s does not serve it (%s)" % (what, server, message), **details)
        if status == 409 and reason == "AlreadyExists":
            return ObjectExists("%s: %s" % (what, message), **details)
        if status == 409:
            return ConfigError("%s: %s" % (what, message), hint="The object changed meanwhile (another uid); check what is there", **details)
        if status in (400, 422):
            return ConfigError("%s: the API server refused it: %s" % (what, message), **details)
        if status == 429 or status >= 500:
            return EngineError("%s: the API server %s failed: %s (%s)" % (what, server, message, status),
                               hint="The API server is overloaded or unhealthy; retry later", **details)
        return EngineError("%s: %s (%s)" % (what, message, status), **details)
    if HAS_KUBERNETES and isinstance(exc, urllib3.exceptions.HTTPError):
        cause = getattr(exc, "reason", None) or exc
        text = str(cause)
        if isinstance(cause, urllib3.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return _tls_error(what, server, conn, text, details)
        return EndpointUnreachable(
            "%s: cannot connect to %s: %s" % (what, server, text),
            hint="Check that the API server runs and the kubeconfig's server (or snapshot.host) names it, and DNS, firewalls and "
            "proxies (snapshot.proxy)",
            **details
        )
    if isinstance(exc, (ValueError, TypeError)):
        return ConfigError("%s: %s" % (what, exc), **details)
    return EngineError("%s: %s: %s" % (what, type(exc).__name__, exc), **details)


def _tls_error(what, server, conn, text, details):
    if conn.ca_cert:
        hint = "The API server's certificate is not signed by the CA in snapshot.ca_cert (%s)" % conn.ca_cert
    else:
        hint = "Set snapshot.ca_cert to the CA of the API server (the kubeconfig's certificate-authority), or validate_certs: false for testing only"
    return TLSVerificationFailed("%s: TLS with %s failed: %s" % (what, server, text), hint=hint, **details)


def _call(conn, action, method, *args, **kwargs):
    """One API request; returns its JSON answer as a dict.  Failures become ``errors`` exceptions."""
    kwargs["_preload_content"] = False
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    response = None
    try:
        response = method(*args, **kwargs)
        data = response.data
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data) if data else {}
    except Exception as exc:  # pylint: disable=broad-except
        raise k8s_error(exc, action, conn)
    finally:
        if response is not None and hasattr(response, "release_conn"):
            response.release_conn()


class _Api(object):
    """The typed APIs of a connection's client, with the calls the provider makes."""

    def __init__(self, conn):
        self.conn = conn
        client = conn.client()
        self.core = kubernetes.client.CoreV1Api(client)
        self.storage = kubernetes.client.StorageV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.auth = kubernetes.client.AuthorizationV1Api(client)
        self.apis = kubernetes.client.ApisApi(client)

    # core/v1 PersistentVolumeClaims
    def get_pvc(self, namespace, name):
        return _call(self.conn, _Action("get", "persistentvolumeclaims", "", namespace, name),
                     self.core.read_namespaced_persistent_volume_claim, name, namespace)

    def list_pvcs(self, namespace, selector=None):
        kwargs = {"label_selector": selector} if selector else {}
        return _call(self.conn, _Action("list", "persistentvolumeclaims", "", namespace),
                     self.core.list_namespaced_persistent_volume_claim, namespace, **kwargs).get("items") or []

    def create_pvc(self, namespace, body):
        return _call(self.conn, _Action("create", "persistentvolumeclaims", "", namespace, body["metadata"]["name"]),
                     self.core.create_namespaced_persistent_volume_claim, namespace, body)

    def delete_pvc(self, namespace, name, uid):
        return _call(self.conn, _Action("delete", "persistentvolumeclaims", "", namespace, name),
                     self.core.delete_namespaced_persistent_volume_claim, name, namespace, body=_delete_options(uid))

    # storage.k8s.io/v1 StorageClasses
    def get_storage_class(self, name):
        return _call(self.conn, _Action("get", "storageclasses", "storage.k8s.io", None, name), self.storage.read_storage_class, name)

    # snapshot.storage.k8s.io/v1
    def get_snapshot_class(self, name):
        return _call(self.conn, _Action("get", "volumesnapshotclasses", SNAPSHOT_GROUP, None, name),
                     self.custom.get_cluster_custom_object, SNAPSHOT_GROUP, SNAPSHOT_VERSION, "volumesnapshotclasses", name)

    def list_snapshot_classes(self):
        return _call(self.conn, _Action("list", "volumesnapshotclasses", SNAPSHOT_GROUP),
                     self.custom.list_cluster_custom_object, SNAPSHOT_GROUP, SNAPSHOT_VERSION, "volumesnapshotclasses").get("items") or []

    def get_snapshot(self, namespace, name):
        return _call(self.conn, _Action("get", "volumesnapshots", SNAPSHOT_GROUP, namespace, name),
                     self.custom.get_namespaced_custom_object, SNAPSHOT_GROUP, SNAPSHOT_VERSION, namespace, "volumesnapshots", name)

    def list_snapshots(self, namespace, selector):
        return _call(self.conn, _Action("list", "volumesnapshots", SNAPSHOT_GROUP, namespace),
                     self.custom.list_namespaced_custom_object, SNAPSHOT_GROUP, SNAPSHOT_VERSION, namespace, "volumesnapshots",
                     label_selector=selector).get("items") or []

    def create_snapshot(self, namespace, body):
        return _call(self.conn, _Action("create", "volumesnapshots", SNAPSHOT_GROUP, namespace, body["metadata"]["name"]),
                     self.custom.create_namespaced_custom_object, SNAPSHOT_GROUP, SNAPSHOT_VERSION, namespace, "volumesnapshots", body)

    def delete_snapshot(self, namespace, name, uid):
        return _call(self.conn, _Action("delete", "volumesnapshots", SNAPSHOT_GROUP, namespace, name),
                     self.custom.delete_namespaced_custom_object, SNAPSHOT_GROUP, SNAPSHOT_VERSION, namespace, "volumesnapshots", name,
                     body=_delete_options(uid))

    # discovery and access reviews
    def served_groups(self):
        answer = _call(self.conn, _Action("get", "apis", "", text="list the API groups (GET /apis)"), self.apis.get_api_versions)
        return dict((g.get("name"), [v.get("version") for v in g.get("versions") or ()]) for g in answer.get("groups") or ())

    def may(self, verb, resource, group, namespace):
        """(allowed, reason) of a SelfSubjectAccessReview."""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "group": group}}}
        if namespace:
            body["spec"]["resourceAttributes"]["namespace"] = namespace
        answer = _call(self.conn, _Action("create", "selfsubjectaccessreviews", "authorization.k8s.io"),
                       self.auth.create_self_subject_access_review, body)
        status = answer.get("status") or {}
        return bool(status.get("allowed")) and not status.get("denied"), status.get("reason") or status.get("evaluationError")


def _delete_options(uid):
    """DELETE body: only the object with this uid (the API server checks it atomically)."""
    if uid:
        return kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(uid=uid))
    return kubernetes.client.V1DeleteOptions()


def _meta(obj):
    return obj.get("metadata") or {}


def _wait(check, timeout, describe, hint):
    """Wait until ``check()`` is True (see snapshots.wait_until), polling from POLL_INTERVAL up to MAX_POLL_INTERVAL."""
    wait_until(check, timeout, describe, hint, POLL_INTERVAL, MAX_POLL_INTERVAL)


def _denied(api, verbs, resource, group, namespace):
    """The verbs of ``verbs`` that SelfSubjectAccessReviews say are not allowed (none when the reviews cannot be made)."""
    missing = []
    for verb in verbs:
        try:
            allowed, dummy = api.may(verb, resource, group, namespace)
        except AccessDenied:
            return []  # may not even ask: the requests themselves will tell
        if not allowed:
            missing.append(verb)
    return missing


def _access_denied(api, verbs, resource, group, namespace, why):
    where = " in namespace %s" % namespace if namespace else ""
    return AccessDenied(
        "the credentials of %s may not %s %s (API group %s)%s, which %s" % (
            api.conn.describe(), ", ".join(verbs), resource, group or "core", where, why),
        hint=rbac_hint(verbs, resource, group, namespace),
        verbs=verbs, resource=resource, api_group=group, namespace=namespace, server=api.conn.server,
    )


# ---------------------------------------------------------------------------
# plan


def _check_snapshot_api(api):
    try:
        groups = api.served_groups()
    except AccessDenied:
        return  # discovery is normally open to every authenticated user; the requests below will tell
    if SNAPSHOT_GROUP not in groups:
        raise _snapshot_api_missing(api.conn)
    if SNAPSHOT_VERSION not in groups[SNAPSHOT_GROUP]:
        raise ConfigError(
            "the API server %s serves %s only as %s, not %s" % (api.conn.server, SNAPSHOT_GROUP, ", ".join(groups[SNAPSHOT_GROUP]), SNAPSHOT_VERSION),
            hint="Upgrade the external-snapshotter CRDs and snapshot controller to v4 or later",
        )


def _resolve_pvcs(api, settings):
    namespace = settings["namespace"]
    if settings["pvc_selector"]:
        pvcs = api.list_pvcs(namespace, settings["pvc_selector"])
        if not pvcs:
            present = sorted(_meta(p).get("name") for p in api.list_pvcs(namespace))
            raise ConfigError(
                "no PersistentVolumeClaim in namespace %s matches the selector %s (its PVCs: %s)" % (
                    namespace, settings["pvc_selector"], ", ".join(present) or "none"),
                hint="Check snapshot.pvc_selector and snapshot.namespace (kubectl get pvc -n %s --show-labels)" % namespace,
                namespace=namespace, selector=settings["pvc_selector"], present=present,
            )
        return sorted(pvcs, key=lambda p: _meta(p).get("name"))
    pvcs = []
    missing = []
    for name in settings["pvc_names"]:
        try:
            pvcs.append(api.get_pvc(namespace, name))
        except ObjectNotFound:
            missing.append(name)
    if missing:
        try:
            present = sorted(_meta(p).get("name") for p in api.list_pvcs(namespace))
        except AccessDenied:
            present = None
        raise ConfigError(
            "PersistentVolumeClaim%s %s do%s not exist in namespace %s (%s)" % (
                "s" if len(missing) > 1 else "", ", ".join(missing), "" if len(missing) > 1 else "es", namespace,
                "its PVCs: %s" % (", ".join(present) or "none, or the namespace does not exist") if present is not None
                else "the PVCs present cannot be listed with these credentials"),
            hint="Check snapshot.pvc_names and snapshot.namespace (kubectl get pvc -n %s)" % namespace,
            namespace=namespace, missing=missing, present=present,
        )
    return pvcs


def _pvc_facts(pvc):
    meta, spec, status = _meta(pvc), pvc.get("spec") or {}, pvc.get("status") or {}
    return {
        "pvc": meta.get("name"),
        "uid": meta.get("uid"),
        "storage_class": spec.get("storageClassName") or None,
        "size": (status.get("capacity") or {}).get("storage") or ((spec.get("resources") or {}).get("requests") or {}).get("storage"),
        "access_modes": list(spec.get("accessModes") or status.get("accessModes") or ()),
        "volume_mode": spec.get("volumeMode") or "Filesystem",
    }


def _default_classes(classes, driver):
    return sorted(_meta(c).get("name") for c in classes
                  if c.get("driver") == driver and (_meta(c).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true")


def _class_list(classes):
    return ", ".join("%s (driver %s)" % (_meta(c).get("name"), c.get("driver")) for c in sorted(classes, key=lambda c: _meta(c).get("name"))) \
        or "none"


def _choose_classes(api, settings, volumes, warnings):
    """Set ``volume_snapshot_class`` of every volume; check that its driver is the volume's provisioner."""
    namespace = settings["namespace"]
    chosen = {}
    if settings["volume_snapshot_class"]:
        name = settings["volume_snapshot_class"]
        try:
            chosen[name] = api.get_snapshot_class(name)
        except ObjectNotFound:
            classes = api.list_snapshot_classes()
            raise ConfigError(
                "VolumeSnapshotClass %s does not exist (classes: %s)" % (name, _class_list(classes)),
                hint="Set snapshot.volume_snapshot_class to a class whose driver is the PVCs' CSI driver, or leave it unset to use "
                "the driver's default class (kubectl get volumesnapshotclass)",
                volume_snapshot_class=name,
            )
        for volume in volumes:
            driver = chosen[name].get("driver")
            if volume["driver"] is None:
                warnings.append("the CSI driver of PVC %s is not known (%s): whether VolumeSnapshotClass %s (driver %s) can snapshot "
                                "it was not checked" % (volume["pvc"], volume["driver_unknown"], name, driver))
            elif volume["driver"] != driver:
                classes = api.list_snapshot_classes()
                fitting = [c for c in classes if c.get("driver") == volume["driver"]]
                raise ConfigError(
                    "VolumeSnapshotClass %s is for driver %s, but PVC %s/%s is provisioned by %s (StorageClass %s): a CSI snapshot "
                    "is taken by the volume's own driver" % (name, driver, namespace, volume["pvc"], volume["driver"], volume["storage_class"]),
                    hint="Use a VolumeSnapshotClass of driver %s (%s)" % (
                        volume["driver"], _class_list(fitting) if fitting else "there is none yet: create one"),
                    volume_snapshot_class=name, driver=driver, pvc=volume["pvc"], provisioner=volume["driver"],
                )
            volume["volume_snapshot_class"] = name
    else:
        classes = api.list_snapshot_classes()
        for volume in volumes:
            if volume["driver"] is None:
                raise ConfigError(
                    "the CSI driver of PVC %s/%s is not known (%s), so its default VolumeSnapshotClass cannot be found" % (
                        namespace, volume["pvc"], volume["driver_unknown"]),
                    hint="Set snapshot.volume_snapshot_class (classes: %s)" % _class_list(classes),
                )
            defaults = _default_classes(classes, volume["driver"])
            if not defaults:
                fitting = [c for c in classes if c.get("driver") == volume["driver"]]
                raise ConfigError(
                    "no default VolumeSnapshotClass for driver %s (of PVC %s/%s, StorageClass %s)%s" % (
                        volume["driver"], namespace, volume["pvc"], volume["storage_class"],
                        "; classes of the driver: %s" % _class_list(fitting) if fitting else
                        "; no class has that driver (is it a CSI driver with snapshot support?)"),
                    hint="Set snapshot.volume_snapshot_class, or annotate a class of driver %s with %s: \"true\"" % (
                        volume["driver"], DEFAULT_CLASS_ANNOTATION),
                    driver=volume["driver"],
                )
            if len(defaults) > 1:
                raise ConfigError(
                    "%d VolumeSnapshotClasses are the default for driver %s: %s" % (len(defaults), volume["driver"], ", ".join(defaults)),
                    hint="Set snapshot.volume_snapshot_class, or leave the default annotation on one class only",
                    driver=volume["driver"], classes=defaults,
                )
            volume["volume_snapshot_class"] = defaults[0]
            chosen[defaults[0]] = [c for c in classes if _meta(c).get("name") == defaults[0]][0]
    for name in sorted(chosen):
        if chosen[name].get("deletionPolicy") == "Retain":
            warnings.append(
                "VolumeSnapshotClass %s has deletionPolicy Retain: deleting the VolumeSnapshots (after a failed run, or by retention) "
                "leaves their VolumeSnapshotContents and the storage's snapshots behind" % name)


def check_labels(labels):
    """Refuse, before the database is quiesced, backup labels that cannot label a VolumeSnapshot."""
    return _labels(labels, "labels")


def plan(spec, data_dir=None):
    """Check, reading only, that the PVCs ``spec`` names can be snapshotted; return the plan (no secrets in it)."""
    settings = normalize_spec(spec)
    conn = _make_connection(settings)
    api = _Api(conn)
    namespace = settings["namespace"]
    _check_snapshot_api(api)
    pvcs = _resolve_pvcs(api, settings)
    volumes = []
    warnings = []
    storage_classes = {}
    for pvc in pvcs:
        meta = _meta(pvc)
        phase = (pvc.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp"):
            raise ConfigError("PersistentVolumeClaim %s/%s is being deleted" % (namespace, meta.get("name")))
        if phase != "Bound":
            raise ConfigError(
                "PersistentVolumeClaim %s/%s is %s, not Bound: it has no volume to snapshot" % (namespace, meta.get("name"), phase or "without a phase"),
                hint="Wait until it is bound (a WaitForFirstConsumer class binds when a pod uses it), or name another PVC",
                pvc=meta.get("name"), phase=phase,
            )
        volume = _pvc_facts(pvc)
        volume["driver"] = None
        volume["driver_unknown"] = None
        name = volume["storage_class"]
        if name:
            if name not in storage_classes:
                try:
                    storage_classes[name] = api.get_storage_class(name)
                except ObjectNotFound:
                    storage_classes[name] = None
            if storage_classes[name] is None:
                volume["driver_unknown"] = "its StorageClass %s does not exist any more" % name
            else:
                volume["driver"] = storage_classes[name].get("provisioner")
        else:
            volume["driver_unknown"] = "it has no StorageClass"
        volumes.append(volume)
    _choose_classes(api, settings, volumes, warnings)
    for volume in volumes:
        del volume["driver_unknown"]
    missing = _denied(api, ("create", "get", "list"), "volumesnapshots", SNAPSHOT_GROUP, namespace)
    if missing:
        raise _access_denied(api, missing, "volumesnapshots", SNAPSHOT_GROUP, namespace,
                             "taking the snapshots (create), waiting for them (list) and restoring them (get) need")
    if _denied(api, ("delete",), "volumesnapshots", SNAPSHOT_GROUP, namespace):
        warnings.append("these credentials may not delete VolumeSnapshots in namespace %s: a failed run cannot remove the snapshots it made, "
                        "and retention cannot delete expired ones with them (%s)" % (
                            namespace, rbac_hint("delete", "volumesnapshots", SNAPSHOT_GROUP, namespace)))
    result = {
        "provider": PROVIDER,
        "namespace": namespace,
        "pvc_selector": settings["pvc_selector"],
        "volumes": volumes,
        "labels": settings["labels"],
        "wait_timeout": settings["wait_timeout"],
        "server": conn.server,
        "auth": conn.describe(),
        "connection": conn.settings(),
        "warnings": warnings,
    }
    result.update(_credentials_entry(conn))
    return result


# ---------------------------------------------------------------------------
# create


def _snapshot_body(namespace, name, volume, backup_id, labels):
    all_labels = dict(labels)
    all_labels[LABEL_BACKUP_ID] = backup_label(backup_id)
    return {
        "apiVersion": "%s/%s" % (SNAPSHOT_GROUP, SNAPSHOT_VERSION),
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": namespace, "labels": all_labels, "annotations": {ANNOTATION_BACKUP_ID: backup_id}},
        "spec": {"volumeSnapshotClassName": volume["volume_snapshot_class"], "source": {"persistentVolumeClaimName": volume["pvc"]}},
    }


def _delete_quietly(api, namespace, made):
    """Delete VolumeSnapshots after a failure; return {namespace/name: problem} of those that stay."""
    left = {}
    for name, uid in made:
        try:
            api.delete_snapshot(namespace, name, uid)
        except ObjectNotFound:
            continue
        except Exception as exc:  # pylint: disable=broad-except
            left["%s/%s" % (namespace, name)] = getattr(exc, "message", None) or str(exc)
    return left


def create(plan, backup_id, labels=None, timeout=None, taken=None):
    """Snapshot every PVC of ``plan``; call ``taken`` once their point in time is fixed; wait until all are ready.

    Returns one record per snapshot.  On any failure every VolumeSnapshot this call made is deleted before the error is raised.
    """
    conn = _connection_from_plan(plan)
    backup_id = _text(backup_id)
    if not backup_id:
        raise ConfigError("a snapshot needs the backup id it belongs to")
    timeout = _seconds(timeout, "timeout", plan.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
    namespace = plan["namespace"]
    all_labels = dict(plan.get("labels") or {})
    all_labels.update(_labels(labels, "labels"))
    prepared = []  # (volume, body), all checked before the first snapshot is made
    names = set()
    for volume in plan["volumes"]:
        name = snapshot_name(backup_id, volume["pvc"])
        if name in names:
            name = _fit_name(name, "%s/%s/%d" % (backup_id, volume["pvc"], len(names)), force_hash=True)
        names.add(name)
        prepared.append((volume, _snapshot_body(namespace, name, volume, backup_id, all_labels)))
    api = _Api(conn)
    made = []  # (name, uid)
    try:
        for volume, body in prepared:
            answer = api.create_snapshot(namespace, body)
            made.append((body["metadata"]["name"], _meta(answer).get("uid")))
        items = _wait_for_snapshots(api, namespace, made, dict((b["metadata"]["name"], v["pvc"]) for v, b in prepared),
                                    backup_label(backup_id), timeout, taken)
    except BaseException as exc:
        left = _delete_quietly(api, namespace, made)
        if isinstance(exc, Exception):
            error = k8s_error(exc, _Action("create", "volumesnapshots", SNAPSHOT_GROUP, namespace), conn)
            if isinstance(error, ObjectExists):
                error.hint = "A VolumeSnapshot of that name is there already (of an earlier run with this backup id?): delete it, or take " \
                             "the backup again with another id; it was not touched"
            raise with_leftovers(error, left, "VolumeSnapshots")
        raise
    records = []
    for volume, body in prepared:
        name = body["metadata"]["name"]
        item = items[name]
        status = item.get("status") or {}
        record = {
            "provider": PROVIDER,
            "id": "%s/%s" % (namespace, name),
            "namespace": namespace,
            "name": name,
            "uid": _meta(item).get("uid"),
            "source": volume["pvc"],
            "size": status.get("restoreSize") or volume.get("size"),
            "storage_class": volume.get("storage_class"),
            "volume_snapshot_class": volume["volume_snapshot_class"],
            "access_modes": list(volume.get("access_modes") or ()),
            "volume_mode": volume.get("volume_mode"),
            "created": format_time(parse_time(status["creationTime"], "status.creationTime")),
            "backup_id": backup_id,
            "server": conn.server,
        }
        record.update(conn.settings())
        records.append(record)
    return records


def _wait_for_snapshots(api, namespace, made, sources, label_value, timeout, taken):
    """Wait until every VolumeSnapshot is readyToUse, calling ``taken`` once all have a creationTime; return name -> object."""
    uids = dict(made)
    items = {}
    state = {"taken": taken is None}

    def check():
        listed = api.list_snapshots(namespace, "%s=%s" % (LABEL_BACKUP_ID, label_value))
        by_name = dict((_meta(item).get("name"), item) for item in listed)
        for name, uid in made:
            item = by_name.get(name)
            if item is None or _meta(item).get("uid") != uid:
                raise EngineError(
                    "VolumeSnapshot %s/%s (of PVC %s) disappeared while it was being made" % (namespace, name, sources[name]),
                    hint="Something deleted it (or its backup-id label); run the backup again",
                    namespace=namespace, name=name,
                )
            error = (item.get("status") or {}).get("error")
            if error:
                raise EngineError(
                    "VolumeSnapshot %s/%s of PVC %s failed: %s" % (namespace, name, sources[name], error.get("message") or error),
                    hint="kubectl describe volumesnapshot -n %s %s shows the events; check the CSI driver's snapshotter and the "
                    "snapshot controller (their logs), and the VolumeSnapshotClass" % (namespace, name),
                    namespace=namespace, name=name, pvc=sources[name],
                )
            items[name] = item
        if not state["taken"]:
            if not all((items[name].get("status") or {}).get("creationTime") for name in uids):
                return False
            state["taken"] = True
            taken()
        return all((items[name].get("status") or {}).get("readyToUse") is True for name in uids)

    def describe():
        waiting = [name for name in uids if (items.get(name, {}).get("status") or {}).get("readyToUse") is not True]
        return "VolumeSnapshot%s %s in namespace %s (%s)" % (
            "s" if len(waiting) > 1 else "", ", ".join("%s of PVC %s" % (n, sources[n]) for n in waiting), namespace,
            "ready to use" if state["taken"] else "taking the snapshot")

    _wait(check, timeout, describe,
          "Raise snapshot.wait_timeout (a first snapshot may copy the whole volume), or see kubectl describe volumesnapshot -n %s" % namespace)
    return items


# ---------------------------------------------------------------------------
# exists / delete


def _different_server(conn, record):
    recorded = record.get("server")
    return bool(recorded and conn.server and recorded.rstrip("/") != conn.server.rstrip("/"))


def _read_snapshot(api, namespace, name, record):
    """The VolumeSnapshot, or None when it is not there (refusing to say so when this connection reaches another API server)."""
    try:
        item = api.get_snapshot(namespace, name)
    except ObjectNotFound:
        if _different_server(api.conn, record):
            raise ConfigError(
                "VolumeSnapshot %s/%s was made through the API server %s, and is not found through %s (%s)" % (
                    namespace, name, record.get("server"), api.conn.server, api.conn.describe()),
                hint="Give the connection options (kubeconfig, context or host) that reach the cluster of the snapshot",
                record_server=record.get("server"), server=api.conn.server,
            )
        return None
    if _meta(item).get("deletionTimestamp"):
        return None
    return item


def exists(record, **options):
    """Whether the VolumeSnapshot of ``record`` (the same object: its uid) still exists."""
    conn, namespace, name, uid = _connection_from_record(record, options)
    item = _read_snapshot(_Api(conn), namespace, name, record)
    return item is not None and (not uid or _meta(item).get("uid") == uid)


def delete(record, **options):
    """Delete the VolumeSnapshot of ``record``: True when deleted, False when it was already gone.

    Only the object with the record's uid is deleted; another object that came to have the name is refused.
    """
    conn, namespace, name, uid = _connection_from_record(record, options)
    api = _Api(conn)
    item = _read_snapshot(api, namespace, name, record)
    if item is None:
        return False
    found = _meta(item).get("uid")
    if uid and found != uid:
        raise ConfigError(
            "VolumeSnapshot %s/%s is another object (uid %s) than the record's (uid %s): not deleted" % (namespace, name, found, uid),
            hint="The snapshot of the record is gone and another one has its name; if that one is no longer needed, delete it by hand",
            namespace=namespace, name=name, record_uid=uid, uid=found,
        )
    if not uid:
        expected = _text(record.get("backup_id"))
        tagged = (_meta(item).get("annotations") or {}).get(ANNOTATION_BACKUP_ID)
        if not expected or tagged != expected:
            raise ConfigError(
                "VolumeSnapshot %s/%s cannot be told to be the record's: the record has no uid, and the snapshot's %s is %s" % (
                    namespace, name, ANNOTATION_BACKUP_ID, tagged or "not set"),
                hint="If the snapshot is really no longer needed, delete it by hand",
            )
        found = None
    try:
        api.delete_snapshot(namespace, name, uid or found)
    except ObjectNotFound:
        return False
    return True


# ---------------------------------------------------------------------------
# restore


def _restore_target(target, record):
    if target is None:
        target = {}
    if not isinstance(target, dict):
        raise ConfigError("the restore target must be a dict, got %r" % (target,))
    source = record.get("source")
    namespace = _namespace(target.get("namespace") or record.get("namespace"), "target.namespace")
    if namespace != record.get("namespace"):
        raise ConfigError(
            "target.namespace %s is not the namespace of the VolumeSnapshot (%s): a PVC can only be restored from a snapshot in its own "
            "namespace" % (namespace, record.get("namespace")),
            hint="Restore into %s and move the data from there, or leave target.namespace unset" % record.get("namespace"),
        )
    names = target.get("pvc_names")
    if names is not None and not isinstance(names, dict):
        raise ConfigError("target.pvc_names must be a dict of source PVC names to new PVC names, got %r" % (names,))
    if names and source in names:
        pvc_name = _object_name(names[source], "target.pvc_names.%s" % source)
    elif _text(target.get("pvc_name")):
        pvc_name = _object_name(target.get("pvc_name"), "target.pvc_name")
    else:
        pvc_name = restore_name(source or record.get("name"), record.get("backup_id") or record.get("name"))
    access_modes = target.get("access_modes")
    if access_modes is None or access_modes == []:
        access_modes = list(record.get("access_modes") or ["ReadWriteOnce"])
    if isinstance(access_modes, str):
        access_modes = [access_modes]
    if not isinstance(access_modes, (list, tuple)) or any(mode not in ACCESS_MODES for mode in access_modes):
        raise ConfigError("target.access_modes must be a list of %s, got %r" % (", ".join(ACCESS_MODES), access_modes))
    storage_class = target.get("storage_class") or record.get("storage_class")
    if storage_class:
        storage_class = _object_name(storage_class, "target.storage_class", "StorageClass")
    wait = target.get("wait")
    return {
        "namespace": namespace,
        "pvc_name": pvc_name,
        "storage_class": storage_class,
        "access_modes": list(access_modes),
        "size": _size_text(target["size"], "target.size") if target.get("size") not in (None, "") else None,
        "labels": _labels(target.get("labels"), "target.labels"),
        "wait": True if wait is None else _as_bool(wait, "target.wait"),
        "wait_timeout": _seconds(target.get("wait_timeout"), "target.wait_timeout", DEFAULT_WAIT_TIMEOUT),
    }


def _pvc_body(wanted, record, name, size):
    labels = dict(wanted["labels"])
    if record.get("backup_id"):
        labels[LABEL_BACKUP_ID] = backup_label(record["backup_id"])
    annotations = {ANNOTATION_RESTORED_FROM: "%s/%s" % (record["namespace"], name)}
    if record.get("backup_id"):
        annotations[ANNOTATION_BACKUP_ID] = record["backup_id"]
    spec = {
        "accessModes": wanted["access_modes"],
        "resources": {"requests": {"storage": size}},
        "volumeMode": record.get("volume_mode") or "Filesystem",
        "dataSource": {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": name},
    }
    if wanted["storage_class"]:
        spec["storageClassName"] = wanted["storage_class"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": wanted["pvc_name"], "namespace": wanted["namespace"], "labels": labels, "annotations": annotations},
        "spec": spec,
    }


def restore(record, target, check_mode=False, **options):
    """Make a new PVC from the VolumeSnapshot of ``record``; wait until it is Bound (unless its class binds on first use).

    ``target`` keys: namespace, pvc_name, pvc_names (source PVC -> new name), storage_class, access_modes, size, labels,
    wait, wait_timeout.  In check mode nothing is made: the result holds the PVC that would be created (``body``).
    """
    conn, namespace, name, uid = _connection_from_record(record, options)
    wanted = _restore_target(target, record)
    api = _Api(conn)
    item = _read_snapshot(api, namespace, name, record)
    if item is None or (uid and _meta(item).get("uid") != uid):
        raise ObjectNotFound(
            "VolumeSnapshot %s/%s of the record does not exist%s" % (namespace, name, " (another object has its name)" if item else ""),
            hint="It was deleted: restore another backup", namespace=namespace, name=name,
        )
    status = item.get("status") or {}
    if status.get("readyToUse") is not True:
        raise ConfigError(
            "VolumeSnapshot %s/%s is not ready to use%s" % (namespace, name, ": %s" % status["error"].get("message") if status.get("error") else ""),
            hint="Restore from a ready snapshot; kubectl describe volumesnapshot -n %s %s shows why it is not" % (namespace, name),
        )
    restore_size = status.get("restoreSize") or record.get("size")
    size = wanted["size"] or restore_size
    if not size:
        raise ConfigError("the size of VolumeSnapshot %s/%s is not known" % (namespace, name), hint="Set target.size")
    if restore_size and quantity(size, "target.size") < quantity(restore_size, "the snapshot's restoreSize"):
        raise ConfigError(
            "target.size %s is smaller than the snapshot's restoreSize %s" % (size, restore_size),
            hint="A volume restored from a snapshot is at least as large as the snapshot: set target.size to %s or more, or leave it unset" % restore_size,
        )
    warnings = []
    binding_mode = None
    if wanted["storage_class"]:
        try:
            storage_class = api.get_storage_class(wanted["storage_class"])
        except ObjectNotFound:
            raise ConfigError("StorageClass %s does not exist" % wanted["storage_class"],
                              hint="Set target.storage_class to a class of the snapshot's CSI driver (kubectl get storageclass)")
        binding_mode = storage_class.get("volumeBindingMode") or "Immediate"
        class_name = (item.get("spec") or {}).get("volumeSnapshotClassName") or record.get("volume_snapshot_class")
        driver = None
        if class_name:
            try:
                driver = api.get_snapshot_class(class_name).get("driver")
            except ObjectNotFound:
                warnings.append("VolumeSnapshotClass %s is gone: whether StorageClass %s can restore the snapshot was not checked" % (
                    class_name, wanted["storage_class"]))
        if driver and storage_class.get("provisioner") != driver:
            raise ConfigError(
                "StorageClass %s is provisioned by %s, but the snapshot was taken by driver %s" % (
                    wanted["storage_class"], storage_class.get("provisioner"), driver),
                hint="Set target.storage_class to a StorageClass of driver %s" % driver,
            )
    try:
        api.get_pvc(wanted["namespace"], wanted["pvc_name"])
    except ObjectNotFound:
        pass
    else:
        raise ConfigError(
            "PersistentVolumeClaim %s/%s already exists" % (wanted["namespace"], wanted["pvc_name"]),
            hint="Pick another name (target.pvc_name, or target.pvc_names: {%s: <new name>}) or delete that PVC first" % record.get("source"),
            namespace=wanted["namespace"], pvc_name=wanted["pvc_name"],
        )
    if _denied(api, ("create",), "persistentvolumeclaims", "", wanted["namespace"]):
        raise _access_denied(api, ["create"], "persistentvolumeclaims", "", wanted["namespace"], "restoring needs")
    body = _pvc_body(wanted, record, name, size)
    first_consumer = binding_mode == "WaitForFirstConsumer"
    result = {
        "provider": PROVIDER,
        "namespace": wanted["namespace"],
        "pvc_name": wanted["pvc_name"],
        "uid": None,
        "snapshot": "%s/%s" % (namespace, name),
        "source": record.get("source"),
        "storage_class": wanted["storage_class"],
        "size": size,
        "access_modes": wanted["access_modes"],
        "volume_mode": body["spec"]["volumeMode"],
        "phase": None,
        "bound": False,
        "waited": False,
        "note": None,
        "warnings": warnings,
        "server": conn.server,
    }
    result.update(conn.settings())
    if first_consumer:
        result["note"] = "StorageClass %s binds a volume when the first pod uses the PVC (WaitForFirstConsumer): " \
                         "the PVC stays Pending until then, and the restore did not wait for it" % wanted["storage_class"]
    if check_mode:
        result["body"] = body
        return result
    made_uid = None
    try:
        answer = api.create_pvc(wanted["namespace"], body)
        made_uid = _meta(answer).get("uid")
        result["uid"] = made_uid
        result["phase"] = (answer.get("status") or {}).get("phase")
        if wanted["wait"] and not first_consumer:
            result["waited"] = True
            _wait(lambda: _pvc_bound(api, wanted["namespace"], wanted["pvc_name"], made_uid, result), wanted["wait_timeout"],
                  lambda: "binding PersistentVolumeClaim %s/%s (from VolumeSnapshot %s)" % (wanted["namespace"], wanted["pvc_name"], name),
                  "Raise target.wait_timeout, or see kubectl describe pvc -n %s %s (the CSI driver's provisioner events)" % (
                      wanted["namespace"], wanted["pvc_name"]))
    except BaseException as exc:
        left = {}
        if made_uid:
            problem = _remove_pvc(api, wanted["namespace"], wanted["pvc_name"], made_uid)
            if problem:
                left["%s/%s" % (wanted["namespace"], wanted["pvc_name"])] = problem
        if isinstance(exc, Exception):
            action = _Action("create", "persistentvolumeclaims", "", wanted["namespace"], wanted["pvc_name"])
            raise with_leftovers(k8s_error(exc, action, conn), left, "PersistentVolumeClaim")
        raise
    return result


def _pvc_bound(api, namespace, name, uid, result):
    try:
        pvc = api.get_pvc(namespace, name)
    except ObjectNotFound:
        pvc = None
    if pvc is None or _meta(pvc).get("uid") != uid:
        raise EngineError("PersistentVolumeClaim %s/%s disappeared while it was being bound" % (namespace, name), hint="Something deleted it")
    phase = (pvc.get("status") or {}).get("phase")
    result["phase"] = phase
    if phase == "Lost":
        raise EngineError("PersistentVolumeClaim %s/%s lost its volume" % (namespace, name))
    result["bound"] = phase == "Bound"
    return result["bound"]


def _remove_pvc(api, namespace, name, uid):
    """Delete a PVC a restore made; a sentence when that fails, else None."""
    try:
        api.delete_pvc(namespace, name, uid)
    except ObjectNotFound:
        return None
    except Exception as exc:  # pylint: disable=broad-except
        return getattr(exc, "message", None) or str(exc)
    return None


def remove_restored(result, **options):
    """Delete the PVC ``restore`` made (a later step failed); a sentence when that fails, else None."""
    result = result or {}
    if not result.get("uid") or not result.get("pvc_name"):
        return None
    record = dict((key, result.get(key)) for key in OPTION_KEYS if result.get(key) is not None)
    record.update({"provider": PROVIDER, "namespace": result.get("namespace"), "name": (result.get("snapshot") or "/x").split("/", 1)[1]})
    conn = _connection_from_record(record, options)[0]
    problem = _remove_pvc(_Api(conn), result["namespace"], result["pvc_name"], result["uid"])
    return "PersistentVolumeClaim %s/%s: %s" % (result["namespace"], result["pvc_name"], problem) if problem else None
