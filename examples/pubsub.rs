//! Publish/subscribe on a channel: one publisher, N subscribers spread
//! over the runtime's cores, every message received by every subscriber
//! — by reference, one shared buffer per message, no copy.
//!
//! ```text
//! cargo run --release --example pubsub -- --subscribers 4 --messages 1000000
//! cargo run --release --example pubsub -- --best-effort --size 1024
//! ```
//!
//! `--subscribers N` (default 4; `--sources N` is the old spelling, still
//! accepted), `--messages M` (default 100000), `--size BYTES` per message
//! (default 64, at least 8), `--cores C` (default 2), `--best-effort`
//! (subscribers drop their oldest queued message when full and count it,
//! instead of making the publisher wait). Local only: the session has no
//! peers (list them in `insane.toml`'s `[channels]` to reach other
//! hosts). Prints each subscriber's count (lines `source K (core C): ...`,
//! the format tests/examples.rs reads) and the rate.
//! `INSANE_DRIVER=epoll` runs on the epoll driver.

use std::io;
use std::process::ExitCode;
use std::time::Instant;

use insane::qos::{Qos, Session, SessionConfig, channel_id};
use insane::runtime::Runtime;
use insane::task::{spawn_on, yield_now};

#[derive(Clone, Copy, Debug)]
struct Args {
    subscribers: usize,
    messages: u64,
    size: usize,
    cores: usize,
    best_effort: bool,
}

fn usage() -> &'static str {
    "usage: pubsub [--subscribers N] [--messages M] [--size BYTES] [--cores C] [--best-effort]"
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        subscribers: 4,
        messages: 100_000,
        size: 64,
        cores: 2,
        best_effort: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|e| format!("{flag} {v:?}: {e}"))
        };
        match arg.as_str() {
            "--subscribers" | "--sources" => a.subscribers = value(&arg)? as usize,
            "--messages" => a.messages = value("--messages")?,
            "--size" => a.size = value("--size")? as usize,
            "--cores" => a.cores = value("--cores")? as usize,
            "--best-effort" => a.best_effort = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.subscribers == 0 || a.cores == 0 {
        return Err("--subscribers and --cores must be at least 1".into());
    }
    a.size = a.size.max(8);
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pubsub: {e}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pubsub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let rt = Runtime::builder()
        .load_config()?
        .cores(args.cores)
        .build()?;
    let driver = rt.driver();
    rt.block_on(async move {
        let qos = if args.best_effort {
            Qos::builder().best_effort().build()
        } else {
            Qos::default()
        };
        let session = Session::new(SessionConfig::local())?;
        let topic = "demo/pubsub";
        let id = channel_id(topic);
        println!(
            "channel {topic:?} = {id:#010x}, {} subscribers on {} cores (driver {driver}), {qos}",
            args.subscribers, args.cores
        );
        let start = Instant::now();
        let receivers: Vec<_> = (0..args.subscribers)
            .map(|k| {
                let mut subscriber = session.subscriber(id, qos);
                spawn_on(k % args.cores, async move {
                    // Messages carry their index; an empty one ends the
                    // run (the newest message is never dropped).
                    let (mut count, mut bytes, mut next) = (0u64, 0u64, 0u64);
                    loop {
                        let msg = subscriber.recv().await?;
                        if msg.is_empty() {
                            break;
                        }
                        let i = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
                        assert!(i >= next, "subscriber {k}: message {i} after {next}");
                        next = i + 1;
                        count += 1;
                        bytes += msg.len() as u64;
                    }
                    io::Result::Ok((k, count, bytes, subscriber.dropped()))
                })
            })
            .collect();

        let mut publisher = session.publisher(id, qos);
        for i in 0..args.messages {
            let mut buf = publisher.buffer().await;
            buf.extend_from_slice(&i.to_le_bytes())?;
            buf.resize(args.size, 0xab)?;
            publisher.send(buf).await?;
            if i % 64 == 63 {
                // Let the subscribers on this core run: a best-effort
                // publisher never waits for them.
                yield_now().await;
            }
        }
        let end = publisher.buffer().await;
        publisher.send(end).await?;
        let sent = start.elapsed();

        let mut total = 0;
        for r in receivers {
            let (k, count, bytes, dropped) = r.await.map_err(io::Error::other)??;
            total += count;
            // "source": the line format tests/examples.rs reads.
            println!(
                "source {k} (core {}): {count} messages, {bytes} bytes, {dropped} dropped",
                k % args.cores
            );
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "sent {} messages of {} bytes in {:.3} s; {total} deliveries in {secs:.3} s: \
             {:.2} M messages/s sent, {:.2} M deliveries/s",
            args.messages,
            args.size,
            sent.as_secs_f64(),
            args.messages as f64 / secs / 1e6,
            total as f64 / secs / 1e6,
        );
        io::Result::Ok(())
    })
}
