# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3Repo against a real S3 protocol server (moto in server mode, see harness/s3server.py).

The backend-independent contract is in test_repository_local.py; this file
covers what is specific to S3: multipart streaming, parallel ranged reads,
conditional writes, pagination, bucket handling and the error mapping.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from ansible_collections.dataprotection.databases.plugins.module_utils import repository_s3
from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    AccessDenied,
    BucketMissing,
    ConfigError,
    EndpointUnreachable,
    InvalidCredentials,
    MissingDependency,
    ObjectExists,
    ObjectNotFound,
    RepositoryError,
    TLSVerificationFailed,
    WrongRegion,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import open_repo
from ansible_collections.dataprotection.databases.plugins.module_utils.repository_s3 import S3Repo, s3_error
from harness.s3server import closed_port

MIB = 1024 * 1024


@pytest.fixture
def make_repo(s3_server):
    """Build S3Repos on the test server; closed at teardown."""
    repos = []

    def make(bucket=None, **overrides):
        spec = s3_server.repo_spec(bucket or s3_server.make_bucket(), **overrides)
        repo = S3Repo(spec)
        repos.append(repo)
        return repo

    yield make
    for repo in repos:
        repo.close()


def _headers(request):
    return dict((name, value.decode("latin-1") if isinstance(value, bytes) else value) for name, value in request.headers.items())


@contextlib.contextmanager
def watch(repo, operation):
    """Record the requests ``repo``'s client sends for one S3 operation."""
    seen = []
    lock = threading.Lock()

    def before_send(request, **kwargs):
        with lock:
            seen.append((threading.current_thread().name, _headers(request)))

    event = "before-send.s3.%s" % operation
    repo.client.meta.events.register(event, before_send)
    try:
        yield seen
    finally:
        repo.client.meta.events.unregister(event, before_send)


@contextlib.contextmanager
def rendezvous(repo, operation, parties, only=None):
    """Hold the first ``parties`` requests of ``operation`` until all are in flight at once.

    Serial requests would never meet: the barrier times out and the request fails.
    """
    barrier = threading.Barrier(parties, timeout=20)
    state = {"count": 0}
    lock = threading.Lock()

    def before_send(request, **kwargs):
        if only is not None and not only(request):
            return
        with lock:
            state["count"] += 1
            mine = state["count"]
        if mine <= parties:
            barrier.wait()

    event = "before-send.s3.%s" % operation
    repo.client.meta.events.register(event, before_send)
    try:
        yield state
    finally:
        repo.client.meta.events.unregister(event, before_send)


def _pending_uploads(s3_server, bucket):
    return s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def _write_in_pieces(writer, data, piece=1000003):
    for start in range(0, len(data), piece):
        writer.write(data[start:start + piece])


# ---------------------------------------------------------------------------
# Streaming writes and reads


def test_multipart_streaming_roundtrip(make_repo, s3_server):
    repo = make_repo(part_size_mb=5, max_concurrency=3)
    data = os.urandom(int(17.5 * MIB))  # three full parts and a short last one
    with watch(repo, "UploadPart") as parts, watch(repo, "PutObject") as puts:
        with rendezvous(repo, "UploadPart", 3):
            with repo.open_write("c/backups/b1/base.tar.zst") as writer:
                _write_in_pieces(writer, data)
                # The writer blocks once 3 parts are in flight, so at most 3 are pending.
                assert len(writer._pending) <= 3
    assert len(parts) == 4 and not puts
    assert len(set(name for name, dummy in parts)) > 1
    head = s3_server.client().head_object(Bucket=repo.bucket, Key="c/backups/b1/base.tar.zst")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-4")
    assert _pending_uploads(s3_server, repo.bucket) == []

    def later_range(request):
        return not _headers(request).get("Range", "").startswith("bytes=0-")

    with watch(repo, "GetObject") as gets:
        with rendezvous(repo, "GetObject", 3, only=later_range):
            handle = repo.open_read("c/backups/b1/base.tar.zst")
            try:
                assert handle.size == len(data)
                assert len(handle._futures) <= 3
                got = []
                while True:
                    chunk = handle.read(777777)
                    if not chunk:
                        break
                    assert len(handle._futures) <= 3
                    got.append(chunk)
            finally:
                handle.close()
    assert b"".join(got) == data
    ranges = sorted(headers["Range"] for dummy, headers in gets)
    assert len(ranges) == 4
    assert "bytes=0-5242879" in ranges and "bytes=15728640-18350079" in ranges


