//! mycel-testkit: the one harness every test that starts real processes uses (a dev-dependency).
//!
//! Contract:
//! - [`ports`]: loopback ports that are free now, and a run of consecutive ones. A free port is
//!   free only until someone binds it; starters here retry with new ports when a parallel test
//!   took one first ([`process::start_with_retry`]).
//! - [`TestDir`]: a temporary directory removed when the test passes and kept (its path printed)
//!   when it fails or `MYCEL_TEST_KEEP_DIRS` is set, so the logs in it can be read.
//! - [`Proc`]: a child process with its output in a log file, killed when dropped, and killed by
//!   the kernel when the test process dies without unwinding (a signal, a nextest timeout), so no
//!   test leaves a process holding ports. Waits for a line in its log; shows the log's tail.
//! - [`mycel`]: the `mycel` binary of this build and the assertions on its output the CLI tests
//!   share (exit code, stable error text).
//! - [`Devnet`]: `mycel up` (or `mycel up --chain-only`) on fresh ports in a directory of its own:
//!   start, wait for a height, stop, kill -9, restart on the same data and ports, a typed
//!   [`mycel_client`] client of it.
//! - [`http`]: blocking GETs of JSON or text, usable inside and outside an async runtime.
//! - [`interop`]: the repository root, the Python scripts and the npm x402 client (npm ci once).
//! - [`payer`]: the x402 payer tests pay with (mycel-client's, the one the CLI and the bench use)
//!   and the dev accounts' addresses.
//!
//! Assumes: Linux or another Unix (process groups, `PR_SET_PDEATHSIG` on Linux); the `mycel`
//! binary is built (`cargo build --bin mycel`, which cargo does itself for crates/cli's tests).
//! Does not: share a devnet between tests (nextest runs each test in its own process, so a
//! shared one would be started per test anyway), or hide a failure: every wait that runs out
//! panics with the process's log tail.

pub mod devnet;
pub mod follower;
pub mod http;
pub mod interop;
pub mod mycel;
pub mod payer;
pub mod ports;
pub mod process;

mod dir;

pub use devnet::{Devnet, DevnetOptions};
pub use dir::TestDir;
pub use follower::Follower;
pub use payer::{dev_address, dev_signer, now_secs, units};
pub use ports::{free_port, free_port_range};
pub use process::Proc;
