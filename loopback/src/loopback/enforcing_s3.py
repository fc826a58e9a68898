"""moto's server with IAM enforced: S3 (and IAM) requests are checked against the caller's policies.

moto checks signatures and evaluates identity policies (actions and resource ARNs) once
`INITIAL_NO_AUTH_ACTION_COUNT` requests have passed. This peer spends exactly those free
requests on an administrator, so everything after, setup included, is enforced. What it does
not check: policy conditions (moto treats a statement whose condition it cannot satisfy as a
deny, so documents with conditions on S3 actions fail here), bucket policies, and KMS: an
object written to an SSE-KMS bucket needs no `kms:*` grant in moto.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from loopback.errors import PeerUnavailable
from loopback.processes import Daemon, free_port, port_open
from loopback.s3 import S3Endpoint

# The administrator's setup: CreateUser, PutUserPolicy, CreateAccessKey.
_FREE_REQUESTS = 3
_ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


class IamEnforcingMoto:
    """`python -m moto.server` in a child process with IAM enforcement on; see the module doc."""

    def __init__(self, workdir: Path, region: str = "us-east-1") -> None:
        self.workdir = Path(workdir)
        self.region = region
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_FREE_REQUESTS)
        self.daemon = Daemon(
            "moto-iam",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            self.workdir,
            env=env,
        )
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.admin: S3Endpoint | None = None

    def start(self, timeout: float = 30.0) -> IamEnforcingMoto:
        """Start the server and create the administrator with the free requests."""
        try:
            import moto.server  # noqa: F401
        except ImportError as error:
            raise PeerUnavailable(f"moto's server is not installed: {error}") from None
        self.daemon.start_and_wait(lambda: port_open(self.port), timeout, "moto (IAM enforced)")
        anonymous = S3Endpoint(self.endpoint_url, "AKIAFEDEPLOYSETUP000", "setup", self.region)
        self.admin = self._user(anonymous, "fedeploy-admin", _ADMIN_POLICY)
        return self

    def _user(self, caller: S3Endpoint, name: str, policy: dict[str, Any] | str) -> S3Endpoint:
        """`caller` (this server's endpoint) creates the user."""
        iam = caller.service_client("iam")
        iam.create_user(UserName=name)
        document = policy if isinstance(policy, str) else json.dumps(policy)
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=document)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return S3Endpoint(
            self.endpoint_url, key["AccessKeyId"], key["SecretAccessKey"], self.region
        )

    def user(self, name: str, policy: dict[str, Any] | str) -> S3Endpoint:
        """A new IAM user whose only permissions are `policy` (a document); its keys."""
        assert self.admin is not None, "start() first"
        return self._user(self.admin, name, policy)

    def log_offset(self) -> int:
        """Where the server's request log ends now: pass it to `denied_since` later."""
        log = self.daemon.log_file
        return log.stat().st_size if log.exists() else 0

    def denied_since(self, offset: int) -> list[S3Request]:
        """The S3 requests the server answered 403 after `offset` of its request log, in order."""
        log = self.daemon.log_file
        if not log.exists():
            return []
        with log.open("rb") as handle:
            handle.seek(offset)
            text = _ANSI_ESCAPE.sub("", handle.read().decode("utf-8", "replace"))
        return [
            S3Request(match["method"], match["target"])
            for match in _ACCESS_LINE.finditer(text)
            if match["status"] == "403"
        ]

    def stop(self) -> None:
        """Stop the server (its state lives in memory only)."""
        self.daemon.stop(timeout=5.0)


# werkzeug's access log, which moto's server writes: ... "HEAD /bucket/key?x HTTP/1.1" 403 -
# (coloured by status with terminal escapes, which are dropped first).
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


