// TRADEWIRE PATCH (see TRADEWIRE-PATCH.md): the vendored libzmq is built with CURVE,
// linked statically against the system's libsodium (Debian/Ubuntu: libsodium-dev).
// Upstream 0.12.0 calls `.with_libsodium(None)`, which builds libzmq without CURVE.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const HINT: &str = "libzmq is built with CURVE, which needs libsodium's static library and \
headers: `apt-get install libsodium-dev` (or set SODIUM_LIB_DIR to the directory holding \
libsodium.a and SODIUM_INCLUDE_DIR to the one holding sodium.h)";

fn pkg_config(variable: &str) -> Option<PathBuf> {
    let out = Command::new("pkg-config")
        .args([&format!("--variable={variable}"), "libsodium"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// `x86_64-unknown-linux-gnu` -> `x86_64-linux-gnu` (Debian's multiarch directory name).
fn multiarch(target: &str) -> Option<String> {
    let parts: Vec<&str> = target.split('-').collect();
    match parts.as_slice() {
        [arch, _vendor, os, env] => Some(format!("{arch}-{os}-{env}")),
        [arch, os, env] => Some(format!("{arch}-{os}-{env}")),
        _ => None,
    }
}

fn find_lib_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("SODIUM_LIB_DIR") {
        return Some(PathBuf::from(dir));
    }
    let target = env::var("TARGET").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = pkg_config("libdir") {
        candidates.push(dir);
    }
    if let Some(ma) = multiarch(&target) {
        candidates.push(Path::new("/usr/lib").join(&ma));
        candidates.push(Path::new("/usr/local/lib").join(&ma));
    }
    for dir in ["/usr/local/lib", "/usr/lib64", "/usr/lib"] {
        candidates.push(PathBuf::from(dir));
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("libsodium.a").is_file())
}

fn find_include_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("SODIUM_INCLUDE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = pkg_config("includedir") {
        candidates.push(dir);
    }
    for dir in ["/usr/local/include", "/usr/include"] {
        candidates.push(PathBuf::from(dir));
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("sodium.h").is_file())
}

pub fn configure() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");
    println!("cargo:rerun-if-env-changed=SODIUM_LIB_DIR");
    println!("cargo:rerun-if-env-changed=SODIUM_INCLUDE_DIR");

    let lib_dir = find_lib_dir()
        .filter(|d| d.join("libsodium.a").is_file())
        .unwrap_or_else(|| panic!("libsodium.a not found. {}", HINT));
    let include_dir = find_include_dir()
        .filter(|d| d.join("sodium.h").is_file())
        .unwrap_or_else(|| panic!("sodium.h not found. {}", HINT));
    println!(
        "cargo:rerun-if-changed={}",
        lib_dir.join("libsodium.a").display()
    );

    // Link from a private directory holding only libsodium.a: adding the system library
    // directory itself to the search path could shadow other native libraries, and
    // zeromq-src prints its search path Debug-quoted, which cargo does not unquote.
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let private = out_dir.join("sodium-lib");
    std::fs::create_dir_all(&private).expect("create OUT_DIR/sodium-lib");
    std::fs::copy(lib_dir.join("libsodium.a"), private.join("libsodium.a"))
        .unwrap_or_else(|e| panic!("copy {}/libsodium.a: {}", lib_dir.display(), e));
    println!("cargo:rustc-link-search=native={}", private.display());

    // Cargo shows the build-script warnings of path dependencies, and cc forwards every C++
    // compiler warning of libzmq's sources as one: hundreds of lines of upstream noise in
    // each fresh build of the workspace. A crates.io zmq-sys shows none; silence them here.
    for var in ["CFLAGS", "CXXFLAGS"] {
        let flags = env::var(var).unwrap_or_default();
        env::set_var(var, format!("{flags} -w").trim_start());
    }

    zeromq_src::Build::new()
        .with_libsodium(Some(zeromq_src::LibLocation::new(private, include_dir)))
        .build();
}

fn main() {
    configure()
}
