//! The `wspubsub` binary as an operator runs it: a real process, configured by flags and
//! environment, serving a round trip and stopping gracefully on SIGTERM.

mod support;

use support::{Process, TempDir, assert_one_line_failure, run};

use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_testkit::{connect, next_binary, read_until_close, send};

#[tokio::test]
async fn serves_from_env_config_and_stops_gracefully_on_sigterm() {
    let process = Process::serve(&[
        ("PUBSUB_ADDR", "127.0.0.1:0"),
        ("PUBSUB_CLOSE_DEADLINE", "20s"),
    ]);
    let addr = process.listen_addr();
    let url = format!("ws://{addr}/news");
    let mut subscriber = connect(&url, Role::Subscriber, Some("reader")).await;
    let mut publisher = connect(&url, Role::Publisher, Some("writer")).await;
    send(&mut publisher, &b"extra extra"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"extra extra"[..]);
    let joined = process.wait_for_line("subscriber_joined");
    assert!(
        joined.contains("reader-"),
        "events are logged with the client id: {joined}"
    );

    process.terminate();
    let (_, close) = read_until_close(&mut subscriber).await;
    assert_eq!(
        close.map(|(code, _)| code),
        Some(CloseCode::GoingAway.code())
    );
    let (_, close) = read_until_close(&mut publisher).await;
    assert_eq!(
        close.map(|(code, _)| code),
        Some(CloseCode::GoingAway.code())
    );

    let status = process.exit_status().await;
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}

#[test]
fn invalid_configuration_is_one_line_and_exit_2() {
    let serve = |flags: &[&str]| run(&[&["serve", "--addr", "127.0.0.1:0"], flags].concat(), &[]);
    assert_one_line_failure(&serve(&["--topic-queue", "0"]), "topic-queue");
    // Once, such a deadline started the server and panicked at the first connection.
    assert_one_line_failure(&serve(&["--pong-deadline", "1000000000y"]), "pong-deadline");
    assert_one_line_failure(&serve(&["--close-deadline", "0s"]), "close-deadline");
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    assert_one_line_failure(
        &serve(&["--nats-url", "nats://127.0.0.1:1"]),
        "NATS at nats://127.0.0.1:1",
    );
    assert_one_line_failure(
        &run(&["serve", "--addr", ":65536"], &[]),
        "invalid --addr :65536",
    );
    assert_one_line_failure(
        &serve(&["--max-message-size", "2MiB", "--topic-queue-bytes", "1MiB"]),
        "topic-queue-bytes",
    );
    let dir = TempDir::new("bad-file");
    let file = dir.write("bad.toml", "max-topics = \n");
    assert_one_line_failure(&serve(&["--config", &file]), "not valid TOML");
    let both_keys = dir.write(
        "both.toml",
        "jwt-secret = \"s\"\njwt-public-key = \"/nonexistent/k.pem\"\n",
    );
    assert_one_line_failure(&serve(&["--config", &both_keys]), "cannot be used together");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let process = Process::serve(&[
        ("PUBSUB_ADDR", "127.0.0.1:0"),
        ("PUBSUB_LOG_FORMAT", "json"),
    ]);
    let line = process.wait_for_line("listening");
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(line.contains("\"message\":\"wspubsub listening"), "{line}");
    assert!(line.contains("\"addr\":\"127.0.0.1:"), "{line}");
}

#[test]
fn config_file_sits_between_the_environment_and_the_defaults() {
    let dir = TempDir::new("precedence");
    let file = dir.write(
        "wspubsub.toml",
        "max-topics = 7\npong-deadline = \"2s\"\nmax-connections = 50\n",
    );
    let output = run(
        &[
            "serve",
            "--print-config",
            "--max-connections",
            "60",
            "--config",
            &file,
        ],
        &[("PUBSUB_PONG_DEADLINE", "3s")],
    );
    let printed = success(&output);
    assert!(
        printed.contains("max-topics = 7\n"),
        "file beats default: {printed}"
    );
    assert!(
        printed.contains("pong-deadline = \"3s\"\n"),
        "environment beats file: {printed}"
    );
    assert!(
        printed.contains("max-connections = 60\n"),
        "flag beats file: {printed}"
    );
    assert!(
        printed.contains("topic-queue = 1024\n"),
        "default where nothing is set: {printed}"
    );

    let file = dir.write("unknown.toml", "no-such-setting = 1\n");
    assert_one_line_failure(
        &run(&["serve", "--print-config", "--config", &file], &[]),
        "unknown setting \"no-such-setting\"",
    );
}

