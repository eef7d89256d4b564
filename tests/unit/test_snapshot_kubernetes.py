# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubernetes snapshot provider against a FAKE Kubernetes API server (harness/k8sapi.py).

No Kubernetes cluster can run where these tests run (no Docker, no kind, no
kubelet), so the provider talks to a small stateful fake of the API server,
written from the Kubernetes API reference, over real HTTP on 127.0.0.1.  The
provider uses the real ``kubernetes`` Python client, configured from a
kubeconfig file the fixture writes, from a kubeconfig dict, or from
host/api_key: nothing inside the client is patched.  The fake speaks the
API's JSON (objects, lists, Status errors), checks bearer tokens (401) and
per-token RBAC-like rules (403, and the SelfSubjectAccessReviews), and plays
the snapshot controller's and the provisioner's part (creationTime,
readyToUse, status.error, PVCs bound from a dataSource) on a timer set per
test.

What these tests cannot show:

- that a real API server, snapshot controller and CSI driver behave as the
  fake does: its answers follow the reference, but the controller's timing,
  its transient errors and VolumeSnapshotContents are not modelled, nor are
  finalizers (a deleted VolumeSnapshot disappears at once here);
- TLS, client certificates, proxies and exec/OIDC kubeconfig users (the fake
  serves plain HTTP with bearer tokens; the in-cluster test only shows that
  the service account's configuration is the one used);
- real RBAC evaluation (aggregated ClusterRoles, bindings): the fake's rules
  are a flat list per token;
- that a restored volume holds the data: the molecule scenario
  roles/postgresql/molecule/kind does that on a kind cluster where Docker is
  available.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from ansible_collections.dataprotection.databases.plugins.module_utils import snapshots
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    AccessDenied,
    ConfigError,
    EndpointUnreachable,
    EngineError,
    InvalidCredentials,
    MissingDependency,
    ObjectExists,
    ObjectNotFound,
    TLSVerificationFailed,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import kubernetes as k8s_provider
from harness.k8sapi import ADMIN_TOKEN, FakeKubernetes
from harness.s3server import closed_port

DRIVER = "hostpath.csi.k8s.io"
EBS = "ebs.csi.aws.com"
BACKUP_ID = "pg-volume-snapshot-20261125100000"
READ_ALL = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}
REVIEWS = {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"], "verbs": ["create"]}


@pytest.fixture(scope="module")
def k8s():
    """The fake API server with the cluster-scoped objects every test shares."""
    server = FakeKubernetes().start()
    server.add_storage_class("csi-hostpath-sc", DRIVER, default=True)
    server.add_storage_class("wffc-sc", DRIVER, binding_mode="WaitForFirstConsumer")
    server.add_storage_class("ebs-sc", EBS)
    server.add_snapshot_class("csi-hostpath-snapclass", DRIVER, default=True)
    server.add_snapshot_class("ebs-snapclass", EBS)
    server.add_token("reader-token", "reader", [READ_ALL])
    server.add_token("nopvc-token", "nopvc", [
        {"apiGroups": [k8s_provider.SNAPSHOT_GROUP, "storage.k8s.io"], "resources": ["*"], "verbs": ["*"]}])
    server.add_token("nodelete-token", "nodelete", [READ_ALL, {
        "apiGroups": [k8s_provider.SNAPSHOT_GROUP], "resources": ["volumesnapshots"], "verbs": ["create"]}])
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    """No connection settings from the environment of the test run; fast polling."""
    for variable in list(os.environ):
        if variable.startswith("K8S_AUTH_") or variable in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(k8s_provider, "POLL_INTERVAL", 0.01)
    monkeypatch.setattr(k8s_provider, "MAX_POLL_INTERVAL", 0.05)


@pytest.fixture
def ns(k8s):
    """A fresh namespace with two bound PVCs of the hostpath driver."""
    name = "t-%s" % uuid.uuid4().hex[:10]
    k8s.add_pvc(name, "data-pg-0", "csi-hostpath-sc", "5Gi", labels={"app": "pg", "role": "primary"})
    k8s.add_pvc(name, "data-pg-1", "csi-hostpath-sc", "5Gi", labels={"app": "pg", "role": "replica"})
    return name


@pytest.fixture
def spec(k8s, ns):
    return {"provider": "kubernetes", "stream": False, "keep": True, "namespace": ns, "host": k8s.url, "api_key": ADMIN_TOKEN}


@pytest.fixture
def options():
    return {"api_key": ADMIN_TOKEN}


@pytest.fixture
def kubeconfig(k8s, tmp_path, ns):
    """A kubeconfig file with contexts admin (current), reader and nodelete."""
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(k8s.kubeconfig({"admin": (ADMIN_TOKEN, ns), "reader": ("reader-token", ns),
                                               "nodelete": ("nodelete-token", None)}, current="admin")))
    return str(path)


def snapshots_in(k8s, namespace):
    return k8s.list("volumesnapshots", namespace)


def make_records(spec, pvc_names=("data-pg-0",), backup_id=BACKUP_ID, **kwargs):
    return k8s_provider.create(k8s_provider.plan(dict(spec, pvc_names=list(pvc_names))), backup_id, **kwargs)


# ---------------------------------------------------------------------------
# plan


