//! The generator as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wspubsub_testdata::{DataSet, GenerateSpec};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_generate-test-data"))
        .args(args)
        .output()
        .expect("run generate-test-data")
}

/// A fresh directory under the system's temp dir, unique to this process, test and moment.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "wspubsub-gen-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn same_flags_write_the_same_file_byte_for_byte() {
    let dir = temp_dir("same");
    let first = dir.join("a.dat");
    let second = dir.join("nested/b.dat");
    let mut printed = Vec::new();
    for path in [&first, &second] {
        let output = run(&[
            "--count",
            "20",
            "--max-message-size",
            "5000",
            "--out",
            utf8(path),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        printed.push(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let first_bytes = std::fs::read(&first).expect("read");
    assert_eq!(first_bytes, std::fs::read(&second).expect("read"));

    // What it printed: one line with the path, count, total bytes and the 1-publisher digest,
    // all of which agree with the library.
    let set = DataSet::generate(GenerateSpec {
        count: 20,
        max_message_size: 5000,
        ..GenerateSpec::default()
    });
    assert_eq!(DataSet::load(&first).expect("load"), set);
    let line = &printed[0];
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains(utf8(&first)), "{line}");
    assert!(line.contains("20 messages"), "{line}");
    assert!(
        line.contains(&format!("{} bytes", set.total_bytes())),
        "{line}"
    );
    assert!(line.contains(&set.expected_digest(1).to_string()), "{line}");

    let other_seed = dir.join("c.dat");
    let output = run(&[
        "--count",
        "20",
        "--max-message-size",
        "5000",
        "--seed",
        "2",
        "--out",
        utf8(&other_seed),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_ne!(first_bytes, std::fs::read(&other_seed).expect("read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zero_count_is_refused_with_one_clear_line() {
    let dir = temp_dir("zero");
    let out = dir.join("never.dat");
    let output = run(&["--count", "0", "--out", utf8(&out)]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(message.contains("--count must be at least 1"), "{message}");
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zero_max_message_size_is_refused() {
    let dir = temp_dir("zero-size");
    let output = run(&[
        "--max-message-size",
        "0",
        "--out",
        utf8(&dir.join("never.dat")),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--max-message-size must be between 1 and"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_path_is_one_line_naming_it() {
    let dir = temp_dir("unwritable");
    // A regular file where a folder must be.
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"").expect("write");
    let out = blocker.join("test.dat");
    let output = run(&["--count", "1", "--out", utf8(&out)]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(message.contains(utf8(&out)), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}
