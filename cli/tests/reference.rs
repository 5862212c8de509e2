//! docs/cli-reference.md is `updraft reference`'s output: the reference cannot
//! drift from the clap definitions the binary parses with.

use crate::support::{repo_root, text, updraft};

#[test]
fn the_cli_reference_is_generated_from_the_binary_and_current() {
    let out = updraft(&["reference"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let generated = text(&out.stdout);
    for command in ["## `updraft run`", "### `updraft executions delete`", "## `updraft gc`", "`--task-output`"] {
        assert!(generated.contains(command), "the reference covers {command}");
    }
    let path = repo_root().join("docs/cli-reference.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/cli-reference.md is stale: regenerate it with\n  cargo run -q -p updraft-cli -- reference > docs/cli-reference.md"
    );
}