def test_plan_by_names_only_reads(k8s, spec, ns):
    before = len(k8s.requests)
    plan = k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], labels={"team": "db", "tier": 1}), data_dir="/var/lib/postgresql")
    assert plan["provider"] == "kubernetes" and plan["namespace"] == ns and plan["pvc_selector"] is None
    volume = dict(plan["volumes"][0])
    assert volume.pop("uid") == k8s.get("persistentvolumeclaims", "data-pg-0", ns)["metadata"]["uid"]
    assert volume == {"pvc": "data-pg-0", "storage_class": "csi-hostpath-sc", "size": "5Gi", "access_modes": ["ReadWriteOnce"],
                      "volume_mode": "Filesystem", "driver": DRIVER, "volume_snapshot_class": "csi-hostpath-snapclass"}
    assert len(plan["volumes"]) == 1
    assert plan["labels"] == {"team": "db", "tier": "1"}
    assert plan["wait_timeout"] == 600
    assert plan["warnings"] == []
    assert plan["server"] == k8s.url and plan["connection"] == {"host": k8s.url}
    assert plan["credentials"] == "snapshot.api_key" and len(plan["credentials_ref"]) == 32
    assert ADMIN_TOKEN not in json.dumps(plan)
    made = k8s.requests[before:]
    writes = [(method, path) for method, path, user in made if method != "GET"]
    assert writes and all(path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" for method, path in writes)
    assert snapshots_in(k8s, ns) == []


@pytest.mark.parametrize("selector, expected", [
    ("app=pg", ["data-pg-0", "data-pg-1"]),
    ("app=pg,role=primary", ["data-pg-0"]),
    ("app in (pg,mysql),role!=primary", ["data-pg-1"]),
])
def test_plan_by_selector(spec, selector, expected):
    plan = k8s_provider.plan(dict(spec, pvc_selector=selector))
    assert [v["pvc"] for v in plan["volumes"]] == expected
    assert plan["pvc_selector"] == selector


def test_plan_refuses_a_missing_pvc(spec, ns):
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0", "data-pg-9"]))
    assert "PersistentVolumeClaim data-pg-9 does not exist in namespace %s" % ns in caught.value.message
    assert "its PVCs: data-pg-0, data-pg-1" in caught.value.message
    assert caught.value.details["missing"] == ["data-pg-9"]
    assert "snapshot.pvc_names" in caught.value.hint


def test_plan_refuses_a_missing_pvc_in_an_empty_namespace(spec):
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, namespace="nowhere", pvc_names=["data"]))
    assert "namespace nowhere" in caught.value.message and "none, or the namespace does not exist" in caught.value.message


def test_plan_refuses_a_selector_that_matches_nothing(spec, ns):
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_selector="app=mysql"))
    assert caught.value.message == "no PersistentVolumeClaim in namespace %s matches the selector app=mysql (its PVCs: data-pg-0, data-pg-1)" % ns
    assert "--show-labels" in caught.value.hint


def test_plan_refuses_a_selector_that_does_not_parse(spec):
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_selector="app=(pg"))
    assert "the API server refused it" in caught.value.message and "unable to parse" in caught.value.message


def test_plan_refuses_an_unbound_pvc(k8s, spec, ns):
    k8s.add_pvc(ns, "pending", "wffc-sc", phase="Pending")
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0", "pending"]))
    assert "PersistentVolumeClaim %s/pending is Pending, not Bound" % ns in caught.value.message
    assert "WaitForFirstConsumer" in caught.value.hint


def test_plan_refuses_a_missing_snapshot_class(spec):
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], volume_snapshot_class="fast-snapshots"))
    assert caught.value.message.startswith("VolumeSnapshotClass fast-snapshots does not exist (classes: ")
    assert "csi-hostpath-snapclass (driver %s)" % DRIVER in caught.value.message


def test_plan_refuses_a_class_of_another_driver(spec, ns):
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], volume_snapshot_class="ebs-snapclass"))
    assert caught.value.message == (
        "VolumeSnapshotClass ebs-snapclass is for driver %s, but PVC %s/data-pg-0 is provisioned by %s (StorageClass csi-hostpath-sc): "
        "a CSI snapshot is taken by the volume's own driver" % (EBS, ns, DRIVER))
    assert "csi-hostpath-snapclass" in caught.value.hint


def test_plan_finds_the_default_class_per_driver(k8s, spec, ns):
    k8s.add_pvc(ns, "ebs-data", "ebs-sc")
    plan = k8s_provider.plan(dict(spec, pvc_names=["data-pg-1"]))
    assert plan["volumes"][0]["volume_snapshot_class"] == "csi-hostpath-snapclass"
    with pytest.raises(ConfigError) as caught:  # ebs-snapclass exists, but is not the driver's default
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-1", "ebs-data"]))
    assert caught.value.message.startswith("no default VolumeSnapshotClass for driver %s (of PVC %s/ebs-data" % (EBS, ns))
    assert "ebs-snapclass (driver %s)" % EBS in caught.value.message
    assert "snapshot.storage.kubernetes.io/is-default-class" in caught.value.hint
    # Given explicitly, the class of each PVC's driver is the one used.
    assert k8s_provider.plan(dict(spec, pvc_names=["ebs-data"], volume_snapshot_class="ebs-snapclass"))["volumes"][0]["driver"] == EBS


def test_plan_refuses_two_default_classes_and_warns_about_retain(k8s, spec, ns):
    driver = "dup-%s.csi.example.com" % ns
    k8s.add_storage_class("sc-%s" % ns, driver)
    k8s.add_pvc(ns, "dup", "sc-%s" % ns)
    k8s.add_snapshot_class("one-%s" % ns, driver, default=True, deletion_policy="Retain")
    plan = k8s_provider.plan(dict(spec, pvc_names=["dup"]))
    assert plan["volumes"][0]["volume_snapshot_class"] == "one-%s" % ns
    assert len(plan["warnings"]) == 1 and "deletionPolicy Retain" in plan["warnings"][0]
    k8s.add_snapshot_class("two-%s" % ns, driver, default=True)
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["dup"]))
    assert "2 VolumeSnapshotClasses are the default for driver %s: one-%s, two-%s" % (driver, ns, ns) == caught.value.message


def test_plan_with_an_unknown_driver(k8s, spec, ns):
    k8s.add_pvc(ns, "orphan", "deleted-sc")
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["orphan"]))
    assert "its StorageClass deleted-sc does not exist any more" in caught.value.message
    plan = k8s_provider.plan(dict(spec, pvc_names=["orphan"], volume_snapshot_class="csi-hostpath-snapclass"))
    assert "was not checked" in plan["warnings"][0]


