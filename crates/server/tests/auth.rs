//! Token auth: the refusal matrix before the upgrade, the close at expiry, and RS256/ES256
//! tokens end to end (the matching key admitted, any other key or algorithm refused).

use tokio_tungstenite::tungstenite::Error as WsError;
use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_server::{AuthKey, BadKey, Options, Server, ServerError};
use wspubsub_testkit::{
    RawClient, Signer, TestServer, handshake_status, next_binary, now, p256, read_until_close,
    refusal, rejections, send, try_connect, try_connect_with,
};

const SECRET: &[u8] = b"test secret, not a real one";

/// Test-only RSA keys (see fixtures/README.md): a pair, and an unrelated private key.
const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa-test-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa-test-public.pem");
const RSA_OTHER_PRIVATE: &[u8] = include_bytes!("fixtures/rsa-test-other-private.pem");

async fn server_with(key: AuthKey) -> TestServer {
    TestServer::start(Options {
        auth: Some(key),
        ..Options::default()
    })
    .await
}

async fn server() -> TestServer {
    server_with(AuthKey::Hs256(SECRET.to_vec())).await
}

/// Connects with `token` as a bearer token.
async fn connect_with(
    server: &TestServer,
    path: &str,
    role: Role,
    token: &str,
) -> Result<RawClient, WsError> {
    let bearer = format!("Bearer {token}");
    try_connect_with(&server.url(path), role, &[("authorization", &bearer)]).await
}

#[tokio::test]
async fn refusal_matrix() {
    let server = server().await;
    let good = Signer::hs256(SECRET).token(now() + 3600, &["/news/*"], &["/news/**"]);
    assert_eq!(
        handshake_status(&try_connect(&server.url("/news/a"), Role::Subscriber, None).await),
        401,
        "no token"
    );
    let expired = Signer::hs256(SECRET).token(now() - 3600, &[], &["/**"]);
    assert_eq!(
        handshake_status(&connect_with(&server, "/news/a", Role::Subscriber, &expired).await),
        401,
        "expired"
    );
    let forged = Signer::hs256(b"another secret").token(now() + 3600, &[], &["/**"]);
    assert_eq!(
        handshake_status(&connect_with(&server, "/news/a", Role::Subscriber, &forged).await),
        401,
        "bad signature"
    );
    assert_eq!(
        handshake_status(&connect_with(&server, "/news/a", Role::Subscriber, "not.a.jwt").await),
        401,
        "garbage"
    );
    assert_eq!(
        handshake_status(&connect_with(&server, "/sports/a", Role::Subscriber, &good).await),
        403,
        "wrong topic"
    );
    assert_eq!(
        handshake_status(&connect_with(&server, "/news/a/b", Role::Publisher, &good).await),
        403,
        "* is one segment"
    );
    assert_eq!(
        handshake_status(&connect_with(&server, "/news/a/b", Role::Subscriber, &good).await),
        101,
        "** is the rest"
    );
    assert_eq!(
        handshake_status(&connect_with(&server, "/news/a", Role::Publisher, &good).await),
        101,
        "publish pattern"
    );
    let by_query = format!("{}?pubsub=subscriber&token={good}", server.url("/news/x"));
    assert!(
        tokio_tungstenite::connect_async(by_query).await.is_ok(),
        "token in the query (browsers)"
    );
    for (status, rule, count) in [
        (401, "token_missing", 1.0),
        (401, "token_invalid", 3.0),
        (403, "token_forbids_topic", 2.0),
    ] {
        let counted = rejections(server.addr(), status, rule).await;
        assert_eq!(counted, count, "{status} {rule}");
    }
}

#[tokio::test]
async fn refusals_never_echo_the_token() {
    let server = server().await;
    let forged = Signer::hs256(b"another secret").token(now() + 3600, &[], &["/**"]);
    let (code, body) = refusal(
        "a forged token",
        connect_with(&server, "/t", Role::Subscriber, &forged).await,
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("bad signature"), "{body}");
    assert!(!body.contains(&forged), "{body}");
}

#[tokio::test]
async fn a_token_that_expires_while_connected_closes_the_client_with_1008() {
    let server = server().await;
    let short = Signer::hs256(SECRET).token(now() + 2, &[], &["/t"]);
    let mut client = connect_with(&server, "/t", Role::Subscriber, &short)
        .await
        .expect("admitted");
    let (_, close) = read_until_close(&mut client).await;
    assert_eq!(
        close.map(|(code, _)| code),
        Some(CloseCode::PolicyViolation.code())
    );
}

/// An asymmetric algorithm under test.
struct Asymmetric {
    /// What the server verifies with: the public half of `signer`'s key.
    key: AuthKey,
    /// That public key as PEM, which anyone may know.
    public_pem: Vec<u8>,
    /// Signs with the matching private key.
    signer: Signer,
    /// Signs with an unrelated key of the same kind.
    stranger: Signer,
    /// Signs with a key of the other asymmetric algorithm.
    other_algorithm: Signer,
}

