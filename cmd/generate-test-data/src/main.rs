//! `generate-test-data`: writes the load test's data file. The same flags write the same
//! file, byte for byte.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use wspubsub_testdata::{DEFAULT_SEED, DataSet, GenerateSpec};

/// Writes a seeded set of random binary messages for the wspubsub load test.
#[derive(Debug, Parser)]
#[command(name = "generate-test-data", version, about)]
struct Args {
    /// Number of messages.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Largest message, in bytes; each message's length is uniform in 1..=this.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=i64::from(wspubsub_testdata::format::MAX_MESSAGE_LEN)))]
    max_message_size: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Where to write the file.
    #[arg(long, default_value = "testdata/test.dat")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spec = GenerateSpec {
        count: args.count as usize,
        max_message_size: args.max_message_size as usize,
        seed: args.seed,
    };
    let set = DataSet::generate(spec);
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