@pytest.mark.parametrize("change, text", [
    ({"namespace": None}, "snapshot.namespace is required"),
    ({"namespace": "Prod_DB"}, "is not a namespace name"),
    ({}, "no PersistentVolumeClaim"),
    ({"pvc_names": ["a"], "pvc_selector": "app=pg"}, "set exactly one of"),
    ({"pvc_name": "a"}, "use snapshot.pvc_names"),
    ({"pvc_names": ["Data_0"]}, "is not a PersistentVolumeClaim name"),
    ({"pvc_names": ["a", "a"]}, "lists a twice"),
    ({"pvc_selector": ["app=pg"]}, "must be a label selector string"),
    ({"pvc_names": ["a"], "volume_snapshot_class": "Fast Snapshots"}, "not a VolumeSnapshotClass name"),
    ({"pvc_names": ["a"], "wait_timeout": 0}, "wait_timeout must be more than 0"),
    ({"pvc_names": ["a"], "labels": {"dataprotection.databases/backup-id": "x"}}, "set by the collection itself"),
    ({"pvc_names": ["a"], "labels": {"team": "a b"}}, "not a valid label value"),
    ({"pvc_names": ["a"], "labels": {"-team": "a"}}, "label name '-team' is not valid"),
    ({"pvc_names": ["a"], "labels": ["team"]}, "must be a dict"),
    ({"pvc_names": ["a"], "host": "k8s.example.com:6443"}, "must be an https://"),
    ({"pvc_names": ["a"], "kubeconfig": "/nonexistent/kubeconfig"}, "is not a file"),
    ({"pvc_names": ["a"], "kubeconfig": {"apiVersion": "v1"}}, "without clusters or contexts"),
    ({"pvc_names": ["a"], "ca_cert": "/nonexistent/ca.pem"}, "is not a file"),
    ({"pvc_names": ["a"], "client_cert": __file__}, "must be given together"),
    ({"pvc_names": ["a"], "validate_certs": "maybe"}, "must be a boolean"),
    ({"pvc_names": ["a"], "proxy": "proxy:3128"}, "must be a URL"),
])
def test_spec_validation(change, text):
    spec = {"provider": "kubernetes", "namespace": "db", "host": "https://k8s.example.com", "api_key": "x"}
    spec.update(change)
    with pytest.raises(ConfigError) as caught:
        k8s_provider.normalize_spec(spec)
    assert text.lower() in str(caught.value).lower()


def test_unknown_spec_keys_are_left_to_the_caller(spec):
    settings = k8s_provider.normalize_spec(dict(spec, pvc_names=["a"], repo={"type": "local"}, whatever=1))
    assert settings["pvc_names"] == ["a"] and "whatever" not in settings and "stream" not in settings


# ---------------------------------------------------------------------------
# permissions and credentials


def test_missing_permission_found_by_access_review(k8s, spec, ns):
    with pytest.raises(AccessDenied) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], api_key="reader-token"))
    error = caught.value
    assert "may not create volumesnapshots (API group snapshot.storage.k8s.io) in namespace %s" % ns in error.message
    assert error.hint == ('Grant it in a Role in namespace %s bound (RoleBinding) to the user or service account: '
                          'rules: [{apiGroups: ["snapshot.storage.k8s.io"], resources: ["volumesnapshots"], verbs: ["create"]}]' % ns)
    assert (error.details["verbs"], error.details["resource"], error.details["api_group"], error.details["namespace"]) == (
        ["create"], "volumesnapshots", "snapshot.storage.k8s.io", ns)
    assert snapshots_in(k8s, ns) == []


def test_missing_permission_found_by_the_request(spec, ns):
    with pytest.raises(AccessDenied) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], api_key="nopvc-token"))
    error = caught.value
    assert error.message.startswith("cannot get persistentvolumeclaims data-pg-0 (API group core) in namespace %s: forbidden: " % ns)
    assert 'User "nopvc" cannot get resource "persistentvolumeclaims"' in error.message
    assert error.hint == ('Grant it in a Role in namespace %s bound (RoleBinding) to user "nopvc": '
                          'rules: [{apiGroups: [""], resources: ["persistentvolumeclaims"], verbs: ["get"]}]' % ns)
    assert error.details["user"] == "nopvc" and error.details["verb"] == "get"


def test_permission_lost_between_plan_and_create(k8s, spec, ns):
    token = "revoked-%s" % ns
    k8s.add_token(token, "revoked", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])
    plan = k8s_provider.plan(dict(spec, pvc_names=["data-pg-0", "data-pg-1"], api_key=token))
    k8s.add_token(token, "revoked", [READ_ALL])
    with pytest.raises(AccessDenied) as caught:
        k8s_provider.create(plan, BACKUP_ID)
    assert 'cannot create resource "volumesnapshots"' in caught.value.message
    assert 'verbs: ["create"]' in caught.value.hint
    assert snapshots_in(k8s, ns) == []


def test_without_delete_permission(k8s, spec, ns, options):
    plan = k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], api_key="nodelete-token"))
    assert len(plan["warnings"]) == 1 and "may not delete VolumeSnapshots in namespace %s" % ns in plan["warnings"][0]
    [record] = k8s_provider.create(plan, BACKUP_ID)
    with pytest.raises(AccessDenied) as caught:
        k8s_provider.delete(record, api_key="nodelete-token")
    assert caught.value.details["verb"] == "delete" and 'verbs: ["delete"]' in caught.value.hint
    assert k8s_provider.delete(record, **options) is True


def test_bad_token(spec):
    with pytest.raises(InvalidCredentials) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], api_key="wrong-token"))
    assert "rejected the credentials" in caught.value.message and "401 Unauthorized" in caught.value.message
    assert "api_key" in caught.value.hint
    assert "wrong-token" not in str(caught.value)


