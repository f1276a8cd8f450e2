//! Cluster mode's `--nats-*` options through real processes: a `wspubsub serve` node against
//! `nats-server`s that want a password, a token or TLS, a file-storage stream that outlives
//! a NATS restart, three replicas on a NATS cluster, and the bound on a topic's subject.
#![allow(clippy::expect_used, clippy::panic)]

mod support;

use support::{
    Process, TempDir, assert_one_line_failure, finish_sub, publish, run, subscribe,
    write_certificate,
};
use wspubsub_cluster::{Broker, ConnectConfig, MAX_SUBJECT_BYTES, PREFIX, Storage, StreamSpec};
use wspubsub_server::protocol::Role;
use wspubsub_testkit::{
    NatsCluster, NatsServer, OperatorMode, TIMEOUT, connect, next_binary, refusal, rejections,
    send, try_connect, within,
};

/// The arguments of `wspubsub serve` on a free loopback port in cluster mode on `nats_url`,
/// with `flags` after.
fn serve_args<'a>(nats_url: &'a str, flags: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--nats-url", nats_url];
    args.extend_from_slice(flags);
    args
}

/// Something to do with a process's arguments and environment, on a blocking thread.
type Job<T> = fn(&[&str], &[(&str, &str)]) -> T;

/// Runs `job` on a blocking thread with the arguments of [`serve_args`] and `env`: the
/// processes' helpers block.
async fn blocking<T: Send + 'static>(
    nats_url: &str,
    flags: &[&str],
    env: &[(&str, &str)],
    job: Job<T>,
) -> T {
    let args: Vec<String> = serve_args(nats_url, flags)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        job(&args, &env)
    })
    .await
    .expect("the blocking job")
}

/// A cluster-mode node on `nats_url` with `flags` and `env`, and its address once it
/// listens (so it reached NATS and ensured the stream).
async fn node(nats_url: &str, flags: &[&str], env: &[(&str, &str)]) -> (Process, String) {
    blocking(nats_url, flags, env, |args, env| {
        let process = Process::start(args, env);
        let addr = process.listen_addr();
        (process, addr)
    })
    .await
}

/// `wspubsub serve` in cluster mode run to its end: it must fail at the start.
async fn refused_start(
    nats_url: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    blocking(nats_url, flags, env, run).await
}

/// `wspubsub sub` on `sub_addr` and `wspubsub pub --confirm` on `pub_addr`, both on
/// `topic`: the subscriber must print the published line.
async fn carries(pub_addr: &str, sub_addr: &str, topic: &str) {
    let (pub_url, sub_url) = (
        format!("ws://{pub_addr}{topic}"),
        format!("ws://{sub_addr}{topic}"),
    );
    let printed = tokio::task::spawn_blocking(move || {
        let sub = subscribe(&[&sub_url, "--count", "1"]);
        let published = publish(&[&pub_url, "--confirm"], b"across NATS\n");
        assert!(published.status.success(), "{published:?}");
        finish_sub(sub)
    })
    .await
    .expect("pub and sub");
    assert!(printed.status.success(), "{printed:?}");
    assert_eq!(String::from_utf8_lossy(&printed.stdout), "across NATS\n");
}

/// The stream's shape as NATS holds it, read by a connection of our own.
async fn stream_spec(config: &ConnectConfig) -> StreamSpec {
    let broker = within(TIMEOUT, Broker::connect(config))
        .await
        .expect("connect to NATS");
    within(TIMEOUT, broker.stream_spec())
        .await
        .expect("the stream exists")
}

#[tokio::test]
async fn a_node_gets_in_with_the_nats_user_and_password_and_not_without() {
    let nats = NatsServer::start_with(&["--user", "node", "--pass", "s3cret"]).await;
    let url = nats.url();
    let (_node, addr) = node(
        &url,
        &["--nats-user", "node"],
        &[("PUBSUB_NATS_PASSWORD", "s3cret")],
    )
    .await;
    carries(&addr, &addr, "/with-password").await;

    let wrong = refused_start(
        &url,
        &["--nats-user", "node"],
        &[("PUBSUB_NATS_PASSWORD", "wrong-password")],
    )
    .await;
    assert_one_line_failure(&wrong, "NATS");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    let none = refused_start(&url, &[], &[]).await;
    assert_one_line_failure(&none, "NATS");
}

