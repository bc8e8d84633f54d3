//! A Python venv under `target/py-venv` with the real clients the protocol tests drive (the OpenTelemetry
//! SDK and its OTLP/HTTP exporter, the MCP SDK), installed once with pip and reused. No python3 (or no
//! venv module, or no network on the first run) fails the test with the reason: it never passes silently.

use std::path::PathBuf;
use std::process::Command;

/// Pinned so that every machine tests against the same clients.
const REQUIREMENTS: [&str; 3] = [
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
    "mcp==2.3.0",
];

/// The venv's python, ready to use.
pub fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("py-venv");
    std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
    // Test binaries run one at a time but their tests in parallel: a file lock keeps installs apart.
    let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let python = venv.join("bin").join("python");
    let marker = venv.join("tidelog-requirements.txt");
    let wanted = REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists() {
        return python;
    }
    let status = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap_or_else(|e| {
        panic!("these tests need python3 (with the venv module) to run the real clients: running python3: {e}")
    });
    assert!(status.success(), "python3 -m venv {} failed: install python3-venv", venv.display());
    let output = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(REQUIREMENTS)
        .output()
        .expect("running pip");
    assert!(
        output.status.success(),
        "pip install {REQUIREMENTS:?} failed (network needed on the first run):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&marker, wanted).unwrap();
    python
}

/// A script under `scripts/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}
