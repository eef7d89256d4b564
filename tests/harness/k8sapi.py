# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake Kubernetes API server for the ``kubernetes`` snapshot provider's tests.

This is NOT a cluster and runs no Kubernetes code: it is a small stateful HTTP
server, written from the Kubernetes API reference (API conventions, the
core/v1, storage.k8s.io/v1 and authorization.k8s.io/v1 references, and the
external-snapshotter's snapshot.storage.k8s.io/v1 CRDs), that answers the
requests the provider makes, with the JSON shapes the real API server uses,
so that the real ``kubernetes`` Python client can talk to it over HTTP on
127.0.0.1 (a ``ThreadingHTTPServer`` in a thread, on a free port).

What it serves:

- discovery: ``/api``, ``/apis`` (APIGroupList), ``/apis/<group>`` and
  ``/apis/<group>/<version>`` (APIResourceList) for the groups below;
- core/v1 PersistentVolumeClaims, namespaced: list (with ``labelSelector``),
  get, create, delete (with ``preconditions.uid``);
- storage.k8s.io/v1 StorageClasses: get, list;
- snapshot.storage.k8s.io/v1 VolumeSnapshotClasses (cluster-scoped: get,
  list) and VolumeSnapshots (namespaced: list with ``labelSelector``, get,
  create, delete with ``preconditions.uid``);
- authorization.k8s.io/v1 SelfSubjectAccessReviews: create.

Behaviour:

- every object gets ``metadata.uid``, ``resourceVersion``,
  ``creationTimestamp`` (and ``namespace`` when namespaced); names and labels
  are validated (422 Invalid), a second object of a name is refused (409
  AlreadyExists), a missing one answers 404 with a Status body naming it;
- bearer tokens: each token has a user name and RBAC-like rules (apiGroups,
  resources, verbs, optionally namespaces; ``*`` matches all).  No token or an
  unknown one: 401.  A request its rules do not allow: 403 with the API
  server's message (``User "x" cannot create resource ...``).
  SelfSubjectAccessReviews answer from the same rules;
- a VolumeSnapshot plays the snapshot controller's part lazily, on every
  read: after ``created_after`` seconds it has ``status.creationTime``,
  ``boundVolumeSnapshotContentName`` and ``restoreSize`` (the source PVC's
  capacity), after ``ready_after`` seconds ``readyToUse: true`` (never when
  ``ready_after`` is None), or ``status.error`` when ``error`` is set;
  behaviour is set per (namespace, PVC) with :meth:`FakeKubernetes.behave`.
  A snapshot of a missing PVC or with a missing class, or whose class's
  driver differs from the PVC's provisioner, gets ``status.error`` as the
  controller would;
- a PVC created with a VolumeSnapshot ``dataSource`` becomes Bound (after
  ``bind_after`` seconds) when its StorageClass binds immediately and the
  snapshot is ready, and stays Pending for a ``WaitForFirstConsumer`` class
  (no pod will ever consume it here) or a size below the snapshot's
  ``restoreSize``;
- ``snapshot_api = False`` stops serving snapshot.storage.k8s.io entirely
  (as on a cluster without the external-snapshotter CRDs): its paths answer
  404 "the server could not find the requested resource";
- :meth:`FakeKubernetes.fail` makes the next matching requests fail with a
  given status (for failures the fake cannot produce otherwise);
- ``requests`` logs (method, path, user) of every request.

Not implemented: TLS, client certificates, watches, patches, updates,
finalizers (deletes are immediate), field selectors, generateName, dry-run,
resourceVersion checks, VolumeSnapshotContents and PersistentVolumes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
ADMIN_TOKEN = "admin-token"
ADMIN_RULES = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]

