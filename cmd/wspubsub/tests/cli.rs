//! `wspubsub pub` and `wspubsub sub` end to end, through a real server process.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

mod support;

use support::{
    Process, TempDir, assert_one_line_failure, finish, finish_sub, publish, run, subscribe,
    write_certificate, wspubsub,
};

#[test]
fn stdin_lines_become_messages_that_sub_prints() {
    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let url = format!("ws://{}/cli", server.listen_addr());
    let subscriber = subscribe(&[&url, "--count", "3", "--format", "hex"]);
    let published = publish(&[&url], b"a\nbb\nccc\n");
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let printed = finish_sub(subscriber);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        "61\n6262\n636363\n"
    );
}

#[test]
fn sub_from_earliest_prints_what_history_holds_then_a_bad_start_is_one_line() {
    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let url = format!("ws://{}/earlier", server.listen_addr());
    // Published before anyone subscribes: only history still has them.
    let published = publish(&[&url], b"a\nbb\nccc\n");
    assert!(published.status.success(), "{published:?}");
    let subscriber = subscribe(&[&url, "--from", "earliest", "--count", "3"]);
    let printed = finish_sub(subscriber);
    assert!(printed.status.success(), "{printed:?}");
    assert_eq!(String::from_utf8_lossy(&printed.stdout), "a\nbb\nccc\n");
    // Far in the past: history no longer covers it, so the server refuses it (416) unless
    // the gap is accepted.
    let refused = run(&["sub", &url, "--from", "1", "--count", "1"], &[]);
    assert_one_line_failure(&refused, "416");
    let accepted = subscribe(&[&url, "--from", "1", "--gap-ok", "--count", "3"]);
    let printed = finish_sub(accepted);
    assert_eq!(String::from_utf8_lossy(&printed.stdout), "a\nbb\nccc\n");
    let bad = run(&["sub", &url, "--from", "banana"], &[]);
    assert_one_line_failure(&bad, "invalid start position");
}

#[test]
fn files_and_count_cycle_through_the_input() {
    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let url = format!("ws://{}/files", server.listen_addr());
    let dir = TempDir::new("files");
    let (one, two) = (dir.path("one.bin"), dir.path("two.bin"));
    std::fs::write(&one, [0u8, 1, 2]).expect("write");
    std::fs::write(&two, b"two\n").expect("write");
    let subscriber = subscribe(&[&url, "--count", "3", "--format", "base64"]);
    let published = publish(&[&url, &one, &two, "--count", "3", "--rate", "1000"], b"");
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let printed = finish_sub(subscriber);
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        "AAEC\ndHdvCg==\nAAEC\n"
    );
}

#[test]
fn failures_are_one_line_and_exit_2() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let refused = publish(&[&format!("ws://{closed}/x")], b"hello\n");
    assert_one_line_failure(&refused, "wspubsub: cannot connect");

    let bad_url = wspubsub()
        .args(["sub", "http://127.0.0.1:1/x"])
        .output()
        .expect("run");
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("invalid URL"));
}

#[test]
fn sub_reports_the_servers_close_and_exits_2() {
    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let url = format!("ws://{}/bye", server.listen_addr());
    let subscriber = subscribe(&[&url]);
    server.terminate();
    let printed = finish_sub(subscriber);
    assert_eq!(printed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&printed.stderr);
    assert!(
        stderr.starts_with("wspubsub: subscription ended"),
        "{stderr}"
    );
    assert!(stderr.contains("1001"), "{stderr}");
}

#[test]
fn pub_and_sub_speak_tls_and_carry_tokens() {
    use wspubsub_testkit::{Signer, now};

    let dir = TempDir::new("tls");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    write_certificate(&cert, &key);
    let secret = "cli test secret";
    let server = Process::serve(&[
        ("PUBSUB_ADDR", "127.0.0.1:0"),
        ("PUBSUB_TLS_CERT", &cert),
        ("PUBSUB_TLS_KEY", &key),
        ("PUBSUB_JWT_SECRET", secret),
    ]);
    let url = format!("wss://{}/secure", server.listen_addr());
    let token = Signer::hs256(secret.as_bytes()).token(now() + 3600, &["/secure"], &["/secure"]);

    let subscriber = subscribe(&[&url, "--count", "2", "--ca-file", &cert, "--token", &token]);
    let published = publish(
        &[&url, "--ca-file", &cert, "--token", &token],
        b"one\ntwo\n",
    );
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let printed = finish_sub(subscriber);
    assert_eq!(String::from_utf8_lossy(&printed.stdout), "one\ntwo\n");

    let untrusted = publish(&[&url, "--token", &token], b"x\n");
    assert_eq!(
        untrusted.status.code(),
        Some(2),
        "no --ca-file: the system does not trust it"
    );
    let no_token = publish(&[&url, "--ca-file", &cert], b"x\n");
    assert_eq!(no_token.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&no_token.stderr);
    assert!(stderr.contains("401"), "{stderr}");
}

