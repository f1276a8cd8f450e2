//! The server under test: by default in a process of its own (this binary re-executed as
//! `bench serve`), or any server given by URL. Its CPU time and resident memory come from
//! `/proc/<pid>` when its process is known.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;
use wspubsub_server::{Options, Server};

use crate::ServerKind;
use crate::access::{Access, Security, ServeFlags};
use crate::baseline;

/// A server under test; a child of ours is killed when this is dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    pid: Option<i32>,
    /// What clients need to get in.
    access: Access,
}

impl ServerProcess {
    /// A server started elsewhere, at `url` (`ws://host:port`), whose process id, if given,
    /// lets the bench read its CPU time and memory.
    pub(crate) fn external(url: &str, pid: Option<i32>) -> anyhow::Result<ServerProcess> {
        let authority = url
            .strip_prefix("ws://")
            .context("--url must start with ws://")?;
        let authority = authority.split('/').next().unwrap_or(authority);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
            .with_context(|| format!("resolve {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        Ok(ServerProcess {
            child: None,
            addr,
            pid,
            access: Access::default(),
        })
    }

    /// Starts a server of `kind`, secured as `security` says, and waits for its address.
    pub(crate) fn spawn(kind: ServerKind, security: &Security) -> anyhow::Result<ServerProcess> {
        ServerProcess::launch(kind, &security.serve_args, security.access.clone())
    }

    /// Starts a plain wspubsub server in cluster mode on the NATS server(s) at `nats_url`
    /// and waits for its address (given once it has connected and found the stream).
    pub(crate) fn spawn_node(nats_url: &str) -> anyhow::Result<ServerProcess> {
        let args = [OsString::from("--nats-url"), OsString::from(nats_url)];
        ServerProcess::launch(ServerKind::Wspubsub, &args, Access::default())
    }

    /// Starts the `wspubsub` binary at `exe` (`wspubsub serve` on a free port of 127.0.0.1,
    /// default settings, JSON log lines) and waits for the line that gives its address; its
    /// log goes on being read (and dropped) so that it never blocks on a full pipe.
    pub(crate) fn spawn_binary(exe: &Path) -> anyhow::Result<ServerProcess> {
        let mut child = Command::new(exe)
            .args(["serve", "--log-format", "json"])
            .env("PUBSUB_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let pid = Some(child.id() as i32);
        let mut log = BufReader::new(child.stderr.take().context("server stderr")?);
        let mut server = ServerProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid,
            access: Access::default(),
        };
        let mut line = String::new();
        server.addr = loop {
            line.clear();
            if log.read_line(&mut line).context("read the server's log")? == 0 {
                bail!("{} ended without reporting its address", exe.display());
            }
            if let Some(addr) = listening_addr(&line) {
                break addr;
            }
        };
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        Ok(server)
    }

    /// Starts `bench serve --kind KIND ARGS` and waits for its address; its clients get in
    /// with `access`.
    fn launch(
        kind: ServerKind,
        args: &[OsString],
        access: Access,
    ) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("path of the bench binary")?;
        let mut child = Command::new(exe)
            .args(["serve", "--kind", kind.name()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the server process")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("read the server address")?;
        let Some(addr) = line.trim().strip_prefix("ADDR ") else {
            bail!("server process did not report its address: {line:?}");
        };
        let addr = addr.parse().context("server address")?;
        let pid = Some(child.id() as i32);
        Ok(ServerProcess {
            child: Some(child),
            addr,
            pid,
            access,
        })
    }

    /// Where the server listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What clients need to get in (TLS, a token).
    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    /// CPU seconds (user + system) the server has used so far; NaN when its process is not
    /// known (figures derived from it then read "NaN", never a made-up number).
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.pid.map_or(Ok(f64::NAN), cpu_seconds)
    }

    /// The server's resident memory, in bytes, when its process is known.
    pub(crate) fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pid = self
            .pid
            .context("the server's memory needs its process id (--server-pid)")?;
        let status = procfs::process::Process::new(pid)?.status()?;
        Ok(status.vmrss.context("VmRSS missing from /proc status")? * 1024)
    }
}

/// The address in `line`, if it is wspubsub's JSON log line saying where it listens for
/// WebSocket clients.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = entry.get("fields")?;
    let message = fields.get("message")?.as_str()?;
    if !message.starts_with("wspubsub listening") {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

/// CPU seconds (user + system) the process `pid` has used so far, from `/proc`.
pub(crate) fn cpu_seconds(pid: i32) -> anyhow::Result<f64> {
    let stat = procfs::process::Process::new(pid)?.stat()?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// A wspubsub server with `options` in this process, as a server under test (CPU and memory
/// unknown); the handle stops it.
#[cfg(test)]
pub(crate) async fn in_process(
    options: wspubsub_server::Options,
) -> anyhow::Result<(ServerProcess, wspubsub_server::ServerHandle)> {
    let server = Server::bind("127.0.0.1:0", options).await?;
    let url = format!("ws://{}", server.local_addr()?);
    let handle = server.handle();
    tokio::spawn(server.run());
    Ok((ServerProcess::external(&url, None)?, handle))
}

/// The baseline broadcaster in this process, listening on a free port of 127.0.0.1; its URL.
#[cfg(test)]
pub(crate) async fn in_process_baseline() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    tokio::spawn(baseline::serve(listener));
    Ok(url)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The child side: serve, secured as `flags` say (and in cluster mode on the NATS server(s)
/// at `nats_url`, if given), until stdin closes (the parent is done or gone).
pub(crate) async fn serve_child(
    kind: ServerKind,
    flags: &ServeFlags,
    nats_url: Option<String>,
) -> anyhow::Result<()> {
    let stop = async {
        let mut sink = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    match kind {
        ServerKind::Wspubsub => {
            let options = Options {
                nats_url,
                ..flags.options()?
            };
            let server = Server::bind("127.0.0.1:0", options).await?;
            println!("ADDR {}", server.local_addr()?);
            let handle = server.handle();
            tokio::select! {
                () = server.run() => {}
                () = stop => handle.shutdown(),
            }
        }
        ServerKind::Baseline => {
            anyhow::ensure!(
                flags.is_plain() && nats_url.is_none(),
                "the baseline serves plain ws:// only, without auth, alone"
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("ADDR {}", listener.local_addr()?);
            tokio::select! {
                () = baseline::serve(listener) => {}
                () = stop => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::listening_addr;

    #[test]
    fn the_listening_line_gives_the_address_and_no_other_line_does() {
        let listening = r#"{"level":"INFO","fields":{"message":"wspubsub listening; every URL path is a topic","addr":"127.0.0.1:42379","scheme":"ws"}}"#;
        assert_eq!(
            listening_addr(listening),
            Some(([127, 0, 0, 1], 42379).into())
        );
        let admin = r#"{"level":"INFO","fields":{"message":"health and metrics endpoints listening","addr":"127.0.0.1:9090"}}"#;
        assert_eq!(listening_addr(admin), None);
        assert_eq!(listening_addr("addr=127.0.0.1:1 wspubsub listening"), None);
    }
}
