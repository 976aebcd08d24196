//! The one logging setup of the binary: `tracing` to stderr, colored on a terminal, filtered by
//! `RUST_LOG` or else the role's default (each role logs its own crate at info, the rest at warn).
//! The first role a process starts sets it up; later ones (the gateway and subnet that `mycel up`
//! starts next to its node) log through it.

/// The default filter of `mycel node`, `mycel up` and `mycel localnet`.
pub const NODE: &str = "warn,mycel_chain=info";
/// The default filter of `mycel gateway`.
pub const GATEWAY: &str = "warn,mycel_gateway=info";
/// The default filter of `mycel validator`.
pub const SUBNET: &str = "warn,mycel_subnet=info";

/// Logs to stderr with `RUST_LOG`, else `default_filter`. Does nothing if logging is set up.
pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