@dataclass(frozen=True)
class S3Request:
    """One path-style S3 request as the server logged it: its method and its target."""

    method: str
    target: str

    def action_and_resource(self) -> tuple[str, str]:
        """The IAM action AWS authorizes this request with, and the resource ARN it names.

        From the Amazon S3 API reference's "Permissions" of each operation (HeadObject needs
        s3:GetObject, HeadBucket s3:ListBucket, multipart parts s3:PutObject, ...).
        """
        split = urlsplit(self.target)
        bucket, _, key = unquote(split.path).lstrip("/").partition("/")
        query = parse_qs(split.query, keep_blank_values=True)
        if not key:
            arn = f"arn:aws:s3:::{bucket}"
            if self.method == "GET" and "uploads" in query:
                return "s3:ListBucketMultipartUploads", arn
            if self.method == "POST" and "delete" in query:
                return "s3:DeleteObject", f"{arn}/*"
            if self.method in ("GET", "HEAD"):
                return "s3:ListBucket", arn
            return f"s3:{self.method} on a bucket", arn
        arn = f"arn:aws:s3:::{bucket}/{key}"
        for subresource, by_method in _OBJECT_SUBRESOURCES.items():
            if subresource in query:
                action = by_method.get(self.method)
                return action or f"s3:{self.method} ?{subresource} (not mapped here)", arn
        if "uploadId" in query:
            by_method = {
                "GET": "s3:ListMultipartUploadParts",
                "DELETE": "s3:AbortMultipartUpload",
            }
            return by_method.get(self.method, "s3:PutObject"), arn
        by_method = {
            "GET": "s3:GetObject",
            "HEAD": "s3:GetObject",
            "PUT": "s3:PutObject",
            "POST": "s3:PutObject",
            "DELETE": "s3:DeleteObject",
        }
        return by_method.get(self.method, f"s3:{self.method} on an object"), arn


# Object subresources authorized by actions of their own (the S3 API reference's Permissions).
_OBJECT_SUBRESOURCES: dict[str, dict[str, str]] = {
    "tagging": {
        "GET": "s3:GetObjectTagging",
        "PUT": "s3:PutObjectTagging",
        "DELETE": "s3:DeleteObjectTagging",
    },
    "acl": {"GET": "s3:GetObjectAcl", "PUT": "s3:PutObjectAcl"},
    "retention": {"GET": "s3:GetObjectRetention", "PUT": "s3:PutObjectRetention"},
    "legal-hold": {"GET": "s3:GetObjectLegalHold", "PUT": "s3:PutObjectLegalHold"},
    "attributes": {"GET": "s3:GetObjectAttributes"},
    "versionId": {
        "GET": "s3:GetObjectVersion",
        "HEAD": "s3:GetObjectVersion",
        "DELETE": "s3:DeleteObjectVersion",
    },
}


def _matches(patterns: Any, value: str, *, case_sensitive: bool) -> bool:
    listed = [patterns] if isinstance(patterns, str) else list(patterns or [])
    if case_sensitive:
        return any(fnmatch.fnmatchcase(value, str(p)) for p in listed)
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in listed)


def allowing_statements(policy: dict[str, Any], action: str, resource: str) -> list[str]:
    """The statements of an identity policy that allow `action` on `resource`, each described.

    Wildcards `*` and `?` as IAM reads them (actions case-insensitive, ARNs case-sensitive);
    conditions are named, not evaluated. Empty when an explicit Deny matches or nothing allows.
    """
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    found = []
    for index, statement in enumerate(statements):
        if not (
            _matches(statement.get("Action"), action, case_sensitive=False)
            and _matches(statement.get("Resource"), resource, case_sensitive=True)
        ):
            continue
        if statement.get("Effect") == "Deny":
            return []
        label = statement.get("Sid") or f"#{index + 1}"
        condition = " (with a condition)" if statement.get("Condition") else ""
        found.append(
            f"statement {label}{condition}: Allow {statement.get('Action')} "
            f"on {statement.get('Resource')}"
        )
    return found


def explain_denials(denied: list[S3Request], policy: dict[str, Any]) -> str:
    """Each denied request with the action and key it needed and the statement that allows it.

    Tells "our policy lacks it" (no statement allows the action) from "the emulator is wrong"
    (a statement allows it, yet the server denied it, naming the emulator's version).
    """
    emulator = f"moto {version('moto')}"
    lines = []
    for request in denied:
        action, resource = request.action_and_resource()
        allowed_by = allowing_statements(policy, action, resource)
        head = f"{request.method} {request.target} needs {action} on {resource}: "
        if "not mapped here" in action or " on a" in action:
            lines.append(head + "not judged: map this request's action to tell whose fault it is")
        elif allowed_by:
            lines.append(
                head + f"allowed by {'; '.join(allowed_by)}, yet {emulator} denied it "
                "(the emulator is wrong, see requirements/upstream-regressions.txt)"
            )
        else:
            lines.append(head + "no statement of the policy allows it (the policy lacks it)")
    return "\n".join(lines)
