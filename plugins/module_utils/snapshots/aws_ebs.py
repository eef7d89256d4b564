# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS EBS snapshots: the ``aws_ebs`` snapshot provider.

``spec`` (the ``snapshot`` option) names the volumes either directly
(``volume_ids``) or as devices of an instance (``instance_id`` and
``device_names``, looked up in the instance's block device mappings; ``/dev/sdf``
and ``/dev/xvdf`` name the same device).  Other keys: ``region`` (else
AWS_REGION / AWS_DEFAULT_REGION), ``access_key`` / ``secret_key`` /
``session_token`` (else boto3's credential chain), ``endpoint_url``,
``ca_bundle``, ``validate_certs``, ``tags`` (a dict set on every snapshot),
``wait_timeout`` (seconds, default 1800) and the tuning key ``max_attempts``
(per request, the first included).  Keys of the ``snapshot`` option that
this provider does not know are left to the caller.

``plan`` only reads: it looks the volumes up in the region, checks their
state and asks EC2 with ``DryRun`` whether the caller may create (and warns
when it may not delete) snapshots of them, so a missing permission is found
before the database is quiesced.  The plan holds no secret: credentials given
in ``spec`` stay in this process, and ``create`` finds them through the
plan's ``credentials_ref``.  ``data_dir`` is not checked: the EC2 API cannot
see the host's mounts.

``create`` starts one ``CreateSnapshot`` per volume (tagged ``Name``,
``dataprotection.backup_id``, ``dataprotection.device``, the labels and the
plan's tags) and polls ``DescribeSnapshots`` until every snapshot is
``completed``; a snapshot in state ``error``, the deadline or any other
failure deletes every snapshot the call started before the error is raised.

Records name the region and, when one was set, the endpoint, so ``exists`` and
``delete`` need nothing else; credentials come from boto3's credential chain
unless given as keyword options (``access_key``, ``secret_key``,
``session_token``; also ``endpoint_url``, ``ca_bundle``, ``validate_certs``,
``max_attempts``).

Every botocore failure goes through :func:`ec2_error`, which names the EC2
action, the IAM permission it needs and what to change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import threading
import traceback
import uuid

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
    ConfigError,
    DataProtectionError,
    EndpointUnreachable,
    EngineError,
    InvalidCredentials,
    MissingDependency,
    ObjectNotFound,
    TLSVerificationFailed,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.repository_s3 import (
    _CREDENTIAL_CODES,
    _THROTTLE_CODES,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    _error_code,
    _text,
    _verify_setting,
    as_bool,
    as_int,
)
from ansible_collections.dataprotection.databases.plugins.module_utils.snapshots import seconds, wait_until, with_leftovers
from ansible_collections.dataprotection.databases.plugins.module_utils.timeutil import format_time

PROVIDER = "aws_ebs"
LOCAL = False
DEFAULT_WAIT_TIMEOUT = 1800
DEFAULT_MAX_ATTEMPTS = 5
# Polling DescribeSnapshots / DescribeVolumes: first at once, then after
# POLL_INTERVAL seconds, doubling up to MAX_POLL_INTERVAL.
POLL_INTERVAL = 2.0
MAX_POLL_INTERVAL = 30.0
# Polls a snapshot this run started may be missing from DescribeSnapshots before it counts as deleted.
MAX_UNSEEN = 5
# How long removing a half-made restore volume may wait for it to detach.
CLEANUP_TIMEOUT = 300
VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
IOPS_TYPES = ("gp3", "io1", "io2")
THROUGHPUT_TYPES = ("gp3",)
DEFAULT_VOLUME_TYPE = "gp3"
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_DESCRIPTION = 255
TAG_NAME = "Name"
TAG_BACKUP_ID = "dataprotection.backup_id"
TAG_DEVICE = "dataprotection.device"
TAG_RESTORED_FROM = "dataprotection.restored_from"
RESERVED_PREFIX = "dataprotection."
CHAIN = "boto3 credential chain"
FROM_SPEC = "snapshot.access_key"
CONNECTION_KEYS = ("endpoint_url", "ca_bundle", "validate_certs", "max_attempts")
OPTION_KEYS = ("access_key", "secret_key", "session_token") + CONNECTION_KEYS

_REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+-\d+$")
_VOLUME_ID = re.compile(r"^vol-[0-9a-f]{8,32}$")
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,32}$")
_SNAPSHOT_ID = re.compile(r"^snap-[0-9a-f]{8,32}$")
_DEVICE_ALIAS = re.compile(r"^/dev/(?:sd|xvd)([a-z]{1,2}\d*)$")

# EC2 action -> what it does, in words (for "cannot ...").
_ACTIONS = {
    "DescribeVolumes": "look up",
    "DescribeInstances": "look up instance",
    "DescribeSnapshots": "look up snapshot",
    "DescribeAvailabilityZones": "look up availability zone",
    "CreateSnapshot": "snapshot",
    "DeleteSnapshot": "delete snapshot",
    "CreateVolume": "create a volume from",
    "AttachVolume": "attach",
    "DetachVolume": "detach",
    "DeleteVolume": "delete volume",
}
_DENIED_CODES = ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "Forbidden")
_EC2_CREDENTIAL_CODES = tuple(_CREDENTIAL_CODES) + ("AuthFailure", "InvalidAccessKeyId.NotFound", "MissingAuthenticationToken")
_EC2_THROTTLE_CODES = tuple(_THROTTLE_CODES) + (
    "RequestLimitExceeded", "ThrottlingException", "Unavailable", "InternalFailure", "ServerInternal",
)
_LIMIT_CODES = (
    "SnapshotLimitExceeded", "ConcurrentSnapshotLimitExceeded", "SnapshotCreationPerVolumeRateExceeded",
    "VolumeLimitExceeded", "MaxIOPSLimitExceeded", "ResourceLimitExceeded", "InsufficientVolumeCapacity",
)
_INVALID_CODES = (
    "IncorrectState", "IncorrectInstanceState", "VolumeInUse", "InvalidVolume.ZoneMismatch", "InvalidParameterValue",
    "InvalidParameterCombination", "InvalidParameter", "MissingParameter", "UnknownVolumeType", "InvalidZone.NotFound",
    "InvalidAvailabilityZone", "InvalidSnapshot.InUse", "InvalidDevice.InUse", "InvalidBlockDeviceMapping", "OptInRequired",
    "UnsupportedOperation", "InvalidTagKey.Malformed",
)
_ENCODED_MESSAGE = "Encoded authorization failure message:"


# ---------------------------------------------------------------------------
# Connections


