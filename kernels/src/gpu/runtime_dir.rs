//! Mesa's Vulkan drivers (lavapipe among them) warn on every start when `XDG_RUNTIME_DIR`
//! is unset or missing; a program can give them a private folder before it starts threads.

use std::path::PathBuf;

/// A private folder (mode 0700, created) to set `XDG_RUNTIME_DIR` to, or `None` where the
/// variable already names a folder or none could be made.
pub fn vulkan_runtime_dir() -> Option<PathBuf> {
    let usable = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .is_some_and(|dir| dir.is_dir());
    if usable {
        return None;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".to_string());
    let dir = std::env::temp_dir().join(format!("hwnas-runtime-{user}"));
    std::fs::create_dir_all(&dir).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    Some(dir)
}
