//! `tidelog serve` as a child process (the built binary) on an ephemeral loopback port. Stopped on drop
//! with SIGTERM (it drains and syncs, as in production); the crash tests [`Server::kill`] it instead.
//! Its logs (JSON) are read on a thread, so it never blocks on a full pipe, and shown if the test fails.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Set once the child has been waited for: it is not signalled again.
    exited: Option<ExitStatus>,
    logs: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `tidelog --data-dir DIR --shards 2 --fsync-interval-ms N serve --listen 127.0.0.1:0` with
    /// `extra` arguments (store options such as `--segment-size-mib 1`, or `serve` options such as
    /// `--auth-file F`), and waits until it listens and /health answers.
    pub fn start(data_dir: &Path, fsync_interval_ms: u32, extra: &[&str]) -> Server {
        Server::start_with_env(data_dir, fsync_interval_ms, extra, &[])
    }

    /// [`Server::start`] with environment variables for the child (an object store's credentials).
    pub fn start_with_env(data_dir: &Path, fsync_interval_ms: u32, extra: &[&str], env: &[(String, String)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--shards", "2", "--fsync-interval-ms", &fsync_interval_ms.to_string()])
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tidelog serve");
        let logs: Arc<Mutex<String>> = Arc::default();
        let (listening, addr) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn({
            let logs = logs.clone();
            move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Recovery's damage report (a torn tail after a kill) is a plain line before the JSON logs.
                    if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) {
                        if let Some(listen) = log["fields"]["listen"].as_str() {
                            let _ = listening.send(listen.parse::<SocketAddr>().expect("the logged address"));
                        }
                    }
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        // Recovery of a large directory comes first; a minute is far more than any test needs.
        let addr = match addr.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!("tidelog serve did not listen within 60 s ({status}); its logs:\n{}", logs.lock().unwrap());
            }
        };
        let server = Server { child, addr, exited: None, logs };
        let deadline = Instant::now() + Duration::from_secs(20);
        while super::http::try_request(addr, "GET", "/health", None, b"").map(|r| r.status) != Some(200) {
            assert!(Instant::now() < deadline, "tidelog serve did not answer /health on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGKILL (a crash: nothing drained, flushed or synced), and waits for it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        self.child.kill().expect("SIGKILL"); // std's kill() sends SIGKILL on Unix
        let status = self.child.wait().unwrap();
        self.exited = Some(status);
        status
    }

    /// SIGTERM (a graceful stop), and waits up to a minute for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        // SAFETY: signalling our own child, not yet waited for, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let status = self.kill();
                panic!("tidelog serve did not exit within 60 s of SIGTERM (killed: {status}); its logs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.exited = Some(status);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("tidelog serve on {} logged:\n{}", self.addr, self.logs());
        }
        if self.exited.is_some() {
            return;
        }
        // SIGTERM: the server drains and syncs, as in production.
        // SAFETY: signalling our own child, not yet waited for, by its pid.
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
