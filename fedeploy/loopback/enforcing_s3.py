"""moto's server with IAM enforced: S3 (and IAM) requests are checked against the caller's policies.

moto checks signatures and evaluates identity policies (actions and resource ARNs) once
`INITIAL_NO_AUTH_ACTION_COUNT` requests have passed. This peer spends exactly those free
requests on an administrator, so everything after, setup included, is enforced. What it does
not check: policy conditions (moto treats a statement whose condition it cannot satisfy as a
deny, so documents with conditions on S3 actions fail here), bucket policies, and KMS: an
object written to an SSE-KMS bucket needs no `kms:*` grant in moto.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from fedeploy.loopback.errors import PeerUnavailable
from fedeploy.loopback.processes import Daemon, free_port, port_open
from fedeploy.loopback.s3 import S3Endpoint

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

    def _iam(self, caller: S3Endpoint) -> Any:
        import boto3

        return boto3.client(
            "iam",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=caller.access_key_id,
            aws_secret_access_key=caller.secret_access_key,
        )

    def _user(self, caller: S3Endpoint, name: str, policy: dict[str, Any] | str) -> S3Endpoint:
        iam = self._iam(caller)
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

    def stop(self) -> None:
        """Stop the server (its state lives in memory only)."""
        self.daemon.stop(timeout=5.0)