#[tokio::test]
async fn a_node_gets_in_with_its_nats_creds_file_and_not_with_a_strangers() {
    let auth = OperatorMode::new();
    let config = auth.config().to_str().expect("a UTF-8 path");
    let nats = NatsServer::start_with(&["-c", config]).await;
    let url = nats.url();
    let creds = auth.user_creds("node");
    let creds = creds.to_str().expect("a UTF-8 path");
    let (_node, addr) = node(&url, &["--nats-creds", creds], &[]).await;
    carries(&addr, &addr, "/with-creds").await;

    let stranger = auth.stranger_creds("stranger");
    let stranger = stranger.to_str().expect("a UTF-8 path");
    let refused = refused_start(&url, &["--nats-creds", stranger], &[]).await;
    assert_one_line_failure(&refused, "NATS");
}

#[tokio::test]
async fn a_node_gets_in_with_the_nats_token_and_not_with_another() {
    let nats = NatsServer::start_with(&["--auth", "t0ken"]).await;
    let url = nats.url();
    let (_node, addr) = node(&url, &[], &[("PUBSUB_NATS_TOKEN", "t0ken")]).await;
    carries(&addr, &addr, "/with-token").await;
    let wrong = refused_start(&url, &["--nats-token", "other"], &[]).await;
    assert_one_line_failure(&wrong, "NATS");
}

#[tokio::test]
async fn conflicting_or_out_of_range_nats_options_stop_the_start_in_one_line() {
    // Checked before NATS is dialled: nothing listens on port 1.
    let url = "nats://127.0.0.1:1";
    let both = refused_start(url, &["--nats-creds", "/x.creds", "--nats-token", "t"], &[]).await;
    assert_one_line_failure(
        &both,
        "--nats-creds and --nats-token cannot be used together",
    );
    let dir = TempDir::new("nats-conflict");
    let file = dir.write(
        "both.toml",
        "nats-user = \"node\"\nnats-password = \"p\"\nnats-token = \"t\"\n",
    );
    let from_file = refused_start(url, &["--config", &file], &[]).await;
    assert_one_line_failure(
        &from_file,
        "--nats-user and --nats-token cannot be used together",
    );
    let no_password = refused_start(url, &["--nats-user", "node"], &[]).await;
    assert_one_line_failure(&no_password, "--nats-user needs --nats-password");
    let replicas = refused_start(url, &["--nats-replicas", "7"], &[]).await;
    assert_one_line_failure(&replicas, "nats-replicas: must be 1 to 5");
    let ca = refused_start(url, &["--nats-ca-file", "/nonexistent/ca.pem"], &[]).await;
    assert_one_line_failure(&ca, "cannot read --nats-ca-file /nonexistent/ca.pem");
    let creds = refused_start(url, &["--nats-creds", "/nonexistent/node.creds"], &[]).await;
    assert_one_line_failure(&creds, "/nonexistent/node.creds");
}

#[test]
fn cluster_flags_without_nats_url_are_named_in_a_warning() {
    let process = Process::start(
        &["serve", "--addr", "127.0.0.1:0", "--nats-storage", "file"],
        &[("PUBSUB_NATS_TOKEN", "t")],
    );
    let warning = process.wait_for_line("have no effect without --nats-url");
    assert!(
        warning.contains("--nats-token --nats-storage") && !warning.contains("--nats-replicas"),
        "{warning}"
    );
    process.listen_addr();
}

