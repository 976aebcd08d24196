//! The flags every command that serves HTTP shares: how many clients it holds and how long it
//! waits for a request head (docs/node-api.md, "Limits"). The limits themselves live in
//! mycel-http; this only turns flags into [`ServeLimits`].

use anyhow::Context as _;
use mycel_http::ServeLimits;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimitsArgs {
    /// Most HTTP connections open at once; more clients wait to be accepted until one closes.
    #[arg(long, value_name = "N", default_value_t = ServeLimits::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds an HTTP client has to send a complete request head, from when it connects or from
    /// its previous answer (idle keep-alive); slower connections are closed. Request bodies get
    /// 30 s; answers that take long to compute or stream are never cut.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = ServeLimits::DEFAULT_HEADER_TIMEOUT.as_secs()
    )]
    pub header_timeout: u64,
}

impl HttpLimitsArgs {
    /// The limits these flags ask for, checked.
    pub fn limits(&self) -> anyhow::Result<ServeLimits> {
        let limits = ServeLimits {
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout),
            ..ServeLimits::default()
        };
        limits
            .check()
            .context("--max-connections / --header-timeout")?;
        Ok(limits)
    }

    /// The same flags as words (for the roles `mycel up` starts with their commands' flags).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--max-connections".into(),
            self.max_connections.to_string(),
            "--header-timeout".into(),
            self.header_timeout.to_string(),
        ]
    }
}
