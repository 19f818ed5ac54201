//! The workspace's dependency rule, read from every member's `Cargo.toml`: dependencies
//! point one way (cli -> search -> core, latency, targets; latency -> core, targets;
//! core -> kernels), and nothing below the search library depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The hwnas crates each package may depend on (normal and build dependencies).
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let set = |names: &[&'static str]| names.iter().copied().collect::<BTreeSet<_>>();
    BTreeMap::from([
        ("hwnas-kernels", set(&[])),
        ("hwnas-targets", set(&[])),
        ("hwnas-testkit", set(&[])),
        ("hwnas-core", set(&["hwnas-kernels"])),
        ("hwnas-latency", set(&["hwnas-core", "hwnas-targets"])),
        (
            "hwnas-search",
            set(&["hwnas-core", "hwnas-latency", "hwnas-targets"]),
        ),
        (
            "hwnas",
            set(&[
                "hwnas-core",
                "hwnas-latency",
                "hwnas-targets",
                "hwnas-search",
            ]),
        ),
        ("hwnas-tests", set(&["hwnas-core", "hwnas-testkit"])),
    ])
}

fn hwnas_names(table: Option<&toml::Value>) -> BTreeSet<String> {
    table
        .and_then(|t| t.as_table())
        .map(|t| {
            t.keys()
                .filter(|k| k.starts_with("hwnas"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dependencies_point_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let workspace: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    let allowed = allowed();
    let mut seen = BTreeSet::new();
    for member in members {
        let dir = root.join(member.as_str().unwrap());
        let manifest: toml::Value =
            toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_string();
        let rule = allowed
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} has no place in the dependency rule; add it"));
        for key in ["dependencies", "build-dependencies"] {
            for dep in hwnas_names(manifest.get(key)) {
                assert!(
                    rule.contains(dep.as_str()),
                    "{name} [{key}] names {dep}: the rule allows only {rule:?}"
                );
            }
        }
        // Tests below the search library may use the test kit, never the library itself.
        for dep in hwnas_names(manifest.get("dev-dependencies")) {
            if name != "hwnas-tests" && name != "hwnas" {
                assert_ne!(
                    dep, "hwnas-search",
                    "{name} dev-depends on the search library"
                );
                assert!(
                    rule.contains(dep.as_str()) || dep == "hwnas-testkit",
                    "{name} [dev-dependencies] names {dep}"
                );
            }
        }
        seen.insert(name);
    }
    for name in allowed.keys() {
        assert!(seen.contains(*name), "{name} is not a workspace member");
    }
}
