# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by every module (documented once in doc_fragments/repo.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from copy import deepcopy

from ansible.module_utils.basic import env_fallback

from ansible_collections.dataprotection.databases.plugins.module_utils.matrix import ENGINES

REPO_OPTIONS = dict(
    type=dict(type="str", default="local", choices=["local", "s3"]),
    path=dict(type="path"),
    bucket=dict(type="str"),
    prefix=dict(type="str", default=""),
    endpoint_url=dict(type="str"),
    region=dict(type="str", fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
    access_key=dict(type="str", no_log=False, fallback=(env_fallback, ["AWS_ACCESS_KEY_ID"])),
    secret_key=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY"])),
    session_token=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_SESSION_TOKEN"])),
    ca_bundle=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
    addressing_style=dict(type="str", default="auto", choices=["auto", "path", "virtual"]),
    encryption_key=dict(type="str", no_log=True, fallback=(env_fallback, ["DATAPROTECTION_ENCRYPTION_KEY"])),
    part_size_mb=dict(type="int", default=16),
    max_concurrency=dict(type="int", default=4),
)

REPO_ARGUMENT_SPEC = dict(
    repo=dict(
        type="dict",
        required=True,
        options=REPO_OPTIONS,
        required_if=[("type", "local", ["path"]), ("type", "s3", ["bucket"])],
    ),
)

CLUSTER_ARGUMENT_SPEC = dict(cluster=dict(type="str", required=True))

ENGINE_OPTION = dict(type="str", required=True, choices=list(ENGINES))


def repo_argument_spec(**extra):
    """The shared ``repo`` option plus a module's own options."""
    spec = deepcopy(REPO_ARGUMENT_SPEC)
    spec.update(extra)
    return spec


CONNECTION_OPTIONS = dict(
    host=dict(type="str"),
    port=dict(type="int"),
    user=dict(type="str"),
    password=dict(type="str", no_log=True),
    socket=dict(type="path"),
    database=dict(type="str"),
    bin_dir=dict(type="path"),
    defaults_file=dict(type="path"),
    token=dict(type="str", no_log=True),
    tls=dict(type="bool"),
    tls_ca_file=dict(type="path"),
    databases=dict(type="list", elements="str"),
)

CONNECTION_ARGUMENT_SPEC = dict(connection=dict(type="dict", default={}, options=CONNECTION_OPTIONS))


# Options of the engines' native (API-driven) methods, the same in backup and restore (documented once in
# doc_fragments/native.py): which collections/classes, the server's own backup backend, the nodes of a cluster.
NATIVE_OPTIONS = dict(
    collections=dict(type="list", elements="str"),
    backend=dict(type="str"),
    nodes=dict(type="list", elements="str"),
    operation_timeout=dict(type="int", default=3600),
)


def native_options(params):
    """The native-method options a module was given, for a request's ``options``."""
    return dict((key, params.get(key)) for key in NATIVE_OPTIONS)


def engine_argument_spec(**extra):
    """``repo``, ``cluster`` and ``connection`` plus a module's own options."""
    spec = repo_argument_spec(**deepcopy(CLUSTER_ARGUMENT_SPEC))
    spec.update(deepcopy(CONNECTION_ARGUMENT_SPEC))
    spec["engine"] = deepcopy(ENGINE_OPTION)
    spec.update(extra)
    return spec


# The providers' connection and credential keys, the same in the backup's and the restore's snapshot option.
_PROVIDER_CONNECTION = dict(
    access_key=dict(type="str", no_log=False),
    secret_key=dict(type="str", no_log=True),
    session_token=dict(type="str", no_log=True),
    endpoint_url=dict(type="str"),
    ca_bundle=dict(type="path"),
    validate_certs=dict(type="bool"),
    max_attempts=dict(type="int"),
    kubeconfig=dict(type="raw"),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    ca_cert=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    proxy=dict(type="str"),
    wait_timeout=dict(type="int"),
    tags=dict(type="dict"),
    namespace=dict(type="str"),
    size=dict(type="str"),
    instance_id=dict(type="str"),
)

SNAPSHOT_OPTIONS = dict(
    deepcopy(_PROVIDER_CONNECTION),
    provider=dict(type="str", required=True, choices=["btrfs", "lvm", "aws_ebs", "kubernetes"]),
    stream=dict(type="bool", default=False),
    keep=dict(type="bool", default=True),
    subvolume=dict(type="path"),
    snapshot_dir=dict(type="path"),
    data_dir=dict(type="path"),
    logical_volume=dict(type="str"),
    mount_options=dict(type="str"),
    snapshot_name=dict(type="str"),
    volume_ids=dict(type="list", elements="str"),
    device_names=dict(type="list", elements="str"),
    region=dict(type="str"),
    pvc_names=dict(type="list", elements="str"),
    pvc_selector=dict(type="str"),
    volume_snapshot_class=dict(type="str"),
)

SNAPSHOT_TARGET_OPTIONS = dict(
    deepcopy(_PROVIDER_CONNECTION),
    availability_zone=dict(type="str"),
    volume_type=dict(type="str"),
    iops=dict(type="int"),
    throughput=dict(type="int"),
    device_name=dict(type="str"),
    pvc_name=dict(type="str"),
    pvc_names=dict(type="dict"),
    storage_class=dict(type="str"),
    access_modes=dict(type="list", elements="str"),
    labels=dict(type="dict"),
    wait=dict(type="bool"),
    name=dict(type="str"),
    vg=dict(type="str"),
    mount_point=dict(type="path"),
)


def given(options):
    """A dict option's keys that were set (Ansible fills the others with None)."""
    return dict((k, v) for k, v in (options or {}).items() if v is not None)
