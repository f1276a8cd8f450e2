//! A `wspubsub` process for the binary's tests, with its stderr lines on a channel, and
//! `wspubsub pub` / `wspubsub sub` runs.

#![allow(dead_code)] // Each test file uses part of this.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use wspubsub_testkit::TIMEOUT;

/// The `wspubsub` binary under test.
pub(crate) fn wspubsub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wspubsub"))
}

/// A running `wspubsub sub`, and the rest of its stderr once it ends.
pub(crate) struct Sub {
    /// The `sub` process.
    pub(crate) child: Child,
    stderr: std::thread::JoinHandle<String>,
}

/// Starts `wspubsub sub ARGS` and returns once it has subscribed.
pub(crate) fn subscribe(args: &[&str]) -> Sub {
    let mut child = spawn_piped(&[&["sub"], args].concat(), &[], Stdio::null());
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    assert!(
        line.starts_with("subscribed to"),
        "unexpected first line: {line:?}"
    );
    // Keep reading: a closed pipe would make the process's next write to stderr fail.
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    Sub { child, stderr }
}

/// Waits for a `sub` to end; its output with the stderr after the first line.
pub(crate) fn finish_sub(sub: Sub) -> Output {
    let mut output = finish(sub.child);
    output.stderr = sub.stderr.join().expect("stderr reader").into_bytes();
    output
}

/// Runs `wspubsub pub ARGS` with `input` on stdin.
pub(crate) fn publish(args: &[&str], input: &[u8]) -> Output {
    let mut child = spawn_piped(&[&["pub"], args].concat(), &[], Stdio::piped());
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    finish(child)
}

/// A running `wspubsub` whose stderr lines are forwarded to a channel.
pub(crate) struct Process {
    /// The process, until [`Process::wait`] takes it.
    child: Option<Child>,
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
        Process {
            child: Some(child),
            lines,
        }
    }

    /// The next log line that contains `needle`.
    pub(crate) fn wait_for_line(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(TIMEOUT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(error) => panic!(
                    "no log line with {needle:?} ({error}); the process said:\n{}",
                    seen.join("\n")
                ),
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

    /// [`Process::wait`] from async code, without blocking the runtime.
    pub(crate) async fn exit_status(self) -> std::process::ExitStatus {
        tokio::task::spawn_blocking(move || self.wait())
            .await
            .expect("the waiting thread")
    }

    /// Sends SIGTERM: a graceful stop.
    pub(crate) fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits (bounded) for the process to end, and says how it ended.
    pub(crate) fn wait(mut self) -> std::process::ExitStatus {
        let child = self.child.take().expect("a process not yet waited for");
        finish(child).status
    }

    /// Sends SIGKILL: the process dies at once, as a crashed node does.
    pub(crate) fn kill(&self) {
        self.signal("KILL");
    }

    /// Sends SIGHUP: reload the TLS certificate.
    pub(crate) fn hang_up(&self) {
        self.signal("HUP");
    }

    /// The process id.
    fn id(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("running: only wait takes the child")
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }
}

/// Waits for `child` and returns its output; past [`TIMEOUT`] kills it and fails the test,
/// so that a process that should have ended never outlives the test.
pub(crate) fn finish(child: Child) -> Output {
    let pid = child.id().to_string();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(TIMEOUT) {
        Ok(output) => output.expect("process output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("wspubsub did not end within {TIMEOUT:?}");
        }
    }
}

/// Runs `wspubsub ARGS` with `env` to its end (bounded by [`finish`]), stdin empty.
pub(crate) fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    finish(spawn_piped(args, env, Stdio::null()))
}

/// Starts `wspubsub ARGS` with `env` and `stdin`, its stdout and stderr piped.
fn spawn_piped(args: &[&str], env: &[(&str, &str)], stdin: Stdio) -> Child {
    wspubsub()
        .args(args)
        .envs(env.iter().copied())
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wspubsub")
}

/// Asserts that `output` is a failure as the binary reports one: exit code 2 and exactly one
/// line on stderr, which contains `needle`.
pub(crate) fn assert_one_line_failure(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes a fresh self-signed certificate for 127.0.0.1 and its key, as PEM files.
pub(crate) fn write_certificate(cert: &str, key: &str) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("generate a certificate");
    std::fs::write(cert, generated.cert.pem()).expect("write the certificate");
    std::fs::write(key, generated.signing_key.serialize_pem()).expect("write the key");
}

/// A directory of its own for a test's files, removed on drop.
pub(crate) struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A fresh directory named after `name` and this process.
    pub(crate) fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wspubsub-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// The path of `file` in the directory.
    pub(crate) fn path(&self, file: &str) -> String {
        self.0.join(file).to_string_lossy().into_owned()
    }

    /// Writes `text` to `file` in the directory; its path.
    pub(crate) fn write(&self, file: &str, text: &str) -> String {
        let path = self.path(file);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
