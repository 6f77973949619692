"""A throwaway CA and serving certificate for the admission webhook when none is mounted.

kube-apiserver calls webhooks over HTTPS only and checks the server certificate against the
``caBundle`` of the webhook configuration. In a cluster the chart mounts a certificate (cert-manager);
locally (``extschema run --webhook-port`` without ``--webhook-cert``) this module makes one. kopf's
own self-signed certificates need ``oscrypto``, which fails on OpenSSL 3; ``cryptography`` does not.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclasses.dataclass(frozen=True)
class ServingFiles:
    """PEM files: the server's certificate and key, and the CA that signed it (the ``caBundle``)."""

    certfile: Path
    keyfile: Path
    cafile: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    """An IP address SAN for an address (kube-apiserver checks IPs against IP SANs only), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


#: Every flag of the KeyUsage extension, all off; a certificate turns on what it is for.
_NO_USAGE = dict.fromkeys(
    (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ),
    False,
)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.CertificateBuilder:
    """A certificate valid for :data:`VALIDITY` (backdated a little for clock skew), CA or not."""
    now = datetime.datetime.now(datetime.UTC)
    usage = {"key_cert_sign": True, "crl_sign": True} if ca else {"key_encipherment": True}
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.KeyUsage(**{**_NO_USAGE, "digital_signature": True, **usage}), critical=True)
    )


def generate(directory: Path, hosts: list[str]) -> ServingFiles:
    """Write a new CA and a serving certificate for *hosts* (IPs or DNS names) into *directory*."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("extschema webhook CA")
    ca_cert = _builder(ca_name, ca_name, ca_key, ca=True).sign(ca_key, hashes.SHA256())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(hosts[0]), ca_name, key, ca=False)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = ServingFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.keyfile.touch(mode=0o600)
    files.keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.cafile.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return files
