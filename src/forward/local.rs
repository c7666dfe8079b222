//! The client side of port forwarding (`msock connect --local`, like `ssh -L`): accept local
//! TCP connections and carry each over a session of its own, so that a program connected to
//! the local port sees one unbroken TCP connection while the session moves.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::tcp_app::{self, TcpSink, TcpSource};

/// How long sessions get, after an interrupt, to tell their peers before the process exits.
const GOODBYE: Duration = Duration::from_secs(2);

/// Accepts connections on `listeners` until `interrupt` resolves; each one's halves go to
/// `carry` (with the program's address), which runs its session to the end, in a task of its
/// own, and says whether it failed (then the program's connection is reset rather than
/// closed). After the interrupt, waits a moment for the running sessions (which should watch
/// for the interrupt themselves) to end.
pub async fn serve<F, Fut>(
    listeners: Vec<TcpListener>,
    carry: F,
    interrupt: impl Future<Output = ()>,
) where
    F: Fn(TcpSource, TcpSink, SocketAddr) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(16);
    for l in listeners {
        tokio::spawn(accept_loop(l, tx.clone()));
    }
    drop(tx);
    let mut tasks = JoinSet::new();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            Some((stream, peer)) = rx.recv() => {
                tracing::info!("local connection from {peer}");
                let (source, sink, end) = tcp_app::split(stream);
                let job = carry(source, sink, peer);
                tasks.spawn(async move { end.close(job.await) });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = &mut interrupt => break,
        }
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(GOODBYE, drain).await;
}

/// Accepts on `l` for as long as anyone takes the connections; a failed accept (e.g. out of
/// file descriptors) is reported and retried shortly.
async fn accept_loop(l: TcpListener, tx: mpsc::Sender<(TcpStream, SocketAddr)>) {
    loop {
        match l.accept().await {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("cannot accept a local connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
