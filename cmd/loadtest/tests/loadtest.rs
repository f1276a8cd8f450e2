//! The load test inside `cargo test`: a small data set made here (nothing depends on a file
//! generated beforehand), several publishers and subscribers, against a real server.

use std::process::Command;
use std::time::Duration;

use loadtest::{InProcessServer, LoadTest, Progress};
use wspubsub_server::Options;
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
        disrupt: 0,
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

/// A disrupted run of `publishers` x `subscribers` on the small data set against `server`.
async fn disrupted_run(server: &InProcessServer, resets: usize) -> loadtest::Report {
    let test = LoadTest {
        publishers: 3,
        subscribers: 4,
        topic: "/disrupted".into(),
        timeout: Duration::from_secs(60),
        disrupt: resets,
    };
    loadtest::run(server.url(), &small_data(), &test, &Progress::default())
        .await
        .expect("run")
}

#[tokio::test]
async fn disrupted_subscribers_resume_from_history_and_reach_the_digest() {
    let data = small_data();
    let server = InProcessServer::start().await.expect("server");
    let report = disrupted_run(&server, 3).await;
    server.stop().await.expect("stop");
    assert!(report.passed(), "{report}");
    assert_eq!(report.verdicts.len(), 4);
    for verdict in &report.verdicts {
        assert_eq!(verdict.reconnects, 3, "{report}");
        assert!(
            verdict.gaps.is_empty() && verdict.unplanned.is_empty(),
            "{report}"
        );
        assert_eq!(verdict.received, 3 * data.len());
        assert_eq!(verdict.digest, data.expected_digest(3));
    }
    let shown = report.to_string();
    assert_eq!(shown.matches(", 3 of 3 reconnects").count(), 4, "{shown}");
}

#[tokio::test]
async fn without_history_a_disrupted_run_fails_and_names_the_gap() {
    // The messages in flight when a connection breaks are gone: only history could give them
    // again, so the resumed subscriber is told of a gap, and the run must fail.
    let server = InProcessServer::start_with(Options {
        history_messages: 0,
        ..Options::default()
    })
    .await
    .expect("server");
    let report = disrupted_run(&server, 3).await;
    server.stop().await.expect("stop");
    assert!(!report.passed(), "{report}");
    let gapped: Vec<_> = report
        .verdicts
        .iter()
        .filter(|verdict| !verdict.gaps.is_empty())
        .collect();
    assert!(!gapped.is_empty(), "no gap announced: {report}");
    for verdict in &gapped {
        assert!(!verdict.passed, "a gap fails the subscriber: {report}");
        for gap in &verdict.gaps {
            assert!(gap.to > gap.from, "{report}");
            // `topic_restarted` when every client of the topic was gone at the reconnect:
            // with no history to keep it, the topic ended and began again.
            assert!(
                ["history_off", "topic_restarted"].contains(&gap.reason.as_str()),
                "{report}"
            );
        }
    }
    assert!(report.to_string().contains(" lost ("), "{report}");
}

#[test]
fn binary_passes_against_its_in_process_server_disrupted_or_not_and_fails_on_a_bad_data_file() {
    let dir = std::env::temp_dir().join(format!("wspubsub-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("small.dat");
    small_data().save(&path).expect("save data");

    for disrupt in ["0", "2"] {
        let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args([
                "--publishers",
                "2",
                "--subscribers",
                "2",
                "--timeout",
                "60s",
                "--disrupt",
                disrupt,
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
        let reconnects = match disrupt {
            "0" => 0,
            _ => 2,
        };
        assert_eq!(
            stdout.matches(", 2 of 2 reconnects").count(),
            reconnects,
            "{stdout}"
        );
    }

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
