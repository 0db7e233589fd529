"""CURVE encryption and client authentication for tcp endpoints (libsodium, via libzmq)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

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
    """ZAP credentials callback: accept listed keys; the last refused key is kept for the
    refusal's log line (refusals are counted and logged from the socket's monitor)."""

    def __init__(self, allowed: frozenset[bytes]) -> None:
        self._allowed = allowed
        self.last_refused = ""

    def callback(self, domain: str, key: bytes) -> bool:
        z85 = zmq.utils.z85.encode(key) if len(key) == 32 else key
        if z85 in self._allowed:
            return True
        self.last_refused = z85.decode(errors="replace")
        return False


# Handshake failures a CURVE server counts as refusals, by kind (WIRE.md section 8).
_REFUSAL_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH


def refusal_kind(event: int, value: int) -> str:
    """The refusal kind of a handshake-failure monitor event."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "unknown_client"
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "no_curve"
    if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "bad_server_key"
    return "protocol_error"


class CurveGuard:
    """A CURVE server's authenticator and the monitor that sees every refused handshake:
    clients without CURVE and clients with the wrong server key never reach ZAP, so only
    the socket's monitor events tell of them."""

    def __init__(self, sock: zmq.Socket[Any], curve: CurveServer, endpoint: str) -> None:
        self.endpoint = endpoint
        self._allow = _AllowList(curve.allowed_clients)
        self.auth = ThreadAuthenticator(sock.context, log=log)
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=self._allow)
        sock.curve_server = True
        sock.curve_secretkey = curve.keys.secret
        sock.curve_publickey = curve.keys.public
        self.monitor: zmq.Socket[Any] = sock.get_monitor_socket(_REFUSAL_EVENTS)

    def drain(self, refused: Callable[[str, str], None]) -> None:
        """Calls `refused(kind, detail)` for every refusal the monitor reported."""
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            kind = refusal_kind(int(event["event"]), int(event["value"]))
            detail = {
                "unknown_client": f"rejected CURVE client {self._allow.last_refused}: key not "
                "in the allow list",
                "no_curve": "rejected a client without CURVE",
                "bad_server_key": "rejected a CURVE client that has the wrong server key",
            }.get(kind, f"handshake protocol error {int(event['value']):#x}")
            refused(kind, f"{detail} on {self.endpoint}")

    def stop(self) -> None:
        self.monitor.close(linger=0)
        self.auth.stop()


def secure_server(sock: zmq.Socket[Any], curve: CurveServer, endpoint: str) -> CurveGuard:
    """Make `sock` a CURVE server that only lets `curve.allowed_clients` in. The
    authenticator runs on the socket's context: give each secured server its own context."""
    return CurveGuard(sock, curve, endpoint)


def secure_client(sock: zmq.Socket[Any], curve: CurveClient) -> None:
    sock.curve_secretkey = curve.keys.secret
    sock.curve_publickey = curve.keys.public
    sock.curve_serverkey = curve.server_public
