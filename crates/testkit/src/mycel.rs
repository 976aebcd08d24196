//! The `mycel` binary of this build, and the checks on its output that CLI tests share.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The environment variables through which a user's setup would leak into a test's `mycel`.
const USER_ENV: [&str; 6] = [
    "MYCEL_RPC",
    "MYCEL_KEYSTORE",
    "MYCEL_PASSWORD",
    "MYCEL_COMMITS",
    "MYCEL_DATA_DIR",
    "MYCEL_GATEWAY",
];

/// The `mycel` binary: `$MYCEL_BIN` if set, else the one beside the running test binary
/// (`target/<profile>/mycel`, which cargo builds for crates/cli's integration tests and
/// `scripts/test` builds for every other crate's).
pub fn bin() -> PathBuf {
    if let Some(path) = std::env::var_os("MYCEL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>/mycel
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps");
    let path = profile_dir.join(format!("mycel{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bin mycel` first (or set MYCEL_BIN)",
        path.display()
    );
    path
}

/// `mycel ARGS` with nothing on stdin and none of the user's MYCEL_* settings.
pub fn command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(bin());
    command.args(args).stdin(Stdio::null());
    for name in USER_ENV {
        command.env_remove(name);
    }
    command
}

/// Runs `mycel ARGS` to the end.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    command(args).output().expect("run mycel")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code 0, or a panic showing both streams.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected success\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// Exit code 1 (a user error) with `needle` on stderr.
#[track_caller]
pub fn assert_fails_with(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "stderr lacks {needle:?}:\n{}",
        stderr(out)
    );
}

/// stdout parsed as JSON (for `--json`), after checking the exit code.
#[track_caller]
pub fn json(out: &Output) -> serde_json::Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", stdout(out)))
}