/// Every key a config file may hold, with a value that is not its default, as
/// `--print-config` prints it back.
const EVERY_KEY: &[(&str, &str)] = &[
    ("addr", r#""127.0.0.1:0""#),
    ("pong-deadline", r#""7s""#),
    ("write-timeout", r#""11s""#),
    ("close-deadline", r#""6s""#),
    ("max-message-size", "65536"),
    ("subscriber-queue", "99"),
    ("subscriber-queue-bytes", "131072"),
    ("slow-subscriber", r#""close""#),
    ("topic-queue", "33"),
    ("topic-queue-bytes", "262144"),
    ("handshake-timeout", r#""3s""#),
    ("max-handshakes", "17"),
    ("max-connections", "1000"),
    ("max-connections-per-ip", "10"),
    ("max-topics", "100"),
    ("max-subscribers-per-topic", "50"),
    ("max-header-size", "9000"),
    ("history-messages", "0"),
    ("history-bytes", "1048576"),
    ("history-age", r#""1m 30s""#),
    ("history-total-bytes", "8388608"),
    ("jwt-secret", r#""<redacted>""#),
    ("jwt-public-key", r#""/nonexistent/jwt.pem""#),
    ("jwt-algorithm", r#""es256""#),
    ("jwt-audience", r#"["api", "web"]"#),
    ("jwt-issuer", r#"["https://id.example.com"]"#),
    (
        "allowed-origins",
        r#"["https://app.example.com", "*.example.org"]"#,
    ),
    ("trusted-proxies", r#"["10.0.0.0/8", "192.168.1.7/32"]"#),
    ("tls-cert", r#""/nonexistent/cert.pem""#),
    ("tls-key", r#""/nonexistent/key.pem""#),
    ("admin-addr", r#""127.0.0.1:9090""#),
    ("admin-token", r#""<redacted>""#),
    ("log-format", r#""json""#),
    ("nats-url", r#""nats://127.0.0.1:4222""#),
    ("nats-creds", r#""/nonexistent/node.creds""#),
    ("nats-user", r#""node""#),
    ("nats-password", r#""<redacted>""#),
    ("nats-token", r#""<redacted>""#),
    ("nats-ca-file", r#""/nonexistent/ca.pem""#),
    ("nats-storage", r#""file""#),
    ("nats-replicas", "3"),
];

/// The long flags `wspubsub serve --help` lists, but for those that are not settings.
fn serve_flags() -> Vec<String> {
    let help = success(&run(&["serve", "--help"], &[]));
    let mut flags: Vec<String> = help
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--"))
        .map(|flag| flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|flag| !flag.is_empty())
        .filter(|flag| !["help", "version", "config", "print-config"].contains(flag))
        .map(str::to_owned)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn every_key_works_from_a_config_file() {
    let dir = TempDir::new("every-key");
    let mut text: String = EVERY_KEY
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    text = text.replace("<redacted>", "file secret");
    let file = dir.write("every.toml", &text);

    let printed = success(&run(&["serve", "--print-config", "--config", &file], &[]));
    for (key, value) in EVERY_KEY {
        assert!(
            printed.contains(&format!("{key} = {value}\n")),
            "{key} = {value} did not take effect:\n{printed}"
        );
    }
    assert!(!printed.contains("file secret"), "{printed}");
    let mut keys: Vec<&str> = EVERY_KEY.iter().map(|(key, _)| *key).collect();
    keys.sort_unstable();
    assert_eq!(serve_flags(), keys, "a flag this test does not set");

    // And the logs take their format from the file: one JSON object per line.
    let file = dir.write(
        "json.toml",
        "log-format = \"json\"\naddr = \"127.0.0.1:0\"\n",
    );
    let process = Process::start(&["serve", "--config", &file], &[]);
    let line = process.wait_for_line("listening");
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
}

#[test]
fn print_config_names_every_flag_and_reads_no_file() {
    let printed = success(&run(
        &[
            "serve",
            "--print-config",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
            "--jwt-public-key",
            "/nonexistent/jwt.pem",
            "--nats-token",
            "flag-token",
        ],
        &[
            ("PUBSUB_JWT_AUDIENCE", "api,web"),
            ("PUBSUB_MAX_HANDSHAKES", "9"),
            ("PUBSUB_SLOW_SUBSCRIBER", "close"),
            ("PUBSUB_NATS_PASSWORD", "env-password"),
            ("PUBSUB_NATS_REPLICAS", "3"),
        ],
    ));
    for secret in ["nats-token", "nats-password"] {
        assert!(
            printed.contains(&format!("{secret} = \"<redacted>\"\n")),
            "{printed}"
        );
    }
    assert!(
        !printed.contains("flag-token") && !printed.contains("env-password"),
        "{printed}"
    );
    assert!(printed.contains("nats-replicas = 3\n"), "{printed}");
    assert!(
        printed.contains("slow-subscriber = \"close\"\n"),
        "{printed}"
    );
    assert!(
        printed.contains("tls-cert = \"/nonexistent/cert.pem\"\n"),
        "{printed}"
    );
    assert!(
        printed.contains("jwt-audience = [\"api\", \"web\"]\n"),
        "{printed}"
    );
    assert!(printed.contains("max-handshakes = 9\n"), "{printed}");
    for flag in serve_flags() {
        let (set, unset) = (format!("{flag} = "), format!("# {flag} is not set"));
        assert!(
            printed
                .lines()
                .any(|line| line.starts_with(&set) || line == unset),
            "--{flag} missing from:\n{printed}"
        );
    }
    let defaults = success(&run(&["serve", "--print-config"], &[]));
    assert!(defaults.contains("# tls-cert is not set\n"), "{defaults}");
    assert!(defaults.contains("max-handshakes = 512\n"), "{defaults}");
    assert!(
        defaults.contains("slow-subscriber = \"hold\"\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("topic-queue-bytes = 16777216\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("nats-storage = \"memory\"\n")
            && defaults.contains("nats-replicas = 1\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("# nats-password is not set\n"),
        "{defaults}"
    );
}

#[tokio::test]
async fn sighup_with_nothing_to_reload_keeps_serving() {
    let process = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let url = format!("ws://{}/after-hangup", process.listen_addr());
    process.hang_up();
    process.wait_for_line("SIGHUP: nothing to reload");
    let mut subscriber = connect(&url, Role::Subscriber, None).await;
    let mut publisher = connect(&url, Role::Publisher, None).await;
    send(&mut publisher, &b"still here"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"still here"[..]);
    process.terminate();
    for client in [&mut subscriber, &mut publisher] {
        let (_, close) = read_until_close(client).await;
        assert_eq!(
            close.map(|(code, _)| code),
            Some(CloseCode::GoingAway.code()),
            "a drain, not a death"
        );
    }
    let status = process.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn a_bare_port_listens_on_ipv6_and_ipv4() {
    let process = Process::start(&["serve", "--addr", ":0"], &[]);
    let addr = process.listen_addr();
    assert!(addr.starts_with("[::]:"), "{addr}");
    let port = addr.rsplit(':').next().expect("a port");
    for host in ["127.0.0.1", "[::1]"] {
        let url = format!("ws://{host}:{port}/both");
        let mut subscriber = connect(&url, Role::Subscriber, None).await;
        let mut publisher = connect(&url, Role::Publisher, None).await;
        send(&mut publisher, host.as_bytes()).await;
        assert_eq!(next_binary(&mut subscriber).await, host.as_bytes());
    }
}

/// The stdout of a run that must have succeeded.
fn success(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
