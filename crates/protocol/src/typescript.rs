//! Generated TypeScript files (the protocol's `ui/src/lib/protocol/generated.ts`, the desktop
//! shell's `ui/src/lib/backend/generated.ts`): each is made from Rust types by a test that
//! rewrites the committed file when it is stale, and fails under CI when it was.

use std::path::Path;

use ts_rs::{Config, TS};

/// The settings every generated file uses: every 64-bit integer crossing to the UI is a time in
/// ms, a size, a sequence or a count, far below 2^53 (ids, the only large ones, are strings).
pub fn config() -> Config {
    Config::new().with_large_int("number")
}

/// The first lines of a generated file: where it comes from and the command that remakes it.
pub fn header(source: &str, command: &str) -> String {
    format!(
        "// Generated from {source} by `{command}`.\n// Do not edit: change the Rust types and run the test again.\n\n"
    )
}

/// Appends `export` and the declaration of `T`, then a blank line.
pub fn export<T: TS>(out: &mut String, cfg: &Config) {
    out.push_str("export ");
    out.push_str(&T::decl(cfg));
    out.push_str("\n\n");
}

/// [`export`]s each type in order: `declare!(out, cfg; A, B, C)`.
#[macro_export]
macro_rules! declare {
    ($out:expr, $cfg:expr; $($t:ty),* $(,)?) => {$(
        $crate::typescript::export::<$t>($out, $cfg);
    )*};
}

/// Writes `fresh` to the generated file at `path` when it differs from what is there. Under CI
/// (`CI` set) a difference is a failure: the change was not committed with its generated file.
pub fn check_generated(path: &Path, fresh: &str) {
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != fresh {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("creating the generated file's folder");
        }
        std::fs::write(path, fresh).expect("writing the generated file");
        assert!(std::env::var_os("CI").is_none(), "{} was stale; regenerated it: commit it", path.display());
    }
}
