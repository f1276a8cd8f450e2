//! A web origin of the tests' own: an HTTP server on a free loopback port that serves the
//! test pages (built in from `tests/browser/`), so that a page runs on an origin other than
//! the wspubsub server's, as a real site's would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The pages every origin serves: path and HTML.
const PAGES: &[(&str, &str)] = &[("/harness.html", include_str!("harness.html"))];

/// A running origin; dropping it stops taking connections.
pub(crate) struct Origin {
    addr: SocketAddr,
    accepting: JoinHandle<()>,
}

impl Origin {
    /// Serves the pages on a free port of 127.0.0.1.
    pub(crate) async fn start() -> Origin {
        Origin::with_pages(Vec::new()).await
    }

    /// Serves the pages and `extra` ones (path, HTML) on a free port of 127.0.0.1.
    pub(crate) async fn with_pages(extra: Vec<(String, String)>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the origin's listener");
        let addr = listener.local_addr().expect("the origin's address");
        let mut pages: Vec<(String, String)> = PAGES
            .iter()
            .map(|&(path, html)| (path.to_owned(), html.to_owned()))
            .collect();
        pages.extend(extra);
        let pages = Arc::new(pages);
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let pages = Arc::clone(&pages);
                let service = service_fn(move |request| answer(Arc::clone(&pages), request));
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Origin { addr, accepting }
    }

    /// The origin, as a page's `Origin` header names it (`http://127.0.0.1:PORT`).
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on this origin.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// A page, or 404.
async fn answer(
    pages: Arc<Vec<(String, String)>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let page = pages.iter().find(|(path, _)| path == request.uri().path());
    let response = match page {
        Some((_, html)) => {
            let mut response = Response::new(Full::new(Bytes::from(html.clone())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        None => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}