def test_small_object_is_one_put(make_repo, s3_server):
    repo = make_repo(part_size_mb=5)
    with watch(repo, "PutObject") as puts, watch(repo, "CreateMultipartUpload") as creates:
        repo.put_bytes("small", b"hello")
        repo.put_bytes("exactly-one-part", b"x" * 5 * MIB)
    assert len(puts) == 2 and not creates
    with watch(repo, "GetObject") as gets:
        assert repo.get_bytes("small") == b"hello"
        assert repo.get_bytes("exactly-one-part") == b"x" * 5 * MIB
    assert len(gets) == 2


def test_aws_checksum_mode_multipart(make_repo):
    """The checksum settings used against AWS (CRC32 on every part) also round-trip."""
    repo = make_repo(part_size_mb=5, max_concurrency=2, request_checksum_calculation="when_supported")
    assert repo.checksum_algorithm == "CRC32"
    data = os.urandom(11 * MIB)
    repo.put_bytes("k", data)
    assert repo.get_bytes("k") == data


def test_abort_leaves_no_object_and_no_upload(make_repo, s3_server):
    repo = make_repo(part_size_mb=5, max_concurrency=2)
    writer = repo.open_write("c/big")
    _write_in_pieces(writer, os.urandom(16 * MIB))
    assert writer._upload_id is not None
    assert len(_pending_uploads(s3_server, repo.bucket)) == 1
    writer.abort()
    assert repo.stat("c/big") is None
    assert _pending_uploads(s3_server, repo.bucket) == []

    with pytest.raises(ValueError):
        with repo.open_write("c/big") as writer:
            _write_in_pieces(writer, os.urandom(12 * MIB))
            raise ValueError("the dump tool died")
    assert repo.stat("c/big") is None
    assert _pending_uploads(s3_server, repo.bucket) == []


def test_no_clobber_single_and_multipart(make_repo, s3_server):
    repo = make_repo(part_size_mb=5, max_concurrency=2)
    repo.put_bytes("m", b"original", overwrite=False)
    with pytest.raises(ObjectExists):
        repo.put_bytes("m", b"replacement", overwrite=False)
    with pytest.raises(ObjectExists):
        repo.put_bytes("m", os.urandom(11 * MIB), overwrite=False)
    assert repo.get_bytes("m") == b"original"
    assert _pending_uploads(s3_server, repo.bucket) == []

    # Another writer creates the object while a multipart upload runs:
    # the conditional complete refuses and the upload is aborted.
    writer = repo.open_write("race", overwrite=False)
    _write_in_pieces(writer, os.urandom(11 * MIB))
    s3_server.client().put_object(Bucket=repo.bucket, Key="race", Body=b"the other writer")
    with pytest.raises(ObjectExists):
        writer.commit()
    assert repo.get_bytes("race") == b"the other writer"
    assert _pending_uploads(s3_server, repo.bucket) == []


def test_no_clobber_without_conditional_writes(make_repo):
    """Stores that reject If-None-Match: the writer checks for the object first."""
    repo = make_repo(part_size_mb=5)
    repo.conditional_writes = False
    with watch(repo, "PutObject") as puts:
        assert repo.put_if_absent("lease", b"a") is True
        assert repo.put_if_absent("lease", b"b") is False
    assert all("If-None-Match" not in headers for dummy, headers in puts)
    assert repo.get_bytes("lease") == b"a"


def test_put_if_absent_uses_conditional_put(make_repo):
    repo = make_repo()
    with watch(repo, "PutObject") as puts:
        assert repo.put_if_absent("c/locks/backup", b"host-a") is True
        assert repo.put_if_absent("c/locks/backup", b"host-b") is False
    assert [headers.get("If-None-Match") for dummy, headers in puts] == ["*", "*"]
    assert repo.get_bytes("c/locks/backup") == b"host-a"


