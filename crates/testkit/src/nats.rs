//! Real `nats-server` processes for the cluster tests: one with JetStream ([`NatsServer`]) or
//! three routed to each other ([`NatsCluster`]), each on free loopback ports with its own
//! temporary store directory, started and stopped by the test (by PID: SIGTERM, then SIGKILL).
//!
//! Readiness is the server's own word: its monitoring endpoint's `/healthz` answers 200 (and,
//! in a cluster, `/routez` counts a route to every other running server). The binary is
//! Debian's `nats-server` package, which `.ci/run` installs.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::TIMEOUT;

/// How long a server gets to exit after SIGTERM before it is sent SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// How often readiness is asked again while a server starts.
const POLL: Duration = Duration::from_millis(25);

/// The name every test cluster shares (`--cluster_name`).
const CLUSTER_NAME: &str = "wspubsub-test";

/// What to do when the binary is missing: the same install `.ci/run` performs.
const INSTALL: &str = "apt-get update && apt-get install -y --no-install-recommends nats-server";

/// One `nats-server -js` process on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct NatsServer {
    /// The server's name (`-n`), unique within a cluster as JetStream requires.
    name: String,
    /// The port clients connect to.
    client_port: u16,
    /// The monitoring port (`-m`) readiness is read from.
    monitor_port: u16,
    /// In a cluster: this server's route port and the other servers' route ports.
    routes: Option<(u16, Vec<u16>)>,
    /// Extra command-line arguments (authentication, for example).
    extra_args: Vec<String>,
    /// The store directory (`-sd`) and log file, kept across restarts.
    dir: TempDir,
    /// The running process; `None` while stopped.
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a standalone JetStream server on free loopback ports and waits until it is
    /// healthy.
    pub async fn start() -> NatsServer {
        NatsServer::start_with(&[]).await
    }

    /// Like [`NatsServer::start`], with extra `nats-server` arguments (such as
    /// `--auth TOKEN` or `--user U --pass P`).
    pub async fn start_with(extra_args: &[&str]) -> NatsServer {
        let mut server = NatsServer::new("n0".into(), None, extra_args);
        server.spawn();
        server.wait_ready(None, true).await;
        server
    }

    /// A server not yet started.
    fn new(name: String, routes: Option<(u16, Vec<u16>)>, extra_args: &[&str]) -> NatsServer {
        NatsServer {
            name,
            client_port: free_port(),
            monitor_port: free_port(),
            routes,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            dir: tempfile::Builder::new()
                .prefix("wspubsub-nats-")
                .tempdir()
                .expect("create a temporary directory for nats-server"),
            child: None,
        }
    }

    /// The `nats://` URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://{}", self.client_addr())
    }

    /// The address clients connect to.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the process was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The last lines of the server's log, for a failure message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited within a grace period;
    /// returns once the process is gone, so its ports refuse connections.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&child, Signal::TERM);
        if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
            // Already exited between the two calls is fine: wait reaps it either way.
            let _ = child.start_kill();
            crate::within(TIMEOUT, child.wait())
                .await
                .expect("reap nats-server after SIGKILL");
        }
    }

    /// Starts the server again on the same ports and store directory and waits until it is
    /// healthy (a stopped cluster member: see [`NatsCluster::restart`]).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn();
        self.wait_ready(None, true).await;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// Starts the process without waiting for it.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let store = self.dir.path().join("store");
        let mut command = Command::new(binary());
        command
            .args(["-js", "-a", "127.0.0.1", "-n", &self.name])
            .args(["-p", &self.client_port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-sd")
            .arg(&store)
            .arg("-l")
            .arg(self.log_path())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A test that panics before stopping still leaves no server behind.
            .kill_on_drop(true);
        if let Some((cluster_port, peers)) = &self.routes {
            let routes: Vec<String> = peers
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect();
            command
                .args(["--cluster", &format!("nats://127.0.0.1:{cluster_port}")])
                .args(["--cluster_name", CLUSTER_NAME])
                .args(["--routes", &routes.join(",")]);
        }
        self.child = Some(command.spawn().unwrap_or_else(|error| {
            panic!("start nats-server ({error}); install it with: {INSTALL}")
        }));
    }

    /// Waits until `/healthz` answers 200 (when `health` is asked for) and, with `routes`,
    /// `/routez` counts at least that many routes; panics with the log's tail if the process
    /// exits or the wait exceeds [`TIMEOUT`].
    async fn wait_ready(&mut self, routes: Option<usize>, health: bool) {
        let deadline = Instant::now() + TIMEOUT;
        let monitor = SocketAddr::from(([127, 0, 0, 1], self.monitor_port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "nats-server {} exited ({status}) while starting:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let healthy = !health || matches!(http_get(monitor, "/healthz").await, Some((200, _)));
            let routed = match routes {
                None => true,
                Some(wanted) => http_get(monitor, "/routez")
                    .await
                    .and_then(|(_, body)| route_count(&body))
                    .is_some_and(|count| count >= wanted),
            };
            if healthy && routed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {} not ready after {TIMEOUT:?} (healthy: {healthy}, routes: {routed}):\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&child, Signal::TERM);
        // Drop cannot await: ask the process, briefly, whether it has gone, so that the store
        // directory is removed after the server stops writing to it.
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.start_kill();
    }
}

/// Several `nats-server -js` processes routed to each other (one cluster, one JetStream
/// meta group); every server is stopped when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    /// The servers, in the order of [`NatsCluster::urls`].
    servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` servers (3 for a JetStream cluster with quorum) and waits until each is
    /// healthy with a route to every other one.
    pub async fn start(size: usize) -> NatsCluster {
        assert!(size >= 2, "a cluster has at least two servers");
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut servers: Vec<NatsServer> = (0..size)
            .map(|index| {
                let peers = cluster_ports
                    .iter()
                    .enumerate()
                    .filter(|&(other, _)| other != index)
                    .map(|(_, &port)| port)
                    .collect();
                NatsServer::new(
                    format!("n{index}"),
                    Some((cluster_ports[index], peers)),
                    &[],
                )
            })
            .collect();
        for server in &mut servers {
            server.spawn();
        }
        for server in &mut servers {
            server.wait_ready(Some(size - 1), true).await;
        }
        NatsCluster { servers }
    }

    /// The client URLs of every server, comma-separated (what `--nats-url` takes).
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.servers.iter().map(NatsServer::url).collect();
        urls.join(",")
    }

    /// Server `index`.
    pub fn server(&self, index: usize) -> &NatsServer {
        &self.servers[index]
    }

    /// Stops server `index` (SIGTERM, then SIGKILL); the others keep running.
    pub async fn stop(&mut self, index: usize) {
        self.servers[index].stop().await;
    }

    /// Starts server `index` again on its ports and store, and waits until it is routed to
    /// every other running server (and healthy, when a majority runs, since JetStream needs
    /// a meta leader for that).
    pub async fn restart(&mut self, index: usize) {
        let server = &mut self.servers[index];
        server.stop().await;
        server.spawn();
        let running = self.servers.iter().filter(|s| s.is_running()).count();
        let quorum = running * 2 > self.servers.len();
        let server = &mut self.servers[index];
        server.wait_ready(Some(running - 1), quorum).await;
    }
}

/// The `nats-server` binary: on PATH, or in /usr/sbin where Debian puts it (a non-root PATH
/// may lack it); panics naming the install command when there is none.
fn binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| is_file(candidate))
        .unwrap_or_else(|| panic!("nats-server is not on PATH; install it with: {INSTALL}"))
}

fn is_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|meta| meta.is_file())
}

/// A port on 127.0.0.1 that was free a moment ago (bound, then released). Should another
/// process take it first, nats-server exits and the start fails loudly with its log.
fn free_port() -> u16 {
    // The kernel may hand out a port again once its listener is gone, and a server's ports
    // are only bound when it starts: never give one port to two of them in this process.
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind a free loopback port")
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Sends `signal` to the child's PID (it may have exited already: then nothing happens).
fn signal(child: &Child, signal: Signal) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid {
        let _ = kill_process(pid, signal);
    }
}

/// `GET path` on the monitoring port: the status and body, or `None` while it does not
/// answer (the server is still starting).
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.split(' ').nth(1)?.parse().ok()?;
        let body = answer.split_once("\r\n\r\n").map(|(_, body)| body)?;
        Some((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// `num_routes` from a `/routez` answer.
fn route_count(body: &str) -> Option<usize> {
    let routez: serde_json::Value = serde_json::from_str(body).ok()?;
    usize::try_from(routez.get("num_routes")?.as_u64()?).ok()
}
