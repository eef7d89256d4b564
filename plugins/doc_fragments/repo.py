# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The shared O(repo) option."""

    DOCUMENTATION = r"""
options:
  repo:
    description:
      - "The backup repository: where backups are stored and read from."
      - Set it once for a play with C(module_defaults) on the action group C(group/dataprotection.databases.all).
    type: dict
    required: true
    suboptions:
      type:
        description:
          - C(local) is a directory (local disk or an NFS mount); C(s3) is AWS S3 or an S3-compatible store
            (MinIO, Ceph RGW, Alibaba OSS, Tencent COS, GCS interoperability).
        type: str
        choices: [local, s3]
        default: local
      path:
        description:
          - Absolute path of the repository directory. Required when O(repo.type=local).
        type: path
      bucket:
        description:
          - Bucket name. Required when O(repo.type=s3).
        type: str
      prefix:
        description:
          - Key prefix inside the bucket under which the repository lives. Empty means the bucket root.
        type: str
        default: ''
      endpoint_url:
        description:
          - URL of an S3-compatible endpoint, for example C(https://minio.example.com:9000). Omit for AWS S3.
        type: str
      region:
        description:
          - Region of the bucket.
          - If not set, the value of the E(AWS_REGION) or E(AWS_DEFAULT_REGION) environment variable is used.
        type: str
      access_key:
        description:
          - Access key id.
          - If not set, the E(AWS_ACCESS_KEY_ID) environment variable or the usual boto3 credential chain
            (shared credentials file, instance profile) is used.
        type: str
      secret_key:
        description:
          - Secret access key.
          - If not set, the E(AWS_SECRET_ACCESS_KEY) environment variable or the boto3 credential chain is used.
        type: str
      session_token:
        description:
          - Session token for temporary credentials.
          - If not set, the E(AWS_SESSION_TOKEN) environment variable is used.
        type: str
      ca_bundle:
        description:
          - Path of a CA certificate bundle used to verify the endpoint's TLS certificate.
        type: path
      validate_certs:
        description:
          - Verify the endpoint's TLS certificate. Turn off only for testing.
        type: bool
        default: true
      addressing_style:
        description:
          - S3 addressing style. Many S3-compatible stores need C(path).
        type: str
        choices: [auto, path, virtual]
        default: auto
      encryption_key:
        description:
          - Passphrase of an encrypted repository. Payload objects are encrypted with AES-256-GCM under a key
            derived from it (scrypt); the repository keeps only a key-check value, so a wrong passphrase is refused.
          - Given when the repository is created, it makes the repository encrypted; it cannot be added later.
          - If not set, the E(DATAPROTECTION_ENCRYPTION_KEY) environment variable is used.
        type: str
      part_size_mb:
        description:
          - Size of the parts of S3 multipart uploads and ranged downloads, in MiB (at least 5).
        type: int
        default: 16
      max_concurrency:
        description:
          - How many parts are uploaded or downloaded in parallel. Memory use is about O(repo.part_size_mb) times this.
        type: int
        default: 4
notes:
  - Secrets (O(repo.secret_key), O(repo.session_token), O(repo.encryption_key)) are never logged nor returned.
"""