def test_snapshot_api_not_installed(k8s, spec, options):
    [record] = make_records(spec)
    k8s.snapshot_api = False
    try:
        with pytest.raises(ConfigError) as caught:
            k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"]))
        assert "does not serve snapshot.storage.k8s.io/v1" in caught.value.message
        assert "external-snapshotter CRDs" in caught.value.message and "snapshot-controller" in caught.value.hint
        with pytest.raises(ConfigError) as caught:  # a plain 404 on the group: not "already gone"
            k8s_provider.delete(record, **options)
        assert "external-snapshotter CRDs" in caught.value.message
    finally:
        k8s.snapshot_api = True
    assert k8s_provider.exists(record, **options)


def test_unreachable_api_server(spec):
    host = "http://127.0.0.1:%d" % closed_port()
    with pytest.raises(EndpointUnreachable) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"], host=host))
    assert "cannot connect to %s" % host in caught.value.message
    assert caught.value.details["server"] == host


# ---------------------------------------------------------------------------
# connection configuration


def test_kubeconfig_file_and_context(k8s, spec, ns, kubeconfig):
    base = dict(spec, pvc_names=["data-pg-0"], kubeconfig=kubeconfig)
    del base["host"], base["api_key"]
    plan = k8s_provider.plan(base)
    assert plan["connection"] == {"kubeconfig": kubeconfig}
    assert plan["credentials"] == "none" and "credentials_ref" not in plan
    assert plan["auth"] == "kubeconfig %s (context admin)" % kubeconfig
    [record] = k8s_provider.create(plan, BACKUP_ID)
    assert (record["kubeconfig"], record["server"]) == (kubeconfig, k8s.url)
    assert "host" not in record and "context" not in record and ADMIN_TOKEN not in json.dumps(record)
    assert k8s_provider.exists(record) is True  # the record alone is enough
    with pytest.raises(AccessDenied) as caught:
        k8s_provider.plan(dict(base, context="reader"))
    assert "kubeconfig %s (context reader)" % kubeconfig in caught.value.message
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(dict(base, context="nope"))
    assert "cannot load the Kubernetes configuration from kubeconfig %s" % kubeconfig in caught.value.message
    assert "kubectl config get-contexts" in caught.value.hint


def test_kubeconfig_as_a_dict(k8s, spec, ns, options):
    base = dict(spec, pvc_names=["data-pg-0"], kubeconfig=k8s.kubeconfig({"admin": (ADMIN_TOKEN, ns)}))
    del base["host"], base["api_key"]
    plan = k8s_provider.plan(base)
    assert plan["credentials"] == "snapshot.kubeconfig" and plan["connection"] == {}
    assert ADMIN_TOKEN not in json.dumps(plan)
    [record] = k8s_provider.create(plan, BACKUP_ID)
    assert ADMIN_TOKEN not in json.dumps(record) and "kubeconfig" not in record
    assert k8s_provider.delete(record, kubeconfig=base["kubeconfig"]) is True


def test_default_kubeconfig_from_the_environment_and_home(monkeypatch, tmp_path, spec, kubeconfig):
    base = dict(spec, pvc_names=["data-pg-0"])
    del base["host"], base["api_key"]
    with pytest.raises(ConfigError) as caught:
        k8s_provider.plan(base)
    assert caught.value.message == "no Kubernetes configuration: kubeconfig %s does not exist" % (tmp_path / "home" / ".kube" / "config")
    assert "snapshot.host with snapshot.api_key" in caught.value.hint
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    assert k8s_provider.plan(base)["auth"] == "kubeconfig %s (context admin)" % kubeconfig
    monkeypatch.delenv("KUBECONFIG")
    (tmp_path / "home" / ".kube").mkdir(parents=True)
    (tmp_path / "home" / ".kube" / "config").write_text(open(kubeconfig).read())
    assert k8s_provider.plan(base)["auth"] == "kubeconfig %s (context admin)" % (tmp_path / "home" / ".kube" / "config")


def test_settings_from_k8s_auth_variables(monkeypatch, k8s, spec):
    base = dict(spec, pvc_names=["data-pg-0"])
    del base["host"], base["api_key"]
    monkeypatch.setenv("K8S_AUTH_HOST", k8s.url)
    monkeypatch.setenv("K8S_AUTH_API_KEY", ADMIN_TOKEN)
    plan = k8s_provider.plan(base)
    assert plan["connection"] == {"host": k8s.url} and plan["credentials"] == "snapshot.api_key"


def test_in_cluster_configuration(monkeypatch, tmp_path, k8s, spec, kubeconfig):
    import kubernetes.config.incluster_config as incluster

    base = dict(spec, pvc_names=["data-pg-0"])
    del base["host"], base["api_key"]
    port = k8s.url.rsplit(":", 1)[1]
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    # No service account token here: as kubernetes.core, the default kubeconfig is used instead.
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(tmp_path / "absent-token"))
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    assert k8s_provider.plan(base)["auth"].startswith("kubeconfig %s" % kubeconfig)
    # With a token, the service account is used: https to the service host (the fake only speaks http, so TLS fails there).
    (tmp_path / "token").write_text("in-cluster-token")
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    with pytest.raises((TLSVerificationFailed, EndpointUnreachable)) as caught:  # the CA file is not a certificate either
        k8s_provider.plan(base)
    assert caught.value.details["server"] == "https://127.0.0.1:%s" % port


def test_one_client_per_configuration(spec):
    k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"]))
    first = k8s_provider._make_connection(k8s_provider.normalize_spec(dict(spec, pvc_names=["data-pg-0"]))).client()
    again = k8s_provider._make_connection(k8s_provider.normalize_spec(dict(spec, pvc_names=["data-pg-1"]))).client()
    other = k8s_provider._make_connection(k8s_provider.normalize_spec(dict(spec, pvc_names=["data-pg-0"], api_key="reader-token"))).client()
    assert first is again and first is not other


