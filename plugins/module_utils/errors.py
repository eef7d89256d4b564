# -*- coding: utf-8 -*-
# Copyright: contributors to the dataprotection.databases collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One exception hierarchy for the whole core.

Every error carries a message that says what failed and on what, and a
``hint`` that says what the user can do about it.  Modules turn these into
``fail_json`` results; the host command prints them.  Nothing below imports
Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class DataProtectionError(Exception):
    """Base of every error the core raises on purpose."""

    kind = "error"

    def __init__(self, message, hint=None, **details):
        super(DataProtectionError, self).__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self):
        if self.hint:
            return "%s. %s" % (self.message.rstrip("."), self.hint)
        return self.message

    def to_dict(self):
        result = {"kind": self.kind, "message": self.message}
        if self.hint:
            result["hint"] = self.hint
        if self.details:
            result["details"] = self.details
        return result


class ConfigError(DataProtectionError):
    """The caller's input cannot be used as given."""

    kind = "config"


class MissingDependency(DataProtectionError):
    """A Python library or a host tool is not installed."""

    kind = "missing_dependency"


class UnsupportedError(DataProtectionError):
    """The support matrix does not offer what was asked."""

    kind = "unsupported"


class RepositoryError(DataProtectionError):
    """The repository cannot be reached or used."""

    kind = "repository"


class RepositoryNotFound(RepositoryError):
    kind = "repository_not_found"


class NotARepository(RepositoryError):
    kind = "not_a_repository"


class FormatVersionError(RepositoryError):
    kind = "format_version"


class BucketMissing(RepositoryNotFound):
    kind = "bucket_missing"


class AccessDenied(RepositoryError):
    kind = "access_denied"


class InvalidCredentials(RepositoryError):
    kind = "invalid_credentials"


class TLSVerificationFailed(RepositoryError):
    kind = "tls"


class EndpointUnreachable(RepositoryError):
    kind = "endpoint_unreachable"


class WrongRegion(RepositoryError):
    kind = "wrong_region"


class NotWritable(RepositoryError):
    kind = "not_writable"


class ObjectNotFound(RepositoryError):
    kind = "object_not_found"


class ObjectExists(RepositoryError):
    kind = "object_exists"


class EncryptionError(DataProtectionError):
    kind = "encryption"


class KeyRequired(EncryptionError):
    kind = "key_required"


class WrongKey(EncryptionError):
    kind = "wrong_key"


class IntegrityError(DataProtectionError):
    """Stored bytes do not match what was recorded when they were written."""

    kind = "integrity"


class LeaseHeld(DataProtectionError):
    kind = "lease_held"


class ToolError(DataProtectionError):
    """A host tool ran and failed."""

    kind = "tool"


class EngineError(DataProtectionError):
    kind = "engine"


class RecoveryWindowError(DataProtectionError):
    """A restore target lies outside every recoverable window."""

    kind = "recovery_window"
