//! Microbenchmarks of the fan-out hot path: what it costs to get one burst of messages ready
//! for N subscribers, encoded once and shared ([`ChunkBuilder`], [`Backlog`], [`FrameQueue`])
//! versus framed once per subscriber (what a writer that sends each message through
//! tungstenite does).

use std::hint::black_box;
use std::time::Instant;

use bytes::{Buf, Bytes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use wspubsub_fanout::{Backlog, ChunkBuilder, Cursor, FrameQueue};

const BURST: usize = 256;
const SUBSCRIBERS: usize = 100;

fn burst(payload: usize) -> Vec<Bytes> {
    (0..BURST)
        .map(|n| Bytes::from(vec![n as u8; payload]))
        .collect()
}

fn encode_once(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_burst");
    for payload in [64usize, 1024] {
        let messages = burst(payload);
        group.throughput(Throughput::Elements(BURST as u64));
        group.bench_with_input(
            BenchmarkId::new("chunk_builder", payload),
            &messages,
            |b, messages| {
                let mut builder = ChunkBuilder::new(64 << 10);
                b.iter(|| {
                    let mut chunks = Vec::new();
                    let arrived = Instant::now();
                    for message in messages {
                        chunks.extend(builder.push(message, arrived));
                    }
                    chunks.extend(builder.finish());
                    black_box(chunks)
                });
            },
        );
    }
    group.finish();
}

/// A burst reaching 100 subscribers: shared chunks read from the backlog into each
/// subscriber's queue, versus each subscriber framing every message itself.
fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("burst_to_100_subscribers");
    for payload in [64usize, 1024] {
        let messages = burst(payload);
        group.throughput(Throughput::Elements((BURST * SUBSCRIBERS) as u64));
        group.bench_with_input(
            BenchmarkId::new("shared_chunks", payload),
            &messages,
            |b, messages| {
                let mut builder = ChunkBuilder::new(64 << 10);
                b.iter(|| {
                    let mut backlog = Backlog::new(1 << 16, 64 << 20);
                    let mut cursors: Vec<Cursor> =
                        (0..SUBSCRIBERS).map(|_| backlog.join()).collect();
                    let arrived = Instant::now();
                    for message in messages {
                        if let Some(chunk) = builder.push(message, arrived) {
                            backlog.push(chunk);
                        }
                    }
                    if let Some(chunk) = builder.finish() {
                        backlog.push(chunk);
                    }
                    let mut written = 0;
                    for cursor in &mut cursors {
                        let mut queue = FrameQueue::default();
                        let _ = black_box(backlog.read_from(cursor, &mut queue, usize::MAX));
                        written += queue.remaining();
                    }
                    black_box(written)
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("frame_per_subscriber", payload),
            &messages,
            |b, messages| {
                let mut buffer = Vec::with_capacity(BURST * (payload + 14));
                b.iter(|| {
                    let mut written = 0;
                    for _ in 0..SUBSCRIBERS {
                        buffer.clear();
                        for message in messages {
                            let frame =
                                Frame::message(message.clone(), OpCode::Data(Data::Binary), true);
                            let _ = frame.format(&mut buffer);
                        }
                        written += buffer.len();
                    }
                    black_box(written)
                });
            },
        );
    }
    group.finish();
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::encode_once, super::fan_out);
}
criterion_main!(group::benches);
