//! `msock send-file` (work in progress).

use super::Failure;
use crate::cli::SendFileArgs;

/// Runs `msock send-file`.
pub async fn run(_args: SendFileArgs) -> Result<(), Failure> {
    Err(Failure::local("msock send-file is not built yet"))
}
