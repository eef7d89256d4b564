# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 repositories: AWS S3 and S3-compatible stores (MinIO, Ceph RGW, OSS, COS, GCS interop).

Objects live in a bucket under an optional prefix.  Writes stream: bytes are
cut into parts of ``part_size_mb``; an object that fits in one part is a
single PUT, a larger one a multipart upload whose parts are sent by a small
thread pool and which is completed only after its last part, so nothing is
ever visible under the final key before the whole object is stored.  Reads
fetch ranges of ``part_size_mb`` in parallel with a bounded read-ahead.

Every botocore/boto3 failure goes through :func:`s3_error`, which turns it
into an exception of ``errors`` that says what failed on which bucket/key and
what the user can do about it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import io
import os
import re
import threading
import traceback

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

try:
    import boto3
    import botocore.config
    import botocore.exceptions

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    boto3 = None
    botocore = None
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.dataprotection.databases.plugins.module_utils.errors import (
    AccessDenied,
    BucketMissing,
    ConfigError,
    DataProtectionError,
    EndpointUnreachable,
    InvalidCredentials,
    MissingDependency,
    ObjectExists,
    ObjectNotFound,
    RepositoryError,
    TLSVerificationFailed,
    WrongRegion,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repository import (
    READ_CHUNK,
    ObjectInfo,
    ObjectWriter,
    Repo,
    check_key,
)

MIB = 1024 * 1024
DEFAULT_PART_SIZE_MB = 16
MIN_PART_SIZE_MB = 5  # S3's minimum for every part but the last
MAX_PART_SIZE_MB = 5 * 1024
MAX_PARTS = 10000
# Parts get larger as an upload grows so that very large streams fit in
# MAX_PARTS: part n is part_size * (1 + (n - 1) // PARTS_PER_STEP).
PARTS_PER_STEP = 2000
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_READ_TIMEOUT = 60
DEFAULT_MAX_ATTEMPTS = 10
# Checking the bucket is the first request a task makes: a wrong endpoint
# should fail in seconds, not after the full retry budget.
CHECK_ATTEMPTS = 3
DELETE_BATCH = 1000
READ_ATTEMPTS = 3
MASK = "********"
ADDRESSING_STYLES = ("auto", "path", "virtual")
CHECKSUM_MODES = ("when_supported", "when_required")
US_EAST_1 = "us-east-1"

CREDENTIALS_HINT_CHAIN = (
    "No access_key is set in repo, so boto3's credential chain was used "
    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE and ~/.aws/credentials, "
    "or an instance/pod role)"
)

# What an operation does, in words, and the IAM permission it needs.
_OPERATIONS = {
    "put": ("write", "s3:PutObject"),
    "get": ("read", "s3:GetObject"),
    "head": ("look up", "s3:GetObject"),
    "list": ("list", "s3:ListBucket"),
    "delete": ("delete", "s3:DeleteObject"),
    "abort": ("abort the upload of", "s3:AbortMultipartUpload"),
    "head_bucket": ("check bucket", "s3:ListBucket"),
    "create_bucket": ("create bucket", "s3:CreateBucket"),
}
_BUCKET_OPERATIONS = ("list", "head_bucket", "create_bucket")

_CREDENTIAL_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
)
_REGION_CODES = (
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
    "IncompatibleLocationConstraint",
    "InvalidLocationConstraint",
    "InvalidRegion",
)
_ACCESS_CODES = ("AccessDenied", "AllAccessDisabled", "AccountProblem", "Forbidden")
_THROTTLE_CODES = ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling", "503")
_NOT_IMPLEMENTED_CODES = ("NotImplemented", "501")


# ---------------------------------------------------------------------------
# Spec


def as_bool(value, label):
    """An option's boolean from a bool or its usual spellings; ``label`` names the option in the error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n"):
        return False
    raise ConfigError("%s must be a boolean, got %r" % (label, value))


def as_int(value, label, default, minimum, maximum, hint=None):
    """An option's integer within [minimum, maximum], ``default`` when unset; ``label`` names the option in the error."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ConfigError("%s must be an integer, got %r" % (label, value), hint=hint)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError("%s must be an integer, got %r" % (label, value), hint=hint)
    if number < minimum or number > maximum:
        raise ConfigError("%s must be between %d and %d, got %d" % (label, minimum, maximum, number), hint=hint)
    return number


