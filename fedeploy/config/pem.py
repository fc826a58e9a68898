"""PEM certificate bundles in a stack file: the CAs a site's pods trust (the external catalog
database's, the MQTT broker's, the SLURM bridge's) and the bridge's own certificate.

One check for all of them (`pem_bundle_problem`): OpenSSL loads the bundle as a file, as its
consumers do (paho-mqtt through Python's ssl for the MQTT broker's CA, libpq's sslrootcert for
the database's, nginx and curl for the bridge's), so a block whose body is not a certificate is
refused in the stack file, not by a pod at start. Text outside the blocks (a `# Corp CA — Root`
line in UTF-8, what `openssl x509 -text` prints, a distro bundle's comments, CRLF line ends) is
kept: OpenSSL skips it, and the charts' values.schema.json take it. OpenSSL's `TRUSTED
CERTIFICATE` blocks (`openssl x509 -trustout`, RHEL's ca-bundle.trust.crt) are certificates to a
file's reader and are taken. A block of any other kind (a private key) is refused: these values
land in ConfigMaps and Secrets that pods mount beside the CA."""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from typing import Annotated

from pydantic import AfterValidator

PEM_BUNDLE_WORDS = (
    "one or more PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----, "
    "or OpenSSL's TRUSTED CERTIFICATE blocks); comment lines outside the blocks are kept"
)
_BEGIN = re.compile(r"-----BEGIN ([^-\r\n]*)-----")
# A block as OpenSSL's PEM reader finds it: from a BEGIN line to the END line of its kind.
_BLOCK = re.compile(r"-----BEGIN ([^-\r\n]*)-----.*?(?:-----END \1-----|\Z)", re.DOTALL)
_CERTIFICATE_KINDS = ("CERTIFICATE", "TRUSTED CERTIFICATE")


def _loaded_certificates(value: str) -> int:
    """How many certificates OpenSSL loads from `value` written to a file (as the pods' clients
    read their CA file: X509_load_cert_crl_file takes TRUSTED CERTIFICATE blocks, which the
    in-memory cadata= path does not); ssl.SSLError or OSError when it refuses the file."""
    handle, path = tempfile.mkstemp(prefix="fedeploy-ca-", suffix=".pem")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(value.encode("utf-8", errors="replace"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=path)
        return int(context.cert_store_stats()["x509"])
    finally:
        os.unlink(path)


def pem_bundle_problem(value: str) -> str | None:
    """Why `value` is not a PEM certificate bundle OpenSSL loads (a phrase to follow the key's
    name, "is not ..."), or None when it is one. Never echoes the value."""
    others = sorted({kind for kind in _BEGIN.findall(value) if kind not in _CERTIFICATE_KINDS})
    if others:
        return (
            f"holds a PEM block that is not a certificate ({others[0]}): only certificates "
            "belong here (the value is mounted into pods as a CA file)"
        )
    for number, block in enumerate(_BLOCK.finditer(value), start=1):
        if not block.group().isascii():
            return (
                f"holds a character that is not ASCII inside its PEM block {number} (between "
                f"-----BEGIN {block.group(1)}----- and its END line): a certificate's body is "
                "base64 (ASCII letters, digits, '+', '/', '='); text in other scripts belongs "
                "in comment lines outside the blocks"
            )
    try:
        count = _loaded_certificates(value)
    except (ssl.SSLError, OSError, ValueError, UnicodeError):
        return f"is not a PEM certificate bundle OpenSSL loads: expected {PEM_BUNDLE_WORDS}"
    if count == 0:
        return f"holds no certificate: expected {PEM_BUNDLE_WORDS}"
    return None


def _pem_bundle(value: str) -> str:
    if problem := pem_bundle_problem(value):
        raise ValueError(problem)
    return value


PemBundle = Annotated[str, AfterValidator(_pem_bundle)]
"""A PEM certificate bundle, checked by pem_bundle_problem."""