class _Connection(object):
    """Where and as whom to call EC2: a region, an endpoint, TLS settings and credentials."""

    def __init__(self, region, endpoint_url=None, ca_bundle=None, validate_certs=True, max_attempts=DEFAULT_MAX_ATTEMPTS,
                 access_key=None, secret_key=None, session_token=None):
        self.region = region
        self.endpoint_url = endpoint_url
        self.ca_bundle = ca_bundle
        self.validate_certs = validate_certs
        self.max_attempts = max_attempts
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token

    def __repr__(self):
        return "<aws_ebs connection %s %s as %s>" % (self.region, self.endpoint_url or "AWS", self.access_key or CHAIN)

    @property
    def credential_source(self):
        """Who requests are signed as, for hints."""
        if self.access_key:
            return "access key %s (snapshot.access_key)" % self.access_key
        return "the access key boto3 found in its credential chain (AWS_ACCESS_KEY_ID, AWS_PROFILE / ~/.aws/credentials, instance role)"

    def settings(self):
        """Where records keep the connection: everything but the credentials, and only what differs from the default."""
        kept = {}
        if self.endpoint_url:
            kept["endpoint_url"] = self.endpoint_url
        if self.ca_bundle:
            kept["ca_bundle"] = self.ca_bundle
        if not self.validate_certs:
            kept["validate_certs"] = False
        return kept

    def client(self):
        if not HAS_BOTO3:
            raise MissingDependency(
                "the aws_ebs snapshot provider needs the Python library boto3, which cannot be imported",
                hint="Install boto3 for the Python that runs the task (pip install boto3), "
                "e.g. with the agent role or in the execution environment",
                import_error=BOTO3_IMPORT_ERROR,
            )
        key = (self.region, self.endpoint_url, _verify_setting({"validate_certs": self.validate_certs, "ca_bundle": self.ca_bundle}),
               self.max_attempts, self.access_key, self.secret_key, self.session_token)
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _new_client(key)
                _CLIENTS[key] = client
        return client


_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()
# credentials_ref of a plan -> (access_key, secret_key, session_token); plans never hold secrets.
_CREDENTIALS = {}


def _new_client(key):
    region, endpoint_url, verify, max_attempts, access_key, secret_key, session_token = key
    config = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=DEFAULT_CONNECT_TIMEOUT,
        read_timeout=DEFAULT_READ_TIMEOUT,
        user_agent_extra="dataprotection.databases",
    )
    try:
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
        )
        return session.client("ec2", endpoint_url=endpoint_url, verify=verify, config=config)
    except (ValueError, botocore.exceptions.BotoCoreError) as exc:
        raise ConfigError(
            "cannot set up an EC2 client for region %s%s: %s" % (region, " at %s" % endpoint_url if endpoint_url else "", exc),
            hint="Check snapshot.region, snapshot.endpoint_url and the AWS_* environment variables / profile",
        )


# ---------------------------------------------------------------------------
# Input


def _region(value, name="snapshot.region"):
    region = _text(value) or _text(os.environ.get("AWS_REGION")) or _text(os.environ.get("AWS_DEFAULT_REGION"))
    if not region:
        raise ConfigError(
            "%s is required: no region is set and neither AWS_REGION nor AWS_DEFAULT_REGION is in the environment" % name,
            hint="Set %s to the region of the volumes, e.g. eu-central-1" % name,
        )
    if not _REGION.match(region):
        raise ConfigError("%s %r is not an AWS region name" % (name, region), hint="Region names look like us-east-1 or eu-central-1")
    return region


def _connection_settings(source, prefix, defaults=None):
    """endpoint_url, ca_bundle, validate_certs, max_attempts of a spec or options dict (over ``defaults``)."""
    defaults = defaults or {}
    endpoint_url = _text(source.get("endpoint_url")) if source.get("endpoint_url") is not None else defaults.get("endpoint_url")
    if endpoint_url:
        endpoint_url = endpoint_url.rstrip("/")
        if not re.match(r"^https?://[^/]+", endpoint_url):
            raise ConfigError(
                "%s.endpoint_url must be an http:// or https:// URL, got %r" % (prefix, endpoint_url),
                hint="Leave it unset for AWS; set it only for a VPC endpoint or an EC2-compatible service",
            )
    ca_bundle = _text(source.get("ca_bundle")) if source.get("ca_bundle") is not None else defaults.get("ca_bundle")
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(
            "%s.ca_bundle %s is not a file" % (prefix, ca_bundle),
            hint="Point %s.ca_bundle at a PEM file holding the CA certificate(s) that signed the endpoint's certificate" % prefix,
        )
    validate_certs = source.get("validate_certs")
    if validate_certs is None:
        validate_certs = defaults.get("validate_certs", True)
    validate_certs = as_bool(validate_certs, "%s.validate_certs" % prefix)
    max_attempts = as_int(source.get("max_attempts"), "%s.max_attempts" % prefix, defaults.get("max_attempts", DEFAULT_MAX_ATTEMPTS), 1, 50)
    return {"endpoint_url": endpoint_url, "ca_bundle": ca_bundle, "validate_certs": validate_certs, "max_attempts": max_attempts}


def _credentials(source, prefix):
    access_key = _text(source.get("access_key"))
    secret_key = _text(source.get("secret_key"))
    if bool(access_key) != bool(secret_key):
        raise ConfigError(
            "%s.access_key and %s.secret_key must be given together" % (prefix, prefix),
            hint="Set both, or neither to use the AWS credential chain (AWS_* environment variables, profile, instance role)",
        )
    return access_key, secret_key, _text(source.get("session_token")) if access_key else None


