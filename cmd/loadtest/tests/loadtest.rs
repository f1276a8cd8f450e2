//! The load test inside `cargo test`: a small data set made here (nothing depends on a file
//! generated beforehand), several publishers and subscribers, against a real server.

use std::process::Command;
use std::time::Duration;

use loadtest::{InProcessServer, LoadTest, Progress};
use wspubsub_testdata::{DataSet, GenerateSpec};

fn small_data() -> DataSet {
    DataSet::generate(GenerateSpec {
        count: 40,
        max_message_size: 20_000,
        seed: 7,
    })
}

#[tokio::test]
async fn every_subscriber_receives_every_message_of_every_publisher() {
    let data = small_data();
    let server = InProcessServer::start().await.expect("server");
    let test = LoadTest {
        publishers: 3,
        subscribers: 4,
        topic: "/it".into(),
        timeout: Duration::from_secs(60),
    };
    let report = loadtest::run(server.url(), &data, &test, &Progress::default())
        .await
        .expect("run");
    server.stop().await.expect("stop");
    assert!(report.passed(), "{report}");
    assert_eq!(report.verdicts.len(), 4);
    for verdict in &report.verdicts {
        assert_eq!(verdict.received, 3 * data.len());
        assert_eq!(verdict.digest, data.expected_digest(3));
    }
    assert_eq!(report.delivered_messages(), (4 * 3 * data.len()) as u64);
}

#[test]
fn binary_passes_against_its_in_process_server_and_fails_on_a_bad_data_file() {
    let dir = std::env::temp_dir().join(format!("wspubsub-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("small.dat");
    small_data().save(&path).expect("save data");

    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--publishers",
            "2",
            "--subscribers",
            "2",
            "--timeout",
            "60s",
            "--data",
        ])
        .arg(&path)
        .output()
        .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("PASS: 2 passed, 0 failed"), "{stdout}");

    std::fs::write(&path, b"not a data file").expect("corrupt the file");
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--data")
        .arg(&path)
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read test data"));
    let _ = std::fs::remove_dir_all(&dir);
}
