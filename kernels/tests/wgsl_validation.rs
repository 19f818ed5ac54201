//! Every `.wgsl` file parses and validates with naga, with no GPU, and each Rust uniform
//! struct has the size of the shader's.

use hwnas_kernels::wgsl::Shader;

#[test]
fn every_shader_validates_and_uniforms_match() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wgsl");
    let mut on_disk = Vec::new();
    for family in std::fs::read_dir(&dir).unwrap().flatten() {
        for file in std::fs::read_dir(family.path()).unwrap().flatten() {
            if file.path().extension().is_some_and(|e| e == "wgsl") {
                on_disk.push(
                    file.path()
                        .strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = Shader::ALL.iter().map(|s| s.path().to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every .wgsl file is loaded by a Shader variant"
    );

    for shader in Shader::ALL {
        let module = naga::front::wgsl::parse_str(shader.source())
            .unwrap_or_else(|e| panic!("{}: {}", shader.path(), e.emit_to_string(shader.source())));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", shader.path()));
        let (name, rust_size) = shader.uniform();
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{} has no struct {name}", shader.path()));
        let shader_size = ty.inner.size(module.to_ctx()) as usize;
        assert_eq!(
            shader_size,
            rust_size,
            "{}: {name} is {shader_size} bytes in WGSL, {rust_size} in Rust",
            shader.path()
        );
    }
}