def _tags(value, name, reserved=True):
    """A dict of EC2 tags, checked against EC2's rules."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ConfigError("%s must be a dict of tag names to values, got %r" % (name, value))
    tags = {}
    for key, tag_value in value.items():
        key = str(key).strip() if key is not None else ""
        if not key or len(key) > MAX_TAG_KEY:
            raise ConfigError("%s: tag name %r must have 1 to %d characters" % (name, key, MAX_TAG_KEY))
        if key.lower().startswith("aws:"):
            raise ConfigError("%s: tag name %s is reserved by AWS (aws:)" % (name, key), hint="Choose a tag name without the aws: prefix")
        if reserved and key.startswith(RESERVED_PREFIX):
            raise ConfigError(
                "%s: tag name %s is reserved for the collection's own tags (%s...)" % (name, key, RESERVED_PREFIX),
                hint="Choose another tag name",
            )
        if isinstance(tag_value, bool):
            tag_value = "true" if tag_value else "false"
        tag_value = "" if tag_value is None else str(tag_value)
        if len(tag_value) > MAX_TAG_VALUE:
            raise ConfigError("%s: the value of tag %s is longer than %d characters" % (name, key, MAX_TAG_VALUE))
        tags[key] = tag_value
    return tags


def _id_list(value, name, pattern, example):
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError("%s must be a list, got %r" % (name, value))
    ids = []
    for item in value:
        text = _text(item)
        if not text or not pattern.match(text):
            raise ConfigError("%s: %r is not a valid id" % (name, item), hint="Ids look like %s" % example)
        if text in ids:
            raise ConfigError("%s lists %s twice" % (name, text))
        ids.append(text)
    return ids


def _device(name, label):
    text = _text(name)
    if not text:
        raise ConfigError("%s: an empty device name" % label)
    if not text.startswith("/"):
        text = "/dev/" + text
    return text


def _device_key(name):
    """The same key for /dev/sdf and /dev/xvdf (the kernel may show either for one mapping)."""
    match = _DEVICE_ALIAS.match(name or "")
    return "disk-%s" % match.group(1) if match else name


def normalize_spec(spec):
    """Validate the ``snapshot`` dict; returns the settings (with the credentials, for this module only)."""
    spec = spec or {}
    if not isinstance(spec, dict):
        raise ConfigError("snapshot must be a dict, got %r" % (spec,))
    if spec.get("volume_id") and not spec.get("volume_ids"):
        raise ConfigError("snapshot.volume_id is not an option of the aws_ebs provider", hint="Use snapshot.volume_ids, a list")
    volume_ids = _id_list(spec.get("volume_ids"), "snapshot.volume_ids", _VOLUME_ID, "vol-0123456789abcdef0")
    instance_id = _text(spec.get("instance_id"))
    device_names = spec.get("device_names")
    if isinstance(device_names, str):
        device_names = [device_names]
    device_names = [_device(name, "snapshot.device_names") for name in (device_names or [])]
    if volume_ids and (instance_id or device_names):
        raise ConfigError(
            "snapshot.volume_ids and snapshot.instance_id / snapshot.device_names name the volumes twice",
            hint="Give either volume_ids, or instance_id with device_names",
        )
    if not volume_ids:
        if not instance_id or not device_names:
            raise ConfigError(
                "snapshot names no volume: set snapshot.volume_ids, or snapshot.instance_id with snapshot.device_names",
                hint="For example volume_ids: [vol-0123456789abcdef0], or instance_id: i-0123456789abcdef0 and "
                "device_names: [/dev/xvdf] (the names of the instance's block device mappings)",
            )
        if not _INSTANCE_ID.match(instance_id):
            raise ConfigError("snapshot.instance_id %r is not an instance id" % instance_id, hint="Instance ids look like i-0123456789abcdef0")
        keys = [_device_key(name) for name in device_names]
        if len(set(keys)) != len(keys):
            raise ConfigError("snapshot.device_names names a device twice: %s" % ", ".join(device_names))
    access_key, secret_key, session_token = _credentials(spec, "snapshot")
    settings = _connection_settings(spec, "snapshot")
    settings.update({
        "region": _region(spec.get("region")),
        "volume_ids": volume_ids,
        "instance_id": None if volume_ids else instance_id,
        "device_names": [] if volume_ids else device_names,
        "access_key": access_key,
        "secret_key": secret_key,
        "session_token": session_token,
        "tags": _tags(spec.get("tags"), "snapshot.tags"),
        "wait_timeout": seconds(spec.get("wait_timeout"), "snapshot.wait_timeout", DEFAULT_WAIT_TIMEOUT),
    })
    if len(settings["tags"]) + 3 > MAX_TAGS:
        raise ConfigError(
            "snapshot.tags has %d tags: with the collection's own 3, more than EC2's %d per snapshot" % (len(settings["tags"]), MAX_TAGS)
        )
    return settings


def _connection_from_record(record, options):
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError("unknown aws_ebs options: %s" % ", ".join(unknown), hint="Known options: %s" % ", ".join(OPTION_KEYS))
    if not isinstance(record, dict) or record.get("provider") != PROVIDER:
        raise ConfigError("not an aws_ebs snapshot record: %r" % (record,))
    snapshot_id = _text(record.get("id"))
    if not snapshot_id or not _SNAPSHOT_ID.match(snapshot_id):
        raise ConfigError("the aws_ebs snapshot record has no valid snapshot id: %r" % (record,))
    region = _region(record.get("region"), "the snapshot record's region")
    settings = _connection_settings(options, "options", defaults=_connection_settings(record, "record"))
    access_key, secret_key, session_token = _credentials(options, "options")
    return snapshot_id, _Connection(region, access_key=access_key, secret_key=secret_key, session_token=session_token, **settings)


def _connection_from_plan(plan):
    if not isinstance(plan, dict) or plan.get("provider") != PROVIDER:
        raise ConfigError("not an aws_ebs snapshot plan: %r" % (plan,))
    credentials = (None, None, None)
    if plan.get("credentials") == FROM_SPEC:
        credentials = _CREDENTIALS.get(plan.get("credentials_ref"))
        if credentials is None:
            raise ConfigError(
                "the plan's credentials (snapshot.access_key) are not known in this process",
                hint="Make the plan again with aws_ebs.plan(spec) in the process that creates the snapshots: plans hold no secrets",
            )
    return _Connection(
        plan["region"], endpoint_url=plan.get("endpoint_url"), ca_bundle=plan.get("ca_bundle"),
        validate_certs=plan.get("validate_certs", True), max_attempts=plan.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
        access_key=credentials[0], secret_key=credentials[1], session_token=credentials[2],
    )


# ---------------------------------------------------------------------------
# Error mapping


def _permission_hint(action, conn, target):
    hint = "Grant ec2:%s to %s in its IAM policy" % (action, conn.credential_source)
    if action in ("CreateSnapshot", "CreateVolume"):
        hint += " (with ec2:CreateTags on the new %s: it is tagged as it is created)" % ("snapshot" if action == "CreateSnapshot" else "volume")
    if target and action not in ("DescribeVolumes", "DescribeInstances", "DescribeSnapshots", "DescribeAvailabilityZones"):
        hint += "; a policy may also limit it by resource or tag: it must allow %s" % target
    return hint


def classify_ec2_error(code, status, message, action, conn, target=None):
    """Turn an EC2 error (code, HTTP status, message) into an ``errors`` exception.

    ``action`` is the EC2 API action (``CreateSnapshot``...), ``target`` what
    it was applied to (a volume, snapshot or instance id), for the message.
    """
    code = str(code or status or "")
    status = int(status or 0)
    message = message or code
    what = "cannot %s%s in region %s" % (_ACTIONS.get(action, action), " %s" % target if target else "", conn.region)
    details = {"region": conn.region, "action": "ec2:%s" % action, "code": code, "status": status}
    if target:
        details["target"] = target
    at = " at %s" % conn.endpoint_url if conn.endpoint_url else ""

    if code in _DENIED_CODES or (status == 403 and code not in _EC2_CREDENTIAL_CODES):
        hint = _permission_hint(action, conn, target)
        if _ENCODED_MESSAGE in message:
            message, encoded = message.split(_ENCODED_MESSAGE, 1)
            details["encoded_message"] = encoded.strip()
            hint += "; aws sts decode-authorization-message --encoded-message <details.encoded_message> shows which statement denied it"
        if "kms" in message.lower():
            hint = "The volume or snapshot is encrypted with a KMS key: grant kms:CreateGrant, kms:Decrypt, kms:DescribeKey, " \
                   "kms:GenerateDataKeyWithoutPlaintext and kms:ReEncrypt* on that key to %s" % conn.credential_source
        return AccessDenied("%s: not authorized to perform ec2:%s (%s)" % (what, action, message.strip()), hint=hint, **details)
    if code in _EC2_CREDENTIAL_CODES:
        if code in ("ExpiredToken", "TokenRefreshRequired", "RequestExpired"):
            hint = "The session token has expired: get fresh temporary credentials and set snapshot.session_token (or AWS_SESSION_TOKEN)"
        elif code == "InvalidToken":
            hint = "snapshot.session_token (or AWS_SESSION_TOKEN) is not valid for these credentials; set a current one or remove it"
        elif code == "SignatureDoesNotMatch":
            hint = "The secret key does not belong to %s: check snapshot.secret_key (or AWS_SECRET_ACCESS_KEY)" % conn.credential_source
        else:
            hint = "EC2%s could not validate %s: check snapshot.access_key and snapshot.secret_key (or AWS_ACCESS_KEY_ID / " \
                   "AWS_SECRET_ACCESS_KEY, the profile), that the region %s is enabled for the account%s" % (
                       at, conn.credential_source, conn.region,
                       ", and that snapshot.endpoint_url is the service the key belongs to" if conn.endpoint_url else "")
        return InvalidCredentials("%s: %s (%s)" % (what, message, code), hint=hint, **details)
    if code in ("InvalidVolume.NotFound", "InvalidVolumeID.NotFound", "InvalidVolumeID.Malformed"):
        return ConfigError(
            "%s: the volume does not exist in region %s%s" % (what, conn.region, at),
            hint="Check the volume id; a volume of another region is not found here: set snapshot.region to the volume's region",
            **details
        )
    if code in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
        return ConfigError(
            "%s: the instance does not exist in region %s%s" % (what, conn.region, at),
            hint="Check the instance id; an instance of another region is not found here: set the region to the instance's region",
            **details
        )
    if code in ("InvalidSnapshot.NotFound", "InvalidSnapshotID.Malformed"):
        return ObjectNotFound(
            "%s: the snapshot does not exist in region %s%s" % (what, conn.region, at),
            hint="It was deleted, or belongs to another region or account",
            **details
        )
    if code in ("RequestTimeTooSkewed",):
        return EngineError(
            "%s: this host's clock differs too much from AWS's" % what,
            hint="Synchronize the clock (chrony or systemd-timesyncd); AWS signatures are valid for 5 minutes",
            **details
        )
    if code in _LIMIT_CODES:
        if code in ("ConcurrentSnapshotLimitExceeded", "SnapshotCreationPerVolumeRateExceeded"):
            hint = "The volume has too many snapshots in progress, or one was started less than 15 seconds ago; retry later"
        else:
            hint = "An EBS quota of the account was reached (Service Quotas, Amazon EBS): delete what is no longer needed or raise the quota"
        return EngineError("%s: %s (%s)" % (what, message, code), hint=hint, **details)
    if code.startswith("KMS.") or code in ("InvalidKMSKey.Id", "InvalidKMSKey.State"):
        return ConfigError(
            "%s: the KMS key of the volume or snapshot cannot be used: %s (%s)" % (what, message, code),
            hint="Check that the key exists, is enabled, and grants its use to %s" % conn.credential_source,
            **details
        )
    if code in _INVALID_CODES:
        hint = None
        if code == "InvalidSnapshot.InUse":
            hint = "A registered AMI uses the snapshot: deregister the AMI first"
        elif code == "OptInRequired":
            hint = "Enable region %s for the account, or choose an enabled region" % conn.region
        return ConfigError("%s: %s (%s)" % (what, message, code), hint=hint, **details)
    if code in _EC2_THROTTLE_CODES or status >= 500:
        return EngineError(
            "%s: EC2 kept failing after %s attempts: %s (%s)" % (what, conn.max_attempts, message, code),
            hint="EC2 is throttling this account or is unhealthy; retry later, or raise snapshot.max_attempts",
            **details
        )
    return EngineError("%s: %s (%s)" % (what, message, code), **details)


def ec2_error(exc, action, conn, target=None):
    """Translate any exception raised by boto3/botocore into an ``errors`` exception."""
    if isinstance(exc, DataProtectionError):
        return exc
    what = "cannot %s%s in region %s" % (_ACTIONS.get(action, action), " %s" % target if target else "", conn.region)
    endpoint = conn.endpoint_url or "the EC2 endpoint of region %s" % conn.region
    details = {"region": conn.region, "action": "ec2:%s" % action}
    if target:
        details["target"] = target
    if not HAS_BOTO3:
        return EngineError("%s: %s" % (what, exc), **details)
    exceptions = botocore.exceptions
    if isinstance(exc, exceptions.ClientError):
        response = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        meta = response.get("ResponseMetadata") or {}
        return classify_ec2_error(error.get("Code"), meta.get("HTTPStatusCode"), error.get("Message"), action, conn, target)
    text = str(exc)
    if isinstance(exc, exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower():
        details["endpoint_url"] = conn.endpoint_url
        if "hostname" in text.lower() or "doesn't match" in text or "not valid for" in text:
            hint = "The certificate does not name the host in snapshot.endpoint_url; use the name the certificate was issued for"
        elif conn.ca_bundle:
            hint = "The server's certificate is not signed by a CA in snapshot.ca_bundle (%s); put the CA that issued it in that file" % conn.ca_bundle
        elif "verify failed" in text.lower() or "CERTIFICATE_VERIFY_FAILED" in text:
            hint = "Set snapshot.ca_bundle to the PEM file of the CA that issued the endpoint's certificate, or validate_certs: false for testing only"
        else:
            hint = "Check that snapshot.endpoint_url uses https:// only if the endpoint serves TLS on that port"
        return TLSVerificationFailed("%s: TLS with %s failed: %s" % (what, endpoint, text), hint=hint, **details)
    if isinstance(exc, (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)):
        return InvalidCredentials(
            "%s: no usable credentials: %s" % (what, text),
            hint="Set snapshot.access_key and snapshot.secret_key, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
            "in the environment, or run on a host with an instance role",
            **details
        )
    if isinstance(exc, exceptions.CredentialRetrievalError):
        return InvalidCredentials(
            "%s: %s" % (what, text), hint="Fix the credential source named above, or set snapshot.access_key and snapshot.secret_key", **details
        )
    if isinstance(exc, (exceptions.EndpointConnectionError, exceptions.ProxyConnectionError)):
        if conn.endpoint_url:
            hint = "Check snapshot.endpoint_url (scheme, host and port), DNS, firewalls and proxies (HTTPS_PROXY / NO_PROXY)"
        else:
            hint = "Check that %s is a region EC2 serves, and DNS, firewalls and proxies (HTTPS_PROXY / NO_PROXY)" % conn.region
        return EndpointUnreachable("%s: cannot connect to %s: %s" % (what, endpoint, text), hint=hint, **details)
    if isinstance(exc, exceptions.ReadTimeoutError):
        return EndpointUnreachable(
            "%s: %s did not answer within %ss" % (what, endpoint, DEFAULT_READ_TIMEOUT), hint="Retry later", **details
        )
    if isinstance(exc, (exceptions.ConnectionError, exceptions.HTTPClientError)):
        hint = "Check the network path to the endpoint (proxies, load balancers) and retry"
        if isinstance(exc, exceptions.ConnectionClosedError) and (conn.endpoint_url or "").startswith("http://"):
            hint = "If the endpoint serves HTTPS on that port, use https:// in snapshot.endpoint_url; otherwise check the network path"
        return EndpointUnreachable("%s: the connection to %s failed: %s" % (what, endpoint, text), hint=hint, **details)
    if isinstance(exc, exceptions.ParamValidationError):
        return ConfigError("%s: %s" % (what, text), **details)
    if isinstance(exc, exceptions.BotoCoreError):
        return EngineError("%s: %s" % (what, text), **details)
    return EngineError("%s: %s: %s" % (what, type(exc).__name__, text), **details)


def _call(conn, action, target=None, **kwargs):
    """One EC2 request; failures become ``errors`` exceptions."""
    method = getattr(conn.client(), botocore.xform_name(action))
    try:
        return method(**kwargs)
    except Exception as exc:  # pylint: disable=broad-except
        raise ec2_error(exc, action, conn, target)


def _dry_run(conn, action, target=None, **kwargs):
    """Ask EC2 whether ``action`` would be allowed; raise the mapped error when it would not."""
    method = getattr(conn.client(), botocore.xform_name(action))
    try:
        method(DryRun=True, **kwargs)
    except Exception as exc:  # pylint: disable=broad-except
        if _error_code(exc)[0] == "DryRunOperation":
            return
        raise ec2_error(exc, action, conn, target)


def _tag_list(tags):
    return [{"Key": key, "Value": tags[key]} for key in sorted(tags)]


def _tag_dict(item):
    return dict((tag.get("Key"), tag.get("Value")) for tag in item.get("Tags") or ())


# ---------------------------------------------------------------------------
# Waiting


def _wait(check, timeout, describe):
    """Wait until ``check()`` is True (see snapshots.wait_until), polling EC2 from POLL_INTERVAL up to MAX_POLL_INTERVAL."""
    wait_until(check, timeout, describe, "Raise snapshot.wait_timeout (the first snapshot of a volume copies all of it; later ones only what changed)",
               POLL_INTERVAL, MAX_POLL_INTERVAL)


def _snapshot_states(conn, snapshot_ids):
    """snapshot id -> its DescribeSnapshots item, for those that exist."""
    # A filter, not SnapshotIds: a snapshot not visible yet (or any more) is missing from the answer, not an error.
    response = _call(conn, "DescribeSnapshots", ", ".join(snapshot_ids), Filters=[{"Name": "snapshot-id", "Values": list(snapshot_ids)}])
    return dict((item["SnapshotId"], item) for item in response.get("Snapshots") or ())


def _volume_states(conn, volume_ids):
    """volume id -> its DescribeVolumes item, for those that exist."""
    response = _call(conn, "DescribeVolumes", ", ".join(volume_ids), Filters=[{"Name": "volume-id", "Values": list(volume_ids)}])
    return dict((item["VolumeId"], item) for item in response.get("Volumes") or ())


# ---------------------------------------------------------------------------
# plan


def _describe_instance(conn, instance_id):
    response = _call(conn, "DescribeInstances", instance_id, InstanceIds=[instance_id])
    for reservation in response.get("Reservations") or ():
        for instance in reservation.get("Instances") or ():
            if instance.get("InstanceId") == instance_id:
                return instance
    raise ConfigError(
        "instance %s does not exist in region %s" % (instance_id, conn.region),
        hint="Check the instance id; an instance of another region is not found here: set the region to the instance's region",
    )


def _find_mapping(instance, device):
    mappings = instance.get("BlockDeviceMappings") or ()
    for mapping in mappings:
        if mapping.get("DeviceName") == device:
            return mapping
    for mapping in mappings:
        if _device_key(mapping.get("DeviceName")) == _device_key(device):
            return mapping
    return None


def _resolve_devices(conn, instance_id, device_names):
    """device name -> volume id, through the instance's block device mappings."""
    instance = _describe_instance(conn, instance_id)
    state = (instance.get("State") or {}).get("Name")
    if state in ("shutting-down", "terminated"):
        raise ConfigError("instance %s is %s" % (instance_id, state), hint="Name a running or stopped instance")
    found = []
    missing = []
    for device in device_names:
        mapping = _find_mapping(instance, device)
        if mapping is None or not (mapping.get("Ebs") or {}).get("VolumeId"):
            missing.append(device)
        else:
            found.append((mapping["Ebs"]["VolumeId"], mapping.get("DeviceName")))
    if missing:
        present = sorted(m.get("DeviceName") for m in instance.get("BlockDeviceMappings") or () if (m.get("Ebs") or {}).get("VolumeId"))
        raise ConfigError(
            "instance %s has no EBS volume at %s (its EBS devices: %s)" % (instance_id, ", ".join(missing), ", ".join(present) or "none"),
            hint="Give the names of the instance's block device mappings (/dev/sdf and /dev/xvdf name the same one); on Nitro "
            "instances the system shows EBS volumes as /dev/nvmeXn1, whose mapping name /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_* "
            "and 'nvme id-ctrl -v' show; or give snapshot.volume_ids",
            instance_id=instance_id, devices=present,
        )
    return instance, found


