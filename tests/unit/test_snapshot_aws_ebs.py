# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The aws_ebs snapshot provider against moto's EC2 API in server mode (see harness/s3server.py).

The provider talks HTTP to the moto server process on loopback, with
signature checking and IAM on, exactly as it would talk to EC2: nothing is
patched inside the test process except where a test says so.  Volumes and an
instance with a block device mapping are made with the harness's boto3
client; moto runs instances and lists their block device mappings, so
``instance_id`` + ``device_names`` resolve as on EC2.

moto enforces IAM for EC2 in this harness: a user without ec2:CreateSnapshot
gets ``AccessDenied`` (HTTP 403; EC2 itself answers ``UnauthorizedOperation``
with an encoded message, whose mapping is tested on a botocore ClientError
object), and the ``DryRun`` checks of ``plan`` see the same decision.

What these tests cannot show:

- real snapshot latency: moto completes a snapshot at once and makes volumes
  available and attached at once, so the waiting (deadline, ``error`` state,
  clean-up) is tested by replacing the state lookup;
- cross-region behaviour beyond isolation: moto keeps regions apart, so a
  volume of another region is not found (tested), but copying snapshots
  between regions is not part of the provider;
- KMS: encrypted volumes and key permissions are not exercised;
- EC2's own parameter checks: moto accepts unknown zones and volume types in
  CreateVolume and a second volume on a used device, which the provider
  checks itself before asking.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, SSLError

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    AccessDenied,
    ConfigError,
    EndpointUnreachable,
    EngineError,
    InvalidCredentials,
    MissingDependency,
    ObjectNotFound,
    TLSVerificationFailed,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import aws_ebs
from harness.s3server import closed_port

ZONE = "us-east-1a"
OTHER_ZONE = "us-east-1b"


@pytest.fixture(scope="module")
def ec2(s3_server):
    return s3_server.client("ec2")


@pytest.fixture
def base_spec(s3_server):
    """The connection part of a ``snapshot`` spec for the test server."""
    return {
        "provider": "aws_ebs",
        "region": s3_server.region,
        "endpoint_url": s3_server.endpoint_url,
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
    }


@pytest.fixture
def options(s3_server):
    """Connection options for exists/delete/restore."""
    return {"access_key": s3_server.access_key, "secret_key": s3_server.secret_key}


@pytest.fixture
def make_volume(ec2):
    def make(zone=ZONE, size=8, client=None):
        return (client or ec2).create_volume(AvailabilityZone=zone, Size=size, VolumeType="gp3")["VolumeId"]

    return make


@pytest.fixture(scope="module")
def instance(ec2):
    """An instance in us-east-1b with an EBS volume mapped at /dev/sdf: (instance id, volume id)."""
    image = ec2.describe_images()["Images"][0]["ImageId"]
    response = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", Placement={"AvailabilityZone": OTHER_ZONE},
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 10, "VolumeType": "gp3"}}],
    )
    described = response["Instances"][0]
    mapping = [m for m in described["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf"]
    assert mapping, "moto maps the requested device: %r" % described["BlockDeviceMappings"]
    return described["InstanceId"], mapping[0]["Ebs"]["VolumeId"]


def snapshots_of(ec2, backup_id):
    response = ec2.describe_snapshots(Filters=[{"Name": "tag:dataprotection.backup_id", "Values": [backup_id]}])
    return response["Snapshots"]


def new_backup_id():
    return "20261125T100000Z-%s" % uuid.uuid4().hex[:8]


def tags_of(item):
    return dict((tag["Key"], tag["Value"]) for tag in item.get("Tags") or ())


# ---------------------------------------------------------------------------
# plan


def test_plan_with_volume_ids(s3_server, base_spec, make_volume):
    volume = make_volume(size=12)
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[volume], tags={"team": "db", "cost": 7}), data_dir="/var/lib/postgresql")
    assert plan["provider"] == "aws_ebs"
    assert plan["region"] == "us-east-1"
    assert plan["tags"] == {"team": "db", "cost": "7"}
    assert plan["wait_timeout"] == 1800
    assert plan["volumes"] == [{
        "id": volume, "size_gib": 12, "availability_zone": ZONE, "device": None, "instance_id": None,
        "state": "available", "volume_type": "gp3", "encrypted": False,
    }]
    assert plan["warnings"] == []
    assert plan["credentials"] == "snapshot.access_key"
    shown = json.dumps(plan)
    assert s3_server.secret_key not in shown and s3_server.access_key not in shown


def test_plan_resolves_instance_devices(base_spec, instance):
    instance_id, volume = instance
    # The mapping says /dev/sdf; the kernel of a Xen instance shows it as /dev/xvdf.
    plan = aws_ebs.plan(dict(base_spec, instance_id=instance_id, device_names=["xvdf"]))
    assert plan["instance_id"] == instance_id
    assert [(v["id"], v["device"], v["instance_id"], v["availability_zone"], v["state"]) for v in plan["volumes"]] == [
        (volume, "/dev/sdf", instance_id, OTHER_ZONE, "in-use")
    ]


def test_plan_names_an_attached_volume_s_device(base_spec, instance):
    instance_id, volume = instance
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[volume]))
    assert (plan["volumes"][0]["device"], plan["volumes"][0]["instance_id"]) == ("/dev/sdf", instance_id)


def test_plan_refuses_an_unmapped_device(base_spec, instance):
    instance_id, dummy = instance
    with pytest.raises(ConfigError) as caught:
        aws_ebs.plan(dict(base_spec, instance_id=instance_id, device_names=["/dev/sdf", "/dev/nvme1n1"]))
    assert "no EBS volume at /dev/nvme1n1" in caught.value.message
    assert "/dev/sdf" in caught.value.message  # the devices it has
    assert "Nitro" in caught.value.hint


def test_plan_refuses_a_missing_instance(base_spec):
    with pytest.raises(ConfigError) as caught:
        aws_ebs.plan(dict(base_spec, instance_id="i-0123456789abcdef0", device_names=["/dev/sdf"]))
    assert "does not exist in region us-east-1" in caught.value.message
    assert "region" in caught.value.hint


def test_plan_refuses_a_missing_volume(base_spec, make_volume):
    present = make_volume()
    with pytest.raises(ConfigError) as caught:
        aws_ebs.plan(dict(base_spec, volume_ids=[present, "vol-0123456789abcdef0"]))
    assert "volume vol-0123456789abcdef0 does not exist in region us-east-1" in caught.value.message
    assert present not in caught.value.message
    assert caught.value.details["missing"] == ["vol-0123456789abcdef0"]


def test_plan_volume_of_another_region(s3_server, base_spec, make_volume):
    eu = boto3.session.Session().client(
        "ec2", endpoint_url=s3_server.endpoint_url, region_name="eu-west-1", aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key, config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    volume = make_volume(zone="eu-west-1a", client=eu)
    with pytest.raises(ConfigError) as caught:
        aws_ebs.plan(dict(base_spec, volume_ids=[volume]))
    assert "does not exist in region us-east-1" in caught.value.message
    assert "set snapshot.region" in caught.value.hint
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[volume], region="eu-west-1"))
    assert (plan["region"], plan["volumes"][0]["availability_zone"]) == ("eu-west-1", "eu-west-1a")


def test_plan_region_from_the_environment(monkeypatch, base_spec, make_volume):
    volume = make_volume()
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    spec = dict(base_spec, volume_ids=[volume])
    del spec["region"]
    assert aws_ebs.plan(spec)["region"] == "us-east-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError) as caught:
        aws_ebs.plan(spec)
    assert "snapshot.region is required" in caught.value.message


@pytest.mark.parametrize("change, text", [
    ({"volume_ids": None}, "names no volume"),
    ({"volume_ids": ["vol-1"]}, "is not a valid id"),
    ({"volume_ids": ["vol-0123456789abcdef0", "vol-0123456789abcdef0"]}, "twice"),
    ({"instance_id": "i-0123456789abcdef0", "device_names": ["/dev/sdf"]}, "name the volumes twice"),
    ({"volume_ids": None, "instance_id": "i-0123456789abcdef0"}, "names no volume"),
    ({"volume_ids": None, "instance_id": "i-0123456789abcdef0", "device_names": ["/dev/sdf", "/dev/xvdf"]}, "names a device twice"),
    ({"volume_id": "vol-0123456789abcdef0", "volume_ids": None}, "use snapshot.volume_ids"),
    ({"secret_key": None}, "must be given together"),
    ({"region": "Frankfurt"}, "not an AWS region name"),
    ({"endpoint_url": "ec2.example.com"}, "http:// or https://"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, "is not a file"),
    ({"validate_certs": "maybe"}, "must be a boolean"),
    ({"wait_timeout": 0}, "wait_timeout must be more than 0"),
    ({"tags": {"aws:cloudformation": "x"}}, "reserved by AWS"),
    ({"tags": {"dataprotection.backup_id": "x"}}, "reserved for the collection"),
    ({"tags": dict(("t%d" % n, "v") for n in range(48))}, "more than EC2's 50"),
    ({"tags": ["a"]}, "must be a dict"),
])
def test_spec_validation(change, text):
    spec = {"region": "us-east-1", "volume_ids": ["vol-0123456789abcdef0"], "access_key": "a", "secret_key": "b"}
    spec.update(change)
    with pytest.raises(ConfigError) as caught:
        aws_ebs.normalize_spec(spec)
    assert text.lower() in str(caught.value).lower()


def test_plan_from_another_process_needs_the_credentials_again(base_spec, make_volume):
    plan = json.loads(json.dumps(aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()]))))
    plan["credentials_ref"] = "0" * 32  # what a plan made elsewhere carries
    with pytest.raises(ConfigError) as caught:
        aws_ebs.create(plan, new_backup_id())
    assert "not known in this process" in caught.value.message


# ---------------------------------------------------------------------------
# create / exists / delete


def test_create_tags_and_records(s3_server, ec2, base_spec, make_volume, instance):
    instance_id, mapped = instance
    plan = aws_ebs.plan(dict(base_spec, instance_id=instance_id, device_names=["/dev/sdf"], tags={"team": "db"}))
    backup_id = new_backup_id()
    records = aws_ebs.create(plan, backup_id, labels={"cluster": "main", "engine": "postgresql"})
    assert len(records) == 1
    record = records[0]
    assert record["id"].startswith("snap-")
    created = record.pop("created")
    assert created.endswith("Z")
    assert record == {
        "provider": "aws_ebs", "id": record["id"], "source": mapped, "region": "us-east-1", "device": "/dev/sdf", "size_gib": 10,
        "availability_zone": OTHER_ZONE, "backup_id": backup_id, "endpoint_url": s3_server.endpoint_url,
    }
    [item] = snapshots_of(ec2, backup_id)
    assert item["SnapshotId"] == record["id"] and item["VolumeId"] == mapped and item["State"] == "completed"
    assert tags_of(item) == {
        "Name": backup_id, "dataprotection.backup_id": backup_id, "dataprotection.device": "/dev/sdf",
        "cluster": "main", "engine": "postgresql", "team": "db",
    }
    assert backup_id in item["Description"] and mapped in item["Description"]
    assert s3_server.secret_key not in json.dumps(records)

    volumes = [make_volume(), make_volume(size=3)]
    two = aws_ebs.create(aws_ebs.plan(dict(base_spec, volume_ids=volumes)), new_backup_id(), timeout=60)
    assert [(r["source"], r["size_gib"], r["device"]) for r in two] == [(volumes[0], 8, None), (volumes[1], 3, None)]
    assert "dataprotection.device" not in tags_of(snapshots_of(ec2, two[0]["backup_id"])[0])


def test_labels_cannot_replace_the_provider_tags(base_spec, make_volume, ec2):
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()]))
    with pytest.raises(ConfigError):
        aws_ebs.create(plan, new_backup_id(), labels={"dataprotection.backup_id": "other"})
    assert all(tags_of(s).get("dataprotection.backup_id") != "other" for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])


def test_exists_and_delete_are_idempotent(base_spec, options, make_volume, ec2):
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()]))
    [record] = aws_ebs.create(plan, new_backup_id())
    assert aws_ebs.exists(record, **options) is True
    assert aws_ebs.delete(record, **options) is True
    assert aws_ebs.exists(record, **options) is False
    assert aws_ebs.delete(record, **options) is False
    assert snapshots_of(ec2, record["backup_id"]) == []


def test_delete_as_retention_does_it(monkeypatch, s3_server, base_spec, make_volume):
    """Retention passes the record alone: credentials from the environment, endpoint from the record."""
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()]))
    [record] = aws_ebs.create(plan, new_backup_id())
    record = json.loads(json.dumps(record))  # as read back from a manifest
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(aws_ebs, "_CLIENTS", {})
    from ansible_collections.dataprotection.databases.plugins.module_utils import snapshots
    monkeypatch.setitem(snapshots.REGISTRY, "aws_ebs", aws_ebs)
    assert snapshots.delete_record(record) is True
    assert snapshots.delete_record(record) is False


def test_delete_refuses_a_snapshot_of_another_backup(base_spec, options, make_volume, ec2):
    volume = make_volume()
    [record] = aws_ebs.create(aws_ebs.plan(dict(base_spec, volume_ids=[volume])), new_backup_id())
    with pytest.raises(ConfigError) as caught:
        aws_ebs.delete(dict(record, backup_id="20200101T000000Z-other"), **options)
    assert "not of backup 20200101T000000Z-other" in caught.value.message
    assert aws_ebs.exists(record, **options)
    untagged = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    with pytest.raises(ConfigError) as caught:
        aws_ebs.delete(dict(record, id=untagged), **options)
    assert "not tagged dataprotection.backup_id" in caught.value.message
    # A record without the backup id is deleted as it stands.
    assert aws_ebs.delete({"provider": "aws_ebs", "id": untagged, "region": "us-east-1", "endpoint_url": record["endpoint_url"]}, **options)


def test_record_validation(options):
    with pytest.raises(ConfigError):
        aws_ebs.exists({"provider": "btrfs", "id": "x"}, **options)
    with pytest.raises(ConfigError):
        aws_ebs.exists({"provider": "aws_ebs", "id": "snap-1", "region": "us-east-1"}, **options)
    with pytest.raises(ConfigError) as caught:
        aws_ebs.exists({"provider": "aws_ebs", "id": "snap-0123456789abcdef0", "region": "us-east-1"}, profile="x")
    assert "unknown aws_ebs options: profile" in caught.value.message


# ---------------------------------------------------------------------------
# failures during create: nothing half-made stays


def test_timeout_deletes_the_snapshots(monkeypatch, base_spec, make_volume, ec2):
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[make_volume(), make_volume()]))
    seen = []

    def never_completed(conn, snapshot_ids):
        seen.extend(snapshot_ids)
        return dict((snapshot_id, {"SnapshotId": snapshot_id, "State": "pending"}) for snapshot_id in snapshot_ids)

    monkeypatch.setattr(aws_ebs, "_snapshot_states", never_completed)
    monkeypatch.setattr(aws_ebs, "POLL_INTERVAL", 0.02)
    backup_id = new_backup_id()
    with pytest.raises(EngineError) as caught:
        aws_ebs.create(plan, backup_id, timeout=0.2)
    assert "did not finish within 0.2s" in caught.value.message
    assert "wait_timeout" in caught.value.hint
    assert len(set(seen)) == 2
    assert snapshots_of(ec2, backup_id) == []


def test_error_state_deletes_the_snapshots(monkeypatch, base_spec, make_volume, ec2):
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()]))
    monkeypatch.setattr(aws_ebs, "_snapshot_states", lambda conn, ids: dict(
        (i, {"SnapshotId": i, "State": "error", "StateMessage": "internal error"}) for i in ids))
    backup_id = new_backup_id()
    with pytest.raises(EngineError) as caught:
        aws_ebs.create(plan, backup_id)
    assert "failed: internal error" in caught.value.message
    assert snapshots_of(ec2, backup_id) == []


def test_a_failure_midway_deletes_the_snapshots_already_made(base_spec, make_volume, ec2):
    first, second = make_volume(), make_volume()
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[first, second]))
    ec2.delete_volume(VolumeId=second)  # gone between plan and create
    backup_id = new_backup_id()
    with pytest.raises(ConfigError) as caught:
        aws_ebs.create(plan, backup_id)
    assert second in caught.value.message
    assert snapshots_of(ec2, backup_id) == []


def test_a_snapshot_that_cannot_be_removed_is_named(monkeypatch, base_spec, make_volume, ec2):
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()]))
    monkeypatch.setattr(aws_ebs, "_snapshot_states", lambda conn, ids: dict((i, {"SnapshotId": i, "State": "error"}) for i in ids))
    real_call = aws_ebs._call

    def no_delete(conn, action, target=None, **kwargs):
        if action == "DeleteSnapshot":
            raise AccessDenied("cannot delete snapshot %s: not authorized" % target)
        return real_call(conn, action, target, **kwargs)

    monkeypatch.setattr(aws_ebs, "_call", no_delete)
    backup_id = new_backup_id()
    with pytest.raises(EngineError) as caught:
        aws_ebs.create(plan, backup_id)
    [left] = snapshots_of(ec2, backup_id)
    assert caught.value.details["left_behind"] == [left["SnapshotId"]]
    assert "delete it by hand" in caught.value.hint


# ---------------------------------------------------------------------------
# restore


def test_restore_into_a_zone_and_attach(base_spec, options, make_volume, instance, ec2):
    instance_id, dummy = instance
    [record] = aws_ebs.create(aws_ebs.plan(dict(base_spec, volume_ids=[make_volume(size=5)])), new_backup_id())
    made = aws_ebs.restore(record, {"availability_zone": ZONE, "tags": {"purpose": "drill"}}, **options)
    assert (made["availability_zone"], made["attached_to"], made["volume_type"], made["size_gib"]) == (ZONE, None, "gp3", 5)
    volume = ec2.describe_volumes(VolumeIds=[made["volume_id"]])["Volumes"][0]
    assert (volume["State"], volume["SnapshotId"], volume["AvailabilityZone"], volume["VolumeType"]) == ("available", record["id"], ZONE, "gp3")
    assert tags_of(volume) == {
        "Name": "restore of %s" % record["backup_id"], "dataprotection.restored_from": record["id"],
        "dataprotection.backup_id": record["backup_id"], "purpose": "drill",
    }

    attached = aws_ebs.restore(
        record, {"availability_zone": OTHER_ZONE, "instance_id": instance_id, "device_name": "/dev/sdg", "iops": 4000, "throughput": 250},
        **options)
    assert (attached["attached_to"], attached["availability_zone"], attached["device_name"]) == (instance_id, OTHER_ZONE, "/dev/sdg")
    volume = ec2.describe_volumes(VolumeIds=[attached["volume_id"]])["Volumes"][0]
    assert volume["State"] == "in-use" and (volume["Iops"], volume["Throughput"]) == (4000, 250)
    assert [(a["InstanceId"], a["Device"], a["State"]) for a in volume["Attachments"]] == [(instance_id, "/dev/sdg", "attached")]

    with pytest.raises(ConfigError) as caught:  # the device is taken now (also as /dev/xvdg)
        aws_ebs.restore(record, {"availability_zone": OTHER_ZONE, "instance_id": instance_id, "device_name": "/dev/xvdg"}, **options)
    assert "already has a volume at /dev/sdg" in caught.value.message


def test_restore_check_mode_makes_nothing(base_spec, options, make_volume, instance, ec2):
    instance_id, dummy = instance
    [record] = aws_ebs.create(aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()])), new_backup_id())
    target = {"availability_zone": OTHER_ZONE, "instance_id": instance_id, "device_name": "/dev/sdh"}
    planned = aws_ebs.restore(record, target, check_mode=True, **options)
    assert (planned["volume_id"], planned["attached_to"], planned["snapshot_id"]) == (None, instance_id, record["id"])
    made = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [record["id"]]}])["Volumes"]
    assert made == []


@pytest.mark.parametrize("target, error, text", [
    ({"availability_zone": "eu-west-1a"}, ConfigError, "not a zone of region us-east-1"),
    ({"availability_zone": "us-east-1z"}, ConfigError, "does not exist in region us-east-1"),
    ({}, ConfigError, "availability_zone is required"),
    ({"availability_zone": ZONE, "volume_type": "gp9"}, ConfigError, "volume_type must be one of"),
    ({"availability_zone": ZONE, "volume_type": "gp2", "iops": 3000}, ConfigError, "no provisioned IOPS"),
    ({"availability_zone": ZONE, "volume_type": "io2"}, ConfigError, "iops is required"),
    ({"availability_zone": ZONE, "instance_id": "i-0123456789abcdef0"}, ConfigError, "must be given together"),
    ({"availability_zone": ZONE, "instance_id": "i-0123456789abcdef0", "device_name": "/dev/sdg"}, ConfigError, "does not exist"),
    ({"availability_zone": ZONE, "instance_id": "INSTANCE", "device_name": "/dev/sdg"}, ConfigError, "only be attached to an instance of its own zone"),
])
def test_restore_refusals(base_spec, options, make_volume, instance, ec2, target, error, text):
    if target.get("instance_id") == "INSTANCE":
        target = dict(target, instance_id=instance[0])
    [record] = aws_ebs.create(aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()])), new_backup_id())
    with pytest.raises(error) as caught:
        aws_ebs.restore(record, target, **options)
    assert text in str(caught.value)
    assert ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [record["id"]]}])["Volumes"] == []


def test_restore_of_a_deleted_snapshot(base_spec, options, make_volume):
    [record] = aws_ebs.create(aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()])), new_backup_id())
    aws_ebs.delete(record, **options)
    with pytest.raises(ObjectNotFound):
        aws_ebs.restore(record, {"availability_zone": ZONE}, **options)


def test_restore_failure_deletes_the_new_volume(monkeypatch, base_spec, options, make_volume, instance, ec2):
    instance_id, dummy = instance
    [record] = aws_ebs.create(aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()])), new_backup_id())
    real = aws_ebs._volume_reached
    monkeypatch.setattr(aws_ebs, "_volume_reached", lambda conn, volume_id, state, instance_id=None: (
        False if state == "in-use" else real(conn, volume_id, state, instance_id)))
    monkeypatch.setattr(aws_ebs, "POLL_INTERVAL", 0.02)
    monkeypatch.setattr(aws_ebs, "CLEANUP_TIMEOUT", 5)
    target = {"availability_zone": OTHER_ZONE, "instance_id": instance_id, "device_name": "/dev/sdj", "wait_timeout": 0.2}
    with pytest.raises(EngineError) as caught:
        aws_ebs.restore(record, target, **options)
    assert "attaching volume" in caught.value.message
    made = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [record["id"]]}])["Volumes"]
    assert made == []  # detached and deleted


# ---------------------------------------------------------------------------
# permissions, credentials, endpoint


def test_user_without_create_snapshot(s3_server, base_spec, make_volume):
    volume = make_volume()
    key, secret = s3_server.make_user("ebs-read", {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}]})
    with pytest.raises(AccessDenied) as caught:
        aws_ebs.plan(dict(base_spec, volume_ids=[volume], access_key=key, secret_key=secret))
    assert "not authorized to perform ec2:CreateSnapshot" in caught.value.message
    assert volume in caught.value.message
    assert caught.value.hint.startswith("Grant ec2:CreateSnapshot to access key %s" % key)
    assert caught.value.details["action"] == "ec2:CreateSnapshot"


def test_user_without_delete_snapshot(s3_server, base_spec, make_volume, ec2):
    key, secret = s3_server.make_user("ebs-nodelete", {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["ec2:Describe*", "ec2:CreateSnapshot", "ec2:CreateTags"], "Resource": "*"}]})
    plan = aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()], access_key=key, secret_key=secret))
    assert len(plan["warnings"]) == 1 and "ec2:DeleteSnapshot" in plan["warnings"][0]
    assert key not in json.dumps(plan) and secret not in json.dumps(plan)
    [record] = aws_ebs.create(plan, new_backup_id())
    with pytest.raises(AccessDenied) as caught:
        aws_ebs.delete(record, access_key=key, secret_key=secret)
    assert "not authorized to perform ec2:DeleteSnapshot" in caught.value.message
    assert record["id"] in caught.value.message
    ec2.delete_snapshot(SnapshotId=record["id"])


def test_wrong_secret_key(s3_server, base_spec, make_volume):
    with pytest.raises(InvalidCredentials) as caught:
        aws_ebs.plan(dict(base_spec, volume_ids=[make_volume()], secret_key="wrong"))
    assert "AuthFailure" in caught.value.message
    assert "access key %s (snapshot.access_key)" % s3_server.access_key in caught.value.hint


def test_unreachable_endpoint(base_spec):
    spec = dict(base_spec, volume_ids=["vol-0123456789abcdef0"], endpoint_url="http://127.0.0.1:%d" % closed_port(), max_attempts=1)
    with pytest.raises(EndpointUnreachable) as caught:
        aws_ebs.plan(spec)
    assert "cannot connect to http://127.0.0.1:" in caught.value.message
    assert "snapshot.endpoint_url" in caught.value.hint


def _client_error(code, message, status=400, operation="CreateSnapshot"):
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def test_map_unauthorized_operation():
    conn = aws_ebs._Connection("eu-central-1")
    error = aws_ebs.ec2_error(_client_error(
        "UnauthorizedOperation", "You are not authorized to perform this operation. Encoded authorization failure message: AbC123", 403),
        "CreateSnapshot", conn, "vol-0123456789abcdef0")
    assert isinstance(error, AccessDenied)
    assert error.message == ("cannot snapshot vol-0123456789abcdef0 in region eu-central-1: not authorized to perform ec2:CreateSnapshot "
                             "(You are not authorized to perform this operation.)")
    assert "Grant ec2:CreateSnapshot" in error.hint and "ec2:CreateTags" in error.hint and "decode-authorization-message" in error.hint
    assert error.details["encoded_message"] == "AbC123"


def test_map_other_errors():
    conn = aws_ebs._Connection("eu-central-1", endpoint_url="https://ec2.example.com")
    cases = [
        (_client_error("AuthFailure", "AWS was not able to validate the provided access credentials"), InvalidCredentials, "region eu-central-1 is enabled"),
        (_client_error("InvalidVolume.NotFound", "The volume does not exist", operation="DescribeVolumes"), ConfigError, "snapshot.region"),
        (_client_error("InvalidInstanceID.NotFound", "no such instance"), ConfigError, "region"),
        (_client_error("InvalidSnapshot.NotFound", None), ObjectNotFound, "another region"),
        (_client_error("InvalidSnapshot.InUse", "used by ami-1"), ConfigError, "deregister the AMI"),
        (_client_error("SnapshotCreationPerVolumeRateExceeded", "slow down"), EngineError, "15 seconds"),
        (_client_error("RequestLimitExceeded", "Request limit exceeded.", 503), EngineError, "throttling"),
        (_client_error("OptInRequired", "not subscribed"), ConfigError, "Enable region eu-central-1"),
        (NoCredentialsError(), InvalidCredentials, "AWS_ACCESS_KEY_ID"),
        (EndpointConnectionError(endpoint_url="https://ec2.example.com"), EndpointUnreachable, "snapshot.endpoint_url"),
        (SSLError(endpoint_url="https://ec2.example.com", error="certificate verify failed"), TLSVerificationFailed, "snapshot.ca_bundle"),
    ]
    for exc, kind, hint in cases:
        error = aws_ebs.ec2_error(exc, "CreateSnapshot", conn, "vol-0123456789abcdef0")
        assert error.kind == kind.kind, (exc, error)
        assert hint in (error.hint or ""), (exc, error.hint)
        assert error.message.startswith("cannot snapshot vol-0123456789abcdef0 in region eu-central-1")


def test_missing_boto3(monkeypatch):
    monkeypatch.setattr(aws_ebs, "HAS_BOTO3", False)
    with pytest.raises(MissingDependency) as caught:
        aws_ebs.plan({"region": "us-east-1", "volume_ids": ["vol-0123456789abcdef0"]})
    assert "boto3" in caught.value.message


def test_imports_without_boto3():
    code = (
        "import sys\n"
        "sys.modules['boto3'] = None\n"
        "sys.modules['botocore'] = None\n"
        "from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import aws_ebs\n"
        "assert not aws_ebs.HAS_BOTO3\n"
    )
    env = dict(os.environ, PYTHONPATH=os.environ["DP_COLLECTIONS_ROOT"])
    subprocess.check_call([sys.executable, "-c", code], env=env)
