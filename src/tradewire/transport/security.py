"""CURVE encryption and client authentication for tcp endpoints (libsodium, via libzmq)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger("tradewire.security")


@dataclass(frozen=True)
class CurveKeyPair:
    """Z85-encoded CURVE keys (40 bytes each)."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> CurveKeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)


@dataclass(frozen=True)
class CurveServer:
    """A server's key pair and the client public keys it accepts."""

    keys: CurveKeyPair
    allowed_clients: frozenset[bytes] = field(default_factory=frozenset)


@dataclass(frozen=True)
class CurveClient:
    """A client's key pair and the public key of the server it trusts."""

    keys: CurveKeyPair
    server_public: bytes


class _AllowList:
    """ZAP credentials callback: accept listed keys, log every refusal."""

    def __init__(self, allowed: frozenset[bytes], endpoint: str) -> None:
        self._allowed = allowed
        self._endpoint = endpoint

    def callback(self, domain: str, key: bytes) -> bool:
        z85 = zmq.utils.z85.encode(key) if len(key) == 32 else key
        if z85 in self._allowed:
            return True
        log.warning(
            "rejected CURVE client %s on %s: key not in the allow list",
            z85.decode(errors="replace"),
            self._endpoint,
        )
        return False


def secure_server(sock: zmq.Socket[Any], curve: CurveServer, endpoint: str) -> ThreadAuthenticator:
    """Make `sock` a CURVE server that only lets `curve.allowed_clients` in. The
    authenticator runs on the socket's context: give each secured server its own context."""
    auth = ThreadAuthenticator(sock.context, log=log)
    auth.start()
    auth.configure_curve_callback(
        domain="*", credentials_provider=_AllowList(curve.allowed_clients, endpoint)
    )
    sock.curve_server = True
    sock.curve_secretkey = curve.keys.secret
    sock.curve_publickey = curve.keys.public
    return auth


def secure_client(sock: zmq.Socket[Any], curve: CurveClient) -> None:
    sock.curve_secretkey = curve.keys.secret
    sock.curve_publickey = curve.keys.public
    sock.curve_serverkey = curve.server_public
