//! The receiving side of `msock send-file` (`msock listen --save-dir DIR`).

use std::path::PathBuf;

use super::accept::Accepted;
use super::Failure;

/// Where and how a listener saves files.
#[derive(Debug)]
pub struct SaveOptions {
    /// The directory files go to.
    pub dir: PathBuf,
    /// Replace existing files that differ.
    pub overwrite: bool,
    /// Largest offer accepted, in bytes.
    pub max_size: Option<u64>,
}

impl SaveOptions {
    /// Checks (and creates) `dir`.
    pub fn new(dir: PathBuf, overwrite: bool, max_size: Option<u64>) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot use --save-dir {}: {e}", dir.display()))?;
        Ok(SaveOptions {
            dir,
            overwrite,
            max_size,
        })
    }
}

/// Receives one file transfer.
pub async fn serve(accepted: Accepted, _save: &SaveOptions) -> Result<(), Failure> {
    drop(accepted);
    Ok(())
}
