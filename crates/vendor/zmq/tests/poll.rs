#[cfg(unix)]
#[path = "poll/unix.rs"]
mod unix;
