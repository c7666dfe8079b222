//! Load generator for `tests/bench-relay.sh` and `tests/bench-idle-sessions.sh`: opens N msock
//! sessions to DEST (HOST:PORT or NAME@RELAY) as file-transfer sessions (with --stream, byte
//! streams) that never send anything, and holds them open (the sessions exchange only
//! keepalives) until killed. Prints `open N` on stderr once all are up.
//!
//! `cargo run --release --example idle_sessions -- 1000 idle@127.0.0.1:7480`

use clap::Parser;
use msock::cli::{DialArgs, StreamArgs};
use msock::proto::Service;
use msock::runtime::channel_io::channel_app;

/// Hold N idle sessions open.
#[derive(Parser)]
struct Args {
    /// How many sessions.
    n: usize,
    /// Where to: HOST:PORT or NAME@RELAY.
    dest: String,
    /// How many sessions are being opened at once.
    #[arg(long, default_value = "32")]
    parallel: usize,
    /// Open byte-stream sessions (as `msock connect` does) instead of file-transfer ones.
    #[arg(long = "stream")]
    byte_stream: bool,
    #[command(flatten)]
    dial: DialArgs,
    #[command(flatten)]
    stream: StreamArgs,
}

fn main() {
    let args = Args::parse();
    msock::runtime::sys::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut held = Vec::with_capacity(args.n);
        let mut opened = 0;
        while opened < args.n {
            let batch = args.parallel.min(args.n - opened);
            let mut tries = tokio::task::JoinSet::new();
            for _ in 0..batch {
                let (source, sink, w, r) = channel_app(4);
                let (dest, dial, stream) =
                    (args.dest.clone(), args.dial.clone(), args.stream.clone());
                let service = if args.byte_stream {
                    Service::Stream
                } else {
                    Service::File
                };
                tries.spawn(async move {
                    let d = msock::cmd::dial::dial(
                        &dest,
                        &dial,
                        &stream,
                        service,
                        Some(source),
                        Some(sink),
                    )
                    .await;
                    d.map(|d| (d, w, r))
                });
            }
            while let Some(t) = tries.join_next().await {
                match t.expect("dial task") {
                    Ok((driver, w, r)) => {
                        let task = tokio::spawn(async move {
                            let _ = driver.run().await;
                        });
                        held.push((task, w, r));
                        opened += 1;
                    }
                    Err(f) => {
                        eprintln!("idle_sessions: session {opened}: {}", f.message);
                        std::process::exit(1);
                    }
                }
            }
        }
        eprintln!("open {opened}");
        std::future::pending::<()>().await;
    });
}