def test_object_replaced_while_reading(make_repo, s3_server):
    repo = make_repo(part_size_mb=5, max_concurrency=1)
    repo.put_bytes("k", os.urandom(16 * MIB))
    handle = repo.open_read("k")
    try:
        s3_server.client().put_object(Bucket=repo.bucket, Key="k", Body=b"new content")
        with pytest.raises(RepositoryError, match="replaced while it was being read"):
            while handle.read(MIB):
                pass
    finally:
        handle.close()


def test_close_mid_read(make_repo):
    repo = make_repo(part_size_mb=5, max_concurrency=3)
    repo.put_bytes("k", os.urandom(21 * MIB))
    handle = repo.open_read("k")
    assert len(handle.read(100)) == 100
    handle.close()
    assert handle.closed
    repo.close()


# ---------------------------------------------------------------------------
# Listing and deleting


def test_many_keys_list_and_delete(make_repo, s3_server):
    repo = make_repo(prefix="r")
    client = s3_server.client()
    keys = ["c/logs/wal/%05d" % number for number in range(1010)] + ["c/backups/b%d/manifest.json" % n for n in range(3)]

    def put(key):
        client.put_object(Bucket=repo.bucket, Key="r/" + key, Body=b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    started = time.monotonic()
    listed = list(repo.list("c/logs/"))
    assert len(listed) == 1010 and listed[0].key == "c/logs/wal/00000"
    assert sum(1 for dummy in repo.list()) == 1013
    assert repo.list_dirs("c") == ["backups", "logs"]
    assert repo.list_dirs("c/backups/") == ["b0", "b1", "b2"]
    with watch(repo, "DeleteObjects") as batches:
        assert repo.delete_many(info.key for info in listed) == 1010
    assert len(batches) == 2
    assert sorted(info.key for info in repo.list()) == ["c/backups/b%d/manifest.json" % n for n in range(3)]
    assert time.monotonic() - started < 30


def test_prefix_is_normalized(make_repo, s3_server):
    repo = make_repo(prefix="/team/prod/")
    repo.put_bytes("c/x", b"1")
    assert s3_server.client().get_object(Bucket=repo.bucket, Key="team/prod/c/x")["Body"].read() == b"1"
    assert repo.location() == "s3://%s/team/prod" % repo.bucket
    # Objects next to the prefix are not part of the repository.
    s3_server.client().put_object(Bucket=repo.bucket, Key="team/prod2/y", Body=b"2")
    s3_server.client().put_object(Bucket=repo.bucket, Key="team/prod/", Body=b"")
    assert [info.key for info in repo.list()] == ["c/x"]
    assert repo.list_dirs() == ["c"]


def test_delete_many_reports_failures(s3_server, make_repo):
    bucket = s3_server.make_bucket()
    writer = make_repo(bucket)
    writer.put_bytes("a", b"1")
    key, secret = s3_server.make_user(
        "no-delete",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
        },
    )
    reader = make_repo(bucket, access_key=key, secret_key=secret)
    with pytest.raises(AccessDenied) as info:
        reader.delete_many(["a"])
    assert "s3:DeleteObject" in info.value.hint
    assert writer.get_bytes("a") == b"1"


# ---------------------------------------------------------------------------
# Buckets


def test_missing_bucket(s3_server, make_repo):
    repo = make_repo(s3_server.unique_bucket_name())
    assert repo.location_exists() is False
    with pytest.raises(BucketMissing) as info:
        repo.put_bytes("k", b"x")
    assert repo.bucket in info.value.message
    assert "create_bucket" in info.value.hint
    with pytest.raises(BucketMissing):
        repo.open_read("k")
    with pytest.raises(BucketMissing):
        list(repo.list())
    with pytest.raises(BucketMissing):
        repo.list_dirs()


