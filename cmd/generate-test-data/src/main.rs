//! `generate-test-data`: writes the load test's data file (format: `testdata/README.md`).
//! The same flags write the same file, byte for byte. Prints one line on success; on failure
//! prints one line to stderr and exits with status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, ensure};
use clap::Parser;
use wspubsub_testdata::format::MAX_MESSAGE_LEN;
use wspubsub_testdata::{DEFAULT_SEED, DataSet, GenerateSpec};

/// Writes a seeded, reproducible set of random binary messages for the wspubsub load test.
#[derive(Debug, Parser)]
#[command(name = "generate-test-data", version, about)]
struct Args {
    /// Number of messages (at least 1).
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Largest message, in bytes; each message's length is uniform in 1..=this.
    #[arg(long, default_value_t = 100_000)]
    max_message_size: usize,
    /// Seed of the ChaCha8 generator.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Where to write the file (parent folders are created).
    #[arg(long, default_value = "testdata/test.dat")]
    out: PathBuf,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}`: the whole cause chain on one line.
            eprintln!("generate-test-data: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.count >= 1,
        "--count must be at least 1 (got {})",
        args.count
    );
    ensure!(
        u32::try_from(args.count).is_ok(),
        "--count must be at most {} (got {})",
        u32::MAX,
        args.count
    );
    ensure!(
        (1..=MAX_MESSAGE_LEN as usize).contains(&args.max_message_size),
        "--max-message-size must be between 1 and {MAX_MESSAGE_LEN} (got {})",
        args.max_message_size
    );
    let set = DataSet::generate(GenerateSpec {
        count: args.count,
        max_message_size: args.max_message_size,
        seed: args.seed,
    });
    set.save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {}: {} messages, {} bytes, sha256 (1 publisher) {}",
        args.out.display(),
        set.len(),
        set.total_bytes(),
        set.expected_digest(1)
    );
    Ok(())
}
