//! `msock bench`: throughput measurement (work in progress: refuses for now).

use super::accept::Accepted;
use super::Failure;
use crate::cli::BenchArgs;

/// Runs `msock bench`.
pub async fn run(_args: BenchArgs) -> Result<(), Failure> {
    Err(Failure::local("msock bench is not built yet"))
}

/// Serves one benchmark client on a listener.
pub async fn serve(accepted: Accepted) -> Result<(), Failure> {
    drop(accepted);
    Ok(())
}