#[tokio::test]
async fn file_storage_outlives_a_nats_restart_and_cannot_become_memory() {
    let mut nats = NatsServer::start().await;
    let url = nats.url();
    let (node_process, addr) = node(&url, &["--nats-storage", "file"], &[]).await;
    carries(&addr, &addr, "/kept").await;
    drop(node_process);
    let config = ConnectConfig::new(url.clone());
    let spec = stream_spec(&config).await;
    assert_eq!(
        (spec.storage, spec.replicas),
        (Storage::File, 1),
        "{spec:?}"
    );
    let broker = within(TIMEOUT, Broker::connect(&config))
        .await
        .expect("connect");
    let before = within(TIMEOUT, broker.stream_state())
        .await
        .expect("the stream's state");
    assert!(
        before.last_sequence >= 1,
        "the message is stored: {before:?}"
    );
    drop(broker);

    nats.restart().await;
    let broker = within(TIMEOUT, Broker::connect(&config))
        .await
        .expect("connect after the restart");
    let after = within(TIMEOUT, broker.stream_state())
        .await
        .expect("the stream outlived the restart");
    assert_eq!(
        (after.created, after.last_sequence),
        (before.created, before.last_sequence),
        "same stream, same messages"
    );

    // The storage of an existing stream is fixed: a node asking for memory is told so.
    let memory = refused_start(&url, &[], &[]).await;
    assert_one_line_failure(
        &memory,
        "exists with file storage and cannot change to memory",
    );
    // And a node with the stream's own storage still starts.
    let (_again, addr) = node(&url, &[], &[("PUBSUB_NATS_STORAGE", "file")]).await;
    carries(&addr, &addr, "/kept").await;
}

#[tokio::test]
async fn three_replicas_on_a_nats_cluster_carry_messages_and_need_a_cluster() {
    let cluster = NatsCluster::start(3).await;
    let urls = cluster.urls();
    let (_first, first) = node(&urls, &["--nats-replicas", "3"], &[]).await;
    let (_second, second) = node(&urls, &[], &[("PUBSUB_NATS_REPLICAS", "3")]).await;
    carries(&first, &second, "/replicated").await;
    let spec = stream_spec(&ConnectConfig::new(urls)).await;
    assert_eq!(
        (spec.replicas, spec.storage),
        (3, Storage::Memory),
        "{spec:?}"
    );

    // One NATS server cannot hold three replicas: a clear start failure.
    let alone = NatsServer::start().await;
    let refused = refused_start(&alone.url(), &["--nats-replicas", "3"], &[]).await;
    assert_one_line_failure(&refused, "NATS at");
}

#[tokio::test]
async fn nats_ca_file_lets_a_node_reach_nats_over_tls() {
    let dir = TempDir::new("nats-tls");
    let (cert, key) = (dir.path("nats.pem"), dir.path("nats.key"));
    write_certificate(&cert, &key);
    let nats = NatsServer::start_with(&["--tlscert", &cert, "--tlskey", &key]).await;
    let url = format!("tls://{}", nats.client_addr());
    let (_node, addr) = node(&url, &["--nats-ca-file", &cert], &[]).await;
    carries(&addr, &addr, "/over-tls").await;
    // Without the CA the server's certificate is unknown: one line naming NATS.
    let untrusted = refused_start(&url, &[], &[]).await;
    assert_one_line_failure(&untrusted, "NATS");
}

#[tokio::test]
async fn a_topic_whose_subject_nats_would_refuse_gets_414() {
    let nats = NatsServer::start().await;
    let (_node, addr) = node(&nats.url(), &[], &[]).await;
    let room = MAX_SUBJECT_BYTES - PREFIX.len() - 1;
    // The longest topic allowed reaches NATS and comes back: the bound is safe.
    let longest = format!("ws://{addr}/{}", "a".repeat(room));
    let mut subscriber = connect(&longest, Role::Subscriber, None).await;
    let mut publisher = connect(&longest, Role::Publisher, None).await;
    send(&mut publisher, &b"longest"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"longest"[..]);

    // One byte more, or a third as many bytes that are escaped, is refused before the upgrade.
    let over = [
        format!("ws://{addr}/{}", "a".repeat(room + 1)),
        format!("ws://{addr}/{}", "~".repeat(room / 3 + 1)),
    ];
    for (url, role) in [
        (&over[0], Role::Publisher),
        (&over[0], Role::Subscriber),
        (&over[1], Role::Publisher),
    ] {
        let (status, body) = refusal("a topic over the bound", try_connect(url, role, None).await);
        assert_eq!(status, 414, "{body}");
        assert!(body.contains("topic too long for cluster mode"), "{body}");
        assert_eq!(body.trim_end().lines().count(), 1, "{body}");
    }
    let socket: std::net::SocketAddr = addr.parse().expect("a socket address");
    assert_eq!(rejections(socket, 414, "topic_too_long").await, 3.0);

    // The node's NATS connection survived all of it.
    send(&mut publisher, &b"still here"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"still here"[..]);
}
