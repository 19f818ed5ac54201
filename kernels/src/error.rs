//! Errors of the kernels crate.

/// What can go wrong while finding a device or running a kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No wgpu adapter matched the request.
    #[error("no wgpu adapter found{}: install a Vulkan driver (`bash scripts/setup.sh` installs Mesa's lavapipe) or use the CPU backend", .filter.as_ref().map(|f| format!(" matching {f}")).unwrap_or_default())]
    NoAdapter {
        /// The adapter filter that was in force (from `WGPU_ADAPTER_NAME` or `WGPU_BACKEND`), if any.
        filter: Option<String>,
    },
    /// The adapter refused to create a device.
    #[error("wgpu adapter `{adapter}` could not create a device: {message}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's explanation.
        message: String,
    },
    /// Tensors whose shapes do not fit the op.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The GPU failed while running a kernel.
    #[error("GPU: {0}")]
    Gpu(String),
}

/// The kernels crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
