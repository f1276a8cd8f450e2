//! `wspubsub serve`: the server's life from bind to graceful stop, and one info log line per
//! event. Its settings are in `args`, what signals do in `signals`.

use anyhow::Context;
use tokio::sync::broadcast::error::RecvError;
use wspubsub_server::{Event, Options, Server, ServerHandle};

use crate::args::ServeArgs;
use crate::logging::Logging;

/// Runs the server until SIGINT or SIGTERM, then stops it gracefully.
pub(crate) async fn run(args: ServeArgs, logging: &Logging) -> anyhow::Result<()> {
    let options = args.options()?;
    let quiet = logging.quiet_nats_client();
    let server = bind(&args.addr, options).await?;
    quiet.end();
    let local = server.local_addr().context("listen address")?;
    let handle = server.handle();
    tokio::spawn(log_events(handle.clone()));
    #[cfg(unix)]
    crate::signals::Signals::install()?.spawn(handle, args.clone());
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C: shutting down");
            handle.shutdown();
        }
    });
    let scheme = if args.tls_cert.is_some() { "wss" } else { "ws" };
    tracing::info!(addr = %local, scheme, "wspubsub listening; every URL path is a topic");
    if let Some(admin) = server.admin_addr().transpose().context("admin address")? {
        tracing::info!(addr = %admin, "health and metrics endpoints listening");
    }
    server.run().await;
    tracing::info!("wspubsub stopped");
    Ok(())
}

/// Binds `addr`. Go's `:PORT` means every interface: one IPv6 socket on `[::]:PORT` with
/// `IPV6_V6ONLY` off, so that it takes IPv4 clients too whatever the system's default, and
/// `0.0.0.0:PORT` (IPv4 only) where IPv6 is unavailable.
async fn bind(addr: &str, options: Options) -> anyhow::Result<Server> {
    let cannot_start = |addr: &str| format!("cannot start on {addr}");
    let Some(port) = addr.strip_prefix(':') else {
        return Server::bind(addr, options)
            .await
            .with_context(|| cannot_start(addr));
    };
    let port: u16 = port
        .parse()
        .with_context(|| format!("invalid --addr {addr}: expected :PORT with PORT 0 to 65535"))?;
    let every_ipv6 = format!("[::]:{port}");
    match dual_stack_listener(port) {
        Ok(listener) => Server::from_listener(listener, options)
            .await
            .with_context(|| cannot_start(&every_ipv6)),
        Err(ipv6) => {
            let every_ipv4 = format!("0.0.0.0:{port}");
            let server = Server::bind(every_ipv4.as_str(), options)
                .await
                .with_context(|| cannot_start(&every_ipv4))?;
            tracing::warn!(error = %ipv6, "cannot listen on {every_ipv6}: serving IPv4 only");
            Ok(server)
        }
    }
}

/// A listening IPv6 socket on every interface that takes IPv4 clients too.
fn dual_stack_listener(port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    // As tokio's own bind does: a restarted server can take its port back at once.
    socket.set_reuse_address(true)?;
    let every_interface = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    socket.bind(&every_interface.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Connections the kernel queues before they are accepted (tokio's own default).
const LISTEN_BACKLOG: i32 = 1024;

/// Writes one info line per server event.
async fn log_events(handle: ServerHandle) {
    let mut events = handle.events();
    loop {
        match events.recv().await {
            Ok(event) => log_event(&event),
            Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "event log fell behind"),
            Err(RecvError::Closed) => return,
        }
    }
}

fn log_event(event: &Event) {
    let client = event.client_id.as_deref().unwrap_or("-");
    let detail = event.detail.as_deref().unwrap_or("");
    tracing::info!(event = %event.kind, topic = %event.topic, client, detail);
}
