//! The libzmq that pyzmq already loaded, called directly: `zmq_msg_recv` in a NOBLOCK
//! loop on a pyzmq socket's handle (`zmq.Socket.underlying`), so one Python call drains
//! many frames. The library is opened by path (the one mapped into this process), never
//! a second copy: a socket handle only means something to the library that made it.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::io;

use libloading::Library;

/// `zmq_msg_t`: 64 opaque bytes, pointer-aligned (zmq.h).
#[repr(C, align(8))]
struct Msg([u8; 64]);

type MsgInit = unsafe extern "C" fn(*mut Msg) -> c_int;
type MsgRecv = unsafe extern "C" fn(*mut Msg, *mut c_void, c_int) -> c_int;
type MsgData = unsafe extern "C" fn(*mut Msg) -> *mut c_void;
type MsgSize = unsafe extern "C" fn(*const Msg) -> usize;
type MsgClose = unsafe extern "C" fn(*mut Msg) -> c_int;
type Errno = unsafe extern "C" fn() -> c_int;
type Send = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;
type Version = unsafe extern "C" fn(*mut c_int, *mut c_int, *mut c_int);

const ZMQ_DONTWAIT: c_int = 1;

/// What one receive attempt gave.
pub enum Recv {
    /// A frame was handed to the callback.
    Frame,
    /// Nothing queued (EAGAIN).
    Empty,
    /// A signal interrupted the call (EINTR).
    Interrupted,
}

/// The few libzmq entry points the receive loop needs.
pub struct LibZmq {
    msg_init: MsgInit,
    msg_recv: MsgRecv,
    msg_data: MsgData,
    msg_size: MsgSize,
    msg_close: MsgClose,
    errno: Errno,
    send: Send,
    /// Kept open so the function pointers above stay valid.
    _lib: Library,
}

impl LibZmq {
    /// Opens the libzmq at `path` (already loaded by pyzmq) and checks it is libzmq 4.
    pub fn open(path: &str) -> Result<Self, String> {
        // SAFETY: opening a shared library runs its initialisers; this path is the libzmq
        // pyzmq has already loaded, so they have run and the call only returns its handle.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: each symbol is looked up with the C signature zmq.h declares for it.
        unsafe {
            let version: Version = *lib.get::<Version>(b"zmq_version\0").map_err(err)?;
            let (mut major, mut minor, mut patch) = (0, 0, 0);
            version(&mut major, &mut minor, &mut patch);
            if major != 4 {
                return Err(format!("{path} is libzmq {major}.{minor}.{patch}, not 4.x"));
            }
            Ok(Self {
                msg_init: *lib.get::<MsgInit>(b"zmq_msg_init\0").map_err(err)?,
                msg_recv: *lib.get::<MsgRecv>(b"zmq_msg_recv\0").map_err(err)?,
                msg_data: *lib.get::<MsgData>(b"zmq_msg_data\0").map_err(err)?,
                msg_size: *lib.get::<MsgSize>(b"zmq_msg_size\0").map_err(err)?,
                msg_close: *lib.get::<MsgClose>(b"zmq_msg_close\0").map_err(err)?,
                errno: *lib.get::<Errno>(b"zmq_errno\0").map_err(err)?,
                send: *lib.get::<Send>(b"zmq_send\0").map_err(err)?,
                _lib: lib,
            })
        }
    }

    /// Receives one frame without blocking and passes its bytes to `take`.
    ///
    /// `socket` must be a live libzmq socket of this library, used by no other thread
    /// during the call (the caller holds the GIL and owns the pyzmq socket).
    pub fn recv_one<T>(
        &self,
        socket: usize,
        take: impl FnOnce(&[u8]) -> T,
    ) -> io::Result<(Recv, Option<T>)> {
        let mut msg = Msg([0; 64]);
        // SAFETY: `msg` is a properly aligned zmq_msg_t; init cannot fail.
        unsafe { (self.msg_init)(&mut msg) };
        // SAFETY: the socket contract above; `msg` was initialised.
        let rc = unsafe { (self.msg_recv)(&mut msg, socket as *mut c_void, ZMQ_DONTWAIT) };
        if rc < 0 {
            // SAFETY: reads libzmq's thread-local errno; then frees the empty message.
            let code = unsafe { (self.errno)() };
            // SAFETY: as above.
            unsafe { (self.msg_close)(&mut msg) };
            let error = io::Error::from_raw_os_error(code);
            return match error.kind() {
                io::ErrorKind::WouldBlock => Ok((Recv::Empty, None)),
                io::ErrorKind::Interrupted => Ok((Recv::Interrupted, None)),
                _ => Err(error),
            };
        }
        // SAFETY: after a successful receive, data/size describe the message's bytes,
        // valid until msg_close, which runs after `take` returns.
        let got = unsafe {
            let data = (self.msg_data)(&mut msg) as *const u8;
            let size = (self.msg_size)(&msg);
            let bytes = if size == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(data, size)
            };
            take(bytes)
        };
        // SAFETY: frees the received message exactly once.
        unsafe { (self.msg_close)(&mut msg) };
        Ok((Recv::Frame, Some(got)))
    }
}

impl LibZmq {
    /// Sends `frame` as one message without blocking (`zmq_send`, which copies it).
    ///
    /// Same socket contract as [`LibZmq::recv_one`].
    pub fn send(&self, socket: usize, frame: &[u8]) -> io::Result<()> {
        // SAFETY: the socket contract; `frame` is valid for its length during the call,
        // and libzmq copies it before returning.
        let rc = unsafe {
            (self.send)(
                socket as *mut c_void,
                frame.as_ptr().cast(),
                frame.len(),
                ZMQ_DONTWAIT,
            )
        };
        if rc < 0 {
            // SAFETY: reads libzmq's thread-local errno.
            return Err(io::Error::from_raw_os_error(unsafe { (self.errno)() }));
        }
        Ok(())
    }
}

fn err(e: libloading::Error) -> String {
    e.to_string()
}