# plural -> (group, version, kind, namespaced, verbs)
RESOURCES = {
    "persistentvolumeclaims": ("", "v1", "PersistentVolumeClaim", True, ("get", "list", "create", "delete")),
    "storageclasses": ("storage.k8s.io", "v1", "StorageClass", False, ("get", "list")),
    "volumesnapshotclasses": (SNAPSHOT_GROUP, "v1", "VolumeSnapshotClass", False, ("get", "list")),
    "volumesnapshots": (SNAPSHOT_GROUP, "v1", "VolumeSnapshot", True, ("get", "list", "create", "delete")),
    "selfsubjectaccessreviews": ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", False, ("create",)),
}
GROUPS = {
    "storage.k8s.io": ("v1",),
    SNAPSHOT_GROUP: ("v1",),
    "authorization.k8s.io": ("v1",),
}

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_FACTORS = {None: 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
            "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def rfc3339(moment=None):
    moment = moment or datetime.datetime.now(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def quantity_bytes(text):
    match = _QUANTITY.match(str(text or ""))
    if not match:
        return None
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


class ApiError(Exception):
    """An error answered as a Kubernetes Status object."""

    def __init__(self, code, reason, message, details=None):
        super(ApiError, self).__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details if details is not None else {}

    def status(self):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "details": self.details, "code": self.code}


def _group_resource(plural):
    group = RESOURCES[plural][0]
    return "%s.%s" % (plural, group) if group else plural


def not_found(plural, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (_group_resource(plural), name),
                    {"name": name, "group": RESOURCES[plural][0], "kind": plural})


def parse_selector(text):
    """A label selector -> list of (key, operator, values); ValueError when it does not parse."""
    requirements = []
    text = (text or "").strip()
    if not text:
        return requirements
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    for part in parts:
        part = part.strip()
        match = re.match(r"^([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)$", part)
        if match:
            values = [v.strip() for v in match.group(3).split(",") if v.strip()]
            requirements.append((match.group(1), match.group(2), values))
            continue
        match = re.match(r"^([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$", part)
        if match:
            requirements.append((match.group(1), "!=" if match.group(2) == "!=" else "=", [match.group(3)]))
            continue
        match = re.match(r"^(!?)([A-Za-z0-9./_-]+)$", part)
        if match:
            requirements.append((match.group(2), "!" if match.group(1) else "exists", []))
            continue
        raise ValueError("unable to parse requirement: %r" % part)
    return requirements


def selector_matches(requirements, labels):
    labels = labels or {}
    for key, operator, values in requirements:
        present = key in labels
        if operator == "=" and labels.get(key) != values[0]:
            return False
        if operator == "!=" and present and labels.get(key) == values[0]:
            return False
        if operator == "in" and labels.get(key) not in values:
            return False
        if operator == "notin" and present and labels.get(key) in values:
            return False
        if operator == "exists" and not present:
            return False
        if operator == "!" and present:
            return False
    return True


def _rule_allows(rule, verb, group, resource, namespace):
    def has(values, value):
        return "*" in values or value in values

    if not has(rule.get("verbs") or (), verb) or not has(rule.get("apiGroups") or (), group) or not has(rule.get("resources") or (), resource):
        return False
    namespaces = rule.get("namespaces")
    return namespaces is None or (namespace is not None and has(namespaces, namespace))


class FakeKubernetes(object):
    """The state of the fake cluster and the HTTP server serving it."""

    def __init__(self):
        self.lock = threading.RLock()
        self.tokens = {ADMIN_TOKEN: ("admin", ADMIN_RULES)}
        self.namespaces = set(["default"])
        self.objects = {}  # (plural, namespace or "", name) -> object
        self.created_at = {}  # uid -> time.monotonic() of creation
        self.snapshot_api = True
        self.default_behaviour = {"created_after": 0.0, "ready_after": 0.05, "error": None}
        self.behaviour = {}  # (namespace, pvc name) -> dict
        self.bind_after = 0.0
        self.failures = []
        self.requests = []
        self._version = 1000
        self.httpd = None
        self.thread = None

    # -- life cycle ---------------------------------------------------------

    def start(self):
        fake = self

        class Handler(_Handler):
            server_state = fake

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-kubernetes-api", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def kubeconfig(self, contexts, current=None):
        """A kubeconfig dict: ``contexts`` maps context name -> (token, namespace or None)."""
        users, entries = [], []
        for name in sorted(contexts):
            token, namespace = contexts[name]
            users.append({"name": "user-%s" % name, "user": {"token": token}})
            context = {"cluster": "fake", "user": "user-%s" % name}
            if namespace:
                context["namespace"] = namespace
            entries.append({"name": name, "context": context})
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": users, "contexts": entries, "current-context": current or sorted(contexts)[0],
        }

    # -- test set-up ----------------------------------------------------------

    def add_token(self, token, user, rules):
        with self.lock:
            self.tokens[token] = (user, rules)

    def add_namespace(self, name):
        with self.lock:
            self.namespaces.add(name)

    def _store(self, plural, body, namespace=None):
        with self.lock:
            group, version, kind, namespaced, dummy = RESOURCES[plural]
            obj = json.loads(json.dumps(body))
            obj["apiVersion"] = "%s/%s" % (group, version) if group else version
            obj["kind"] = kind
            meta = obj.setdefault("metadata", {})
            if namespaced:
                meta["namespace"] = namespace
            meta["uid"] = str(uuid.uuid4())
            meta["resourceVersion"] = self._next_version()
            meta["creationTimestamp"] = rfc3339()
            self.objects[(plural, namespace or "", meta["name"])] = obj
            self.created_at[meta["uid"]] = time.monotonic()
            return obj

    def add_storage_class(self, name, provisioner, binding_mode="Immediate", default=False):
        meta = {"name": name}
        if default:
            meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
        return self._store("storageclasses", {"metadata": meta, "provisioner": provisioner, "reclaimPolicy": "Delete",
                                              "volumeBindingMode": binding_mode})

    def add_snapshot_class(self, name, driver, default=False, deletion_policy="Delete"):
        meta = {"name": name}
        if default:
            meta["annotations"] = {"snapshot.storage.kubernetes.io/is-default-class": "true"}
        return self._store("volumesnapshotclasses", {"metadata": meta, "driver": driver, "deletionPolicy": deletion_policy})

    def add_pvc(self, namespace, name, storage_class, size="1Gi", phase="Bound", labels=None, access_modes=("ReadWriteOnce",)):
        self.add_namespace(namespace)
        meta = {"name": name}
        if labels:
            meta["labels"] = dict(labels)
        spec = {"accessModes": list(access_modes), "resources": {"requests": {"storage": size}}, "volumeMode": "Filesystem"}
        if storage_class is not None:
            spec["storageClassName"] = storage_class
        status = {"phase": phase}
        if phase == "Bound":
            spec["volumeName"] = "pvc-%s" % uuid.uuid4()
            status.update({"accessModes": list(access_modes), "capacity": {"storage": size}})
        return self._store("persistentvolumeclaims", {"metadata": meta, "spec": spec, "status": status}, namespace)

    def add_snapshot(self, namespace, name, pvc, snapshot_class, labels=None, annotations=None):
        """A VolumeSnapshot made by someone else (its status follows :meth:`behave` like any other)."""
        self.add_namespace(namespace)
        meta = {"name": name, "labels": dict(labels or {}), "annotations": dict(annotations or {})}
        return self._store("volumesnapshots", {"metadata": meta, "spec": {
            "volumeSnapshotClassName": snapshot_class, "source": {"persistentVolumeClaimName": pvc}}}, namespace)

    def remove(self, plural, name, namespace=None):
        with self.lock:
            return self.objects.pop((plural, namespace or "", name), None)

    def behave(self, namespace, pvc, **behaviour):
        """How snapshots of ``pvc`` behave: created_after, ready_after (None: never), error (a message)."""
        with self.lock:
            self.behaviour[(namespace, pvc)] = dict(self.default_behaviour, **behaviour)

    def fail(self, method, path_pattern, code, reason, message, times=1):
        """The next ``times`` requests whose method and path (a regex, searched) match answer with this error."""
        with self.lock:
            self.failures.append({"method": method, "pattern": re.compile(path_pattern), "error": ApiError(code, reason, message),
                                  "times": times})

    def get(self, plural, name, namespace=None):
        """An object as a GET would answer it (None when missing)."""
        with self.lock:
            obj = self.objects.get((plural, namespace or "", name))
            return json.loads(json.dumps(self._render(plural, obj))) if obj else None

    def list(self, plural, namespace=None):
        with self.lock:
            return [json.loads(json.dumps(self._render(p, obj))) for (p, ns, n), obj in sorted(self.objects.items())
                    if p == plural and (namespace is None or ns == namespace)]

    # -- behaviour ------------------------------------------------------------

    def _next_version(self):
        self._version += 1
        return str(self._version)

    def _render(self, plural, obj):
        if plural == "volumesnapshots":
            self._snapshot_status(obj)
        elif plural == "persistentvolumeclaims":
            self._pvc_status(obj)
        return obj

    def _snapshot_status(self, obj):
        meta = obj["metadata"]
        if (obj.get("status") or {}).get("readyToUse") or (obj.get("status") or {}).get("error"):
            return
        namespace = meta["namespace"]
        source = (obj.get("spec") or {}).get("source") or {}
        pvc_name = source.get("persistentVolumeClaimName")
        behaviour = self.behaviour.get((namespace, pvc_name), self.default_behaviour)
        age = time.monotonic() - self.created_at[meta["uid"]]
        if age < (behaviour.get("created_after") or 0):
            return
        error = behaviour.get("error")
        pvc = self.objects.get(("persistentvolumeclaims", namespace, pvc_name))
        class_name = (obj.get("spec") or {}).get("volumeSnapshotClassName")
        snapshot_class = self.objects.get(("volumesnapshotclasses", "", class_name)) if class_name else None
        if pvc is None:
            error = 'failed to get input parameters to create snapshot %s: "persistentvolumeclaim \\"%s\\" not found"' % (meta["name"], pvc_name)
        elif snapshot_class is None:
            error = 'failed to get input parameters to create snapshot %s: "volumesnapshotclass.snapshot.storage.k8s.io \\"%s\\" not found"' % (
                meta["name"], class_name)
        else:
            storage_class = self.objects.get(("storageclasses", "", (pvc.get("spec") or {}).get("storageClassName") or ""))
            if storage_class is not None and storage_class.get("provisioner") != snapshot_class.get("driver"):
                error = "snapshot controller failed to update %s on API server: driver %s of VolumeSnapshotClass %s does not match %s" % (
                    meta["name"], snapshot_class.get("driver"), class_name, storage_class.get("provisioner"))
        if error:
            obj["status"] = {"readyToUse": False, "error": {"message": error, "time": rfc3339()}}
            meta["resourceVersion"] = self._next_version()
            return
        status = obj.setdefault("status", {})
        if "creationTime" not in status:
            status.update({
                "boundVolumeSnapshotContentName": "snapcontent-%s" % meta["uid"],
                "creationTime": rfc3339(),
                "readyToUse": False,
                "restoreSize": ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
                or (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage"),
            })
            meta["resourceVersion"] = self._next_version()
        ready_after = behaviour.get("ready_after")
        if ready_after is not None and age >= ready_after:
            status["readyToUse"] = True
            meta["resourceVersion"] = self._next_version()

    def _pvc_status(self, obj):
        status = obj.setdefault("status", {})
        spec = obj.get("spec") or {}
        source = spec.get("dataSource")
        if status.get("phase") != "Pending" or not source:
            return
        storage_class = self.objects.get(("storageclasses", "", spec.get("storageClassName") or ""))
        if storage_class is None or storage_class.get("volumeBindingMode") == "WaitForFirstConsumer":
            return
        snapshot = self.objects.get(("volumesnapshots", obj["metadata"]["namespace"], source.get("name")))
        if snapshot is None:
            return
        self._snapshot_status(snapshot)
        snapshot_status = snapshot.get("status") or {}
        if not snapshot_status.get("readyToUse"):
            return
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if (quantity_bytes(requested) or 0) < (quantity_bytes(snapshot_status.get("restoreSize")) or 0):
            return  # the provisioner refuses a volume smaller than the snapshot
        if time.monotonic() - self.created_at[obj["metadata"]["uid"]] < self.bind_after:
            return
        spec["volumeName"] = "pvc-%s" % obj["metadata"]["uid"]
        status.update({"phase": "Bound", "accessModes": list(spec.get("accessModes") or ()), "capacity": {"storage": requested}})
        obj["metadata"]["resourceVersion"] = self._next_version()

    # -- requests -------------------------------------------------------------

    def authenticate(self, header):
        token = header[len("Bearer "):].strip() if header and header.startswith("Bearer ") else None
        entry = self.tokens.get(token)
        if entry is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return entry

    def allowed(self, rules, verb, group, resource, namespace):
        return any(_rule_allows(rule, verb, group, resource, namespace) for rule in rules)

    def authorize(self, user, rules, verb, plural, namespace):
        group = RESOURCES[plural][0]
        if self.allowed(rules, verb, group, plural, namespace):
            return
        where = ' in the namespace "%s"' % namespace if namespace else " at the cluster scope"
        raise ApiError(
            403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s"%s' % (
                _group_resource(plural), user, verb, plural, group, where),
            {"group": group, "kind": plural},
        )

    def handle(self, method, path, query, body, auth_header):
        """(status code, JSON-able answer) of one request."""
        with self.lock:
            try:
                user, rules = self.authenticate(auth_header)
                self.requests.append((method, path, user))
                for failure in self.failures:
                    if failure["times"] > 0 and failure["method"] == method and failure["pattern"].search(path):
                        failure["times"] -= 1
                        raise failure["error"]
                return self._route(method, path, query, body, user, rules)
            except ApiError as exc:
                return exc.code, exc.status()

    def _route(self, method, path, query, body, user, rules):
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if method == "GET" and parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if method == "GET" and parts == ["apis"]:
            return 200, self._group_list()
        if parts and parts[0] == "apis" and len(parts) >= 2 and parts[1] == SNAPSHOT_GROUP and not self.snapshot_api:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and len(parts) == 2 and parts[0] == "apis" and parts[1] in GROUPS:
            return 200, self._group(parts[1])
        if method == "GET" and len(parts) == 3 and parts[0] == "apis" and parts[1] in GROUPS and parts[2] in GROUPS[parts[1]]:
            return 200, self._resource_list(parts[1], parts[2])
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3 and parts[1] in GROUPS and parts[2] in GROUPS[parts[1]]:
            group, rest = parts[1], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in RESOURCES or RESOURCES[rest[0]][0] != group or len(rest) > 2:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) == 2 else None
        namespaced = RESOURCES[plural][3]
        if namespaced != (namespace is not None):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete"}.get(method)
        if verb is None or verb not in RESOURCES[plural][4] or (verb == "create" and name):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if plural == "selfsubjectaccessreviews":
            return 201, self._access_review(body, rules)
        self.authorize(user, rules, verb, plural, namespace)
        if verb == "list":
            return 200, self._list(plural, namespace, query)
        if verb == "get":
            obj = self.objects.get((plural, namespace or "", name))
            if obj is None:
                raise not_found(plural, name)
            return 200, self._render(plural, obj)
        if verb == "create":
            return 201, self._create(plural, namespace, body)
        return 200, self._delete(plural, namespace, name, body)

    def _group_list(self):
        groups = []
        for group in sorted(GROUPS):
            if group == SNAPSHOT_GROUP and not self.snapshot_api:
                continue
            groups.append(self._group(group))
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _group(self, group):
        versions = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in GROUPS[group]]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]}

    def _resource_list(self, group, version):
        resources = []
        for plural in sorted(RESOURCES):
            resource_group, resource_version, kind, namespaced, verbs = RESOURCES[plural]
            if resource_group == group and resource_version == version:
                resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind, "verbs": list(verbs)})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "%s/%s" % (group, version), "resources": resources}

    def _access_review(self, body, rules):
        attributes = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        allowed = self.allowed(rules, attributes.get("verb"), attributes.get("group") or "", attributes.get("resource"), attributes.get("namespace"))
        answer = json.loads(json.dumps(body or {}))
        answer.update({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {"creationTimestamp": None}})
        answer["status"] = {"allowed": allowed}
        if allowed:
            answer["status"]["reason"] = "allowed by the fake's rules"
        return answer

    def _list(self, plural, namespace, query):
        try:
            requirements = parse_selector((query.get("labelSelector") or [""])[0])
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc))
        group, version, kind, dummy, dummy_verbs = RESOURCES[plural]
        items = []
        for (p, ns, dummy_name), obj in sorted(self.objects.items()):
            if p == plural and (namespace is None or ns == namespace) and selector_matches(requirements, obj["metadata"].get("labels")):
                items.append(self._render(plural, obj))
        return {"kind": "%sList" % kind, "apiVersion": "%s/%s" % (group, version) if group else version,
                "metadata": {"resourceVersion": str(self._version)}, "items": items}

    def _validate(self, plural, body):
        group, version, kind, dummy, dummy_verbs = RESOURCES[plural]
        meta = (body or {}).get("metadata") or {}
        name = meta.get("name") or ""
        causes = []
        if body.get("kind") != kind or body.get("apiVersion") != ("%s/%s" % (group, version) if group else version):
            raise ApiError(400, "BadRequest", "the API version in the data (%s) does not match the expected API version (%s/%s)" % (
                body.get("apiVersion"), group, version))
        if not name:
            causes.append("metadata.name: Required value: name or generateName is required")
        elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            causes.append("metadata.name: Invalid value: %r: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric character" % name)
        for key, value in (meta.get("labels") or {}).items():
            prefix, dummy_slash, label_name = key.rpartition("/")
            if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or len(label_name) > 63 or not _LABEL_NAME.match(label_name):
                causes.append("metadata.labels: Invalid value: %r: name part must be valid" % key)
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                causes.append("metadata.labels: Invalid value: %r: a valid label must be an empty string or consist of alphanumeric "
                              "characters, '-', '_' or '.', and must be no more than 63 characters" % (value,))
        spec = body.get("spec") or {}
        if plural == "volumesnapshots":
            if not (spec.get("source") or {}).get("persistentVolumeClaimName") and not (spec.get("source") or {}).get("volumeSnapshotContentName"):
                causes.append("spec.source: Invalid value: exactly one of persistentVolumeClaimName and volumeSnapshotContentName")
        if plural == "persistentvolumeclaims":
            if not spec.get("accessModes"):
                causes.append("spec.accessModes: Required value: at least 1 access mode is required")
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            if quantity_bytes(storage) is None:
                causes.append("spec.resources[storage]: Required value")
        if causes:
            raise ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, ", ".join(causes)),
                           {"name": name, "group": group, "kind": kind, "causes": [{"message": c} for c in causes]})
        return name

    def _create(self, plural, namespace, body):
        if namespace not in self.namespaces:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % namespace, {"name": namespace, "kind": "namespaces"})
        name = self._validate(plural, body or {})
        if (plural, namespace or "", name) in self.objects:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (_group_resource(plural), name),
                           {"name": name, "group": RESOURCES[plural][0], "kind": plural})
        body = json.loads(json.dumps(body))
        body.pop("status", None)
        if plural == "persistentvolumeclaims":
            body["status"] = {"phase": "Pending"}
        return self._store(plural, body, namespace)

    def _delete(self, plural, namespace, name, body):
        key = (plural, namespace or "", name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(plural, name)
        wanted = ((body or {}).get("preconditions") or {}).get("uid")
        if wanted and wanted != obj["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "Operation cannot be fulfilled on %s \"%s\": Precondition failed: UID in precondition: %s, "
                           "UID in object meta: %s" % (_group_resource(plural), name, wanted, obj["metadata"]["uid"]),
                           {"name": name, "group": RESOURCES[plural][0], "kind": plural})
        del self.objects[key]
        gone = self._render(plural, obj)
        gone["metadata"]["deletionTimestamp"] = rfc3339()
        return gone


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state = None

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            code, answer = 400, ApiError(400, "BadRequest", "the request body is not JSON").status()
        else:
            split = urlsplit(self.path)
            code, answer = self.server_state.handle(self.command, split.path, parse_qs(split.query), body, self.headers.get("Authorization"))
        data = json.dumps(answer).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass
