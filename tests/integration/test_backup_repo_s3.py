# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_repo and backup_info through ansible-playbook against a real S3 protocol server.

The server is moto in server mode on loopback, with signature checking and IAM
policies switched on; boto3 talks HTTP(S) to it like to any S3 endpoint.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from harness.playbook import run_tasks
from test_backup_repo_local import add_backup

# s3:HeadBucket is how the test server names the permission for HEAD on a bucket (AWS checks s3:ListBucket).
READ_ONLY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:HeadBucket"], "Resource": "*"}],
}


def s3_task(spec, register, module="backup_repo", **options):
    args = {"repo": dict((k, v) for k, v in spec.items() if v is not None)}
    args.update(options)
    return {"name": register, "dataprotection.databases.%s" % module: args, "register": register}


def keys(server, bucket):
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def bucket_exists(server, bucket):
    return bucket in [b["Name"] for b in server.client().list_buckets()["Buckets"]]


def test_create_bucket_check_run_rerun(s3_server):
    bucket = s3_server.unique_bucket_name()
    spec = s3_server.repo_spec(bucket, prefix="prod/eu")
    run = run_tasks([s3_task(spec, "missing")])
    assert run["missing"]["failed"] and "does not exist" in run["missing"]["msg"] and "create_bucket: true" in run["missing"]["msg"]
    assert not bucket_exists(s3_server, bucket)

    run = run_tasks([s3_task(spec, "planned", create_bucket=True)], check=True)
    assert run["planned"]["changed"] and run["planned"]["plan"][0] == "create bucket %s" % bucket
    assert not bucket_exists(s3_server, bucket), "check mode created the bucket"

    run = run_tasks([s3_task(spec, "created", create_bucket=True), s3_task(spec, "again", create_bucket=True), s3_task(spec, "info", module="backup_info")])
    assert run["created"]["changed"] and run["created"]["created"], run
    assert [c["ok"] for c in run["created"]["checks"]] == [True] * 4
    assert run["created"]["location"] == "s3://%s/prod/eu" % bucket
    assert run["created"]["repo"]["secret_key"] == "********"
    assert s3_server.secret_key not in json.dumps(run.results) and s3_server.secret_key not in run.stdout
    assert run["again"]["changed"] is False
    assert run["info"]["backups"] == [] and not run["info"].get("failed")
    assert keys(s3_server, bucket) == ["prod/eu/dataprotection.json"]


def test_encrypted_backups_listed_verified_and_removed(s3_server):
    bucket = s3_server.make_bucket()
    spec = s3_server.repo_spec(bucket, encryption_key="s3-passphrase")
    run = run_tasks([s3_task(spec, "created")])
    assert run["created"]["changed"] and run["created"]["format"]["encryption"]["algorithm"] == "aes-256-gcm"
    # More than one 5 MiB part: the object goes through a parallel multipart upload and ranged reads.
    payload = b"".join(b"row %08d of the table\n" % i for i in range(700000))
    backup_id, object_key = add_backup(spec, payload=payload)
    run = run_tasks([
        s3_task(spec, "verified", module="backup_info", verify=True),
        s3_task(dict(spec, encryption_key="wrong"), "wrong", module="backup_info", verify=True),
        s3_task(spec, "refused", state="absent"),
    ])
    assert run["verified"]["verification"] == {"ok": True, "backups": 1, "objects": 1, "bytes": len(payload), "problems": []}
    assert run["verified"]["backups"][0]["backup_id"] == backup_id
    assert run["wrong"]["failed"] and "does not match" in run["wrong"]["msg"]
    assert run["refused"]["failed"] and "force: true" in run["refused"]["msg"]
    assert object_key in keys(s3_server, bucket)

    s3_server.client().put_object(Bucket=bucket, Key=object_key, Body=b"DPGCM1" + b"\0" * 100)
    run = run_tasks([s3_task(spec, "damaged", module="backup_info", verify=True)])
    assert run["damaged"]["failed"] and object_key in json.dumps(run["damaged"]["verification"]["problems"])

    run = run_tasks([s3_task(spec, "removed", state="absent", force=True), s3_task(spec, "again", state="absent")])
    assert run["removed"]["changed"] and run["removed"]["removed"]["backups"] == 1
    assert keys(s3_server, bucket) == [] and bucket_exists(s3_server, bucket)
    assert run["again"]["changed"] is False


def test_bad_credentials_and_permissions_write_nothing(s3_server):
    bucket = s3_server.make_bucket()
    ro_key, ro_secret = s3_server.make_user("reader", READ_ONLY_POLICY)
    run = run_tasks([
        s3_task(s3_server.repo_spec(bucket, secret_key="not-the-secret"), "badsecret"),
        s3_task(s3_server.repo_spec(bucket, access_key="AKIANOSUCHKEY0000000", secret_key="x"), "badkey"),
        s3_task(s3_server.repo_spec(bucket, access_key=ro_key, secret_key=ro_secret), "readonly"),
        s3_task(s3_server.repo_spec(bucket, endpoint_url="http://127.0.0.1:9"), "unreachable"),
    ])
    assert run["badsecret"]["failed"] and run["badsecret"]["error"]["kind"] == "invalid_credentials", run["badsecret"]
    assert "secret_key" in run["badsecret"]["msg"]
    assert run["badkey"]["failed"] and run["badkey"]["error"]["kind"] == "invalid_credentials"
    readonly = run["readonly"]
    assert readonly["failed"] and readonly["error"]["kind"] == "access_denied", readonly
    assert "s3:PutObject" in readonly["msg"]
    assert [(c["name"], c["ok"]) for c in readonly["checks"]][:1] == [("write", False)]
    assert run["unreachable"]["failed"] and run["unreachable"]["error"]["kind"] == "endpoint_unreachable"
    assert "endpoint_url" in run["unreachable"]["msg"]
    assert keys(s3_server, bucket) == []


def test_tls_verification(s3_tls_server):
    bucket = s3_tls_server.make_bucket()
    run = run_tasks([
        s3_task(s3_tls_server.repo_spec(bucket, ca_bundle=None), "untrusted"),
        s3_task(s3_tls_server.repo_spec(bucket), "trusted"),
    ])
    assert run["untrusted"]["failed"] and run["untrusted"]["error"]["kind"] == "tls", run["untrusted"]
    assert "ca_bundle" in run["untrusted"]["msg"] and "validate_certs" in run["untrusted"]["msg"]
    assert run["trusted"]["changed"] and run["trusted"]["created"]
