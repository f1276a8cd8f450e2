//! A `wspubsub` process for the binary's tests, with its stderr lines on a channel.

#![allow(dead_code)] // Each test file uses part of this.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use wspubsub_testkit::TIMEOUT;

/// A running `wspubsub` whose stderr lines are forwarded to a channel.
pub(crate) struct Process {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `wspubsub serve` with `env`.
    pub(crate) fn serve(env: &[(&str, &str)]) -> Process {
        Process::start(&["serve"], env)
    }

    /// Starts `wspubsub ARGS` with `env`.
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wspubsub"));
        command
            .args(args)
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
    pub(crate) fn wait_for_line(&self, needle: &str) -> String {
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
    pub(crate) fn listen_addr(&self) -> String {
        let line = self.wait_for_line("listening");
        let addr = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("addr="))
            .expect("addr= in the listening line");
        addr.to_owned()
    }

    /// Waits (without blocking the runtime) for the process to exit, and says how it did.
    pub(crate) async fn exit_status(mut self) -> std::process::ExitStatus {
        let waiter = tokio::task::spawn_blocking(move || self.child.wait());
        wspubsub_testkit::within(TIMEOUT, waiter)
            .await
            .expect("the waiting thread")
            .expect("wait for wspubsub")
    }

    /// Sends SIGTERM: a graceful stop.
    pub(crate) fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP: reload the TLS certificate.
    pub(crate) fn hang_up(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
