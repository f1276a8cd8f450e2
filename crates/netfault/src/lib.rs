//! A loopback TCP proxy that breaks its connections on demand, the way a network does: both
//! sides get a TCP reset (RST), with no closing handshake of any protocol above.
//!
//! Clients connect to [`Proxy::addr`] instead of the server; [`Proxy::reset`] breaks every
//! connection open at that moment, and later ones go through again. The resilience tests of
//! the client crates and `loadtest --disrupt` use it to prove that reconnecting clients
//! resume without losing or repeating a message; [`Proxy::redirect`] sends later connections
//! elsewhere, the way a load balancer moves clients off a node that died.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy from a free loopback port to an upstream address. Dropping it stops it and
/// breaks every connection through it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    /// Where new connections go.
    upstream: watch::Sender<SocketAddr>,
    /// Bumped by every [`Proxy::reset`]; each connection watches it.
    generation: watch::Sender<u64>,
    /// Connections open through the proxy now.
    open: Arc<AtomicUsize>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of the upstream's loopback address (127.0.0.1 or ::1) and
    /// forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let loopback: SocketAddr = if upstream.is_ipv6() {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        } else {
            (std::net::Ipv4Addr::LOCALHOST, 0).into()
        };
        let listener = TcpListener::bind(loopback).await?;
        let addr = listener.local_addr()?;
        let (generation, watching) = watch::channel(0);
        let (upstream, target) = watch::channel(upstream);
        let open = Arc::new(AtomicUsize::new(0));
        let accepting = tokio::spawn(accept(listener, target, watching, Arc::clone(&open)));
        Ok(Proxy {
            addr,
            upstream,
            generation,
            open,
            accepting,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Breaks every connection open now with a TCP reset on both sides; returns how many
    /// there were.
    pub fn reset(&self) -> usize {
        let open = self.open.load(Ordering::Acquire);
        self.generation.send_modify(|generation| *generation += 1);
        open
    }

    /// Sends connections made from now on to `upstream`; open ones stay where they are.
    pub fn redirect(&self, upstream: SocketAddr) {
        self.upstream.send_replace(upstream);
    }

    /// Connections open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        // Every connection watching the generation sees it change, or its sender gone.
        self.generation.send_modify(|generation| *generation += 1);
    }
}

/// Accepts connections and forwards each until it ends or is reset.
async fn accept(
    listener: TcpListener,
    upstream: watch::Receiver<SocketAddr>,
    generation: watch::Receiver<u64>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                tracing::debug!(%error, "proxy accept failed");
                continue;
            }
        };
        let mut reset = generation.clone();
        reset.mark_unchanged();
        let upstream = *upstream.borrow();
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::AcqRel);
            forward(client, upstream, &mut reset).await;
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Forwards between `client` and a new connection to `upstream` until either side ends or
/// `reset` changes; a reset ends both with RST.
async fn forward(mut client: TcpStream, upstream: SocketAddr, reset: &mut watch::Receiver<u64>) {
    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%error, %upstream, "proxy cannot reach upstream");
            abort(&client);
            return;
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = reset.changed() => {
            abort(&client);
            abort(&server);
        }
    }
}

/// Makes dropping `stream` send a TCP reset instead of a FIN.
fn abort(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "cannot set SO_LINGER 0");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    /// An upstream that echoes what it reads.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _copied = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream) -> io::Result<[u8; 4]> {
        stream.write_all(b"ping").await?;
        let mut answer = [0; 4];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn forwards_then_resets_open_connections_only() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        let mut first = TcpStream::connect(proxy.addr()).await.expect("connect");
        let echoed = tokio::time::timeout(LIMIT, round_trip(&mut first)).await;
        assert_eq!(echoed.expect("in time").expect("echo"), *b"ping");
        assert_eq!(proxy.reset(), 1);
        let mut buffer = [0; 1];
        let read = tokio::time::timeout(LIMIT, first.read(&mut buffer))
            .await
            .expect("in time");
        assert_eq!(
            read.map_err(|error| error.kind()),
            Err(io::ErrorKind::ConnectionReset),
            "a reset, not an orderly end"
        );
        let mut second = TcpStream::connect(proxy.addr()).await.expect("connect");
        let echoed = tokio::time::timeout(LIMIT, round_trip(&mut second)).await;
        assert_eq!(
            echoed.expect("in time").expect("echo"),
            *b"ping",
            "later connections go through"
        );
    }

    #[tokio::test]
    async fn a_redirect_moves_new_connections_only() {
        /// An upstream that answers every connection with `tag` and closes.
        async fn tagged(tag: &'static [u8]) -> SocketAddr {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let _written = stream.write_all(tag).await;
                }
            });
            addr
        }
        async fn first_byte(proxy: &Proxy) -> u8 {
            let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
            let mut byte = [0; 1];
            let read = tokio::time::timeout(LIMIT, stream.read_exact(&mut byte)).await;
            read.expect("in time").expect("a byte");
            byte[0]
        }
        let proxy = Proxy::start(tagged(b"a").await).await.expect("proxy");
        assert_eq!(first_byte(&proxy).await, b'a');
        proxy.redirect(tagged(b"b").await);
        assert_eq!(first_byte(&proxy).await, b'b');
    }
}
