//! An upgrade request from the network, as raw bytes, through the server's admission rules:
//! every request head either is admitted or gets a refusal with an error status and a
//! one-line reason, never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wspubsub_server::fuzzing::{Decision, Gatekeeper};
use wspubsub_server::{AuthKey, Options};

/// A server with every rule on: token auth with audience and issuer, and an origin list.
static GATEKEEPER: LazyLock<Gatekeeper> = LazyLock::new(|| {
    let options = Options {
        auth: Some(AuthKey::Hs256(b"fuzzing secret".to_vec())),
        jwt_audience: vec!["wspubsub".to_owned()],
        jwt_issuer: vec!["https://issuer.example".to_owned()],
        allowed_origins: vec!["https://app.example".to_owned(), "*.example.org".to_owned()],
        ..Options::default()
    };
    Gatekeeper::new(&options).expect("the fuzzing key is usable")
});

/// The request head in `bytes`, parsed as hyper parses it, or `None` where hyper would
/// answer 400 itself.
fn parse(bytes: &[u8]) -> Option<http::Request<()>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut headers);
    head.parse(bytes).ok()?.is_complete().then_some(())?;
    let version = match head.version? {
        0 => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let mut request = http::Request::builder()
        .method(head.method?)
        .uri(head.path?)
        .version(version);
    for header in head.headers.iter() {
        request = request.header(header.name, header.value);
    }
    request.body(()).ok()
}

fuzz_target!(|bytes: &[u8]| {
    let Some(request) = parse(bytes) else { return };
    match GATEKEEPER.decide(&request) {
        Decision::Admitted { name, .. } => {
            assert!(name.len() <= 128, "client names are bounded");
        }
        Decision::Refused { status, reason, why } => {
            assert!((400..600).contains(&status), "refusals are errors: {status}");
            assert!(!reason.is_empty(), "every refusal names its rule");
            assert!(!why.is_empty() && !why.contains('\n'), "one-line reasons: {why:?}");
        }
    }
});
