"""PEM certificate bundles in a stack file: the CAs a site's pods trust (the external catalog
database's, the MQTT broker's, the SLURM bridge's) and the bridge's own certificate.

One check for all of them (`pem_bundle_problem`): OpenSSL parses every certificate, as libpq,
paho-mqtt (Python's ssl), nginx and the inference's clients will, so a block whose body is not a
certificate is refused in the stack file, not by a pod at start. Text outside the blocks (a
`# Corp CA` line, what `openssl x509 -text` prints, a distro bundle's comments) is kept: OpenSSL
skips it, and the charts' values.schema.json take it. A block of any other kind (a private key)
is refused: these values land in ConfigMaps and Secrets that pods mount beside the CA."""

from __future__ import annotations

import re
import ssl
from typing import Annotated

from pydantic import AfterValidator

PEM_BUNDLE_WORDS = (
    "one or more PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----); "
    "comment lines outside the blocks are kept"
)
_BEGIN = re.compile(r"-----BEGIN ([^-\r\n]*)-----")


def pem_bundle_problem(value: str) -> str | None:
    """Why `value` is not a PEM certificate bundle OpenSSL loads (a phrase to follow the key's
    name, "is not ..."), or None when it is one. Never echoes the value."""
    others = sorted({kind for kind in _BEGIN.findall(value) if kind != "CERTIFICATE"})
    if others:
        return (
            f"holds a PEM block that is not a certificate ({others[0]}): only certificates "
            "belong here (the value is mounted into pods as a CA file)"
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=value)
    except (ssl.SSLError, ValueError):
        return f"is not a PEM certificate bundle: expected {PEM_BUNDLE_WORDS}"
    return None


def _pem_bundle(value: str) -> str:
    if problem := pem_bundle_problem(value):
        raise ValueError(problem)
    return value


PemBundle = Annotated[str, AfterValidator(_pem_bundle)]
"""A PEM certificate bundle, checked by pem_bundle_problem."""