def _text(value):
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def normalize_spec(spec):
    """Validate an S3 ``repo`` dict and fill in defaults.

    Besides the documented keys, four tuning keys are accepted:
    ``connect_timeout`` and ``read_timeout`` (seconds), ``max_attempts`` (per
    request, the first attempt included; retries use the 'standard' mode) and ``request_checksum_calculation``
    (``when_supported`` or ``when_required``; by default ``when_supported``
    for AWS and ``when_required`` for other endpoints, which often reject the
    newer checksum headers).
    """
    spec = spec or {}
    bucket = _text(spec.get("bucket"))
    if not bucket:
        raise ConfigError(
            "repo.bucket is required when repo.type is s3",
            hint="Set repo.bucket to the bucket name, and repo.prefix to a path inside it if the repository should not use the whole bucket",
        )
    if "/" in bucket or bucket.startswith("s3:"):
        raise ConfigError(
            "repo.bucket must be a bare bucket name, got %r" % bucket,
            hint="Put the path inside the bucket in repo.prefix, e.g. bucket: backups, prefix: prod/db",
        )
    prefix = (spec.get("prefix") or "").strip().strip("/")
    if prefix:
        for part in prefix.split("/"):
            if part in ("", ".", ".."):
                raise ConfigError(
                    "repo.prefix %r has an empty, '.' or '..' component" % spec.get("prefix"),
                    hint="Use a plain path like 'prod/postgres'",
                )
    endpoint_url = _text(spec.get("endpoint_url"))
    if endpoint_url:
        endpoint_url = endpoint_url.rstrip("/")
        if not re.match(r"^https?://[^/]+", endpoint_url):
            raise ConfigError(
                "repo.endpoint_url must be an http:// or https:// URL, got %r" % endpoint_url,
                hint="For example https://minio.example.com:9000; leave it unset for AWS S3",
            )
    addressing_style = _text(spec.get("addressing_style")) or "auto"
    if addressing_style not in ADDRESSING_STYLES:
        raise ConfigError(
            "repo.addressing_style must be one of %s, got %r" % (", ".join(ADDRESSING_STYLES), addressing_style),
            hint="Use 'path' for MinIO and most self-hosted stores, 'virtual' for OSS, 'auto' for AWS",
        )
    access_key = _text(spec.get("access_key"))
    secret_key = _text(spec.get("secret_key"))
    if bool(access_key) != bool(secret_key):
        raise ConfigError(
            "repo.access_key and repo.secret_key must be given together",
            hint="Set both, or neither to use the AWS credential chain (AWS_* environment variables, profile, instance role)",
        )
    ca_bundle = _text(spec.get("ca_bundle"))
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(
            "repo.ca_bundle %s is not a file" % ca_bundle,
            hint="Point repo.ca_bundle at a PEM file holding the CA certificate(s) that signed the endpoint's certificate",
        )
    validate_certs = spec.get("validate_certs")
    validate_certs = True if validate_certs is None else as_bool(validate_certs, "repo.validate_certs")
    checksum_mode = _text(spec.get("request_checksum_calculation"))
    if checksum_mode and checksum_mode not in CHECKSUM_MODES:
        raise ConfigError(
            "repo.request_checksum_calculation must be one of %s, got %r" % (", ".join(CHECKSUM_MODES), checksum_mode)
        )
    return {
        "type": "s3",
        "bucket": bucket,
        "prefix": prefix,
        "endpoint_url": endpoint_url,
        "region": _text(spec.get("region")),
        "access_key": access_key,
        "secret_key": secret_key,
        "session_token": _text(spec.get("session_token")),
        "ca_bundle": ca_bundle,
        "validate_certs": validate_certs,
        "addressing_style": addressing_style,
        "part_size_mb": as_int(
            spec.get("part_size_mb"), "repo.part_size_mb", DEFAULT_PART_SIZE_MB, MIN_PART_SIZE_MB, MAX_PART_SIZE_MB,
            "S3 needs parts of at least %d MiB; larger parts use more memory (part_size_mb x (max_concurrency + 1))"
            % MIN_PART_SIZE_MB,
        ),
        "max_concurrency": as_int(
            spec.get("max_concurrency"), "repo.max_concurrency", DEFAULT_CONCURRENCY, 1, MAX_CONCURRENCY,
            "The number of parts transferred in parallel",
        ),
        "connect_timeout": as_int(spec.get("connect_timeout"), "repo.connect_timeout", DEFAULT_CONNECT_TIMEOUT, 1, 3600, None),
        "read_timeout": as_int(spec.get("read_timeout"), "repo.read_timeout", DEFAULT_READ_TIMEOUT, 1, 3600, None),
        "max_attempts": as_int(spec.get("max_attempts"), "repo.max_attempts", DEFAULT_MAX_ATTEMPTS, 1, 50, None),
        "request_checksum_calculation": checksum_mode,
    }


def mask_spec(spec):
    """A copy of a normalized spec that is safe to show."""
    shown = dict(spec)
    for name in ("secret_key", "session_token"):
        if shown.get(name):
            shown[name] = MASK
    return shown


# ---------------------------------------------------------------------------
# Error mapping


def _target(spec, key=None):
    bucket = spec.get("bucket") or "?"
    if key:
        return "s3://%s/%s" % (bucket, key)
    return "s3://%s" % bucket


def _credential_source(spec):
    """Who the request was signed as, for hints."""
    if spec.get("access_key"):
        return "access key %s (repo.access_key)" % spec["access_key"]
    return "the access key boto3 found in its credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE / ~/.aws/credentials, instance role)"


def _expected_region(message, headers, error):
    region = (headers or {}).get("x-amz-bucket-region") or (error or {}).get("Region")
    if region:
        return region
    match = re.search(r"expecting '([a-z0-9-]+)'", message or "")
    if match:
        return match.group(1)
    endpoint = (error or {}).get("Endpoint") or ""
    match = re.search(r"s3[.-]([a-z]{2}-[a-z]+-\d)\.", endpoint)
    if match:
        return match.group(1)
    return None


def _resource_arn(spec, op, key):
    if op in _BUCKET_OPERATIONS:
        return "arn:aws:s3:::%s" % spec.get("bucket")
    if spec.get("prefix"):
        return "arn:aws:s3:::%s/%s/*" % (spec.get("bucket"), spec["prefix"])
    return "arn:aws:s3:::%s/*" % spec.get("bucket")


