//! `msock listen --exec/--sh-exec [--pty]` and the client side of it in `msock connect`: the
//! flags to a [`Spec`], the listener's routes for program sessions and plain TCP clients, and
//! the client's exit status.

use std::sync::Arc;
use std::time::Instant;

use super::dial::{dial_failure, try_dial};
use super::{ctrl_c, finish, Exit, Failure};
use crate::cli::{ConnectArgs, ListenArgs};
use crate::program::client::ClientError;
use crate::program::server::{serve_plain, serve_session, ProgramError};
use crate::program::Spec;
use crate::proto::{ErrorCode, Service, SessionError};
use crate::runtime::channel_io::channel_app;
use crate::runtime::client::DialError;
use crate::runtime::events::Events;
use crate::runtime::services::{Opening, Services, StreamClient};
use crate::runtime::{AppSource, ConnectError, StdoutSink};

/// The program the listener's flags ask for, if any. Refuses (exit 2) to run one for anyone
/// who connects unless the user said so (--allow-anyone) or clients need a key
/// (--authorized-keys, --psk-file).
pub(crate) fn spec(args: &ListenArgs) -> Result<Option<Arc<Spec>>, Failure> {
    let mut spec = match (&args.exec, &args.sh_exec) {
        (Some(line), _) => Spec::exec(line).map_err(Failure::local)?,
        (None, Some(cmd)) => Spec::shell(cmd),
        (None, None) if args.pty || args.stderr => {
            return Err(Failure::local(
                "--pty and --stderr go with --exec PROG or --sh-exec CMD",
            ))
        }
        (None, None) => return Ok(None),
    };
    if args.stream.psk_file.is_none() && args.authorized_keys.is_none() && !args.allow_anyone {
        return Err(Failure::local(
            "--exec/--sh-exec would run the program for anyone who can reach this port: give \
             --authorized-keys FILE (the clients' keys) or --psk-file FILE (clients need the \
             same file), or --allow-anyone if that is what you want",
        ));
    }
    spec.pty = args.pty;
    spec.stderr = args.stderr;
    Ok(Some(Arc::new(spec)))
}

/// Offers program sessions: each runs `spec`'s program, concurrently with the others.
pub(crate) fn offer(services: &mut Services<Result<(), Failure>>, spec: Arc<Spec>) {
    services.session(Service::Program, move |o: Opening| {
        let spec = spec.clone();
        async move {
            let peer = o.peer();
            let res = serve_session(o.accept().await?, spec, ctrl_c()).await;
            ended(res, &peer.to_string())
        }
    });
}

/// Serves a byte-stream client of a program listener: an msock client is told to open a
/// program session instead; a plain TCP client gets the program's raw input and output (only
/// with --allow-anyone: it has no key).
pub(crate) async fn serve_stream(
    client: StreamClient,
    spec: Arc<Spec>,
    allow_anyone: bool,
) -> Result<(), Failure> {
    match client {
        StreamClient::Session(o) => {
            let why = "this listener runs a program: it serves program sessions only (use a \
                       newer msock connect)";
            Err(o
                .refuse_with(ErrorCode::ProgramOnly, why.into())
                .await
                .into())
        }
        StreamClient::Plain { peer, .. } if !allow_anyone => Err(Failure::not_started(format!(
            "plain TCP client {peer} refused: it has no key, and this listener runs a program \
             (start it with --allow-anyone to serve plain TCP clients)"
        ))),
        StreamClient::Plain {
            stream,
            initial,
            peer,
        } => {
            tracing::info!("plain TCP client {peer}: running the program for it");
            ended(
                serve_plain(stream, initial, peer, spec).await,
                &peer.to_string(),
            )
        }
    }
}

/// The listener's result for one program session.
fn ended(
    res: Result<Option<crate::program::Status>, ProgramError>,
    peer: &str,
) -> Result<(), Failure> {
    match res {
        Ok(Some(st)) => {
            tracing::info!("program for {peer} {st}");
            Ok(())
        }
        Ok(None) => {
            tracing::info!("session of {peer} ended; its program was hung up");
            Ok(())
        }
        Err(e @ ProgramError::Spawn { .. }) => Err(Failure::local(e)),
        Err(e) => Err(Failure::network(format!("program session of {peer}: {e}"))),
    }
}

/// True if the listener refused a byte stream because it runs a program.
pub(crate) fn wants_program(e: &DialError) -> bool {
    matches!(
        e,
        DialError::Connect(ConnectError::Handshake(
            _,
            SessionError::PeerError {
                code: ErrorCode::ProgramOnly,
                ..
            }
        ))
    )
}

/// `msock connect` to a program listener: opens a program session and exits with the
/// program's exit status.
pub(crate) async fn connect<I: AppSource>(
    dest: &str,
    args: &ConnectArgs,
    input: Option<I>,
    mut stdout: Option<StdoutSink>,
    started: Instant,
) -> Result<(), Failure> {
    let (source, sink, w, r) = channel_app(16);
    let dialed = try_dial(
        dest,
        &args.dial,
        &args.stream,
        Service::Program,
        Some(source),
        Some(sink),
    )
    .await?;
    let mut driver = dialed.map_err(|e| dial_failure(e, Service::Program))?;
    driver.set_interrupt(ctrl_c());
    let pump = crate::program::client::run(w, r, input, stdout.as_mut());
    let ((drive, totals), pumped) = tokio::join!(driver.run(), pump);
    let events = Events::sessions(args.stream.json_events);
    let flushed = finish(drive, totals, started, stdout, &events).await;
    match (pumped, flushed) {
        (Err(ClientError::Signal(n)), _) => Err(status(128u8.saturating_add(n as u8))),
        // The exit status arrived: how the session's last acknowledgements went is moot.
        (Ok(st), Err(f)) if f.kind == Exit::Network => exit_with(st),
        (_, Err(f)) => Err(f),
        (Ok(st), Ok(())) => exit_with(st),
        (Err(ClientError::Output(e)), Ok(())) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(())
        }
        (
            Err(e @ (ClientError::Input(_) | ClientError::Output(_) | ClientError::Terminal(_))),
            Ok(()),
        ) => Err(Failure::local(e)),
        (Err(e), Ok(())) => Err(Failure::network(e)),
    }
}

/// Exits with the program's status (0: success).
fn exit_with(st: crate::program::Status) -> Result<(), Failure> {
    match st.code() {
        0 => Ok(()),
        c => Err(status(c)),
    }
}

/// A silent exit with `code`.
fn status(code: u8) -> Failure {
    Failure {
        kind: Exit::Status(code),
        message: String::new(),
    }
}
