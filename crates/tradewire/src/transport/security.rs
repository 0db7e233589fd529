//! CURVE encryption and client authentication (libzmq + libsodium).
//!
//! A CURVE server holds a key pair and a list of allowed client public keys; a ZAP
//! handler (RFC 27) on `inproc://zeromq.zap.01` in the server's own ZMQ context accepts
//! the listed keys and rejects every other one. Clients without CURVE and clients with the
//! wrong server key never reach ZAP: the same thread reads the server socket's monitor
//! events for those. Every refusal is counted by kind (`unknown_client`, `no_curve`,
//! `bad_server_key`, `protocol_error`) and logged on stderr at most once a second, e.g.
//! `rejected CURVE client <z85> on <endpoint>: key not in the allow list`.
//! A client holds its own key pair and the server's public key. Keys are Z85 text
//! (40 characters), as printed by `zmq_curve_keypair` and by the Python SDK.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{random_hex, Result, TransportError, WarnLimiter, DEFAULT_WARN_INTERVAL};

/// libzmq's `ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC`: a CURVE HELLO the server cannot open,
/// i.e. the client encrypted it for another server key.
const PROTOCOL_ERROR_CRYPTOGRAPHIC: u32 = 0x1100_0001;
/// libzmq's `ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH`: the client does not use CURVE.
const PROTOCOL_ERROR_MECHANISM_MISMATCH: u32 = 0x1100_0002;

/// The endpoint libzmq sends ZAP requests to (RFC 27).
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";
/// How many rejected keys are remembered for [`ZapLog::rejected_keys`].
const REMEMBERED_REJECTIONS: usize = 64;

/// Whether this build of libzmq supports CURVE (it needs libsodium at build time).
pub fn curve_available() -> bool {
    zmq::has("curve") == Some(true)
}

fn decode_key(what: &str, z85: &str) -> Result<[u8; 32]> {
    let bytes = zmq::z85_decode(z85)
        .ok()
        .filter(|b| z85.len() == 40 && b.len() == 32)
        .ok_or_else(|| {
            TransportError::Config(format!(
                "{what} is not a Z85 CURVE key (40 characters): {z85:?}"
            ))
        })?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

fn z85(key: &[u8]) -> String {
    zmq::z85_encode(key).unwrap_or_else(|_| format!("<{} bytes>", key.len()))
}

/// A CURVE key pair, Z85-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveKeyPair {
    public: String,
    secret: String,
}

impl CurveKeyPair {
    /// A fresh key pair from libsodium.
    pub fn generate() -> Result<Self> {
        require_curve()?;
        let pair = zmq::CurveKeyPair::new()?;
        Ok(CurveKeyPair {
            public: z85(&pair.public_key),
            secret: z85(&pair.secret_key),
        })
    }