def classify_s3_error(code, status, message, op, spec, key=None, headers=None, error=None):
    """Turn an S3 error (code, HTTP status, message) into an ``errors`` exception.

    ``op`` is one of the keys of ``_OPERATIONS``; ``key`` is the full S3 key.
    Also used for the per-key errors of a DeleteObjects response.
    """
    verb, permission = _OPERATIONS.get(op, (op, None))
    target = _target(spec, key if op not in _BUCKET_OPERATIONS else None)
    code = str(code or status or "")
    status = int(status or 0)
    message = message or code
    what = "cannot %s %s" % (verb, target)
    details = {"bucket": spec.get("bucket"), "code": code, "status": status}
    if key:
        details["key"] = key
    bucket = spec.get("bucket")

    if code == "NoSuchBucket" or (status == 404 and op in _BUCKET_OPERATIONS and code in ("404", "NotFound")):
        return BucketMissing(
            "%s: bucket %s does not exist%s" % (what, bucket, " at %s" % spec["endpoint_url"] if spec.get("endpoint_url") else ""),
            hint="Create the bucket, or set create_bucket: true on the backup_repo task; check repo.bucket%s for typos"
            % (" and repo.endpoint_url" if spec.get("endpoint_url") else ""),
            **details
        )
    if code == "NoSuchUpload":
        return RepositoryError(
            "%s: the multipart upload disappeared before it was completed" % what,
            hint="Another process or a bucket lifecycle rule (AbortIncompleteMultipartUpload) aborted it; "
            "make the rule's delay longer than a backup takes, then run the task again",
            **details
        )
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return ObjectNotFound("%s: no such object" % what, **details)
    if code == "RequestTimeTooSkewed":
        return RepositoryError(
            "%s: this host's clock differs too much from the server's" % what,
            hint="Synchronize the clock (chrony or systemd-timesyncd); S3 signatures are valid for 15 minutes",
            **details
        )
    if code in _CREDENTIAL_CODES:
        if code in ("ExpiredToken", "TokenRefreshRequired"):
            hint = "The session token has expired: get fresh temporary credentials and set repo.session_token (or AWS_SESSION_TOKEN)"
        elif code == "InvalidToken":
            hint = "repo.session_token (or AWS_SESSION_TOKEN) is not valid for these credentials; set a current one or remove it"
        elif code == "SignatureDoesNotMatch":
            hint = "The secret key does not belong to %s: check repo.secret_key (or AWS_SECRET_ACCESS_KEY)" % _credential_source(spec)
        else:
            hint = "The store does not know %s: check repo.access_key (or AWS_ACCESS_KEY_ID)%s" % (
                _credential_source(spec),
                ", and that repo.endpoint_url is the store the key belongs to" if spec.get("endpoint_url") else "",
            )
        return InvalidCredentials("%s: %s (%s)" % (what, message, code), hint=hint, **details)
    region = _expected_region(message, headers, error)
    configured = spec.get("region") or US_EAST_1
    if (
        code in _REGION_CODES
        or status == 301
        or (code == "AuthorizationHeaderMalformed")
        or (status == 400 and region and region != configured)
    ):
        if code in ("IllegalLocationConstraintException", "IncompatibleLocationConstraint", "InvalidLocationConstraint"):
            hint = (
                "repo.region (%s) does not match the region of the endpoint; set repo.region to the endpoint's region"
                % (spec.get("region") or "unset")
            )
        elif region:
            hint = "Bucket %s is in region %s: set repo.region: %s" % (bucket, region, region)
        else:
            hint = "Set repo.region to the bucket's region (the AWS console shows it; aws s3api get-bucket-location --bucket %s)" % bucket
        details["bucket_region"] = region
        return WrongRegion(
            "%s: the bucket is not in region %s (%s)" % (what, spec.get("region") or "us-east-1 (default)", code), hint=hint, **details
        )
    if code in ("PreconditionFailed", "412") or status == 412:
        if op == "get":
            return RepositoryError(
                "%s: the object was replaced while it was being read" % what,
                hint="Another process rewrote it; read it again",
                **details
            )
        return ObjectExists("%s: the object already exists" % what, **details)
    if code == "ConditionalRequestConflict":
        return ObjectExists(
            "%s: another writer is creating %s at the same time" % (what, target),
            hint="Only one writer can create it; retry if the other writer fails",
            **details
        )
    if code in _ACCESS_CODES or status == 403:
        if "kms" in message.lower():
            hint = "The bucket encrypts with SSE-KMS: grant kms:GenerateDataKey and kms:Decrypt on its key to %s" % _credential_source(spec)
        else:
            hint = "Grant %s on %s to %s in the IAM or bucket policy" % (
                permission or "the permission for this action",
                _resource_arn(spec, op, key),
                _credential_source(spec),
            )
            if op in ("head_bucket", "create_bucket"):
                hint += "; if the bucket belongs to another account, choose another repo.bucket"
            if code == "403":
                # HEAD responses carry no error code.
                hint += "; S3 also answers 403 when the access key or secret key is wrong"
        return AccessDenied("%s: access denied (%s)" % (what, message), hint=hint, **details)
    if code == "InvalidBucketName":
        return ConfigError(
            "%s: %r is not a valid bucket name" % (what, bucket),
            hint="Bucket names are 3-63 lowercase letters, digits, dots and hyphens",
            **details
        )
    if code == "BucketAlreadyExists":
        return ConfigError(
            "%s: the name %s is taken by another account" % (what, bucket),
            hint="Bucket names are global: choose another repo.bucket",
            **details
        )
    if code == "SecondLevelDomainForbidden":
        return ConfigError(
            "%s: the store requires virtual-hosted-style addressing" % what,
            hint="Set repo.addressing_style: virtual",
            **details
        )
    if code == "InvalidObjectState":
        return RepositoryError(
            "%s: the object is archived (Glacier / Deep Archive storage class)" % what,
            hint="Restore it from the archive tier first, or exclude the repository prefix from archiving lifecycle rules",
            **details
        )
    if code in ("QuotaExceeded", "XMinioStorageFull", "EntityTooLarge", "XMinioAdminBucketQuotaExceeded"):
        return RepositoryError(
            "%s: the store refused the object: %s (%s)" % (what, message, code),
            hint="Free space or raise the bucket's quota",
            **details
        )
    if code in _NOT_IMPLEMENTED_CODES or status == 501:
        return RepositoryError(
            "%s: the store does not implement this request (%s)" % (what, message),
            hint="The S3-compatible store lacks a feature this collection needs; upgrade it or use another store",
            **details
        )
    if code in _THROTTLE_CODES or status >= 500:
        return RepositoryError(
            "%s: the store kept failing after %s attempts: %s (%s)" % (what, spec.get("max_attempts", DEFAULT_MAX_ATTEMPTS), message, code),
            hint="The store is overloaded or unhealthy; lower repo.max_concurrency or retry later",
            **details
        )
    return RepositoryError("%s: %s (%s)" % (what, message, code), **details)


