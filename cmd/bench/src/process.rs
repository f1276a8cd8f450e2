//! The server under test, in a process of its own: this binary re-executed as `bench serve`.
//! Its CPU time and resident memory come from `/proc/<pid>`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;
use wspubsub_server::{Options, Server};

use crate::ServerKind;
use crate::baseline;

/// A running server child; killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts a server of `kind` and waits for its address.
    pub(crate) fn spawn(kind: ServerKind) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("path of the bench binary")?;
        let kind_arg = match kind {
            ServerKind::Wspubsub => "wspubsub",
            ServerKind::Baseline => "baseline",
        };
        let mut child = Command::new(exe)
            .args(["serve", "--kind", kind_arg])
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
        Ok(ServerProcess { child, addr })
    }

    /// Where the server listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// CPU seconds (user + system) the server has used so far.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = procfs::process::Process::new(self.pid())?.stat()?;
        Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
    }

    /// The server's resident memory, in bytes.
    pub(crate) fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = procfs::process::Process::new(self.pid())?.status()?;
        Ok(status.vmrss.context("VmRSS missing from /proc status")? * 1024)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child side: serve until stdin closes (the parent is done or gone).
pub(crate) async fn serve_child(kind: ServerKind) -> anyhow::Result<()> {
    let stop = async {
        let mut sink = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    match kind {
        ServerKind::Wspubsub => {
            let server = Server::bind("127.0.0.1:0", Options::default()).await?;
            println!("ADDR {}", server.local_addr()?);
            let handle = server.handle();
            tokio::select! {
                () = server.run() => {}
                () = stop => handle.shutdown(),
            }
        }
        ServerKind::Baseline => {
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
