//! The `wspubsub` binary as an operator runs it: a real process, configured by flags and
//! environment, serving a round trip and stopping gracefully on SIGTERM.

use std::process::Command;

mod support;

use support::Process;

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

    let mut process = process;
    let status = tokio::task::spawn_blocking(move || {
        let status = process.child.wait().expect("wait for wspubsub");
        drop(process);
        status
    })
    .await
    .expect("waiter");
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}

#[test]
fn invalid_configuration_is_one_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_wspubsub"))
        .args(["serve", "--addr", "127.0.0.1:0", "--topic-queue", "0"])
        .output()
        .expect("run wspubsub");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("topic-queue"),
        "names the bad option: {stderr}"
    );
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
    let dir = std::env::temp_dir().join(format!("wspubsub-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("wspubsub.toml");
    std::fs::write(
        &file,
        "max-topics = 7\npong-deadline = \"2s\"\nmax-connections = 50\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_wspubsub"))
        .args([
            "serve",
            "--print-config",
            "--max-connections",
            "60",
            "--config",
        ])
        .arg(&file)
        .env("PUBSUB_PONG_DEADLINE", "3s")
        .output()
        .expect("run wspubsub");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
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

    std::fs::write(&file, "no-such-setting = 1\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_wspubsub"))
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .output()
        .expect("run wspubsub");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown setting \"no-such-setting\"")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