def s3_error(exc, op, spec, key=None):
    """Translate any exception raised by boto3/botocore into an ``errors`` exception.

    The one place where S3 failures get their message and hint.  ``op`` is
    one of the keys of ``_OPERATIONS``, ``spec`` the normalized repo spec and
    ``key`` the full S3 key (None for bucket-level operations).
    """
    if isinstance(exc, DataProtectionError):
        return exc
    verb = _OPERATIONS.get(op, (op, None))[0]
    target = _target(spec, key if op not in _BUCKET_OPERATIONS else None)
    what = "cannot %s %s" % (verb, target)
    endpoint = spec.get("endpoint_url") or "the AWS S3 endpoint"
    details = {"bucket": spec.get("bucket")}
    if key:
        details["key"] = key
    if not HAS_BOTO3:
        return RepositoryError("%s: %s" % (what, exc), **details)
    exceptions = botocore.exceptions
    if isinstance(exc, exceptions.ClientError):
        response = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        meta = response.get("ResponseMetadata") or {}
        return classify_s3_error(
            error.get("Code"),
            meta.get("HTTPStatusCode"),
            error.get("Message"),
            op,
            spec,
            key=key,
            headers=meta.get("HTTPHeaders"),
            error=error,
        )
    text = str(exc)
    if isinstance(exc, exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        details["endpoint_url"] = spec.get("endpoint_url")
        if "certificate verify failed" in text.lower() or "CERTIFICATE_VERIFY_FAILED" in text:
            if "hostname" in text.lower() or "doesn't match" in text or "not valid for" in text:
                hint = "The certificate does not name the host in repo.endpoint_url; use the name the certificate was issued for"
            elif spec.get("ca_bundle"):
                hint = (
                    "The server's certificate is not signed by a CA in repo.ca_bundle (%s); put the CA that issued it in that file, "
                    "or set validate_certs: false for testing only" % spec["ca_bundle"]
                )
            else:
                hint = (
                    "Set repo.ca_bundle to the PEM file of the CA that issued the server's certificate (without it the "
                    "system CAs, or AWS_CA_BUNDLE when set, are used), or validate_certs: false for testing only"
                )
            return TLSVerificationFailed("%s: TLS certificate verification failed for %s: %s" % (what, endpoint, text), hint=hint, **details)
        return TLSVerificationFailed(
            "%s: TLS handshake with %s failed: %s" % (what, endpoint, text),
            hint="Check that repo.endpoint_url uses https:// only if the endpoint serves TLS on that port (http:// otherwise)",
            **details
        )
    if isinstance(exc, (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)):
        return InvalidCredentials(
            "%s: no usable credentials: %s" % (what, text),
            hint="Set repo.access_key and repo.secret_key, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
            "in the environment, or run on a host with an instance role",
            **details
        )
    if isinstance(exc, exceptions.CredentialRetrievalError):
        return InvalidCredentials(
            "%s: %s" % (what, text),
            hint="Fix the credential source named above, or set repo.access_key and repo.secret_key",
            **details
        )
    if isinstance(exc, (exceptions.EndpointConnectionError, exceptions.ProxyConnectionError)):
        hint = "Check repo.endpoint_url (scheme, host and port), DNS, firewalls and proxies (HTTPS_PROXY / NO_PROXY)"
        if spec.get("addressing_style") != "path" and spec.get("endpoint_url"):
            hint += "; if the store does not support virtual-hosted-style bucket names, set repo.addressing_style: path"
        return EndpointUnreachable("%s: cannot connect to %s: %s" % (what, endpoint, text), hint=hint, **details)
    if isinstance(exc, exceptions.ReadTimeoutError):
        return EndpointUnreachable(
            "%s: %s did not answer within %ss" % (what, endpoint, spec.get("read_timeout", DEFAULT_READ_TIMEOUT)),
            hint="The store is slow or overloaded; lower repo.max_concurrency or raise repo.read_timeout",
            **details
        )
    if isinstance(exc, (exceptions.ConnectionError, exceptions.HTTPClientError, exceptions.IncompleteReadError)):
        hint = "Check the network path to the endpoint (proxies, load balancers closing idle connections) and retry"
        if isinstance(exc, exceptions.ConnectionClosedError) and (spec.get("endpoint_url") or "").startswith("http://"):
            hint = "If the endpoint serves HTTPS on that port, use https:// in repo.endpoint_url; otherwise check the network path"
        return EndpointUnreachable("%s: the connection to %s failed: %s" % (what, endpoint, text), hint=hint, **details)
    if isinstance(exc, exceptions.ParamValidationError):
        return ConfigError("%s: %s" % (what, text), hint="Check repo.bucket and repo.prefix", **details)
    if isinstance(exc, exceptions.BotoCoreError):
        return RepositoryError("%s: %s" % (what, text), **details)
    return RepositoryError("%s: %s: %s" % (what, type(exc).__name__, text), **details)


def _error_code(exc):
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
        response = getattr(exc, "response", None) or {}
        code = str((response.get("Error") or {}).get("Code") or "")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        return code, int(status)
    return None, 0


def _not_implemented(exc):
    code, status = _error_code(exc)
    return code in _NOT_IMPLEMENTED_CODES or status == 501


# ---------------------------------------------------------------------------
# Clients

_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()


def _verify_setting(spec):
    if not spec["validate_certs"]:
        return False
    return spec["ca_bundle"] or None


def _checksum_mode(spec):
    if spec.get("request_checksum_calculation"):
        return spec["request_checksum_calculation"]
    # Many S3-compatible stores reject the checksum headers/trailers newer
    # botocore sends by default; send checksums only where required there.
    return "when_required" if spec.get("endpoint_url") else "when_supported"


def _client_settings(spec):
    return (
        spec["endpoint_url"],
        spec["region"],
        spec["access_key"],
        spec["secret_key"],
        spec["session_token"],
        _verify_setting(spec),
        spec["addressing_style"],
        spec["max_concurrency"] * 2 + 2,
        spec["connect_timeout"],
        spec["read_timeout"],
        spec["max_attempts"],
        _checksum_mode(spec),
    )


def _new_client(settings):
    (endpoint_url, region, access_key, secret_key, session_token, verify, addressing_style,
     pool, connect_timeout, read_timeout, max_attempts, checksum_mode) = settings
    options = {
        "retries": {"mode": "standard", "total_max_attempts": max_attempts},
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "max_pool_connections": pool,
        "s3": {"addressing_style": addressing_style},
        "signature_version": "s3v4",
        "user_agent_extra": "dataprotection.databases",
        "request_checksum_calculation": checksum_mode,
        "response_checksum_validation": checksum_mode,
    }
    try:
        config = botocore.config.Config(**options)
    except TypeError:
        # botocore before 1.36 has no checksum settings (and sends no default checksums).
        del options["request_checksum_calculation"], options["response_checksum_validation"]
        config = botocore.config.Config(**options)
    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region,
    )
    return session.client("s3", endpoint_url=endpoint_url, verify=verify, config=config)