def _credentials_entry(settings):
    if not settings["access_key"]:
        return {"credentials": CHAIN}
    ref = uuid.uuid4().hex
    _CREDENTIALS[ref] = (settings["access_key"], settings["secret_key"], settings["session_token"])
    return {"credentials": FROM_SPEC, "credentials_ref": ref}


def check_labels(labels):
    """Refuse, before the database is quiesced, backup labels that cannot tag a snapshot."""
    return _snapshot_tags({}, labels, "check", None)


def plan(spec, data_dir=None):
    """Check, reading only, that the volumes ``spec`` names can be snapshotted; return the plan (no secrets in it)."""
    settings = normalize_spec(spec)
    conn = _Connection(
        settings["region"], endpoint_url=settings["endpoint_url"], ca_bundle=settings["ca_bundle"],
        validate_certs=settings["validate_certs"], max_attempts=settings["max_attempts"],
        access_key=settings["access_key"], secret_key=settings["secret_key"], session_token=settings["session_token"],
    )
    devices = {}
    if settings["instance_id"]:
        dummy, found = _resolve_devices(conn, settings["instance_id"], settings["device_names"])
        volume_ids = []
        for volume_id, device in found:
            if volume_id in devices:
                raise ConfigError("snapshot.device_names names volume %s twice" % volume_id)
            volume_ids.append(volume_id)
            devices[volume_id] = device
    else:
        volume_ids = settings["volume_ids"]
    described = _volume_states(conn, volume_ids)
    missing = [volume_id for volume_id in volume_ids if volume_id not in described]
    if missing:
        raise ConfigError(
            "volume%s %s do%s not exist in region %s%s" % (
                "s" if len(missing) > 1 else "", ", ".join(missing), "" if len(missing) > 1 else "es", conn.region,
                " at %s" % conn.endpoint_url if conn.endpoint_url else ""),
            hint="Check snapshot.volume_ids; a volume of another region is not found in %s: if the volume is in another region, "
            "set snapshot.region to that region" % conn.region,
            region=conn.region, missing=missing,
        )
    volumes = []
    warnings = []
    for volume_id in volume_ids:
        item = described[volume_id]
        state = item.get("State")
        if state not in ("available", "in-use"):
            raise ConfigError(
                "volume %s is %s" % (volume_id, state),
                hint="Only an available or in-use volume can be snapshotted" + ("; wait until it is created" if state == "creating" else ""),
            )
        attachments = [a for a in item.get("Attachments") or () if a.get("State") in ("attaching", "attached")]
        if settings["instance_id"]:
            instance_id = settings["instance_id"]
        else:
            instance_id = attachments[0].get("InstanceId") if attachments else None
            if attachments:
                devices[volume_id] = attachments[0].get("Device")
        volumes.append({
            "id": volume_id,
            "size_gib": item.get("Size"),
            "availability_zone": item.get("AvailabilityZone"),
            "device": devices.get(volume_id),
            "instance_id": instance_id,
            "state": state,
            "volume_type": item.get("VolumeType"),
            "encrypted": bool(item.get("Encrypted")),
        })
        _dry_run(conn, "CreateSnapshot", volume_id, VolumeId=volume_id,
                 TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": TAG_BACKUP_ID, "Value": "plan"}]}])
    try:
        _dry_run(conn, "DeleteSnapshot", None, SnapshotId="snap-00000000000000000")
    except AccessDenied as exc:
        warnings.append(
            "these credentials may not delete snapshots (ec2:DeleteSnapshot): a failed run cannot remove the snapshots it made, "
            "and retention cannot delete expired ones with them (%s)" % exc.message
        )
    except DataProtectionError:
        pass  # a dry run on a snapshot that does not exist may answer with not-found: nothing learned
    instances = sorted(set(v["instance_id"] for v in volumes if v["instance_id"]))
    if len(volumes) > 1 and len(instances) > 1:
        warnings.append("the volumes are attached to different instances (%s): their snapshots are taken one after the other"
                        % ", ".join(instances))
    result = {
        "provider": PROVIDER,
        "region": conn.region,
        "instance_id": settings["instance_id"],
        "volumes": volumes,
        "tags": settings["tags"],
        "wait_timeout": settings["wait_timeout"],
        "endpoint_url": settings["endpoint_url"],
        "ca_bundle": settings["ca_bundle"],
        "validate_certs": settings["validate_certs"],
        "max_attempts": settings["max_attempts"],
        "warnings": warnings,
    }
    result.update(_credentials_entry(settings))
    return result


# ---------------------------------------------------------------------------
# create


def _snapshot_tags(plan_tags, labels, backup_id, device):
    tags = dict(plan_tags)
    tags.update(_tags(labels, "labels", reserved=False))
    for key in (TAG_BACKUP_ID, TAG_DEVICE):
        if key in tags:
            raise ConfigError("labels: %s is set by the provider itself" % key)
    tags.setdefault(TAG_NAME, backup_id)
    tags[TAG_BACKUP_ID] = backup_id
    if device:
        tags[TAG_DEVICE] = device
    if len(tags) > MAX_TAGS:
        raise ConfigError("the snapshots would get %d tags, more than EC2's %d" % (len(tags), MAX_TAGS), hint="Set fewer snapshot.tags or labels")
    return tags


def _delete_quietly(conn, snapshot_ids):
    """Delete snapshots after a failure; return {id: problem} of those that stay."""
    left = {}
    for snapshot_id in snapshot_ids:
        try:
            _call(conn, "DeleteSnapshot", snapshot_id, SnapshotId=snapshot_id)
        except ObjectNotFound:
            continue
        except Exception as exc:  # pylint: disable=broad-except
            left[snapshot_id] = getattr(exc, "message", None) or str(exc)
    return left


def create(plan, backup_id, labels=None, timeout=None, taken=None):
    """Snapshot every volume of ``plan``; wait until all are completed; return one record per snapshot.

    An EBS snapshot holds the volume's data as of its CreateSnapshot call, so ``taken`` is called once every
    CreateSnapshot has returned, before the wait.  On any failure every snapshot this call started is deleted
    before the error is raised.
    """
    conn = _connection_from_plan(plan)
    backup_id = _text(backup_id)
    if not backup_id:
        raise ConfigError("a snapshot needs the backup id it belongs to")
    timeout = seconds(timeout, "timeout", plan.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
    prepared = []  # (volume dict, tags, description), all checked before the first snapshot is started
    for volume in plan["volumes"]:
        description = "dataprotection.databases backup %s: %s%s" % (
            backup_id, volume["id"], " (%s)" % volume["device"] if volume.get("device") else "")
        prepared.append((volume, _snapshot_tags(plan.get("tags") or {}, labels, backup_id, volume.get("device")), description))
    started = []  # (snapshot id, volume dict, response)
    try:
        for volume, tags, description in prepared:
            response = _call(
                conn, "CreateSnapshot", volume["id"], VolumeId=volume["id"], Description=description[:MAX_DESCRIPTION],
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tag_list(tags)}],
            )
            started.append((response["SnapshotId"], volume, response))
        if taken is not None:
            taken()
        items = _wait_for_snapshots(conn, [s[0] for s in started], dict((s[0], s[1]["id"]) for s in started), timeout)
    except BaseException as exc:
        left = _delete_quietly(conn, [s[0] for s in started])
        if isinstance(exc, Exception):
            raise with_leftovers(ec2_error(exc, "CreateSnapshot", conn), left, "snapshots")
        raise
    records = []
    for snapshot_id, volume, response in started:
        item = items.get(snapshot_id) or response
        record = {
            "provider": PROVIDER,
            "id": snapshot_id,
            "source": volume["id"],
            "region": conn.region,
            "device": volume.get("device"),
            "size_gib": item.get("VolumeSize") or volume.get("size_gib"),
            "availability_zone": volume.get("availability_zone"),
            "created": format_time(item.get("StartTime")) if item.get("StartTime") else None,
            "backup_id": backup_id,
        }
        record.update(conn.settings())
        records.append(record)
    return records


