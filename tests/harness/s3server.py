# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real S3 protocol server for tests.

``moto`` runs in server mode as a separate process listening on loopback, so
the code under test talks HTTP(S) to it exactly as it would to MinIO or AWS:
nothing is patched inside the test process.

The server checks request signatures: after start-up an IAM user with full
rights is created and authentication is switched on, so a wrong secret key is
rejected with ``SignatureDoesNotMatch`` and an unknown key with
``InvalidAccessKeyId``.  ``S3Server.make_user`` creates users with narrower
policies for access-denied tests.

Fixtures:

``s3_server``      session: plain HTTP server
``s3_tls_server``  session: HTTPS server with a certificate from a throw-away CA
                   (``ca_bundle`` is the CA file; the certificates are made with
                   ``cryptography``, a runtime requirement)
``s3_repo_spec``   function: a normalized ``repo`` dict for a fresh bucket
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import http.client
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

REGION = "us-east-1"
START_TIMEOUT = 60.0
# Credentials used only while the server still accepts anything.
BOOTSTRAP_KEY = "bootstrap"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def free_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


def _server_command():
    """How to start moto's server with the interpreter running the tests."""
    return [sys.executable, "-m", "moto.server"]


def make_tls_material(directory):
    """Write a CA certificate and a server certificate/key for 127.0.0.1 and localhost.

    Returns (ca_file, cert_file, key_file).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"dataprotection test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(u"localhost"), x509.IPAddress(ipaddress.ip_address(u"127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = os.path.join(directory, "ca.pem")
    cert_file = os.path.join(directory, "server.pem")
    key_file = os.path.join(directory, "server.key")
    with open(ca_file, "wb") as handle:
        handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(cert_file, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return ca_file, cert_file, key_file


class S3Server(object):
    """A moto server subprocess with signature checking switched on."""

    def __init__(self, tls=False):
        self.tls = tls
        self.workdir = tempfile.mkdtemp(prefix="dp-s3server-")
        self.region = REGION
        self.process = None
        self.port = None
        self.log_path = os.path.join(self.workdir, "server.log")
        self.ca_bundle = None
        self.cert_file = None
        self.key_file = None
        self.access_key = None
        self.secret_key = None
        if tls:
            self.ca_bundle, self.cert_file, self.key_file = make_tls_material(self.workdir)

    # Life cycle ------------------------------------------------------------

    @property
    def endpoint_url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def start(self):
        last_error = None
        for dummy in range(3):
            self.port = free_port()
            try:
                self._spawn()
                self._wait_ready()
            except RuntimeError as exc:  # the port was taken meanwhile, or a slow start
                last_error = exc
                self.stop()
                continue
            self._enable_auth()
            return self
        raise RuntimeError("could not start the S3 test server: %s" % last_error)

    def _spawn(self):
        command = _server_command() + ["-H", "127.0.0.1", "-p", str(self.port)]
        if self.tls:
            command += ["-c", self.cert_file, "-k", self.key_file]
        env = dict(os.environ)
        # Every request is counted against this budget; start with no check at all
        # and switch checking on once the admin user exists (see _enable_auth).
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        env["PYTHONUNBUFFERED"] = "1"
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.workdir
            )
        finally:
            log.close()

    def _connection(self, timeout=5.0):
        if self.tls:
            context = ssl.create_default_context(cafile=self.ca_bundle)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def _request(self, method, path, body=None):
        conn = self._connection()
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def log_tail(self, limit=4000):
        try:
            with open(self.log_path, "rb") as handle:
                data = handle.read()
        except IOError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("moto server exited with %s:\n%s" % (self.process.returncode, self.log_tail()))
            try:
                status, dummy = self._request("GET", "/moto-api/reset-auth")
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
                continue
            if status < 500:
                return
            time.sleep(0.1)
        raise RuntimeError("moto server did not answer within %ds:\n%s" % (START_TIMEOUT, self.log_tail()))

    def _set_auth_budget(self, count):
        """Requests allowed without a valid signature before checking starts (0: check all)."""
        status, body = self._request("POST", "/moto-api/reset-auth", body=str(count).encode("ascii"))
        if status != 200:
            raise RuntimeError("cannot switch authentication on the S3 test server: %s %r" % (status, body))

    def _enable_auth(self):
        self.access_key, self.secret_key = self.make_user(
            "dp-admin", ADMIN_POLICY, access_key=BOOTSTRAP_KEY, secret_key=BOOTSTRAP_KEY
        )
        self._set_auth_budget(0)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # Helpers for tests -----------------------------------------------------

    def client(self, service="s3", access_key=None, secret_key=None, **kwargs):
        """A boto3 client for the tests' own setup and checks."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            verify=self.ca_bundle if self.tls else None,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3}, **kwargs),
        )

    def make_user(self, name, policy, access_key=None, secret_key=None):
        """Create an IAM user with an inline ``policy``; return (access_key, secret_key)."""
        iam = self.client("iam", access_key=access_key, secret_key=secret_key)
        name = "%s-%s" % (name, uuid.uuid4().hex[:8])
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="test", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def make_bucket(self, name=None, region=None):
        """Create a bucket (a fresh unique name unless given) and return its name."""
        name = name or "dp-test-%s" % uuid.uuid4().hex[:16]
        kwargs = {"Bucket": name}
        client = self.client()
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            client = self.client(region_name=region)
        client.create_bucket(**kwargs)
        return name

    def unique_bucket_name(self):
        """A bucket name that does not exist yet."""
        return "dp-test-%s" % uuid.uuid4().hex[:16]

    def repo_spec(self, bucket, **overrides):
        """A normalized ``repo`` dict for ``bucket`` on this server."""
        spec = {
            "type": "s3",
            "bucket": bucket,
            "prefix": "",
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "session_token": None,
            "ca_bundle": self.ca_bundle,
            "validate_certs": True,
            "addressing_style": "path",
            "part_size_mb": 5,
            "max_concurrency": 4,
        }
        spec.update(overrides)
        return spec


def _start(tls):
    server = S3Server(tls=tls)
    try:
        server.start()
    except Exception:
        server.cleanup()
        raise
    return server


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on loopback (HTTP) for the whole session."""
    server = _start(tls=False)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def s3_tls_server():
    """A moto S3 server on loopback serving HTTPS with a certificate from a test CA."""
    server = _start(tls=True)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def s3_repo_spec(s3_server):
    """A normalized ``repo`` dict for a fresh, empty bucket on ``s3_server``."""
    return s3_server.repo_spec(s3_server.make_bucket())