def get_client(spec):
    """The shared client for a normalized spec: one per distinct connection setting."""
    settings = _client_settings(spec)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(settings)
        if client is None:
            try:
                client = _new_client(settings)
            except (ValueError, botocore.exceptions.BotoCoreError) as exc:
                raise ConfigError(
                    "cannot set up an S3 client for %s: %s" % (spec.get("endpoint_url") or "AWS S3", exc),
                    hint="Check repo.endpoint_url, repo.region and the AWS_* environment variables / profile",
                )
            _CLIENTS[settings] = client
    return client


def _shutdown(executor):
    try:
        executor.shutdown(wait=True, cancel_futures=True)
    except TypeError:  # Python < 3.9
        executor.shutdown(wait=True)


# ---------------------------------------------------------------------------
# Writer


class _S3Writer(ObjectWriter):
    """Streams one object: a single PUT when it fits in a part, else a multipart upload."""

    def __init__(self, repo, key, overwrite):
        super(_S3Writer, self).__init__()
        self.repo = repo
        self.key = key
        self.s3key = repo.full_key(key)
        self.overwrite = overwrite
        self._buffer = bytearray()
        self._upload_id = None
        self._part_number = 0
        self._pending = {}
        self._parts = {}

    # Sizes -------------------------------------------------------------

    def _part_size(self, number):
        return self.repo.part_size * (1 + (number - 1) // PARTS_PER_STEP)

    # Public ------------------------------------------------------------

    def write(self, data):
        if self.closed:
            raise RepositoryError("write to %s after it was committed or aborted" % self.repo.target(self.key))
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        length = len(view)
        try:
            while len(view):
                limit = self._part_size(self._part_number + 1)
                if len(self._buffer) >= limit:
                    # More data follows a full buffer: it is not the last part.
                    self._send_part()
                    limit = self._part_size(self._part_number + 1)
                room = limit - len(self._buffer)
                self._buffer += view[:room]
                view = view[room:]
        except BaseException as exc:  # pylint: disable=broad-except
            self._fail(exc)
        self.size += length
        return length

    def commit(self):
        if self.closed:
            return self.size
        try:
            if self._upload_id is None:
                self._put_single()
            else:
                if self._buffer:
                    self._send_part()
                self._collect(0)
                self._complete()
        except BaseException as exc:  # pylint: disable=broad-except
            self._fail(exc)
        self.closed = True
        self._buffer = bytearray()
        return self.size

    def abort(self):
        if self.closed:
            return
        self.closed = True
        self._buffer = bytearray()
        pending = list(self._pending.values())
        self._pending = {}
        for future in pending:
            future.cancel()
        # Parts still on the wire must land before the abort, or they could
        # outlive it as orphaned parts.
        futures_wait(pending)
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            self.repo.client.abort_multipart_upload(Bucket=self.repo.bucket, Key=self.s3key, UploadId=upload_id)
        except Exception as exc:  # pylint: disable=broad-except
            if _error_code(exc)[0] == "NoSuchUpload":
                return
            raise s3_error(exc, "abort", self.repo.spec, self.s3key)

    # Internals ---------------------------------------------------------

    def _fail(self, exc):
        """Abort after a failure, then raise it as an ``errors`` exception (interrupts unchanged)."""
        try:
            self.abort()
        except Exception:  # pylint: disable=broad-except
            pass
        if isinstance(exc, Exception):
            raise s3_error(exc, "put", self.repo.spec, self.s3key)
        raise exc

    def _conditional(self):
        if self.overwrite or not self.repo.conditional_writes:
            return {}
        return {"IfNoneMatch": "*"}

    def _refuse_if_exists(self):
        """Fallback for stores without conditional writes.

        There is a window between this check and the write in which another
        writer can create the object, which is then replaced: without
        If-None-Match support on the server a no-clobber write cannot be atomic.
        """
        if self.repo.stat(self.key) is not None:
            raise ObjectExists("object %s already exists" % self.repo.target(self.key))

    def _conditional_call(self, method, **kwargs):
        """Call ``method`` with If-None-Match: * when not overwriting, falling back to a check first."""
        if not self.overwrite and not self.repo.conditional_writes:
            self._refuse_if_exists()
        try:
            return method(**dict(kwargs, **self._conditional()))
        except Exception as exc:  # pylint: disable=broad-except
            if self.overwrite or not self.repo.conditional_writes or not _not_implemented(exc):
                raise
        self.repo.conditional_writes = False
        self._refuse_if_exists()
        return method(**kwargs)

    def _put_single(self):
        self._conditional_call(
            self.repo.client.put_object, Bucket=self.repo.bucket, Key=self.s3key, Body=bytes(self._buffer)
        )

    def _start(self):
        if not self.overwrite:
            # Fail before uploading anything when the object is already there;
            # the conditional complete below is what makes it safe.
            self._refuse_if_exists()
        kwargs = {"Bucket": self.repo.bucket, "Key": self.s3key}
        if self.repo.checksum_algorithm:
            kwargs["ChecksumAlgorithm"] = self.repo.checksum_algorithm
        self._upload_id = self.repo.client.create_multipart_upload(**kwargs)["UploadId"]

    def _send_part(self):
        if self._upload_id is None:
            self._start()
        # At most max_concurrency parts in flight: wait for a slot first.
        self._collect(self.repo.max_concurrency - 1)
        self._part_number += 1
        if self._part_number > MAX_PARTS:
            raise ConfigError(
                "%s is larger than %d parts allow" % (self.repo.target(self.key), MAX_PARTS),
                hint="Raise repo.part_size_mb",
            )
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._pending[self._part_number] = self.repo.executor("upload").submit(
            self._upload_part, self._upload_id, self._part_number, data
        )

    def _upload_part(self, upload_id, number, data):
        kwargs = {"Bucket": self.repo.bucket, "Key": self.s3key, "UploadId": upload_id, "PartNumber": number, "Body": data}
        algorithm = self.repo.checksum_algorithm
        if algorithm:
            kwargs["ChecksumAlgorithm"] = algorithm
        response = self.repo.client.upload_part(**kwargs)
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if algorithm and response.get("Checksum" + algorithm):
            part["Checksum" + algorithm] = response["Checksum" + algorithm]
        return part

    def _collect(self, limit):
        """Wait until at most ``limit`` parts are in flight; raise the first part failure."""
        while len(self._pending) > limit:
            futures_wait(list(self._pending.values()), return_when=FIRST_COMPLETED)
            for number in sorted(self._pending):
                future = self._pending[number]
                if future.done():
                    del self._pending[number]
                    self._parts[number] = future.result()

    def _complete(self):
        parts = [self._parts[number] for number in sorted(self._parts)]
        self._conditional_call(
            self.repo.client.complete_multipart_upload,
            Bucket=self.repo.bucket,
            Key=self.s3key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._upload_id = None


# ---------------------------------------------------------------------------
# Reader


def _parse_total(content_range):
    # "bytes 0-16777215/104857600"
    match = re.match(r"^bytes \d+-\d+/(\d+)$", (content_range or "").strip())
    return int(match.group(1)) if match else None


class _S3Reader(io.RawIOBase):
    """Reads one object: ranged GETs of part_size fetched ahead in parallel, bytes in order.

    ``read(n)`` returns exactly ``n`` bytes until the end of the object.
    """

    def __init__(self, repo, key):
        super(_S3Reader, self).__init__()
        self.repo = repo
        self.key = key
        self.s3key = repo.full_key(key)
        self._chunk = b""
        self._offset = 0
        self._body = None
        self._futures = collections.deque()
        self._next = 0
        self._size = None
        self._etag = None
        self._finished = False
        self._open()

    # Fetching ----------------------------------------------------------

    def _open(self):
        part = self.repo.part_size
        try:
            response = self.repo.client.get_object(Bucket=self.repo.bucket, Key=self.s3key, Range="bytes=0-%d" % (part - 1))
        except Exception as exc:  # pylint: disable=broad-except
            if _error_code(exc)[0] != "InvalidRange":
                raise s3_error(exc, "get", self.repo.spec, self.s3key)
            # An empty object has no byte 0: some stores answer 416.
            response = self._call_get()
        total = _parse_total(response.get("ContentRange"))
        self._etag = response.get("ETag")
        if total is None:
            # The whole object came back (Range ignored, or the empty-object retry): stream it.
            self._body = response["Body"]
            self._size = response.get("ContentLength")
            return
        self._size = total
        first = min(part, total)
        # Start the read-ahead before taking in the first part.
        self._next = first
        self._schedule()
        try:
            self._chunk = self._read_body(response, first)
        except _ShortRead:
            self._chunk = self._fetch(0, first)

    def _call_get(self, **kwargs):
        try:
            return self.repo.client.get_object(Bucket=self.repo.bucket, Key=self.s3key, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            raise s3_error(exc, "get", self.repo.spec, self.s3key)

    def _read_body(self, response, length):
        body = response["Body"]
        try:
            data = body.read()
        except Exception as exc:  # pylint: disable=broad-except
            if not HAS_BOTO3 or not isinstance(exc, botocore.exceptions.BotoCoreError):
                raise
            raise _ShortRead(exc)
        finally:
            body.close()
        if len(data) != length:
            raise _ShortRead("got %d of %d bytes" % (len(data), length))
        return data

    def _fetch(self, start, length):
        """Fetch one range (in a worker thread), retrying a broken transfer."""
        problem = None
        for dummy in range(READ_ATTEMPTS):
            kwargs = {"Range": "bytes=%d-%d" % (start, start + length - 1)}
            if self._etag:
                kwargs["IfMatch"] = self._etag
            response = self._call_get(**kwargs)
            try:
                return self._read_body(response, length)
            except _ShortRead as exc:
                problem = exc
        raise RepositoryError(
            "cannot read %s: the transfer of bytes %d-%d kept breaking off (%s)"
            % (self.repo.target(self.key), start, start + length - 1, problem),
            hint="Check the network path to the endpoint and retry",
        )

    def _schedule(self):
        while self._next < self._size and len(self._futures) < self.repo.max_concurrency:
            length = min(self.repo.part_size, self._size - self._next)
            self._futures.append(self.repo.executor("download").submit(self._fetch, self._next, length))
            self._next += length

    def _advance(self):
        """Make the next piece of the object current; False at the end."""
        if self._body is not None:
            try:
                data = self._body.read(READ_CHUNK)
            except Exception as exc:  # pylint: disable=broad-except
                raise s3_error(exc, "get", self.repo.spec, self.s3key)
            if not data:
                self._body.close()
                self._body = None
                return False
        else:
            if not self._futures:
                return False
            future = self._futures.popleft()
            self._schedule()
            try:
                data = future.result()
            except Exception as exc:  # pylint: disable=broad-except
                raise s3_error(exc, "get", self.repo.spec, self.s3key)
        self._chunk = data
        self._offset = 0
        return True

    # File interface ----------------------------------------------------

    def readable(self):
        return True

    @property
    def size(self):
        return self._size

    def read(self, size=-1):
        if self._finished:
            raise ValueError("read from a closed object reader")
        if size is None or size < 0:
            return self.readall()
        pieces = []
        wanted = size
        while wanted > 0:
            if self._offset >= len(self._chunk):
                if not self._advance():
                    break
            piece = self._chunk[self._offset:self._offset + wanted]
            self._offset += len(piece)
            wanted -= len(piece)
            pieces.append(piece)
        return b"".join(pieces)

    def readall(self):
        pieces = []
        while True:
            piece = self.read(READ_CHUNK * 8)
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        if self._finished:
            return
        self._finished = True
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._chunk = b""
        if self._body is not None:
            self._body.close()
            self._body = None
        super(_S3Reader, self).close()


class _ShortRead(Exception):
    """A response body broke off or had the wrong length."""


# ---------------------------------------------------------------------------
# Repository


class S3Repo(Repo):
    """A repository in an S3 bucket (AWS or an S3-compatible store), under an optional prefix."""

    type = "s3"

    def __init__(self, spec):
        if not HAS_BOTO3:
            raise MissingDependency(
                "the S3 repository needs the Python library boto3, which cannot be imported",
                hint="Install boto3 for the Python that runs the task (pip install boto3), "
                "e.g. with the agent role or in the execution environment",
                import_error=BOTO3_IMPORT_ERROR,
            )
        self.spec = normalize_spec(spec)
        self.bucket = self.spec["bucket"]
        self.prefix = self.spec["prefix"]
        self.part_size = self.spec["part_size_mb"] * MIB
        self.max_concurrency = self.spec["max_concurrency"]
        self.client = get_client(self.spec)
        self.checksum_algorithm = "CRC32" if self._sends_checksums() else None
        # None: unknown yet; False once the store rejected If-None-Match.
        self.conditional_writes = self._supports_conditional_writes()
        self._executors = {}
        self._lock = threading.Lock()

    def _sends_checksums(self):
        return getattr(self.client.meta.config, "request_checksum_calculation", None) == "when_supported"

    def _supports_conditional_writes(self):
        """True when this botocore knows the If-None-Match parameter of PutObject."""
        try:
            members = self.client.meta.service_model.operation_model("PutObject").input_shape.members
            complete = self.client.meta.service_model.operation_model("CompleteMultipartUpload").input_shape.members
        except Exception:  # pylint: disable=broad-except
            return False
        return "IfNoneMatch" in members and "IfNoneMatch" in complete

    # Naming --------------------------------------------------------------

    def full_key(self, key):
        check_key(key)
        return "%s/%s" % (self.prefix, key) if self.prefix else key

    def _full_prefix(self, prefix):
        if prefix.startswith("/"):
            raise ConfigError("invalid key prefix %r" % prefix)
        if not self.prefix:
            return prefix
        return "%s/%s" % (self.prefix, prefix)

    def _relative(self, s3key):
        if self.prefix:
            return s3key[len(self.prefix) + 1:]
        return s3key

    def target(self, key=None):
        return _target(self.spec, self.full_key(key) if key else None)

    def error(self, exc, op, key=None):
        return s3_error(exc, op, self.spec, self.full_key(key) if key else None)

    def describe(self):
        return mask_spec(self.spec)

    def location(self):
        if self.prefix:
            return "s3://%s/%s" % (self.bucket, self.prefix)
        return "s3://%s" % self.bucket

    # Threads -------------------------------------------------------------

    def executor(self, kind):
        with self._lock:
            executor = self._executors.get(kind)
            if executor is None:
                executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="s3-%s" % kind)
                self._executors[kind] = executor
            return executor

    def close(self):
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            _shutdown(executor)

    # Bucket --------------------------------------------------------------

    def _probe(self, op, exc, call, key=None):
        """HEAD answers carry no error code: repeat as a GET/list to learn what went wrong."""
        code, status = _error_code(exc)
        if code not in ("400", "403") and status not in (400, 403):
            return s3_error(exc, op, self.spec, key)
        try:
            call()
        except Exception as probe_exc:  # pylint: disable=broad-except
            explained = s3_error(probe_exc, op, self.spec, key)
            if isinstance(explained, (InvalidCredentials, AccessDenied, WrongRegion, BucketMissing)):
                return explained
        return s3_error(exc, op, self.spec, key)

    def location_exists(self):
        client = get_client(dict(self.spec, max_attempts=min(CHECK_ATTEMPTS, self.spec["max_attempts"])))
        try:
            client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # pylint: disable=broad-except
            code, status = _error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound") or status == 404:
                return False
            raise self._probe(
                "head_bucket", exc, lambda: client.list_objects_v2(Bucket=self.bucket, MaxKeys=1, Prefix=self.prefix)
            )
        return True

    def create_location(self):
        if self.location_exists():
            return False
        kwargs = {"Bucket": self.bucket}
        # The region requests are signed for (repo.region, else AWS_REGION / profile).
        region = self.spec["region"] or self.client.meta.region_name
        if region and region not in (US_EAST_1, "aws-global"):
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            if _error_code(exc)[0] == "BucketAlreadyOwnedByYou":
                return False
            raise s3_error(exc, "create_bucket", self.spec)
        return True

    # Objects -------------------------------------------------------------

    def open_write(self, key, overwrite=True):
        check_key(key)
        return _S3Writer(self, key, overwrite)

    def open_read(self, key):
        check_key(key)
        return _S3Reader(self, key)

    def stat(self, key):
        s3key = self.full_key(key)
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=s3key)
        except Exception as exc:  # pylint: disable=broad-except
            code, status = _error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound") or status == 404:
                return None
            raise self._probe("head", exc, lambda: self.client.get_object(Bucket=self.bucket, Key=s3key, Range="bytes=0-0"), s3key)
        modified = response.get("LastModified")
        return ObjectInfo(key, response.get("ContentLength", 0), modified.timestamp() if modified else None)

    def list(self, prefix=""):
        full = self._full_prefix(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents") or ():
                    s3key = item["Key"]
                    if s3key.endswith("/"):
                        continue  # a "folder" marker made by a console
                    modified = item.get("LastModified")
                    yield ObjectInfo(self._relative(s3key), item.get("Size", 0), modified.timestamp() if modified else None)
        except Exception as exc:  # pylint: disable=broad-except
            raise s3_error(exc, "list", self.spec)

    def list_dirs(self, prefix=""):
        base = prefix.strip("/")
        full = self._full_prefix(base + "/") if base else (self.prefix + "/" if self.prefix else "")
        names = set()
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                for common in page.get("CommonPrefixes") or ():
                    name = common["Prefix"][len(full):].rstrip("/")
                    if name:
                        names.add(name)
        except Exception as exc:  # pylint: disable=broad-except
            raise s3_error(exc, "list", self.spec)
        return sorted(names)

    def delete(self, key):
        s3key = self.full_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=s3key)
        except Exception as exc:  # pylint: disable=broad-except
            code, status = _error_code(exc)
            if code in ("NoSuchKey", "404") or (status == 404 and code != "NoSuchBucket"):
                return
            raise s3_error(exc, "delete", self.spec, s3key)

    def list_partial(self, prefix=""):
        full = self._full_prefix(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for upload in page.get("Uploads") or ():
                    started = upload.get("Initiated")
                    yield {"key": self._relative(upload["Key"]), "id": upload["UploadId"],
                           "started_epoch": started.timestamp() if started else None, "size": None}
        except Exception as exc:  # pylint: disable=broad-except
            raise s3_error(exc, "list", self.spec)

    def discard_partial(self, partial):
        s3key = self.full_key(partial["key"])
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=s3key, UploadId=partial["id"])
        except Exception as exc:  # pylint: disable=broad-except
            code, status = _error_code(exc)
            if code == "NoSuchUpload" or status == 404:
                return
            raise s3_error(exc, "delete", self.spec, s3key)

    def delete_many(self, keys):
        keys = list(keys)
        s3keys = [self.full_key(key) for key in keys]
        for start in range(0, len(s3keys), DELETE_BATCH):
            batch = s3keys[start:start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": s3key} for s3key in batch], "Quiet": True}
                )
            except Exception as exc:  # pylint: disable=broad-except
                if not _not_implemented(exc):
                    raise s3_error(exc, "delete", self.spec, batch[0])
                # Stores without multi-object delete (GCS interop): one by one.
                for key in keys[start:start + DELETE_BATCH]:
                    self.delete(key)
                continue
            failures = [item for item in response.get("Errors") or () if item.get("Code") != "NoSuchKey"]
            if failures:
                first = failures[0]
                error = classify_s3_error(first.get("Code"), None, first.get("Message"), "delete", self.spec, key=first.get("Key"))
                details = dict(error.details, failed_keys=[self._relative(item.get("Key", "")) for item in failures[:20]])
                raise type(error)(
                    "%s (%d of the %d objects in this batch could not be deleted)" % (error.message, len(failures), len(batch)),
                    hint=error.hint,
                    **details
                )
        return len(keys)