def _wait_for_snapshots(conn, snapshot_ids, sources, timeout):
    """Wait until every snapshot is completed; return their last DescribeSnapshots items."""
    pending = list(snapshot_ids)
    done = {}
    unseen = dict((snapshot_id, 0) for snapshot_id in snapshot_ids)

    def check():
        items = _snapshot_states(conn, pending)
        for snapshot_id in list(pending):
            item = items.get(snapshot_id)
            if item is None:
                # Not visible yet (EC2 is eventually consistent), or deleted meanwhile.
                unseen[snapshot_id] += 1
                if unseen[snapshot_id] > MAX_UNSEEN:
                    raise EngineError(
                        "snapshot %s of volume %s disappeared while it was being made" % (snapshot_id, sources.get(snapshot_id)),
                        hint="Something deleted it (a lifecycle policy, another process); run the backup again",
                        snapshot_id=snapshot_id, region=conn.region,
                    )
                continue
            state = item.get("State")
            if state == "completed":
                done[snapshot_id] = item
                pending.remove(snapshot_id)
            elif state == "error":
                raise EngineError(
                    "snapshot %s of volume %s failed: %s" % (snapshot_id, sources.get(snapshot_id), item.get("StateMessage") or "state error"),
                    hint="Check the volume (and for an encrypted one, its KMS key), then run the backup again",
                    snapshot_id=snapshot_id, volume_id=sources.get(snapshot_id), region=conn.region,
                )
        return not pending

    def describe():
        return "snapshot%s %s" % ("s" if len(pending) > 1 else "", ", ".join("%s (of %s)" % (s, sources.get(s)) for s in pending))

    _wait(check, timeout, describe)
    return done


