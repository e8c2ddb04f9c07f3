//! The files the service keeps for itself are private: its state directory
//! is created `0700`, the SQLite database `0600` (it holds containers'
//! environments, so their secrets), and stored images `0600` (nest-images
//! writes them so). At start, a wider mode found on any of them is named in
//! a warning: the service does not change modes an operator chose.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Mode of directories the service creates.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of files the service creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as `0700`, and warns if it already
/// existed with a wider mode.
///
/// # Errors
/// The I/O error when it cannot be created.
pub async fn prepare(dir: &Path) -> std::io::Result<()> {
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .await?;
    warn_if_shared(dir, PRIVATE_DIR_MODE).await;
    Ok(())
}

/// Warns, naming the mode found, when `path` grants more than `allowed`
/// (group or other bits). Silent when it does not exist.
pub async fn warn_if_shared(path: &Path, allowed: u32) {
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & !allowed != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:04o}"),
            expected = format!("{allowed:04o}"),
            "a file of the service's state is readable by other users; chmod it"
        );
    }
}

/// Whether `path` grants nothing beyond `allowed`.
///
/// # Errors
/// The I/O error when it cannot be read.
pub fn is_private(path: &Path, allowed: u32) -> std::io::Result<bool> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    Ok(mode & !allowed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_created_state_dir_is_private_and_a_wide_one_is_left_as_found() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/state");
        prepare(&dir).await.expect("created");
        assert!(is_private(&dir, PRIVATE_DIR_MODE).expect("stat"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        prepare(&dir).await.expect("exists already");
        assert!(!is_private(&dir, PRIVATE_DIR_MODE).expect("stat"));
    }
}
