//! `tidelog serve` as a child process, for tests that kill it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// Starts `tidelog serve` on an ephemeral port with 2 shards and 1 MiB segments, and returns it with
/// the address it logged. Its logs are drained on a thread so it never blocks on a full pipe.
pub fn serve(dir: &std::path::Path, fsync_interval_ms: u32) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["--data-dir", dir.to_str().unwrap(), "--shards", "2", "--segment-size-mib", "1"])
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("FSYNC_INTERVAL", fsync_interval_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidelog serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server logs until it listens").unwrap();
        // Recovery's damage report (a torn tail after a kill) is a plain line before the JSON logs.
        let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if let Some(listen) = log["fields"]["listen"].as_str() {
            break listen.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}