def test_create_bucket_in_region(s3_server, make_repo):
    repo = make_repo(s3_server.unique_bucket_name(), region="eu-west-1")
    assert repo.create_location() is True
    assert repo.create_location() is False
    location = s3_server.client(region_name="eu-west-1").get_bucket_location(Bucket=repo.bucket)
    assert location["LocationConstraint"] == "eu-west-1"
    repo.put_bytes("k", b"x")
    assert repo.get_bytes("k") == b"x"


# ---------------------------------------------------------------------------
# Credentials, permissions, network, TLS


def test_wrong_secret_key(s3_server, make_repo):
    bucket = s3_server.make_bucket()
    repo = make_repo(bucket, secret_key="not-the-secret")
    with pytest.raises(InvalidCredentials) as info:
        repo.put_bytes("k", b"x")
    assert "SignatureDoesNotMatch" in info.value.message
    assert "secret_key" in info.value.hint
    # HEAD answers carry no error code; the backend finds out what is wrong.
    with pytest.raises(InvalidCredentials):
        repo.location_exists()
    with pytest.raises(InvalidCredentials):
        repo.stat("k")


def test_unknown_access_key(s3_server, make_repo):
    repo = make_repo(s3_server.make_bucket(), access_key="AKIAUNKNOWN000000000", secret_key="whatever")
    with pytest.raises(InvalidCredentials) as info:
        list(repo.list())
    assert "AKIAUNKNOWN000000000" in info.value.hint
    assert "access_key" in info.value.hint


def test_access_denied_names_the_permission(s3_server, make_repo):
    bucket = s3_server.make_bucket()
    make_repo(bucket).put_bytes("c/k", b"x")
    key, secret = s3_server.make_user(
        "read-only",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
        },
    )
    repo = make_repo(bucket, access_key=key, secret_key=secret)
    assert repo.get_bytes("c/k") == b"x"
    assert [info.key for info in repo.list()] == ["c/k"]
    with pytest.raises(AccessDenied) as info:
        repo.put_bytes("c/new", b"x")
    assert "s3:PutObject" in info.value.hint
    assert "arn:aws:s3:::%s/*" % bucket in info.value.hint
    assert key in info.value.hint


def test_unreachable_endpoint_fails_fast(s3_server):
    spec = s3_server.repo_spec("any-bucket", endpoint_url="http://127.0.0.1:%d" % closed_port(), connect_timeout=1, max_attempts=1)
    repo = S3Repo(spec)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable) as info:
        repo.location_exists()
    assert time.monotonic() - started < 5
    assert "endpoint_url" in info.value.hint
    with pytest.raises(EndpointUnreachable):
        repo.put_bytes("k", b"x")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification(s3_tls_server):
    bucket = s3_tls_server.make_bucket()
    good = S3Repo(s3_tls_server.repo_spec(bucket))
    good.put_bytes("k", b"over tls")
    assert good.get_bytes("k") == b"over tls"

    untrusted = S3Repo(s3_tls_server.repo_spec(bucket, ca_bundle=None, max_attempts=1))
    with pytest.raises(TLSVerificationFailed) as info:
        untrusted.location_exists()
    assert "ca_bundle" in info.value.hint and "validate_certs" in info.value.hint

    unchecked = S3Repo(s3_tls_server.repo_spec(bucket, ca_bundle=None, validate_certs=False))
    assert unchecked.get_bytes("k") == b"over tls"


def test_plain_http_to_tls_port(s3_tls_server):
    spec = s3_tls_server.repo_spec("b", endpoint_url=s3_tls_server.endpoint_url.replace("https:", "http:"), max_attempts=1)
    with pytest.raises(EndpointUnreachable) as info:
        S3Repo(spec).location_exists()
    assert "https://" in info.value.hint


def test_https_to_plain_port(s3_server):
    spec = s3_server.repo_spec("b", endpoint_url=s3_server.endpoint_url.replace("http:", "https:"), max_attempts=1)
    with pytest.raises(TLSVerificationFailed) as info:
        S3Repo(spec).location_exists()
    assert "http://" in info.value.hint


# ---------------------------------------------------------------------------
# Construction, description, client cache


