//! The `wspubsub` binary as an operator runs it: a real process, configured by flags and
//! environment, serving a round trip and stopping gracefully on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_testkit::{TIMEOUT, connect, next_binary, read_until_close, send};

/// A running `wspubsub serve` whose stderr lines are forwarded to a channel.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    fn start(env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wspubsub"));
        command
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start wspubsub");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Process { child, lines }
    }

    /// The next log line that contains `needle`.
    fn wait_for_line(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .expect("log line before the timeout");
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The address from the "listening" log line.
    fn listen_addr(&self) -> String {
        let line = self.wait_for_line("listening");
        let addr = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("addr="))
            .expect("addr= in the listening line");
        addr.to_owned()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serves_from_env_config_and_stops_gracefully_on_sigterm() {
    let process = Process::start(&[
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
