"""A throwaway certificate authority, server and client certificates for mTLS tests (``cryptography``)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pem:
    certificate: str
    private_key: str


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    # A client certificate from another CA: the server must refuse it.
    stranger: Pem

    def write_server_files(self, directory: Path) -> dict[str, object]:
        """uvicorn's ssl_* settings for a server that requires client certificates from ``ca``."""
        import ssl

        paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
        paths["ca"].write_text(self.ca.certificate)
        paths["cert"].write_text(self.server.certificate)
        paths["key"].write_text(self.server.private_key)
        return {
            "ssl_certfile": str(paths["cert"]),
            "ssl_keyfile": str(paths["key"]),
            "ssl_ca_certs": str(paths["ca"]),
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
        }


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(
        certificate=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki() -> Pki:
    ca_key, other_ca_key = _key(), _key()
    ca_cert = _certificate("kefu test CA", ca_key, None, ca_key, ca=True)
    other_ca = _certificate("someone else's CA", other_ca_key, None, other_ca_key, ca=True)
    server_key, client_key, stranger_key = _key(), _key(), _key()
    return Pki(
        ca=_pem(ca_cert, ca_key),
        server=_pem(_certificate("vllm.onprem", server_key, ca_cert.subject, ca_key, server=True), server_key),
        client=_pem(_certificate("kefu-generate", client_key, ca_cert.subject, ca_key), client_key),
        stranger=_pem(_certificate("intruder", stranger_key, other_ca.subject, other_ca_key), stranger_key),
    )
