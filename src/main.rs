//! The `msock` binary: parse arguments, set up logging, run the subcommand, map the result to
//! an exit code. Everything else lives in the library.

use msock::cli::{Cli, Command};
use msock::cmd;

fn main() {
    tune_allocator();
    let cli = Cli::parse_joined();
    init_logging(cli.verbose);
    // One thread drives everything: a session is one task, and stdin/stdout have their own
    // threads. Fewer threads means fewer wake-ups and context switches per byte.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("msock: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Listen(a) => cmd::listen::run(a).await,
            Command::Connect(a) => cmd::connect::run(a).await,
            Command::SendFile(a) => cmd::send_file::run(a, cli.verbose).await,
            Command::Bench(a) => cmd::bench::run(a).await,
            Command::Proxy(a) => cmd::proxy::run(a).await,
        }
    });
    // Blocking stdin reads may still be parked in the runtime: do not wait for them.
    rt.shutdown_background();
    if let Err(f) = result {
        if !f.message.is_empty() {
            eprintln!("msock: {}", f.message);
        }
        std::process::exit(f.code());
    }
}

/// glibc serves allocations above 128 KiB with fresh mmaps, which costs a page fault per 4 KiB
/// on first touch; stream buffers are 256 KiB and short-lived, so keep them on the heap.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator thresholds; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MSOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("msock={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(verbose >= 2)
        .init();
}
