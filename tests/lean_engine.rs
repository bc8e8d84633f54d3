//! The engine builds as a dependency on its own: without default features the crate pulls in none of
//! the server's, the benchmark's or the CLI's dependencies, and it compiles.

use std::path::Path;
use std::process::Command;

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

#[test]
fn the_engine_without_default_features_has_no_tool_dependencies() {
    let out = cargo()
        .args([
            "tree",
            "--offline",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"glommio") && crates.contains(&"parquet"),
        "unexpected tree:\n{tree}"
    );
    for tool in [
        "plotters",
        "indicatif",
        "ureq",
        "hyper",
        "clap",
        "tracing-subscriber",
        "datafusion",
        "tokio",
        "rmcp",
    ] {
        assert!(
            !crates.contains(&tool),
            "{tool} is a dependency of the engine without default features:\n{tree}"
        );
    }
}

#[test]
fn the_engine_compiles_without_default_features() {
    // Its own target directory: the suite's is in use by the cargo that runs this test.
    let target = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("lean-engine");
    let out = cargo()
        .args([
            "check",
            "--offline",
            "--lib",
            "--no-default-features",
            "--message-format",
            "short",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .expect("run cargo check");
    assert!(
        out.status.success(),
        "the engine alone does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