/// Writes a fresh self-signed certificate for 127.0.0.1 to `cert` and its key to `key` (a
/// first issue, or a renewal).
#[test]
fn sighup_reloads_a_renewed_certificate() {
    let dir = TempDir::new("reload");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    write_certificate(&cert, &key);
    let server = Process::serve(&[
        ("PUBSUB_ADDR", "127.0.0.1:0"),
        ("PUBSUB_TLS_CERT", &cert),
        ("PUBSUB_TLS_KEY", &key),
    ]);
    let url = format!("wss://{}/renewed", server.listen_addr());
    assert!(
        publish(&[&url, "--ca-file", &cert], b"old\n")
            .status
            .success()
    );

    let old = std::fs::read(&cert).expect("read the old certificate");
    write_certificate(&cert, &key);
    server.hang_up();
    server.wait_for_line("TLS certificate reloaded");
    let trusts_old = dir.path("old.pem");
    std::fs::write(&trusts_old, old).expect("keep the old certificate");
    let stale = publish(&[&url, "--ca-file", &trusts_old], b"x\n");
    assert_eq!(stale.status.code(), Some(2), "the old certificate is gone");
    let renewed = publish(&[&url, "--ca-file", &cert], b"new\n");
    assert!(
        renewed.status.success(),
        "{}",
        String::from_utf8_lossy(&renewed.stderr)
    );

    std::fs::write(&cert, "not a certificate").expect("break the certificate");
    server.hang_up();
    server.wait_for_line("TLS certificate not reloaded");
}

#[test]
fn sighup_rotates_the_token_public_key() {
    use wspubsub_testkit::{Signer, now, p256};

    let dir = TempDir::new("rotate");
    let public_key = dir.path("jwt.pem");
    let (old, new) = (p256(), p256());
    std::fs::write(&public_key, old.public_key_pem()).expect("write the public key");
    let server = Process::serve(&[
        ("PUBSUB_ADDR", "127.0.0.1:0"),
        ("PUBSUB_JWT_PUBLIC_KEY", &public_key),
        ("PUBSUB_JWT_ALGORITHM", "es256"),
    ]);
    let url = format!("ws://{}/rotated", server.listen_addr());
    let token = |pair: &rcgen::KeyPair| {
        Signer::es256(pair.serialize_pem().as_bytes()).token(now() + 3600, &["/rotated"], &[])
    };
    let (old_token, new_token) = (token(&old), token(&new));
    assert!(
        publish(&[&url, "--token", &old_token], b"x\n")
            .status
            .success()
    );

    std::fs::write(&public_key, new.public_key_pem()).expect("rotate the public key");
    server.hang_up();
    server.wait_for_line("token public key reloaded");
    let stale = publish(&[&url, "--token", &old_token], b"x\n");
    assert_eq!(
        stale.status.code(),
        Some(2),
        "the old key's tokens are refused"
    );
    assert!(String::from_utf8_lossy(&stale.stderr).contains("401"));
    let rotated = publish(&[&url, "--token", &new_token], b"x\n");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
}

