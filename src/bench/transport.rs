//! Running a test's logic alongside its transport (an msock session's driver or the plain TCP
//! pump), and what their failures mean.

use std::future::Future;
use std::time::Duration;

use super::Error;
use crate::runtime::{DriveError, Outcome};

/// How long the transport may take to close once the test's logic is done.
const LINGER: Duration = Duration::from_secs(5);

/// Runs `logic` while `transport` moves its bytes, until the logic is done (and the transport
/// has closed, or had [`LINGER`] to). If the transport ends first, its reason is the result.
pub(super) async fn run_with<T>(
    transport: impl Future<Output = Result<Outcome, DriveError>>,
    logic: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::pin!(transport);
    tokio::pin!(logic);
    tokio::select! {
        biased;
        r = &mut logic => {
            let end = tokio::time::timeout(LINGER, &mut transport).await;
            match (r, end) {
                (Err(e), _) => Err(e),
                (Ok(_), Ok(Ok(Outcome::Interrupted))) => Err(Error::Interrupted),
                (Ok(v), Ok(Err(e))) => {
                    tracing::info!("after the test: {e}");
                    Ok(v)
                }
                (Ok(v), _) => Ok(v),
            }
        }
        r = &mut transport => Err(match r {
            Ok(Outcome::Interrupted) => Error::Interrupted,
            Ok(_) => Error::EndedEarly,
            Err(e) => Error::Transport(e),
        }),
    }
}
