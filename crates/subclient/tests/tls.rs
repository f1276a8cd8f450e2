//! `wss://` end to end: a server with a generated self-signed certificate, and the publisher
//! and subscriber SDKs trusting it (or not).

use wspubsub_pubclient::Publisher;
use wspubsub_server::{Options, TlsIdentity};
use wspubsub_subclient::{ClientError, ClientOptions, Subscriber};
use wspubsub_testkit::{TIMEOUT, TestServer, metric, next_ok, scrape, self_signed, within};

/// A self-signed certificate for the loopback address, and a TLS server presenting it (with
/// its endpoints on `admin_addr`, when given).
async fn tls_server(admin_addr: Option<&str>) -> (TestServer, String) {
    tls_server_with(Options {
        admin_addr: admin_addr.map(|addr| addr.parse().expect("an admin address")),
        ..Options::default()
    })
    .await
}

/// A TLS server with `options` and a fresh self-signed certificate, and that certificate.
async fn tls_server_with(options: Options) -> (TestServer, String) {
    let (identity, certificate) = self_signed();
    let options = Options {
        tls: Some(identity),
        ..options
    };
    (TestServer::start(options).await, certificate)
}

#[tokio::test]
async fn messages_cross_tls_to_clients_that_trust_the_certificate() {
    let (server, certificate) = tls_server(None).await;
    let url = format!("wss://{}/secure", server.addr());
    let options = ClientOptions::default().ca_certificates_pem(certificate);
    let mut subscriber = Subscriber::connect(&url, options.clone())
        .await
        .expect("subscribe over TLS");
    let publisher = Publisher::connect(&url, options)
        .await
        .expect("publish over TLS");
    for n in 0..100u32 {
        publisher
            .publish(n.to_le_bytes().repeat(64))
            .await
            .expect("publish");
    }
    publisher.close().await.expect("close");
    for n in 0..100u32 {
        assert_eq!(next_ok(&mut subscriber).await, n.to_le_bytes().repeat(64));
    }
}

#[tokio::test]
async fn clients_refuse_a_certificate_they_do_not_trust() {
    let (server, _certificate) = tls_server(None).await;
    let url = format!("wss://{}/secure", server.addr());
    let (_other_server, other_certificate) = tls_server(None).await;
    let wrong_ca = ClientOptions::default().ca_certificates_pem(other_certificate);
    let refused = Subscriber::connect(&url, wrong_ca).await;
    assert!(
        matches!(refused, Err(ClientError::Connect(_))),
        "{:?}",
        refused.err()
    );
    // The platform's roots do not include a self-signed test certificate (and a machine
    // without any roots says so instead).
    let platform = Publisher::connect(&url, ClientOptions::default()).await;
    assert!(
        matches!(platform, Err(ClientError::Connect(_) | ClientError::Tls(_))),
        "{:?}",
        platform.err()
    );
}

#[tokio::test]
async fn plain_websocket_clients_of_a_tls_server_fail_and_are_counted() {
    let (server, _certificate) = tls_server(Some("127.0.0.1:0")).await;
    let plain = Subscriber::connect(
        &format!("ws://{}/secure", server.addr()),
        ClientOptions::default(),
    )
    .await;
    assert!(
        matches!(plain, Err(ClientError::Connect(_))),
        "{:?}",
        plain.err()
    );
    // The failed handshake is counted; the admin listener stays plain HTTP.
    let failures = counted(&server, "wspubsub_tls_handshake_failures_total").await;
    assert_eq!(failures, 1.0);
}

/// The value of `name` on the server's admin listener, once it is at least 1: the server
/// counts a dropped handshake just after the connection closes.
async fn counted(server: &TestServer, name: &str) -> f64 {
    let admin = server.admin_addr().expect("an admin listener");
    within(TIMEOUT, async {
        loop {
            match metric(&scrape(admin).await, name) {
                Some(count) if count >= 1.0 => return count,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await
}

#[tokio::test]
async fn connections_that_never_finish_the_tls_handshake_are_dropped() {
    use tokio::io::AsyncReadExt;

    let (server, _certificate) = tls_server_with(Options {
        handshake_timeout: std::time::Duration::from_millis(300),
        admin_addr: Some("127.0.0.1:0".parse().expect("an admin address")),
        ..Options::default()
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let mut rest = Vec::new();
    // `within` fails the test if the server keeps the silent connection open.
    let _ended = within(TIMEOUT, silent.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty(),
        "nothing is sent to a client that never said hello"
    );
    let timeouts = counted(&server, "wspubsub_handshake_timeouts_total").await;
    assert_eq!(timeouts, 1.0);
}

#[tokio::test]
async fn a_reloaded_certificate_serves_new_connections_and_open_ones_keep_going() {
    let (server, old_certificate) = tls_server(None).await;
    let url = format!("wss://{}/renewed", server.addr());
    let trusting = |pem: &str| ClientOptions::default().ca_certificates_pem(pem);
    let mut open = Subscriber::connect(&url, trusting(&old_certificate))
        .await
        .expect("connect with the old certificate");

    let (renewed, new_certificate) = self_signed();
    server.handle().reload_tls(&renewed).expect("reload");
    let refused = Subscriber::connect(&url, trusting(&old_certificate)).await;
    assert!(
        matches!(refused, Err(ClientError::Connect(_))),
        "the old certificate is no longer served: {:?}",
        refused.err()
    );
    let publisher = Publisher::connect(&url, trusting(&new_certificate))
        .await
        .expect("connect with the new certificate");
    publisher
        .publish(&b"after the reload"[..])
        .await
        .expect("publish");
    assert_eq!(next_ok(&mut open).await.as_ref(), b"after the reload");

    let unusable = TlsIdentity::from_pem("not a certificate", "not a key");
    assert!(server.handle().reload_tls(&unusable).is_err());
    assert!(
        Subscriber::connect(&url, trusting(&new_certificate))
            .await
            .is_ok(),
        "a failed reload keeps the certificate in place"
    );
}

#[tokio::test]
async fn a_plain_server_refuses_a_certificate_reload() {
    let server = TestServer::start(Options::default()).await;
    let (identity, _) = self_signed();
    assert!(matches!(
        server.handle().reload_tls(&identity),
        Err(wspubsub_server::BadTls::NotServingTls)
    ));
}