#[tokio::test]
async fn pub_sends_each_line_while_stdin_is_still_open() {
    use wspubsub_server::protocol::Role;
    use wspubsub_testkit::{TIMEOUT, connect, next_binary, within};

    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let url = format!("ws://{}/tail", server.listen_addr());
    let mut subscriber = connect(&url, Role::Subscriber, None).await;
    let mut child = wspubsub()
        .args(["pub", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wspubsub pub");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"first\n").expect("write stdin");
    // One bound for the whole wait: next_binary's own is per frame, and pings keep coming.
    let first = within(TIMEOUT, next_binary(&mut subscriber)).await;
    assert_eq!(first, &b"first"[..], "sent while stdin is still open");
    stdin.write_all(b"second\r\n").expect("write stdin");
    let second = within(TIMEOUT, next_binary(&mut subscriber)).await;
    assert_eq!(second, &b"second"[..]);
    drop(stdin);
    let output = tokio::task::spawn_blocking(move || finish(child))
        .await
        .expect("waiter");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn pub_confirm_exits_zero_once_every_message_is_stored() {
    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let url = format!("ws://{}/confirmed", server.listen_addr());
    let published = publish(&[&url, "--confirm"], b"a\nbb\nccc\n");
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    // Acknowledged means stored: history has them, though nobody was subscribed.
    let printed = finish_sub(subscribe(&[&url, "--from", "earliest", "--count", "3"]));
    assert_eq!(String::from_utf8_lossy(&printed.stdout), "a\nbb\nccc\n");
}

#[tokio::test]
async fn pub_confirm_fails_when_messages_are_not_acknowledged() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use wspubsub_server::protocol::STREAM_SUBPROTOCOL;

    // A server that speaks stream mode, takes one message and vanishes without an ack.
    let addr = wspubsub_testkit::fake_server(|stream| async move {
        #[expect(
            clippy::result_large_err,
            reason = "the callback's error type is tungstenite's"
        )]
        let offer = |_: &Request, mut response: Response| {
            let protocol = STREAM_SUBPROTOCOL.parse().expect("header value");
            response
                .headers_mut()
                .insert("sec-websocket-protocol", protocol);
            Ok(response)
        };
        if let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, offer).await {
            let _first = socket.next().await;
        }
    })
    .await;
    let url = format!("ws://{addr}/unconfirmed");
    let output = tokio::task::spawn_blocking(move || publish(&[&url, "--confirm"], b"a\nbb\n"))
        .await
        .expect("pub");
    assert_one_line_failure(&output, "connection lost");
}

/// Runs `sub --reconnect --count 6` on `sub_url` while `pub` sends lines 1 to 6 to
/// `pub_url`: 4 to 6 only after `interrupt` ran, once the subscriber printed 1 to 3. Returns
/// the lines it printed and how it ended, for the caller to check that it resumed with
/// nothing lost or repeated.
async fn interrupted_subscription(
    sub_url: String,
    pub_url: String,
    interrupt: impl FnOnce(),
) -> (Vec<String>, std::process::Output) {
    use std::sync::mpsc;

    use wspubsub_testkit::TIMEOUT;

    let mut sub =
        tokio::task::spawn_blocking(move || subscribe(&[&sub_url, "--reconnect", "--count", "6"]))
            .await
            .expect("sub");
    // Its stdout, line by line, so that the caller knows what it has printed so far.
    let stdout = BufReader::new(sub.child.stdout.take().expect("stdout"));
    let (sender, printed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let publish_lines = |input: &'static [u8]| {
        let url = pub_url.clone();
        tokio::task::spawn_blocking(move || {
            let output = publish(&[&url], input);
            assert!(output.status.success(), "{output:?}");
        })
    };
    publish_lines(b"1\n2\n3\n").await.expect("pub");
    let mut lines = Vec::new();
    while lines.len() < 3 {
        lines.push(printed.recv_timeout(TIMEOUT).expect("a printed line"));
    }
    interrupt();
    // Published while the subscriber reconnects, or just after: history has them either way.
    publish_lines(b"4\n5\n6\n").await.expect("pub");
    let output = tokio::task::spawn_blocking(move || finish_sub(sub))
        .await
        .expect("sub");
    lines.extend(printed.try_iter());
    (lines, output)
}

/// Asserts that an [`interrupted_subscription`] printed 1 to 6 once each and said that it
/// reconnected.
fn assert_resumed(lines: &[String], output: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(lines, ["1", "2", "3", "4", "5", "6"], "{stderr}");
    assert!(stderr.contains("reconnected after"), "{stderr}");
}

#[tokio::test]
async fn sub_reconnect_resumes_after_a_reset_without_repeating_a_message() {
    use wspubsub_netfault::Proxy;

    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let listen_addr = server.listen_addr();
    let upstream = listen_addr.parse().expect("a socket address");
    let proxy = Proxy::start(upstream).await.expect("proxy");
    let (lines, output) = interrupted_subscription(
        format!("ws://{}/resumed", proxy.addr()),
        format!("ws://{listen_addr}/resumed"),
        || assert_eq!(proxy.reset(), 1, "the subscriber's connection breaks"),
    )
    .await;
    assert_resumed(&lines, &output);
}