def test_describe_masks_secrets(s3_server):
    repo = S3Repo(s3_server.repo_spec("b", session_token="token", prefix="p/"))
    described = repo.describe()
    assert described["secret_key"] == "********"
    assert described["session_token"] == "********"
    assert described["access_key"] == s3_server.access_key
    assert described["prefix"] == "p"
    assert repo.location() == "s3://b/p"
    assert S3Repo(s3_server.repo_spec("b")).location() == "s3://b"


def test_defaults_and_validation():
    repo = S3Repo({"type": "s3", "bucket": "b", "region": "eu-central-1"})
    assert repo.spec["part_size_mb"] == 16
    assert repo.spec["max_concurrency"] == 4
    assert repo.spec["validate_certs"] is True
    assert repo.spec["addressing_style"] == "auto"
    assert repo.describe()["secret_key"] is None
    for bad in (
        {"type": "s3"},
        {"type": "s3", "bucket": "b/with/path"},
        {"type": "s3", "bucket": "b", "part_size_mb": 4},
        {"type": "s3", "bucket": "b", "max_concurrency": 0},
        {"type": "s3", "bucket": "b", "addressing_style": "dns"},
        {"type": "s3", "bucket": "b", "access_key": "AKIA"},
        {"type": "s3", "bucket": "b", "endpoint_url": "minio:9000"},
        {"type": "s3", "bucket": "b", "ca_bundle": "/nonexistent/ca.pem"},
        {"type": "s3", "bucket": "b", "prefix": "a/../b"},
    ):
        with pytest.raises(ConfigError):
            S3Repo(bad)


def test_client_cache(s3_server):
    one = S3Repo(s3_server.repo_spec("b1"))
    two = S3Repo(s3_server.repo_spec("b2", prefix="x"))
    other = S3Repo(s3_server.repo_spec("b1", max_concurrency=7))
    assert one.client is two.client
    assert one.client is not other.client
    config = other.client.meta.config
    assert config.max_pool_connections >= 7 + 2
    assert config.retries == {"mode": "standard", "total_max_attempts": 10}
    assert config.s3 == {"addressing_style": "path"}


def test_open_repo_builds_s3(s3_server):
    assert isinstance(open_repo(s3_server.repo_spec("b")), S3Repo)


def test_missing_boto3(monkeypatch):
    monkeypatch.setattr(repository_s3, "HAS_BOTO3", False)
    monkeypatch.setattr(repository_s3, "BOTO3_IMPORT_ERROR", "ImportError: No module named 'boto3'")
    with pytest.raises(MissingDependency) as info:
        S3Repo({"type": "s3", "bucket": "b"})
    assert "boto3" in info.value.hint


def test_missing_object(make_repo):
    repo = make_repo()
    with pytest.raises(ObjectNotFound) as info:
        repo.open_read("c/none")
    assert "s3://%s/c/none" % repo.bucket in info.value.message


# ---------------------------------------------------------------------------
# Error mapping for conditions the test server cannot produce


SPEC = {"type": "s3", "bucket": "backups", "prefix": "p", "region": "us-east-1", "access_key": "AKIAEXAMPLE", "endpoint_url": None}


def client_error(code, status, message="", operation="HeadBucket", headers=None, **extra):
    error = {"Code": code, "Message": message}
    error.update(extra)
    return ClientError(
        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}}, operation
    )


def test_map_permanent_redirect():
    exc = client_error(
        "PermanentRedirect", 301, "The bucket you are attempting to access must be addressed using the specified endpoint.",
        operation="ListObjectsV2", headers={"x-amz-bucket-region": "eu-west-1"},
        Endpoint="backups.s3.eu-west-1.amazonaws.com", Bucket="backups",
    )
    error = s3_error(exc, "list", SPEC)
    assert isinstance(error, WrongRegion)
    assert "eu-west-1" in error.hint and "repo.region" in error.hint
    # HEAD: only the status and the header.
    error = s3_error(client_error("301", 301, "Moved Permanently", headers={"x-amz-bucket-region": "ap-south-1"}), "head_bucket", SPEC)
    assert isinstance(error, WrongRegion) and "ap-south-1" in error.hint


