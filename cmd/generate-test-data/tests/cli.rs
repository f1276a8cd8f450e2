//! The generator as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_generate-test-data"))
        .args(args)
        .output()
        .expect("run generate-test-data")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wspubsub-gen-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn same_flags_write_the_same_file_byte_for_byte() {
    let dir = temp_dir("same");
    let first = dir.join("a.dat");
    let second = dir.join("b.dat");
    for path in [&first, &second] {
        let output = run(&[
            "--count",
            "20",
            "--max-message-size",
            "5000",
            "--out",
            path.to_str().expect("utf-8"),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("20 messages"));
    }
    let first = std::fs::read(first).expect("read");
    assert_eq!(first, std::fs::read(&second).expect("read"));
    let other_seed = dir.join("c.dat");
    let output = run(&[
        "--count",
        "20",
        "--max-message-size",
        "5000",
        "--seed",
        "2",
        "--out",
        other_seed.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success());
    assert_ne!(first, std::fs::read(other_seed).expect("read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zero_count_is_refused_clearly() {
    let output = run(&["--count", "0", "--out", "/nonexistent/never.dat"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--count"));
}
