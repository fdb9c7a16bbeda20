"""Throwaway TLS material for the HTTPS stand-ins: a CA, a server certificate it signs, and
the server-side `ssl.SSLContext` that serves it.

The certificate is valid for 127.0.0.1 and `localhost` (plus any `dns_names`) for a day; a
client trusts it only when given the CA file, as it would for a private CA in production.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_ca_and_server_cert(
    directory: Path,
    *,
    common_name: str = "localhost",
    dns_names: Sequence[str] = (),
) -> tuple[Path, Path, Path]:
    """Write `ca.pem`, `server.pem` and `server-key.pem` under `directory`: (ca, cert, key).

    The server certificate is named `common_name` and valid for 127.0.0.1, `localhost` and
    `dns_names`; it is signed by a fresh CA whose certificate is `ca.pem`.
    """
    return _make_ca_and_cert(directory, "server", common_name, dns_names)


def make_ca_and_client_cert(
    directory: Path, *, common_name: str = "autoscaler"
) -> tuple[Path, Path, Path]:
    """Write `client-ca.pem`, `client.pem` and `client-key.pem` under `directory`: (ca,
    cert, key), a client certificate for mutual TLS signed by a CA of its own (what a
    server requiring client certificates trusts: `server_context(..., client_ca=ca)`)."""
    return _make_ca_and_cert(directory, "client", common_name, ())


def _make_ca_and_cert(
    directory: Path, role: str, common_name: str, dns_names: Sequence[str]
) -> tuple[Path, Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autoscaler test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName(name) for name in dict.fromkeys(["localhost", *dns_names])
    ]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path = directory / ("ca.pem" if role == "server" else f"{role}-ca.pem")
    cert_path = directory / f"{role}.pem"
    key_path = directory / f"{role}-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


def server_context(
    cert_path: Path, key_path: Path, *, client_ca: Path | None = None
) -> ssl.SSLContext:
    """A server-side TLS context that presents `cert_path` (with its key `key_path`) and,
    given `client_ca`, requires a client certificate that CA signed (mutual TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
