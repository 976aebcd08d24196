//! The independent implementations tests compare against: Python scripts (eth_account, the
//! official `openai` client) under tests/interop and the npm x402 client under
//! interop/x402-client. `.ci/run` installs their packages.

use std::path::PathBuf;
use std::process::Command;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python interpreter: `$MYCEL_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// tests/interop/`name`.
pub fn interop_script(name: &str) -> PathBuf {
    repo_root().join("tests/interop").join(name)
}

/// interop/x402-client: the npm x402 client's project.
pub fn x402_client_dir() -> PathBuf {
    repo_root().join("interop/x402-client")
}

/// `npm ci` in interop/x402-client once per lockfile: skipped when node_modules already matches
/// package-lock.json; one at a time across the parallel test processes.
pub fn npm_ci() {
    use std::os::unix::io::AsRawFd;
    let dir = x402_client_dir();
    let guard = std::fs::File::create(dir.join(".npm-ci.lock")).expect("lock file");
    // SAFETY: flock on a file descriptor this function owns; released when `guard` closes.
    let rc = unsafe { libc::flock(guard.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    let lock = std::fs::read(dir.join("package-lock.json")).expect("package-lock.json");
    let stamp = dir.join("node_modules/.mycel-lock-stamp");
    if std::fs::read(&stamp).ok().as_deref() == Some(&lock[..]) {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
        .current_dir(&dir)
        .output()
        .expect("npm is needed for the x402 interop tests (.ci/run installs it)");
    assert!(
        out.status.success(),
        "npm ci failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&stamp, &lock).expect("stamp");
}

/// Runs tests/interop/mcp_client.py (the official Python MCP client, PyPI `mcp`) against
/// `server` (`["--stdio", JSON]` or `["--url", URL]`, plus any other flags of the script) with
/// `mode` (`auto`: 2026-07-28; `legacy`: 2025-11-25) and prints the script's JSON.
pub fn mcp_python(server: &[&str], mode: &str, calls: serde_json::Value) -> serde_json::Value {
    let mut command = Command::new(python());
    command
        .arg(interop_script("mcp_client.py"))
        .args(server)
        .args(["--mode", mode, "--calls", &calls.to_string()]);
    json_output(
        command,
        "mcp_client.py (pip install -r tests/interop/requirements.txt)",
    )
}

/// Runs interop/mcp-client/client.mjs (the npm MCP SDK, paying with the x402 SDK when
/// `server` has `--pay KEY`) against `server`.
pub fn mcp_npm(server: &[String], calls: serde_json::Value) -> serde_json::Value {
    let mut command = Command::new("node");
    command
        .current_dir(repo_root().join("interop/mcp-client"))
        .arg("client.mjs")
        .args(server)
        .args(["--calls", &calls.to_string()]);
    json_output(
        command,
        "client.mjs (node, and `npm ci` in interop/mcp-client)",
    )
}

fn json_output(mut command: Command, what: &str) -> serde_json::Value {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}
