//! Follows a topic in stream mode from the oldest message its history holds, printing each
//! message with its position, and rides out network losses and server restarts: after a
//! break it reconnects, with backoff, and resumes right after the last message printed.
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example cargo run -p wspubsub-subclient --example subscriber_resume
//! ```

use futures_util::StreamExt;
use wspubsub_subclient::{
    ClientOptions, Event, Reconnect, StartPosition, StreamSubscriber, SubscriberOptions,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());
    let options = SubscriberOptions::default()
        .start(StartPosition::Earliest) // or Seq(last seen + 1) to resume a saved position
        .reconnect(Reconnect::default()); // 100 ms doubling to 10 s, with jitter, forever
    let mut subscriber = StreamSubscriber::connect(&url, ClientOptions::default(), options).await?;
    loop {
        tokio::select! {
            event = subscriber.next() => match event {
                Some(event) => match event? {
                    Event::Message(message) => {
                        println!("{}: {}", message.seq, String::from_utf8_lossy(&message.payload));
                    }
                    Event::Reconnected { from, after } => eprintln!("reconnected after {after}, at {from}"),
                    Event::Gap { from, to, reason } => eprintln!("lost {from}..{to}: {reason}"),
                    _ => {}
                },
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(subscriber.close().await?),
        }
    }
}