#[test]
fn sub_reconnect_reports_a_restarted_topic_as_a_gap_and_exits_2() {
    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let addr = server.listen_addr();
    let url = format!("ws://{addr}/restarted");
    let sub = subscribe(&[&url, "--reconnect", "--count", "2"]);
    let published = publish(&[&url], b"before\n");
    assert!(published.status.success(), "{published:?}");
    // The restarted server's topic has none of the old one's messages: a gap the
    // subscriber must not pass over silently.
    server.terminate();
    assert!(server.wait().success());
    let _restarted = Process::serve(&[("PUBSUB_ADDR", addr.as_str())]);
    let output = finish_sub(sub);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "before\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        last.contains("gap") && last.contains("topic_restarted"),
        "{stderr}"
    );
}

#[test]
fn sub_reconnect_with_gap_ok_notes_the_gap_and_goes_on() {
    let server = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let addr = server.listen_addr();
    let url = format!("ws://{addr}/gap-ok");
    let sub = subscribe(&[&url, "--reconnect", "--gap-ok", "--count", "2"]);
    let published = publish(&[&url], b"before\n");
    assert!(published.status.success(), "{published:?}");
    server.terminate();
    assert!(server.wait().success());
    let restarted = Process::serve(&[("PUBSUB_ADDR", addr.as_str())]);
    assert_eq!(restarted.listen_addr(), addr, "listening again");
    // Whether the subscriber is back before this or after, it gets it: live, or from the new
    // topic's history, where the gap notice places it.
    let published = publish(&[&url], b"after\n");
    assert!(published.status.success(), "{published:?}");
    let output = finish_sub(sub);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "before\nafter\n");
    assert!(
        stderr.contains("gap:") && stderr.contains("topic_restarted"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_readme_cluster_example_carries_a_message_across_nodes() {
    use wspubsub_testkit::NatsServer;

    // As README's "Running a cluster": one NATS, nodes sharing it, `sub` on one node and
    // `pub` on another.
    let nats = NatsServer::start().await;
    let nats_url = nats.url();
    let nodes: Vec<Process> = (0..2)
        .map(|_| {
            Process::start(
                &["serve", "--addr", "127.0.0.1:0", "--nats-url", &nats_url],
                &[],
            )
        })
        .collect();
    let (printed, addrs) = tokio::task::spawn_blocking(move || {
        let addrs: Vec<String> = nodes.iter().map(Process::listen_addr).collect();
        let sub = subscribe(&[&format!("ws://{}/news", addrs[1]), "--count", "1"]);
        let published = publish(&[&format!("ws://{}/news", addrs[0])], b"hello\n");
        assert!(published.status.success(), "{published:?}");
        let printed = finish_sub(sub);
        drop(nodes);
        (printed, addrs)
    })
    .await
    .expect("the cluster run");
    assert!(printed.status.success(), "{printed:?}");
    assert_eq!(String::from_utf8_lossy(&printed.stdout), "hello\n");
    assert_ne!(addrs[0], addrs[1], "two nodes");
    drop(nats);
}

#[tokio::test]
async fn a_killed_nodes_subscriber_resumes_on_another_node_with_nothing_lost() {
    use wspubsub_netfault::Proxy;
    use wspubsub_testkit::NatsServer;

    // Two nodes on one NATS behind a "load balancer" (a proxy) that sends clients to node A
    // until it dies, then to node B.
    let nats = NatsServer::start().await;
    let nats_url = nats.url();
    let start_node = move || {
        let node = Process::start(
            &["serve", "--addr", "127.0.0.1:0", "--nats-url", &nats_url],
            &[],
        );
        let addr = node.listen_addr();
        (node, addr)
    };
    let ((a, a_addr), (b, b_addr)) =
        tokio::task::spawn_blocking(move || (start_node(), start_node()))
            .await
            .expect("two nodes");
    let proxy = Proxy::start(a_addr.parse().expect("an address"))
        .await
        .expect("proxy");
    let (lines, output) = interrupted_subscription(
        format!("ws://{}/failover", proxy.addr()),
        format!("ws://{b_addr}/failover"),
        || {
            // Node A dies; the balancer sends newcomers to B.
            proxy.redirect(b_addr.parse().expect("an address"));
            a.kill();
        },
    )
    .await;
    assert_resumed(&lines, &output);
    drop(b);
    drop(nats);
}