def test_map_authorization_header_malformed():
    exc = client_error(
        "AuthorizationHeaderMalformed",
        400,
        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'",
        operation="PutObject",
        Region="eu-central-1",
    )
    error = s3_error(exc, "put", SPEC, "p/k")
    assert isinstance(error, WrongRegion) and "eu-central-1" in error.hint


def test_map_location_constraint():
    exc = client_error(
        "IllegalLocationConstraintException",
        400,
        "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
        operation="CreateBucket",
    )
    error = s3_error(exc, "create_bucket", dict(SPEC, region="eu-west-1"))
    assert isinstance(error, WrongRegion) and "repo.region" in error.hint


def test_map_credentials_and_access():
    assert isinstance(s3_error(NoCredentialsError(), "put", SPEC, "p/k"), InvalidCredentials)
    assert "AWS_ACCESS_KEY_ID" in s3_error(NoCredentialsError(), "put", SPEC, "p/k").hint
    expired = s3_error(client_error("ExpiredToken", 400, "The provided token has expired."), "list", SPEC)
    assert isinstance(expired, InvalidCredentials) and "session_token" in expired.hint
    denied = s3_error(client_error("AccessDenied", 403, "Access Denied", operation="GetObject"), "get", SPEC, "p/k")
    assert isinstance(denied, AccessDenied) and "s3:GetObject" in denied.hint and "arn:aws:s3:::backups/p/*" in denied.hint
    head = s3_error(client_error("403", 403, "Forbidden"), "head_bucket", SPEC)
    assert isinstance(head, AccessDenied) and "s3:ListBucket" in head.hint and "wrong" in head.hint
    kms = s3_error(client_error("AccessDenied", 403, "User is not authorized to perform: kms:GenerateDataKey"), "put", SPEC, "p/k")
    assert "kms:GenerateDataKey" in kms.hint


def test_map_network_errors():
    ssl = SSLError(endpoint_url="https://minio:9000", error="[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate")
    assert isinstance(s3_error(ssl, "head_bucket", SPEC), TLSVerificationFailed)
    assert isinstance(s3_error(EndpointConnectionError(endpoint_url="http://x:1"), "put", SPEC, "p/k"), EndpointUnreachable)
    assert isinstance(s3_error(ConnectTimeoutError(endpoint_url="http://x:1"), "put", SPEC, "p/k"), EndpointUnreachable)
    timeout = s3_error(ReadTimeoutError(endpoint_url="http://x:1"), "get", SPEC, "p/k")
    assert isinstance(timeout, EndpointUnreachable) and "read_timeout" in timeout.hint


def test_map_other_errors():
    assert isinstance(s3_error(client_error("NoSuchBucket", 404, "The specified bucket does not exist"), "put", SPEC, "p/k"), BucketMissing)
    assert isinstance(s3_error(client_error("NoSuchKey", 404, "no"), "get", SPEC, "p/k"), ObjectNotFound)
    upload = s3_error(client_error("NoSuchUpload", 404, "gone"), "put", SPEC, "p/k")
    assert upload.kind == "repository" and "lifecycle" in upload.hint
    slow = s3_error(client_error("SlowDown", 503, "Please reduce your request rate."), "put", SPEC, "p/k")
    assert slow.kind == "repository" and "max_concurrency" in slow.hint
    skew = s3_error(client_error("RequestTimeTooSkewed", 403, "skewed"), "put", SPEC, "p/k")
    assert "clock" in skew.hint.lower()
    unknown = s3_error(client_error("Weird", 400, "odd"), "put", SPEC, "p/k")
    assert unknown.kind == "repository" and "s3://backups/p/k" in unknown.message


def test_bucket_check_fails_fast_on_a_dead_endpoint(s3_server):
    """location_exists uses a short retry budget even when max_attempts is large."""
    spec = s3_server.repo_spec("any-bucket", endpoint_url="http://127.0.0.1:%d" % closed_port(), connect_timeout=1)
    repo = S3Repo(spec)
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable):
        repo.location_exists()
    assert time.monotonic() - started < 10