# ---------------------------------------------------------------------------
# exists / delete


def exists(record, **options):
    """Whether the snapshot of ``record`` still exists."""
    snapshot_id, conn = _connection_from_record(record, options)
    return snapshot_id in _snapshot_states(conn, [snapshot_id])


def delete(record, **options):
    """Delete the snapshot of ``record``: True when deleted, False when it was already gone.

    When the record names its backup, a snapshot tagged for another backup (or
    not tagged) is not deleted.
    """
    snapshot_id, conn = _connection_from_record(record, options)
    expected = _text(record.get("backup_id"))
    if expected:
        item = _snapshot_states(conn, [snapshot_id]).get(snapshot_id)
        if item is None:
            return False
        tagged = _tag_dict(item).get(TAG_BACKUP_ID)
        if tagged != expected:
            raise ConfigError(
                "snapshot %s in region %s is %s, not of backup %s as its record says: not deleted" % (
                    snapshot_id, conn.region, "tagged %s=%s" % (TAG_BACKUP_ID, tagged) if tagged else "not tagged %s" % TAG_BACKUP_ID,
                    expected),
                hint="The record and the snapshot disagree; if the snapshot is really no longer needed, delete it by hand",
                snapshot_id=snapshot_id, region=conn.region, record_backup_id=expected, tagged_backup_id=tagged,
            )
    try:
        _call(conn, "DeleteSnapshot", snapshot_id, SnapshotId=snapshot_id)
    except ObjectNotFound:
        return False
    return True


