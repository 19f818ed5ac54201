//! What the latency crate's tests share.

/// ONNX Runtime, which these tests run networks in: present, or the test is skipped (or
/// failed, under `HWNAS_REQUIRE=ort`).
pub fn onnx_runtime() -> bool {
    hwnas_testkit::require(
        hwnas_testkit::Resource::Ort,
        "ONNX Runtime",
        hwnas_latency::OrtRuntime::load(),
    )
    .is_some()
}
