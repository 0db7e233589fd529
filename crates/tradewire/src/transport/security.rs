//! CURVE encryption and client authentication (libzmq + libsodium).
//!
//! A CURVE server holds a key pair and a list of allowed client public keys; a ZAP
//! handler (RFC 27) on `inproc://zeromq.zap.01` in the server's own ZMQ context accepts
//! the listed keys and rejects every other one, logging the refusal on stderr:
//! `tradewire: rejected CURVE client <z85> on <endpoint>: key not in the allow list`.
//! A client holds its own key pair and the server's public key. Keys are Z85 text
//! (40 characters), as printed by `zmq_curve_keypair` and by the Python SDK.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{random_hex, Result, TransportError};

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
}

impl ZapLog {
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
        let log = Arc::new(ZapLog::default());
        let thread_log = Arc::clone(&log);
        let endpoint = Arc::new(Mutex::new(endpoint.to_owned()));
        let thread_endpoint = Arc::clone(&endpoint);
        let thread = std::thread::Builder::new()
            .name("tw-zap".into())
            .spawn(move || zap_loop(&rep, &stop_rx, &allowed, &thread_endpoint, &thread_log))
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

fn zap_loop(
    rep: &zmq::Socket,
    stop: &zmq::Socket,
    allowed: &HashSet<String>,
    endpoint: &Mutex<String>,
    log: &ZapLog,
) {
    loop {
        let mut items = [
            rep.as_poll_item(zmq::POLLIN),
            stop.as_poll_item(zmq::POLLIN),
        ];
        match zmq::poll(&mut items, -1) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(_) => return,
        }
        if items[1].is_readable() {
            return;
        }
        if !items[0].is_readable() {
            continue;
        }
        let Ok(request) = rep.recv_multipart(zmq::DONTWAIT) else {
            continue;
        };
        let endpoint = endpoint.lock().map(|e| e.clone()).unwrap_or_default();
        let reply = zap_reply(&request, allowed, &endpoint, log);
        if rep.send_multipart(reply, 0).is_err() {
            return;
        }
    }
}

/// Answers one ZAP request: `[version, request_id, domain, address, identity,
/// mechanism, credentials...]` → `[version, request_id, status, text, user_id, metadata]`.
fn zap_reply(
    request: &[Vec<u8>],
    allowed: &HashSet<String>,
    endpoint: &str,
    log: &ZapLog,
) -> Vec<Vec<u8>> {
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
        return reply("500", "unsupported ZAP version", "");
    }
    if mechanism != b"CURVE" {
        let mechanism = String::from_utf8_lossy(mechanism);
        log.reject(format!("<{mechanism}>"));
        eprintln!(
            "tradewire: rejected {mechanism} client on {endpoint}: only CURVE clients are \
             allowed (peer {address})"
        );
        return reply("400", "CURVE required", "");
    }
    let key = match request.get(6) {
        Some(k) if k.len() == 32 => z85(k),
        _ => {
            log.reject("<malformed>".into());
            eprintln!("tradewire: rejected CURVE client on {endpoint}: malformed ZAP credentials");
            return reply("400", "malformed credentials", "");
        }
    };
    if allowed.contains(&key) {
        log.accepted.fetch_add(1, Ordering::Relaxed);
        return reply("200", "OK", &key);
    }
    eprintln!(
        "tradewire: rejected CURVE client {key} on {endpoint}: key not in the allow list \
         (peer {address})"
    );
    log.reject(key);
    reply("400", "key not in the allow list", "")
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
        let ok = zap_reply(&request(friend.public()), &allowed, "tcp://x:1", &log);
        assert_eq!(ok[1], b"7");
        assert_eq!(ok[2], b"200");
        assert_eq!(ok[4], friend.public().as_bytes());
        let no = zap_reply(&request(stranger.public()), &allowed, "tcp://x:1", &log);
        assert_eq!(no[2], b"400");
        assert_eq!(log.accepted(), 1);
        assert_eq!(log.rejected(), 1);
        assert_eq!(log.rejected_keys(), [stranger.public().to_owned()]);
    }
}
