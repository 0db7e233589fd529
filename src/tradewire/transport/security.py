"""CURVE encryption and client authentication for tcp endpoints (libsodium, via libzmq)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from tradewire.transport._base import WarnLimiter

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
    the socket's monitor events tell of them. Refusals are counted by kind in `counts` and
    logged at most once per `warn_interval` seconds."""

    def __init__(
        self,
        sock: zmq.Socket[Any],
        curve: CurveServer,
        endpoint: str,
        counts: Counter[str],
        warn_interval: float,
    ) -> None:
        self.endpoint = endpoint
        self._counts = counts
        # on the security logger: refusals stay visible when transport warnings are silenced
        self._warn = WarnLimiter(log, f"refused CURVE clients at {endpoint}", warn_interval)
        self._allow = _AllowList(curve.allowed_clients)
        self.auth = ThreadAuthenticator(sock.context, log=log)
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=self._allow)
        sock.curve_server = True
        sock.curve_secretkey = curve.keys.secret
        sock.curve_publickey = curve.keys.public
        self.monitor: zmq.Socket[Any] = sock.get_monitor_socket(_REFUSAL_EVENTS)

    def check(self) -> None:
        """Counts and logs every refusal the monitor reported since the last look (call it
        from the thread that owns the socket)."""
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            kind = refusal_kind(int(event["event"]), int(event["value"]))
            detail = {
                "unknown_client": f"rejected CURVE client {self._allow.last_refused}: key not "
                "in the allow list",
                "no_curve": "rejected a client without CURVE",
                "bad_server_key": "rejected a CURVE client that has the wrong server key",
            }.get(kind, f"handshake protocol error {int(event['value']):#x}")
            self._counts[kind] += 1
            self._warn.warn(kind, f"{detail} on {self.endpoint}")

    def stop(self) -> None:
        self.check()
        self.monitor.close(linger=0)
        self.auth.stop()
        self._warn.flush()


def secure_server(
    sock: zmq.Socket[Any],
    curve: CurveServer,
    endpoint: str,
    counts: Counter[str],
    warn_interval: float,
) -> CurveGuard:
    """Make `sock` a CURVE server that only lets `curve.allowed_clients` in, counting
    refusals by kind in `counts`. The authenticator runs on the socket's context: give each
    secured server its own context."""
    return CurveGuard(sock, curve, endpoint, counts, warn_interval)


def secure_client(sock: zmq.Socket[Any], curve: CurveClient) -> None:
    sock.curve_secretkey = curve.keys.secret
    sock.curve_publickey = curve.keys.public
    sock.curve_serverkey = curve.server_public