/// The RS256 case, from the committed test keys.
fn rs256() -> Asymmetric {
    Asymmetric {
        key: AuthKey::Rs256(RSA_PUBLIC.to_vec()),
        public_pem: RSA_PUBLIC.to_vec(),
        signer: Signer::rs256(RSA_PRIVATE),
        stranger: Signer::rs256(RSA_OTHER_PRIVATE),
        other_algorithm: Signer::es256(p256().serialize_pem().as_bytes()),
    }
}

/// The ES256 case, from P-256 keys made now.
fn es256() -> Asymmetric {
    let pair = p256();
    let public_pem = pair.public_key_pem().into_bytes();
    Asymmetric {
        key: AuthKey::Es256(public_pem.clone()),
        public_pem,
        signer: Signer::es256(pair.serialize_pem().as_bytes()),
        stranger: Signer::es256(p256().serialize_pem().as_bytes()),
        other_algorithm: Signer::rs256(RSA_PRIVATE),
    }
}

/// A server verifying with `case.key` carries a message between a publisher and a subscriber
/// whose tokens the matching private key signed, and refuses with 401 the same claims signed
/// by another key, by the other asymmetric algorithm, or with HS256 keyed by the public key
/// (the algorithm confusion attack).
async fn only_the_matching_key_is_admitted(case: Asymmetric) {
    let server = server_with(case.key).await;
    let exp = now() + 3600;
    let claims = |signer: &Signer| signer.token(exp, &["/signed"], &["/signed"]);
    let good = claims(&case.signer);
    let mut subscriber = connect_with(&server, "/signed", Role::Subscriber, &good)
        .await
        .expect("a subscriber with a token from the matching key is admitted");
    let mut publisher = connect_with(&server, "/signed", Role::Publisher, &good)
        .await
        .expect("a publisher with a token from the matching key is admitted");
    send(&mut publisher, &b"verified"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"verified"[..]);

    let refused = [
        ("another key", claims(&case.stranger), "bad signature"),
        (
            "the other algorithm",
            claims(&case.other_algorithm),
            "wrong algorithm",
        ),
        (
            "HS256 keyed by the public PEM",
            claims(&Signer::hs256(&case.public_pem)),
            "wrong algorithm",
        ),
    ];
    for (what, token, why) in refused {
        for role in [Role::Subscriber, Role::Publisher] {
            let what = format!("{what} ({role:?})");
            let (code, body) = refusal(&what, connect_with(&server, "/signed", role, &token).await);
            assert_eq!(code, 401, "{what}: {body}");
            assert!(body.contains(why), "{what}: {body}");
        }
    }
}

/// RS256: the matching key's tokens work end to end; another RSA key's, an ES256 key's and
/// HS256 keyed by the public PEM are refused.
#[tokio::test]
async fn rs256_admits_only_its_key() {
    only_the_matching_key_is_admitted(rs256()).await;
}

/// ES256: the matching key's tokens work end to end; another P-256 key's, an RSA key's and
/// HS256 keyed by the public PEM are refused.
#[tokio::test]
async fn es256_admits_only_its_key() {
    only_the_matching_key_is_admitted(es256()).await;
}

/// A key that cannot verify its algorithm's tokens stops `Server::bind` with
/// `ServerError::Auth`, instead of a server that refuses every client.
#[tokio::test]
async fn an_unusable_key_fails_bind() {
    let ec_public = p256().public_key_pem().into_bytes();
    let unusable = [
        (AuthKey::Es256(b"not a pem".to_vec()), "ES256 with no PEM"),
        (AuthKey::Rs256(b"not a pem".to_vec()), "RS256 with no PEM"),
        (AuthKey::Es256(RSA_PUBLIC.to_vec()), "ES256 with an RSA key"),
        (AuthKey::Rs256(ec_public), "RS256 with an EC key"),
    ];
    for (key, what) in unusable {
        let options = Options {
            auth: Some(key),
            ..Options::default()
        };
        match Server::bind("127.0.0.1:0", options).await {
            Err(ServerError::Auth(error)) => {
                assert!(
                    error.to_string().contains("unusable token key"),
                    "{what}: {error}"
                );
            }
            Err(other) => panic!("{what}: expected an auth error, got {other}"),
            Ok(_) => panic!("{what}: the server started"),
        }
    }
}