# ---------------------------------------------------------------------------
# restore


def _restore_target(target, region):
    if not isinstance(target, dict):
        raise ConfigError("the restore target must be a dict, got %r" % (target,))
    zone = _text(target.get("availability_zone"))
    if not zone:
        raise ConfigError("target.availability_zone is required", hint="Set the zone of the new volume, e.g. %sa" % region)
    if not zone.startswith(region) or len(zone) <= len(region):
        raise ConfigError(
            "target.availability_zone %s is not a zone of region %s, where the snapshot is" % (zone, region),
            hint="Choose a zone of %s (e.g. %sa), or copy the snapshot to the other region first" % (region, region),
        )
    volume_type = _text(target.get("volume_type")) or DEFAULT_VOLUME_TYPE
    if volume_type not in VOLUME_TYPES:
        raise ConfigError("target.volume_type must be one of %s, got %r" % (", ".join(VOLUME_TYPES), volume_type))
    iops = as_int(target.get("iops"), "target.iops", None, 100, 256000)
    if iops is not None and volume_type not in IOPS_TYPES:
        raise ConfigError("target.iops is set, but volume type %s has no provisioned IOPS" % volume_type, hint="Use gp3, io1 or io2")
    if iops is None and volume_type in ("io1", "io2"):
        raise ConfigError("target.iops is required for volume type %s" % volume_type)
    throughput = as_int(target.get("throughput"), "target.throughput", None, 125, 2000)
    if throughput is not None and volume_type not in THROUGHPUT_TYPES:
        raise ConfigError("target.throughput is set, but only gp3 volumes have a provisioned throughput")
    instance_id = _text(target.get("instance_id"))
    device_name = _text(target.get("device_name"))
    if bool(instance_id) != bool(device_name):
        raise ConfigError("target.instance_id and target.device_name must be given together", hint="Set both to attach the new volume")
    if instance_id and not _INSTANCE_ID.match(instance_id):
        raise ConfigError("target.instance_id %r is not an instance id" % instance_id, hint="Instance ids look like i-0123456789abcdef0")
    return {
        "availability_zone": zone,
        "volume_type": volume_type,
        "iops": iops,
        "throughput": throughput,
        "tags": _tags(target.get("tags"), "target.tags"),
        "instance_id": instance_id,
        "device_name": _device(device_name, "target.device_name") if device_name else None,
        "wait_timeout": seconds(target.get("wait_timeout"), "target.wait_timeout", DEFAULT_WAIT_TIMEOUT),
    }


def _check_zone(conn, zone):
    response = _call(conn, "DescribeAvailabilityZones", zone, Filters=[{"Name": "zone-name", "Values": [zone]}])
    zones = [z for z in response.get("AvailabilityZones") or () if z.get("ZoneName") == zone]
    if not zones:
        known = _call(conn, "DescribeAvailabilityZones", None).get("AvailabilityZones") or ()
        raise ConfigError(
            "availability zone %s does not exist in region %s" % (zone, conn.region),
            hint="Zones of %s: %s" % (conn.region, ", ".join(sorted(z.get("ZoneName") for z in known)) or "none"),
        )


