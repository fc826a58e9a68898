"""The loopback SeaweedFS holds a whole test session's buckets, whatever the disk's free space.

`weed mini` derives its volume slots from the free disk (free space / volume size: 40 on a disk
with 40 GiB free) and gives each bucket volumes of its own, so the session-scoped store of the
ingestion tests ran out of slots on a fuller CI disk: every write to the next test's bucket then
failed with InternalError ("No writable volumes and no free volumes left") and a stream test
waited for observations that could never be stored.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from loopback import SeaweedS3
from loopback.s3 import VOLUME_SLOTS
from tests.peers import running

pytestmark = pytest.mark.integration

BUCKETS = 45  # more than this machine's disk-derived slot count (40) before the fix


def test_slots_are_fixed_and_every_bucket_of_a_session_is_writable(tmp_path):
    with running(lambda: SeaweedS3(tmp_path / "seaweedfs").start()) as server:
        master = f"http://127.0.0.1:{server.ports['master.port']}"
        with urllib.request.urlopen(f"{master}/dir/status", timeout=10) as answer:
            topology = json.load(answer)["Topology"]
        assert topology["Max"] == VOLUME_SLOTS
        client = server.endpoint.client()
        for n in range(BUCKETS):
            name = f"slot-{n:02d}"
            server.create_bucket(name)
            client.put_object(Bucket=name, Key="a", Body=b"x", IfNoneMatch="*")
            assert client.get_object(Bucket=name, Key="a")["Body"].read() == b"x"