    /// A key pair from its Z85 public and secret keys (validated).
    pub fn from_z85(public: &str, secret: &str) -> Result<Self> {
        decode_key("the public key", public)?;
        decode_key("the secret key", secret)?;
        Ok(CurveKeyPair {
            public: public.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The public key, Z85.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The secret key, Z85.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveKeyPair")
            .field("public", &self.public)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// A server's key pair and the client public keys (Z85) it accepts.
#[derive(Debug, Clone)]
pub struct CurveServer {
    /// The server's key pair; clients need its public key.
    pub keys: CurveKeyPair,
    /// Client public keys allowed in; every other client is rejected (and logged).
    pub allowed_clients: Vec<String>,
}

/// A client's key pair and the public key (Z85) of the server it trusts.
#[derive(Debug, Clone)]
pub struct CurveClient {
    /// The client's key pair; the server must list its public key.
    pub keys: CurveKeyPair,
    /// The server's public key.
    pub server_public: String,
}

fn require_curve() -> Result<()> {
    if curve_available() {
        Ok(())
    } else {
        Err(TransportError::Config(
            "this libzmq was built without CURVE (libsodium); see \
             crates/vendor/zmq-sys/TRADEWIRE-PATCH.md"
                .into(),
        ))
    }
}

/// Makes `sock` a CURVE client of the server whose public key `curve` names.
pub(crate) fn secure_client(sock: &zmq::Socket, curve: &CurveClient) -> Result<()> {
    require_curve()?;
    let public = decode_key("the client public key", &curve.keys.public)?;
    let secret = decode_key("the client secret key", &curve.keys.secret)?;
    let server = decode_key("the server public key", &curve.server_public)?;
    sock.set_curve_publickey(&public)?;
    sock.set_curve_secretkey(&secret)?;
    sock.set_curve_serverkey(&server)?;
    Ok(())
}

/// What the ZAP handler decided, shared with the server.
#[derive(Debug, Default)]
pub(crate) struct ZapLog {
    accepted: AtomicU64,
    rejected: AtomicU64,
    recent: Mutex<VecDeque<String>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl ZapLog {
    /// Refused handshakes by kind.
    pub(crate) fn refusals(&self) -> BTreeMap<&'static str, u64> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn refuse(&self, kind: &'static str) {
        if let Ok(mut refused) = self.refused.lock() {
            *refused.entry(kind).or_insert(0) += 1;
        }
    }

    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The most recently rejected client keys (Z85), oldest first.
    pub(crate) fn rejected_keys(&self) -> Vec<String> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn reject(&self, key: String) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= REMEMBERED_REJECTIONS {
                recent.pop_front();
            }
            recent.push_back(key);
        }
    }
}

/// A ZAP handler thread authenticating CURVE clients against an allow list. Stopped and
/// joined on drop (before the context it lives in is terminated).
pub(crate) struct ZapHandler {
    stop: zmq::Socket,
    thread: Option<JoinHandle<()>>,
    log: Arc<ZapLog>,
    endpoint: Arc<Mutex<String>>,
}

impl ZapHandler {
    /// Binds the ZAP endpoint in `context` (one handler per context) and starts the
    /// thread, then configures `sock` as a CURVE server. Call before `sock` binds.
    pub(crate) fn secure_server(
        context: &zmq::Context,
        sock: &zmq::Socket,
        curve: &CurveServer,
        endpoint: &str,
    ) -> Result<Self> {
        require_curve()?;
        let public = decode_key("the server public key", &curve.keys.public)?;
        let secret = decode_key("the server secret key", &curve.keys.secret)?;
        let mut allowed = HashSet::new();
        for key in &curve.allowed_clients {
            // Normalised through a decode/encode round trip.
            allowed.insert(z85(&decode_key("an allowed client key", key)?));
        }
        let rep = context.socket(zmq::REP)?;
        rep.set_linger(0)?;
        rep.bind(ZAP_ENDPOINT).map_err(|e| {
            TransportError::Config(format!(
                "cannot start the CURVE authenticator ({ZAP_ENDPOINT}: {e}): this ZMQ context \
                 already has one; give each CURVE server its own context"
            ))
        })?;
        let stop_endpoint = format!("inproc://tradewire-zap-stop-{}", random_hex(16));
        let stop_rx = context.socket(zmq::PAIR)?;
        stop_rx.set_linger(0)?;
        stop_rx.bind(&stop_endpoint)?;
        let stop = context.socket(zmq::PAIR)?;
        stop.set_linger(0)?;
        stop.connect(&stop_endpoint)?;
        let monitor_endpoint = format!("inproc://tradewire-curve-monitor-{}", random_hex(16));
        sock.monitor(
            &monitor_endpoint,
            zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32,
        )?;
        let monitor = context.socket(zmq::PAIR)?;
        monitor.set_linger(0)?;
        monitor.connect(&monitor_endpoint)?;
        let log = Arc::new(ZapLog::default());
        let thread_log = Arc::clone(&log);
        let endpoint = Arc::new(Mutex::new(endpoint.to_owned()));
        let thread_endpoint = Arc::clone(&endpoint);
        let thread = std::thread::Builder::new()
            .name("tw-zap".into())
            .spawn(move || {
                let sockets = ZapSockets {
                    rep,
                    stop: stop_rx,
                    monitor,
                };
                zap_loop(&sockets, &allowed, &thread_endpoint, &thread_log);
            })
            .map_err(|e| TransportError::Config(format!("cannot start the ZAP thread: {e}")))?;
        sock.set_curve_server(true)?;
        sock.set_curve_publickey(&public)?;
        sock.set_curve_secretkey(&secret)?;
        Ok(ZapHandler {
            stop,
            thread: Some(thread),
            log,
            endpoint,
        })
    }

    /// The endpoint named in log lines (set to the bound one once known).
    pub(crate) fn set_endpoint(&self, endpoint: String) {
        if let Ok(mut e) = self.endpoint.lock() {
            *e = endpoint;
        }
    }

    pub(crate) fn log(&self) -> &ZapLog {
        &self.log
    }
}

impl Drop for ZapHandler {
    fn drop(&mut self) {
        let _ = self.stop.send(&b"stop"[..], zmq::DONTWAIT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct ZapSockets {
    rep: zmq::Socket,
    stop: zmq::Socket,
    monitor: zmq::Socket,
}

fn zap_loop(
    sockets: &ZapSockets,
    allowed: &HashSet<String>,
    endpoint: &Mutex<String>,
    log: &ZapLog,
) {
    let mut warn = WarnLimiter::new("refused CURVE clients".into(), DEFAULT_WARN_INTERVAL);
    loop {
        let mut items = [
            sockets.rep.as_poll_item(zmq::POLLIN),
            sockets.stop.as_poll_item(zmq::POLLIN),
            sockets.monitor.as_poll_item(zmq::POLLIN),
        ];
        match zmq::poll(&mut items, -1) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(_) => return,
        }
        if items[1].is_readable() {
            return;
        }
        let endpoint = endpoint.lock().map(|e| e.clone()).unwrap_or_default();
        while let Ok(event) = sockets.monitor.recv_multipart(zmq::DONTWAIT) {
            if let Some((kind, detail)) = refusal(&event, &endpoint) {
                log.refuse(kind);
                warn.warn(kind, || detail);
            }
        }
        if !items[0].is_readable() {
            continue;
        }
        let Ok(request) = sockets.rep.recv_multipart(zmq::DONTWAIT) else {
            continue;
        };
        let (reply, refused) = zap_reply(&request, allowed, &endpoint, log);
        if let Some(detail) = refused {
            log.refuse("unknown_client");
            warn.warn("unknown_client", || detail);
        }
        if sockets.rep.send_multipart(reply, 0).is_err() {
            return;
        }
    }
}

/// The kind and log detail of a monitor event `[event u16 + value u32, endpoint]` that
/// is a refused handshake.
fn refusal(event: &[Vec<u8>], endpoint: &str) -> Option<(&'static str, String)> {
    let head = event.first()?;
    let id = u16::from_le_bytes(head.get(..2)?.try_into().ok()?);
    let value = u32::from_le_bytes(head.get(2..6)?.try_into().ok()?);
    if id != zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as u16 {
        return None;
    }
    Some(match value {
        PROTOCOL_ERROR_MECHANISM_MISMATCH => (
            "no_curve",
            format!("rejected a client without CURVE on {endpoint}"),
        ),
        PROTOCOL_ERROR_CRYPTOGRAPHIC => (
            "bad_server_key",
            format!("rejected a CURVE client that has the wrong server key on {endpoint}"),
        ),
        other => (
            "protocol_error",
            format!("handshake protocol error {other:#x} on {endpoint}"),
        ),
    })
}

/// Answers one ZAP request: `[version, request_id, domain, address, identity,
/// mechanism, credentials...]` → `[version, request_id, status, text, user_id, metadata]`.
/// The reply, and the log detail of a refusal.
fn zap_reply(
    request: &[Vec<u8>],
    allowed: &HashSet<String>,
    endpoint: &str,
    log: &ZapLog,
) -> (Vec<Vec<u8>>, Option<String>) {
    let version = request.first().cloned().unwrap_or_else(|| b"1.0".to_vec());
    let request_id = request.get(1).cloned().unwrap_or_default();
    let address = request
        .get(3)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default();
    let mechanism = request.get(5).map(Vec::as_slice).unwrap_or_default();
    let reply = |status: &str, text: &str, user: &str| {
        vec![
            version.clone(),
            request_id.clone(),
            status.as_bytes().to_vec(),
            text.as_bytes().to_vec(),
            user.as_bytes().to_vec(),
            Vec::new(),
        ]
    };
    if version != b"1.0" {
        return (reply("500", "unsupported ZAP version", ""), None);
    }
    if mechanism != b"CURVE" {
        let mechanism = String::from_utf8_lossy(mechanism);
        log.reject(format!("<{mechanism}>"));
        let detail = format!(
            "rejected {mechanism} client on {endpoint}: only CURVE clients are allowed \
             (peer {address})"
        );
        return (reply("400", "CURVE required", ""), Some(detail));
    }
    let key = match request.get(6) {
        Some(k) if k.len() == 32 => z85(k),
        _ => {
            log.reject("<malformed>".into());
            let detail = format!("rejected CURVE client on {endpoint}: malformed credentials");
            return (reply("400", "malformed credentials", ""), Some(detail));
        }
    };
    if allowed.contains(&key) {
        log.accepted.fetch_add(1, Ordering::Relaxed);
        return (reply("200", "OK", &key), None);
    }
    let detail = format!(
        "rejected CURVE client {key} on {endpoint}: key not in the allow list (peer {address})"
    );
    log.reject(key);
    (reply("400", "key not in the allow list", ""), Some(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_built_in() {
        assert!(
            curve_available(),
            "libzmq without CURVE: libsodium missing?"
        );
        let pair = CurveKeyPair::generate().unwrap();
        assert_eq!(pair.public().len(), 40);
        assert_eq!(pair.secret().len(), 40);
        assert_eq!(
            CurveKeyPair::from_z85(pair.public(), pair.secret()).unwrap(),
            pair
        );
        assert!(CurveKeyPair::from_z85("short", pair.secret()).is_err());
        assert!(!format!("{pair:?}").contains(pair.secret()));
    }

    #[test]
    fn zap_replies() {
        let friend = CurveKeyPair::generate().unwrap();
        let stranger = CurveKeyPair::generate().unwrap();
        let allowed: HashSet<String> = [friend.public().to_owned()].into();
        let log = ZapLog::default();
        let request = |key: &str| {
            vec![
                b"1.0".to_vec(),
                b"7".to_vec(),
                Vec::new(),
                b"127.0.0.1".to_vec(),
                Vec::new(),
                b"CURVE".to_vec(),
                zmq::z85_decode(key).unwrap(),
            ]
        };
        let (ok, _) = zap_reply(&request(friend.public()), &allowed, "tcp://x:1", &log);
        assert_eq!(ok[1], b"7");
        assert_eq!(ok[2], b"200");
        assert_eq!(ok[4], friend.public().as_bytes());
        let (no, refused) = zap_reply(&request(stranger.public()), &allowed, "tcp://x:1", &log);
        assert!(refused.is_some_and(|d| d.contains(stranger.public())));
        assert_eq!(no[2], b"400");
        assert_eq!(log.accepted(), 1);
        assert_eq!(log.rejected(), 1);
        assert_eq!(log.rejected_keys(), [stranger.public().to_owned()]);
    }
}