def _check_attachment(conn, wanted):
    instance = _describe_instance(conn, wanted["instance_id"])
    state = (instance.get("State") or {}).get("Name")
    if state not in ("running", "stopped", "pending", "stopping"):
        raise ConfigError("instance %s is %s: a volume cannot be attached to it" % (wanted["instance_id"], state))
    zone = (instance.get("Placement") or {}).get("AvailabilityZone")
    if zone and zone != wanted["availability_zone"]:
        raise ConfigError(
            "instance %s is in zone %s, not in target.availability_zone %s" % (wanted["instance_id"], zone, wanted["availability_zone"]),
            hint="A volume can only be attached to an instance of its own zone: set target.availability_zone: %s" % zone,
        )
    used = _find_mapping(instance, wanted["device_name"])
    if used is not None:
        raise ConfigError(
            "instance %s already has a volume at %s (%s)" % (wanted["instance_id"], used.get("DeviceName"), (used.get("Ebs") or {}).get("VolumeId")),
            hint="Choose a free device name such as /dev/sdg ... /dev/sdp",
        )


def _remove_volume(conn, volume_id, wanted):
    """Delete a volume a failed restore made (detaching it first when ``wanted`` attached it); return {id: problem} if it stays."""

    def detached():
        item = _volume_states(conn, [volume_id]).get(volume_id)
        return item is None or item.get("State") == "available"

    try:
        if wanted:
            try:
                _call(conn, "DetachVolume", volume_id, VolumeId=volume_id, InstanceId=wanted["instance_id"],
                      Device=wanted["device_name"], Force=True)
            except DataProtectionError as exc:
                if not detached():  # still attached, or attaching: it cannot be deleted
                    return {volume_id: exc.message}
            _wait(detached, CLEANUP_TIMEOUT, lambda: "detaching volume %s" % volume_id)
        _call(conn, "DeleteVolume", volume_id, VolumeId=volume_id)
    except ConfigError as exc:
        if exc.details.get("code") in ("InvalidVolume.NotFound",):
            return {}
        return {volume_id: exc.message}
    except Exception as exc:  # pylint: disable=broad-except
        return {volume_id: getattr(exc, "message", None) or str(exc)}
    return {}


def restore(record, target, check_mode=False, **options):
    """Make a new volume from the snapshot of ``record`` in ``target['availability_zone']``; attach it when asked.

    Returns ``volume_id``, ``availability_zone`` and ``attached_to`` (and what
    was used to make it).  In check mode nothing is made: the same dict comes
    back with ``volume_id`` None, after the read-only checks.
    """
    snapshot_id, conn = _connection_from_record(record, options)
    wanted = _restore_target(target, conn.region)
    items = _snapshot_states(conn, [snapshot_id])
    item = items.get(snapshot_id)
    if item is None:
        raise ObjectNotFound("snapshot %s does not exist in region %s" % (snapshot_id, conn.region), snapshot_id=snapshot_id)
    if item.get("State") != "completed":
        raise ConfigError(
            "snapshot %s is %s, not completed" % (snapshot_id, item.get("State")),
            hint="Restore from a completed snapshot" + ("; wait for it to complete" if item.get("State") == "pending" else ""),
        )
    _check_zone(conn, wanted["availability_zone"])
    if wanted["instance_id"]:
        _check_attachment(conn, wanted)
    tags = dict(wanted["tags"])
    tags.setdefault(TAG_NAME, "restore of %s" % (record.get("backup_id") or snapshot_id))
    tags[TAG_RESTORED_FROM] = snapshot_id
    if record.get("backup_id"):
        tags[TAG_BACKUP_ID] = record["backup_id"]
    kwargs = {"SnapshotId": snapshot_id, "AvailabilityZone": wanted["availability_zone"], "VolumeType": wanted["volume_type"],
              "TagSpecifications": [{"ResourceType": "volume", "Tags": _tag_list(tags)}]}
    if wanted["iops"] is not None:
        kwargs["Iops"] = wanted["iops"]
    if wanted["throughput"] is not None:
        kwargs["Throughput"] = wanted["throughput"]
    result = {
        "volume_id": None,
        "availability_zone": wanted["availability_zone"],
        "attached_to": wanted["instance_id"],
        "device_name": wanted["device_name"],
        "snapshot_id": snapshot_id,
        "region": conn.region,
        "volume_type": wanted["volume_type"],
        "size_gib": item.get("VolumeSize"),
        "iops": wanted["iops"],
        "throughput": wanted["throughput"],
        "tags": tags,
    }
    result.update(conn.settings())
    if check_mode:
        _dry_run(conn, "CreateVolume", snapshot_id, **kwargs)
        return result
    volume_id = None
    attach_started = False
    try:
        volume_id = _call(conn, "CreateVolume", snapshot_id, **kwargs)["VolumeId"]
        result["volume_id"] = volume_id
        _wait(lambda: _volume_reached(conn, volume_id, "available"), wanted["wait_timeout"],
              lambda: "creating volume %s from snapshot %s" % (volume_id, snapshot_id))
        if wanted["instance_id"]:
            attach_started = True
            _call(conn, "AttachVolume", volume_id, VolumeId=volume_id, InstanceId=wanted["instance_id"], Device=wanted["device_name"])
            _wait(lambda: _volume_reached(conn, volume_id, "in-use", wanted["instance_id"]), wanted["wait_timeout"],
                  lambda: "attaching volume %s to %s" % (volume_id, wanted["instance_id"]))
    except BaseException as exc:
        left = _remove_volume(conn, volume_id, wanted if attach_started else None) if volume_id else {}
        if isinstance(exc, Exception):
            raise with_leftovers(ec2_error(exc, "CreateVolume", conn, snapshot_id), left, "volume")
        raise
    return result


def remove_restored(result, **options):
    """Delete a volume ``restore`` made (detaching it first when it was attached); a sentence when that fails, else None."""
    volume_id = (result or {}).get("volume_id")
    if not volume_id:
        return None
    record = dict((k, result.get(k)) for k in ("region", "endpoint_url", "ca_bundle", "validate_certs") if result.get(k) is not None)
    record.update({"provider": PROVIDER, "id": result.get("snapshot_id")})
    conn = _connection_from_record(record, options)[1]
    wanted = {"instance_id": result["attached_to"], "device_name": result.get("device_name")} if result.get("attached_to") else None
    left = _remove_volume(conn, volume_id, wanted)
    return "; ".join("%s: %s" % item for item in left.items()) or None


def _volume_reached(conn, volume_id, state, instance_id=None):
    item = _volume_states(conn, [volume_id]).get(volume_id)
    if item is None:
        return False  # not visible yet (eventual consistency)
    current = item.get("State")
    if current == "error":
        raise EngineError("volume %s failed (state error)" % volume_id, hint="Try another availability zone or volume type", volume_id=volume_id)
    if current in ("deleting", "deleted"):
        raise EngineError("volume %s is being deleted by someone else" % volume_id, volume_id=volume_id)
    if current != state:
        return False
    if instance_id is None:
        return True
    return any(a.get("InstanceId") == instance_id and a.get("State") == "attached" for a in item.get("Attachments") or ())
