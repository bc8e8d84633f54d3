//! `tidelog serve` as a child process (the built binary) on a free loopback port, stopped on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Served {
    /// Starts the server on `data_dir` with extra `serve` arguments and waits until /health answers.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Served {
        // A port the kernel just handed out and we released: free unless another process races for it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--shards", "2", "--fsync-interval-ms", "0", "serve", "--listen", &addr.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tidelog serve");
        let served = Served { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while super::http::try_request(addr, "GET", "/health", None, b"").map(|r| r.status) != Some(200) {
            assert!(Instant::now() < deadline, "tidelog serve did not answer /health on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SIGTERM: the server drains and syncs, as in production.
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
