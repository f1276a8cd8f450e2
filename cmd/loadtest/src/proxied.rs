//! A disrupted subscriber's way to the server: its own [`Proxy`] in front of the server's
//! address, and the topic's URL pointed at that proxy.

use std::net::SocketAddr;

use http::Uri;
use tokio::net::TcpStream;
use wspubsub_netfault::Proxy;

use crate::run::LoadTestError;

/// The address of the server `url` (`ws://host[:port]/path?query`) names, as a connection to
/// it finds it: a host name that resolves to several addresses is the first that accepts.
pub(crate) async fn server_addr(url: &str) -> Result<SocketAddr, LoadTestError> {
    let uri = ws_uri(url)?;
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(80);
    let probe = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|source| LoadTestError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    probe
        .peer_addr()
        .map_err(|source| LoadTestError::Unreachable {
            url: url.to_owned(),
            source,
        })
}

/// A proxy to `server` and `url` pointed at it, with its path and query kept.
pub(crate) async fn through_proxy(
    url: &str,
    server: SocketAddr,
) -> Result<(Proxy, String), LoadTestError> {
    let uri = ws_uri(url)?;
    let proxy = Proxy::start(server).await.map_err(LoadTestError::Proxy)?;
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let proxied = format!("ws://{}{path}", proxy.addr());
    Ok((proxy, proxied))
}

/// `url` parsed, if it is a `ws://` URL with a host. (Behind a proxy a `wss://` server's
/// certificate would be checked against the proxy's address, and fail.)
fn ws_uri(url: &str) -> Result<Uri, LoadTestError> {
    let invalid = |why: &str| LoadTestError::DisruptUrl {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("ws") {
        return Err(invalid("--disrupt needs a ws:// URL"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn the_proxied_url_keeps_path_and_query_and_names_the_proxy() {
        let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let url = format!("ws://localhost:{}/big/loadtest?token=x", addr.port());
        assert_eq!(server_addr(&url).await.expect("resolves"), addr);
        let (proxy, proxied) = through_proxy(&url, addr).await.expect("proxy");
        assert_eq!(
            proxied,
            format!("ws://{}/big/loadtest?token=x", proxy.addr())
        );
    }

    #[tokio::test]
    async fn unusable_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("wss://127.0.0.1:1/t", "ws://"),
            ("http://127.0.0.1:1/t", "ws://"),
            ("not a url", "not a URL"),
        ] {
            let refused = server_addr(url).await;
            assert!(
                matches!(&refused, Err(LoadTestError::DisruptUrl { why: said, .. }) if said.contains(why)),
                "{url}: {refused:?}"
            );
        }
    }
}