def test_plan_from_another_process_needs_the_credentials_again(spec):
    plan = json.loads(json.dumps(k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"]))))
    plan["credentials_ref"] = "0" * 32
    with pytest.raises(ConfigError) as caught:
        k8s_provider.create(plan, BACKUP_ID)
    assert "not known in this process" in caught.value.message


def test_missing_library(monkeypatch, spec):
    monkeypatch.setattr(k8s_provider, "HAS_KUBERNETES", False)
    with pytest.raises(MissingDependency) as caught:
        k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"]))
    assert "Python library kubernetes" in caught.value.message and "pip install" in caught.value.hint


def test_imports_without_the_library():
    code = (
        "import sys\n"
        "sys.modules['kubernetes'] = None\n"
        "from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import kubernetes\n"
        "assert not kubernetes.HAS_KUBERNETES and 'kubernetes' in kubernetes.KUBERNETES_IMPORT_ERROR\n"
    )
    env = dict(os.environ, PYTHONPATH=os.environ["DP_COLLECTIONS_ROOT"])
    subprocess.check_call([sys.executable, "-c", code], env=env)


def test_connection_settings_keep_no_secret(tmp_path):
    conn = k8s_provider._Connection(kubeconfig={"clusters": [1], "contexts": [1]}, context="prod", api_key="s3cret",
                                    proxy="http://user:pw@proxy.example.com:3128", validate_certs=False)
    assert conn.settings() == {"context": "prod", "proxy": "http://proxy.example.com:3128", "validate_certs": False}
    assert conn.secrets() == {"api_key": "s3cret", "kubeconfig": {"clusters": [1], "contexts": [1]},
                              "proxy": "http://user:pw@proxy.example.com:3128"}


# ---------------------------------------------------------------------------
# create


def test_create_names_labels_and_records(k8s, spec, ns):
    plan = k8s_provider.plan(dict(spec, pvc_selector="app=pg", labels={"team": "db"}))
    records = k8s_provider.create(plan, BACKUP_ID, labels={"cluster": "main", "engine": "postgresql"})
    assert [r["name"] for r in records] == ["%s-data-pg-0" % BACKUP_ID, "%s-data-pg-1" % BACKUP_ID]
    for record in records:
        item = k8s.get("volumesnapshots", record["name"], ns)
        created = record.pop("created")
        assert created.endswith("Z") and created[:10] == item["status"]["creationTime"][:10]
        assert record == {
            "provider": "kubernetes", "id": "%s/%s" % (ns, record["name"]), "namespace": ns, "name": record["name"],
            "uid": item["metadata"]["uid"], "source": record["name"][len(BACKUP_ID) + 1:], "size": "5Gi",
            "storage_class": "csi-hostpath-sc", "volume_snapshot_class": "csi-hostpath-snapclass", "access_modes": ["ReadWriteOnce"],
            "volume_mode": "Filesystem", "backup_id": BACKUP_ID, "server": k8s.url, "host": k8s.url,
        }
        assert item["metadata"]["labels"] == {"dataprotection.databases/backup-id": BACKUP_ID, "team": "db", "cluster": "main",
                                              "engine": "postgresql"}
        assert item["metadata"]["annotations"] == {"dataprotection.databases/backup-id": BACKUP_ID}
        assert item["spec"] == {"volumeSnapshotClassName": "csi-hostpath-snapclass", "source": {"persistentVolumeClaimName": record["source"]}}
        assert item["status"]["readyToUse"] is True
    assert ADMIN_TOKEN not in json.dumps(records)


def test_labels_cannot_replace_the_provider_label(k8s, spec, ns):
    plan = k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"]))
    with pytest.raises(ConfigError):
        k8s_provider.create(plan, BACKUP_ID, labels={"dataprotection.databases/backup-id": "other"})
    assert snapshots_in(k8s, ns) == []


def test_taken_is_called_when_the_point_in_time_is_fixed(k8s, spec, ns):
    for pvc in ("data-pg-0", "data-pg-1"):
        k8s.behave(ns, pvc, created_after=0.2, ready_after=1.0)
    plan = k8s_provider.plan(dict(spec, pvc_selector="app=pg"))
    events = []

    def taken():
        states = [item.get("status") or {} for item in snapshots_in(k8s, ns)]
        events.append(("taken", [(bool(s.get("creationTime")), s.get("readyToUse")) for s in states]))

    started = time.monotonic()
    records = k8s_provider.create(plan, BACKUP_ID, taken=taken)
    events.append(("returned", [(bool(s.get("creationTime")), s.get("readyToUse")) for s in
                                (item.get("status") or {} for item in snapshots_in(k8s, ns))]))
    assert events == [("taken", [(True, False), (True, False)]), ("returned", [(True, True), (True, True)])]
    assert time.monotonic() - started >= 1.0  # it waited for readyToUse after taken
    assert len(records) == 2


def test_no_creation_time_before_the_deadline(k8s, spec, ns):
    k8s.behave(ns, "data-pg-0", created_after=60)
    plan = k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"]))
    called = []
    with pytest.raises(EngineError) as caught:
        k8s_provider.create(plan, BACKUP_ID, timeout=0.3, taken=lambda: called.append(1))
    assert "(taking the snapshot) did not finish within 0.3s" in caught.value.message
    assert called == [] and snapshots_in(k8s, ns) == []


def test_timeout_deletes_the_snapshots(k8s, spec, ns):
    k8s.behave(ns, "data-pg-1", ready_after=None)
    plan = k8s_provider.plan(dict(spec, pvc_selector="app=pg"))
    called = []
    with pytest.raises(EngineError) as caught:
        k8s_provider.create(plan, BACKUP_ID, timeout=0.3, taken=lambda: called.append(1))
    assert caught.value.message == "VolumeSnapshot %s-data-pg-1 of PVC data-pg-1 in namespace %s (ready to use) did not finish within 0.3s" % (
        BACKUP_ID, ns)
    assert "wait_timeout" in caught.value.hint
    assert called == [1]
    assert snapshots_in(k8s, ns) == []


def test_status_error_deletes_the_snapshots(k8s, spec, ns):
    k8s.behave(ns, "data-pg-1", error="rpc error: code = Internal desc = the driver exploded")
    plan = k8s_provider.plan(dict(spec, pvc_selector="app=pg"))
    with pytest.raises(EngineError) as caught:
        k8s_provider.create(plan, BACKUP_ID)
    assert caught.value.message == "VolumeSnapshot %s/%s-data-pg-1 of PVC data-pg-1 failed: rpc error: code = Internal desc = the driver exploded" % (
        ns, BACKUP_ID)
    assert "kubectl describe volumesnapshot" in caught.value.hint
    assert snapshots_in(k8s, ns) == []


def test_a_pvc_gone_after_the_plan(k8s, spec, ns):
    plan = k8s_provider.plan(dict(spec, pvc_selector="app=pg"))
    k8s.remove("persistentvolumeclaims", "data-pg-1", ns)
    with pytest.raises(EngineError) as caught:
        k8s_provider.create(plan, BACKUP_ID)
    assert 'persistentvolumeclaim \\"data-pg-1\\" not found' in caught.value.message
    assert snapshots_in(k8s, ns) == []


def test_a_failure_midway_deletes_only_what_this_run_made(k8s, spec, ns):
    plan = k8s_provider.plan(dict(spec, pvc_selector="app=pg"))
    other = k8s.add_snapshot(ns, "%s-data-pg-1" % BACKUP_ID, "data-pg-1", "csi-hostpath-snapclass")
    with pytest.raises(ObjectExists) as caught:
        k8s_provider.create(plan, BACKUP_ID)
    assert "already exists" in caught.value.message and "it was not touched" in caught.value.hint
    assert [(s["metadata"]["name"], s["metadata"]["uid"]) for s in snapshots_in(k8s, ns)] == [
        ("%s-data-pg-1" % BACKUP_ID, other["metadata"]["uid"])]


def test_a_snapshot_that_cannot_be_removed_is_named(k8s, spec, ns):
    k8s.behave(ns, "data-pg-0", error="boom")
    plan = k8s_provider.plan(dict(spec, pvc_names=["data-pg-0"]))
    k8s.fail("DELETE", "/namespaces/%s/volumesnapshots/" % ns, 500, "InternalError", "etcdserver: request timed out")
    with pytest.raises(EngineError) as caught:
        k8s_provider.create(plan, BACKUP_ID)
    assert caught.value.details["left_behind"] == ["%s/%s-data-pg-0" % (ns, BACKUP_ID)]
    assert "could not be deleted (cannot delete volumesnapshots" in caught.value.hint and "delete it by hand" in caught.value.hint
    assert len(snapshots_in(k8s, ns)) == 1


def test_long_backup_ids_and_pvc_names(k8s, spec, ns, options):
    long_pvc = "data-" + "x" * 240
    k8s.add_pvc(ns, long_pvc, "csi-hostpath-sc")
    backup_id = "Prod_Cluster.Main-volume-snapshot-" + "y" * 60 + "-20261125100000"
    records = k8s_provider.create(k8s_provider.plan(dict(spec, pvc_names=["data-pg-0", long_pvc])), backup_id)
    for record in records:
        assert len(record["name"]) <= 253 and record["backup_id"] == backup_id
        item = k8s.get("volumesnapshots", record["name"], ns)
        label = item["metadata"]["labels"]["dataprotection.databases/backup-id"]
        assert label.startswith("sha256-") and len(label) <= 63
        assert item["metadata"]["annotations"]["dataprotection.databases/backup-id"] == backup_id
    assert records[0]["name"].startswith("prod-cluster-main-volume-snapshot-yyy") and records[0]["name"] != records[1]["name"]
    assert k8s_provider.snapshot_name(backup_id, "data-pg-0") == records[0]["name"]
    assert all(k8s_provider.delete(record, **options) for record in records)


def test_name_helpers():
    assert k8s_provider.snapshot_name("pg-volume-snapshot-20261125100000", "data-pg-0") == "pg-volume-snapshot-20261125100000-data-pg-0"
    assert k8s_provider.snapshot_name("PG-1", "data") == "pg-1-data"
    changed = k8s_provider.snapshot_name("pg_1", "data")
    assert changed.startswith("pg-1-data-") and len(changed) == len("pg-1-data-") + 8
    assert k8s_provider.backup_label("pg-volume-snapshot-20261125100000") == "pg-volume-snapshot-20261125100000"
    assert k8s_provider.restore_name("data-pg-0", "pg-volume-snapshot-20261125100000") == "data-pg-0-restore-20261125100000"
    assert k8s_provider.restore_name("data-pg-0", "nightly").startswith("data-pg-0-restore-")
    assert k8s_provider.quantity("5Gi", "size") == 5 * 2 ** 30
    assert k8s_provider.quantity("1.5G", "size") == 1500000000
    assert k8s_provider.quantity("1e3", "size") == 1000
    assert k8s_provider.quantity(2048, "size") == 2048
    with pytest.raises(ConfigError):
        k8s_provider.quantity("5 GB", "size")


# ---------------------------------------------------------------------------
# exists / delete


def test_exists_and_delete_are_idempotent(k8s, spec, ns, options):
    [record] = make_records(spec)
    assert k8s_provider.exists(record, **options) is True
    assert k8s_provider.delete(record, **options) is True
    assert k8s_provider.exists(record, **options) is False
    assert k8s_provider.delete(record, **options) is False
    assert snapshots_in(k8s, ns) == []


def test_delete_as_retention_does_it(monkeypatch, k8s, spec, ns):
    """Retention passes the record alone, as read back from a manifest; the token comes from the environment."""
    [record] = make_records(spec)
    record = json.loads(json.dumps(record))
    monkeypatch.setenv("K8S_AUTH_API_KEY", ADMIN_TOKEN)
    monkeypatch.setitem(snapshots.REGISTRY, "kubernetes", k8s_provider)
    assert snapshots.delete_record(record) is True
    assert snapshots.delete_record(record) is False
    assert snapshots_in(k8s, ns) == []


def test_delete_checks_the_uid(k8s, spec, ns, options):
    [record] = make_records(spec)
    k8s.remove("volumesnapshots", record["name"], ns)
    newcomer = k8s.add_snapshot(ns, record["name"], "data-pg-0", "csi-hostpath-snapclass")
    assert k8s_provider.exists(record, **options) is False
    with pytest.raises(ConfigError) as caught:
        k8s_provider.delete(record, **options)
    assert "is another object (uid %s) than the record's (uid %s): not deleted" % (newcomer["metadata"]["uid"], record["uid"]) in caught.value.message
    assert k8s.get("volumesnapshots", record["name"], ns)["metadata"]["uid"] == newcomer["metadata"]["uid"]
    # Without a uid, the backup-id annotation must match.
    with pytest.raises(ConfigError) as caught:
        k8s_provider.delete(dict(record, uid=None), **options)
    assert "the record has no uid" in caught.value.message
    assert k8s.get("volumesnapshots", record["name"], ns) is not None


def test_a_snapshot_not_found_through_another_api_server(spec, options):
    [record] = make_records(spec)
    assert k8s_provider.delete(record, **options) is True
    with pytest.raises(ConfigError) as caught:
        k8s_provider.delete(dict(record, server="https://other-cluster.example.com:6443"), **options)
    assert "is not found through" in caught.value.message


def test_record_validation(options):
    with pytest.raises(ConfigError):
        k8s_provider.exists({"provider": "aws_ebs", "id": "x"}, **options)
    with pytest.raises(ConfigError):
        k8s_provider.exists({"provider": "kubernetes", "namespace": "db", "name": "Bad_Name"}, **options)
    with pytest.raises(ConfigError) as caught:
        k8s_provider.exists({"provider": "kubernetes", "namespace": "db", "name": "x"}, token="x")
    assert "unknown kubernetes options: token" in caught.value.message


# ---------------------------------------------------------------------------
# restore


def test_restore_makes_a_bound_pvc_from_the_snapshot(k8s, spec, ns, options):
    [record] = make_records(spec)
    made = k8s_provider.restore(record, {"labels": {"purpose": "drill"}}, **options)
    name = "data-pg-0-restore-20261125100000"
    assert (made["pvc_name"], made["namespace"], made["phase"], made["bound"], made["waited"], made["note"]) == (name, ns, "Bound", True, True, None)
    assert (made["size"], made["storage_class"], made["access_modes"], made["snapshot"]) == (
        "5Gi", "csi-hostpath-sc", ["ReadWriteOnce"], "%s/%s" % (ns, record["name"]))
    pvc = k8s.get("persistentvolumeclaims", name, ns)
    assert pvc["metadata"]["uid"] == made["uid"]
    assert pvc["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": record["name"]}
    assert (pvc["spec"]["storageClassName"], pvc["spec"]["resources"], pvc["spec"]["accessModes"], pvc["spec"]["volumeMode"]) == (
        "csi-hostpath-sc", {"requests": {"storage": "5Gi"}}, ["ReadWriteOnce"], "Filesystem")
    assert pvc["metadata"]["labels"] == {"purpose": "drill", "dataprotection.databases/backup-id": BACKUP_ID}
    assert pvc["metadata"]["annotations"] == {"dataprotection.databases/restored-from": "%s/%s" % (ns, record["name"]),
                                              "dataprotection.databases/backup-id": BACKUP_ID}
    assert ADMIN_TOKEN not in json.dumps(made)
    assert k8s_provider.remove_restored(made, **options) is None
    assert k8s.get("persistentvolumeclaims", name, ns) is None


def test_restore_of_several_pvcs_names_each(k8s, spec, ns, options):
    records = make_records(spec, pvc_names=("data-pg-0", "data-pg-1"))
    target = {"namespace": ns, "pvc_names": {"data-pg-0": "restored-primary"}, "size": "8Gi"}
    made = [k8s_provider.restore(record, target, **options) for record in records]
    assert [m["pvc_name"] for m in made] == ["restored-primary", "data-pg-1-restore-20261125100000"]
    assert [k8s.get("persistentvolumeclaims", m["pvc_name"], ns)["spec"]["resources"]["requests"]["storage"] for m in made] == ["8Gi", "8Gi"]


def test_restore_refuses_an_existing_target(k8s, spec, ns, options):
    [record] = make_records(spec)
    with pytest.raises(ConfigError) as caught:
        k8s_provider.restore(record, {"pvc_name": "data-pg-1"}, **options)
    assert caught.value.message == "PersistentVolumeClaim %s/data-pg-1 already exists" % ns
    assert "Pick another name" in caught.value.hint and "delete that PVC" in caught.value.hint
    assert len(k8s.list("persistentvolumeclaims", ns)) == 2


def test_restore_refuses_a_size_below_the_snapshot(k8s, spec, ns, options):
    [record] = make_records(spec)
    with pytest.raises(ConfigError) as caught:
        k8s_provider.restore(record, {"size": "1Gi"}, **options)
    assert caught.value.message == "target.size 1Gi is smaller than the snapshot's restoreSize 5Gi"
    assert len(k8s.list("persistentvolumeclaims", ns)) == 2


def test_restore_check_mode_makes_nothing(k8s, spec, ns, options):
    [record] = make_records(spec)
    before = len(k8s.requests)
    planned = k8s_provider.restore(record, {"pvc_name": "preview"}, check_mode=True, **options)
    assert planned["uid"] is None and planned["pvc_name"] == "preview"
    assert planned["body"]["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": record["name"]}
    assert planned["body"]["metadata"]["name"] == "preview" and planned["body"]["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    assert k8s.get("persistentvolumeclaims", "preview", ns) is None
    assert all(method == "GET" or path.endswith("/selfsubjectaccessreviews") for method, path, user in k8s.requests[before:])


def test_restore_with_wait_for_first_consumer(k8s, spec, ns, options):
    [record] = make_records(spec)
    started = time.monotonic()
    made = k8s_provider.restore(record, {"storage_class": "wffc-sc", "wait_timeout": 30}, **options)
    assert time.monotonic() - started < 10
    assert (made["bound"], made["waited"], made["phase"]) == (False, False, "Pending")
    assert "WaitForFirstConsumer" in made["note"] and "did not wait" in made["note"]
    assert k8s.get("persistentvolumeclaims", made["pvc_name"], ns)["status"]["phase"] == "Pending"


@pytest.mark.parametrize("target, error, text", [
    ({"namespace": "elsewhere"}, ConfigError, "a PVC can only be restored from a snapshot in its own namespace"),
    ({"storage_class": "ebs-sc"}, ConfigError, "StorageClass ebs-sc is provisioned by ebs.csi.aws.com, but the snapshot was taken by driver"),
    ({"storage_class": "missing-sc"}, ConfigError, "StorageClass missing-sc does not exist"),
    ({"access_modes": ["ReadWriteSometimes"]}, ConfigError, "target.access_modes must be a list of"),
    ({"pvc_names": ["x"]}, ConfigError, "target.pvc_names must be a dict"),
    ({"size": "lots"}, ConfigError, "is not a Kubernetes quantity"),
    ("pvc", ConfigError, "must be a dict"),
])
def test_restore_refusals(k8s, spec, ns, options, target, error, text):
    [record] = make_records(spec)
    with pytest.raises(error) as caught:
        k8s_provider.restore(record, target, **options)
    assert text in str(caught.value)
    assert len(k8s.list("persistentvolumeclaims", ns)) == 2


def test_restore_from_a_missing_or_unready_snapshot(k8s, spec, ns, options):
    [record] = make_records(spec)
    k8s_provider.delete(record, **options)
    with pytest.raises(ObjectNotFound) as caught:
        k8s_provider.restore(record, {}, **options)
    assert "does not exist" in caught.value.message
    k8s.behave(ns, "data-pg-0", ready_after=None)
    unready = k8s.add_snapshot(ns, record["name"], "data-pg-0", "csi-hostpath-snapclass")
    with pytest.raises(ObjectNotFound):  # the same name, another object
        k8s_provider.restore(record, {}, **options)
    with pytest.raises(ConfigError) as caught:
        k8s_provider.restore(dict(record, uid=unready["metadata"]["uid"]), {}, **options)
    assert "is not ready to use" in caught.value.message
    assert len(k8s.list("persistentvolumeclaims", ns)) == 2


def test_restore_that_never_binds_removes_the_pvc(monkeypatch, k8s, spec, ns, options):
    [record] = make_records(spec)
    monkeypatch.setattr(k8s, "bind_after", 3600)
    with pytest.raises(EngineError) as caught:
        k8s_provider.restore(record, {"wait_timeout": 0.3}, **options)
    assert "binding PersistentVolumeClaim %s/data-pg-0-restore-20261125100000" % ns in caught.value.message
    assert "target.wait_timeout" in caught.value.hint
    assert k8s.get("persistentvolumeclaims", "data-pg-0-restore-20261125100000", ns) is None


def test_restore_without_wait(monkeypatch, k8s, spec, ns, options):
    [record] = make_records(spec)
    monkeypatch.setattr(k8s, "bind_after", 3600)
    made = k8s_provider.restore(record, {"wait": False}, **options)
    assert (made["waited"], made["bound"], made["phase"]) == (False, False, "Pending")
    assert made["uid"] == k8s.get("persistentvolumeclaims", made["pvc_name"], ns)["metadata"]["uid"]


def test_restore_without_permission_to_create_pvcs(k8s, spec, ns):
    [record] = make_records(spec)
    with pytest.raises(AccessDenied) as caught:
        k8s_provider.restore(record, {}, api_key="reader-token")
    assert "may not create persistentvolumeclaims (API group core) in namespace %s" % ns in caught.value.message
    assert 'apiGroups: [""], resources: ["persistentvolumeclaims"], verbs: ["create"]' in caught.value.hint
    with pytest.raises(AccessDenied):
        k8s_provider.restore(record, {}, check_mode=True, api_key="reader-token")


# ---------------------------------------------------------------------------
# error mapping of answers the fake does not give


def _api_exception(status, reason, body):
    from kubernetes.client.rest import ApiException

    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps(body) if isinstance(body, dict) else body
    return exc


def test_map_api_errors():
    conn = k8s_provider._Connection(host="https://k8s.example.com:6443")
    action = k8s_provider._Action("create", "volumesnapshots", k8s_provider.SNAPSHOT_GROUP, "db", "snap-1")
    cases = [
        (_api_exception(404, "Not Found", "404 page not found"), ConfigError, "external-snapshotter CRDs"),
        (_api_exception(404, "Not Found", {"kind": "Status", "details": {"name": "snap-1", "kind": "volumesnapshots"}, "message": "gone"}),
         ObjectNotFound, "gone"),
        (_api_exception(422, "Unprocessable Entity", {"kind": "Status", "message": "spec.source: Required value", "reason": "Invalid"}),
         ConfigError, "the API server refused it: spec.source: Required value"),
        (_api_exception(429, "Too Many Requests", {"message": "slow down"}), EngineError, "retry later"),
        (_api_exception(503, "Service Unavailable", None), EngineError, "failed"),
        (_api_exception(0, "SSLError\n[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", None), TLSVerificationFailed, "ca_cert"),
    ]
    for exc, kind, text in cases:
        error = k8s_provider.k8s_error(exc, action, conn)
        assert error.kind == kind.kind, (exc.status, error)
        assert text in str(error), (exc.status, str(error))
        assert error.message.startswith("cannot create volumesnapshots snap-1 (API group snapshot.storage.k8s.io) in namespace db")
