//! Running a test's logic alongside its transport (an msock session's driver or the plain TCP
//! pump), and what their failures mean.

use std::future::Future;
use std::time::Duration;

use crate::cmd::Failure;
use crate::runtime::{DriveError, Outcome};

/// How long the transport may take to close once the test's logic is done.
const LINGER: Duration = Duration::from_secs(5);

/// What a transport's failure means for the command: the peer's or the network's fault (exit
/// 1), except for local I/O.
pub fn drive_failure(e: DriveError) -> Failure {
    match e {
        DriveError::Input(_) | DriveError::Output(_) => Failure::local(e),
        e => Failure::network(e),
    }
}

/// Runs `logic` while `transport` moves its bytes, until the logic is done (and the transport
/// has closed, or had [`LINGER`] to). If the transport ends first, its reason is the result.
pub async fn run_with<T>(
    transport: impl Future<Output = Result<Outcome, DriveError>>,
    logic: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::pin!(transport);
    tokio::pin!(logic);
    tokio::select! {
        biased;
        r = &mut logic => {
            let end = tokio::time::timeout(LINGER, &mut transport).await;
            match (r, end) {
                (Err(f), _) => Err(f),
                (Ok(_), Ok(Ok(Outcome::Interrupted))) => Err(Failure::interrupted()),
                (Ok(v), Ok(Err(e))) => {
                    tracing::info!("after the test: {e}");
                    Ok(v)
                }
                (Ok(v), _) => Ok(v),
            }
        }
        r = &mut transport => Err(match r {
            Ok(Outcome::Interrupted) => Failure::interrupted(),
            Ok(_) => Failure::network("the peer ended the test before sending its results"),
            Err(e) => drive_failure(e),
        }),
    }
}
