//! Token auth: the refusal matrix before the upgrade, and the close at expiry.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_server::{AuthKey, Options};
use wspubsub_testkit::{RawClient, TestServer, read_until_close, try_connect};

const SECRET: &[u8] = b"test secret, not a real one";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn token(secret: &[u8], exp: u64, publish: &[&str], subscribe: &[&str]) -> String {
    let claims = serde_json::json!({ "exp": exp, "publish": publish, "subscribe": subscribe });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

async fn server() -> TestServer {
    TestServer::start(Options {
        auth: Some(AuthKey::Hs256(SECRET.to_vec())),
        ..Options::default()
    })
    .await
}

/// Connects with `token` as a bearer token.
async fn connect_with(
    server: &TestServer,
    path: &str,
    role: Role,
    token: &str,
) -> Result<RawClient, WsError> {
    let mut request = server.url(path).into_client_request()?;
    request
        .headers_mut()
        .insert("pubsub", HeaderValue::from_static(role.as_str()));
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    request.headers_mut().insert("authorization", bearer);
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

fn status(result: Result<RawClient, WsError>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[tokio::test]
async fn refusal_matrix() {
    let server = server().await;
    let good = token(SECRET, now() + 3600, &["/news/*"], &["/news/**"]);
    assert_eq!(
        status(try_connect(&server.url("/news/a"), Role::Subscriber, None).await),
        401,
        "no token"
    );
    let expired = token(SECRET, now() - 3600, &[], &["/**"]);
    assert_eq!(
        status(connect_with(&server, "/news/a", Role::Subscriber, &expired).await),
        401,
        "expired"
    );
    let forged = token(b"another secret", now() + 3600, &[], &["/**"]);
    assert_eq!(
        status(connect_with(&server, "/news/a", Role::Subscriber, &forged).await),
        401,
        "bad signature"
    );
    assert_eq!(
        status(connect_with(&server, "/news/a", Role::Subscriber, "not.a.jwt").await),
        401,
        "garbage"
    );
    assert_eq!(
        status(connect_with(&server, "/sports/a", Role::Subscriber, &good).await),
        403,
        "wrong topic"
    );
    assert_eq!(
        status(connect_with(&server, "/news/a/b", Role::Publisher, &good).await),
        403,
        "* is one segment"
    );
    assert_eq!(
        status(connect_with(&server, "/news/a/b", Role::Subscriber, &good).await),
        101,
        "** is the rest"
    );
    assert_eq!(
        status(connect_with(&server, "/news/a", Role::Publisher, &good).await),
        101,
        "publish pattern"
    );
    let by_query = format!("{}?pubsub=subscriber&token={good}", server.url("/news/x"));
    assert!(
        tokio_tungstenite::connect_async(by_query).await.is_ok(),
        "token in the query (browsers)"
    );
}

#[tokio::test]
async fn refusals_never_echo_the_token() {
    let server = server().await;
    let forged = token(b"another secret", now() + 3600, &[], &["/**"]);
    match connect_with(&server, "/t", Role::Subscriber, &forged).await {
        Err(WsError::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("bad signature"), "{body}");
            assert!(!body.contains(&forged), "{body}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_that_expires_while_connected_closes_the_client_with_1008() {
    let server = server().await;
    let short = token(SECRET, now() + 2, &[], &["/t"]);
    let mut client = connect_with(&server, "/t", Role::Subscriber, &short)
        .await
        .expect("admitted");
    let (_, close) = read_until_close(&mut client).await;
    assert_eq!(
        close.map(|(code, _)| code),
        Some(CloseCode::PolicyViolation.code())
    );
}