/// A rotated key takes over from the next handshake: tokens of the old key are refused, the
/// new key's admitted, clients already in keep going; an unusable key changes nothing, and a
/// server without auth refuses to start requiring tokens.
#[tokio::test]
async fn a_reloaded_key_verifies_from_the_next_handshake_on() {
    let (old, new) = (p256(), p256());
    let server = server_with(AuthKey::Es256(old.public_key_pem().into_bytes())).await;
    let token = |pair: &rcgen::KeyPair| {
        Signer::es256(pair.serialize_pem().as_bytes()).token(now() + 3600, &["/k"], &["/k"])
    };
    let (old_token, new_token) = (token(&old), token(&new));
    let mut admitted = connect_with(&server, "/k", Role::Subscriber, &old_token)
        .await
        .expect("the old key's token before the reload");

    let rotated = AuthKey::Es256(new.public_key_pem().into_bytes());
    server.handle().reload_auth(&rotated).expect("reload");
    let (code, body) = refusal(
        "the old key after the reload",
        connect_with(&server, "/k", Role::Publisher, &old_token).await,
    );
    assert_eq!(code, 401, "{body}");
    let mut publisher = connect_with(&server, "/k", Role::Publisher, &new_token)
        .await
        .expect("the new key's token");
    send(&mut publisher, &b"rotated"[..]).await;
    assert_eq!(next_binary(&mut admitted).await, &b"rotated"[..]);

    let unusable = AuthKey::Es256(b"not a pem".to_vec());
    assert!(matches!(
        server.handle().reload_auth(&unusable),
        Err(BadKey::Unusable(_))
    ));
    assert_eq!(
        handshake_status(&connect_with(&server, "/k", Role::Subscriber, &new_token).await),
        101,
        "a failed reload keeps the key in place"
    );

    let open = TestServer::start(Options::default()).await;
    assert!(matches!(
        open.handle().reload_auth(&rotated),
        Err(BadKey::AuthOff)
    ));
}

/// A token whose `exp` is far beyond any clock (`u64::MAX` seconds) is admitted and simply
/// never expires: it must not crash the connection's task.
#[tokio::test]
async fn a_token_expiring_at_the_end_of_time_is_admitted() {
    let server = server().await;
    let forever = Signer::hs256(SECRET).token(u64::MAX, &["/far"], &["/far"]);
    let mut subscriber = connect_with(&server, "/far", Role::Subscriber, &forever)
        .await
        .expect("a subscriber with exp = u64::MAX is admitted");
    let mut publisher = connect_with(&server, "/far", Role::Publisher, &forever)
        .await
        .expect("a publisher with exp = u64::MAX is admitted");
    send(&mut publisher, &b"still valid"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"still valid"[..]);
}

const AUDIENCE: &str = "wspubsub";
const ISSUER: &str = "https://idp.example.com/";

/// With `jwt_audience` and `jwt_issuer` set, `aud` and `iss` are required and must match;
/// each refusal names the claim that failed.
#[tokio::test]
async fn audience_and_issuer_are_enforced_when_configured() {
    let server = TestServer::start(Options {
        auth: Some(AuthKey::Hs256(SECRET.to_vec())),
        jwt_audience: vec!["other".into(), AUDIENCE.into()],
        jwt_issuer: vec![ISSUER.into()],
        ..Options::default()
    })
    .await;
    let token = |claims: &[(&str, &str)]| {
        Signer::hs256(SECRET).token_with(now() + 3600, &[], &["/t"], claims)
    };
    let good = token(&[("aud", AUDIENCE), ("iss", ISSUER)]);
    assert_eq!(
        handshake_status(&connect_with(&server, "/t", Role::Subscriber, &good).await),
        101,
        "matching aud and iss"
    );
    let refused = [
        (
            "wrong aud",
            token(&[("aud", "elsewhere"), ("iss", ISSUER)]),
            "(aud)",
        ),
        ("no aud", token(&[("iss", ISSUER)]), "(aud)"),
        (
            "wrong iss",
            token(&[("aud", AUDIENCE), ("iss", "https://evil/")]),
            "(iss)",
        ),
        ("no iss", token(&[("aud", AUDIENCE)]), "(iss)"),
    ];
    for (what, token, claim) in refused {
        let (code, body) = refusal(
            what,
            connect_with(&server, "/t", Role::Subscriber, &token).await,
        );
        assert_eq!(code, 401, "{what}: {body}");
        assert!(body.contains(claim), "{what}: {body}");
        assert!(
            !body.contains(&token),
            "{what}: the token is echoed: {body}"
        );
    }
    let expired = Signer::hs256(SECRET).token_with(
        now() - 3600,
        &[],
        &["/t"],
        &[("aud", AUDIENCE), ("iss", ISSUER)],
    );
    let (code, body) = refusal(
        "expired",
        connect_with(&server, "/t", Role::Subscriber, &expired).await,
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("(exp)"), "{body}");
}

/// Without configured audiences a token's `aud` is not checked: tokens from identity
/// providers, which always set it, are accepted.
#[tokio::test]
async fn a_token_with_an_audience_is_accepted_when_none_is_configured() {
    let server = server().await;
    let token = Signer::hs256(SECRET).token_with(
        now() + 3600,
        &[],
        &["/t"],
        &[("aud", "some-api"), ("iss", "https://idp.example.com/")],
    );
    assert_eq!(
        handshake_status(&connect_with(&server, "/t", Role::Subscriber, &token).await),
        101
    );
}

/// `?token=` is percent-decoded like every query value (a client may escape any character).
#[tokio::test]
async fn a_query_token_is_percent_decoded() {
    let server = server().await;
    let token = Signer::hs256(SECRET).token(now() + 3600, &[], &["/q"]);
    let escaped = token.replace('.', "%2E");
    let url = format!("{}?pubsub=subscriber&token={escaped}", server.url("/q"));
    let connected = tokio_tungstenite::connect_async(url).await;
    assert!(connected.is_ok(), "{:?}", connected.err());
}
