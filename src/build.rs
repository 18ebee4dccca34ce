//! What this binary is: its version, the commit it was built from and the compiler that
//! built it, taken at build time by `build.rs` (without network; `unknown` for a source tree
//! without git). `--version` prints them and `credwatch_build_info` exports them.

/// The crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit, 12 hex digits (with `-dirty` when the tree had uncommitted changes), or
/// `unknown`.
pub const REVISION: &str = env!("CREDWATCH_REVISION");

/// `rustc --version` of the compiler that built it.
pub const RUSTC: &str = env!("CREDWATCH_RUSTC");

/// What `--version` prints after the program's name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CREDWATCH_REVISION"),
    ", ",
    env!("CREDWATCH_RUSTC"),
    ")"
);
