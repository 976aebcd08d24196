//! `mycel mcp`: the network as MCP tools for AI assistants (docs/mcp.md), over stdio (what a
//! desktop assistant launches) or, with `--listen`, streamable HTTP at `/mcp`.

use crate::http_limits::HttpLimitsArgs;
use crate::signer::SignerArgs;
use anyhow::{anyhow, Context, Result};
use clap::Args;
use mycel_client::NodeClient;
use std::net::SocketAddr;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
      mycel mcp --rpc http://127.0.0.1:8545                     # stdio: put this command line in the assistant's MCP config\n  \
      mycel mcp --listen 127.0.0.1:8765 --dev-account 6         # streamable HTTP at http://127.0.0.1:8765/mcp, with a key\n  \
      mycel mcp --listen 127.0.0.1:8766 --paid-tools prices.json --dev-account 7   # sell tools per call over x402\n\n\
      Without a key the write tools (transfer, give_feedback) refuse and say how to give one. An agent key\n\
      with an allowance (mycel allowance grant) spends its owner's tokens within the allowance's limits.")]
pub struct McpArgs {
    /// URL of the node's HTTP API.
    #[arg(
        long,
        value_name = "URL",
        env = "MYCEL_RPC",
        default_value = "http://127.0.0.1:8545"
    )]
    pub rpc: String,
    /// The x402 gateway the `chat` tool asks (and pays).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8402")]
    pub gateway: String,
    /// The most one paid call may cost, in mUSD.
    #[arg(long, value_name = "MUSD", default_value = "0.05")]
    pub max: String,
    /// Sell tools per call over x402 (x402's MCP transport): a JSON file of prices, e.g.
    /// {"tools": {"metagraph": "0.001"}, "pay_to": "0x…", "upstream": ["python3", "server.py"]}
    /// (docs/mcp.md). Settled by the gateway's facilitator unless the file names another.
    #[arg(long, value_name = "FILE")]
    pub paid_tools: Option<std::path::PathBuf>,
    /// Serve streamable HTTP on this address (at /mcp) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Browser origins allowed over HTTP (repeat); a request from any other Origin gets 403
    /// [default: http://localhost:* and http://127.0.0.1:*].
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub origins: Vec<String>,
    /// The key the write tools sign with (optional).
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub http: HttpLimitsArgs,
}

pub fn run(args: McpArgs) -> Result<()> {
    let signer = args.signer.load_if_given()?;
    let node = NodeClient::new(&args.rpc).map_err(|e| anyhow!("--rpc: {e}"))?;
    let max = mycel_types::parse_amount(&args.max, mycel_types::Token::Musd)
        .map_err(|e| anyhow!("--max {}: {e}", args.max))?;
    let paid = args
        .paid_tools
        .as_deref()
        .map(mycel_mcp::paid::PaidToolsFile::read)
        .transpose()
        .map_err(|e| anyhow!("--paid-tools {e}"))?;
    let server = mycel_mcp::Server::new(node, signer).with_gateway(args.gateway.clone(), max);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = match &paid {
            Some(file) => server
                .with_paid_tools(file)
                .await
                .map_err(|e| anyhow!("--paid-tools: {e}"))?,
            None => server,
        };
        let Some(listen) = args.listen else {
            return mycel_mcp::serve_stdio(server)
                .await
                .context("serving MCP on stdio");
        };
        let port = listen.port();
        let hosts = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            listen.to_string(),
        ];
        let origins = if args.origins.is_empty() {
            vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()]
        } else {
            args.origins.clone()
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        eprintln!("mycel MCP server on http://{bound}/mcp (node {})", args.rpc);
        let router = mycel_mcp::http_router(server, hosts, origins);
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        mycel_http::serve(listener, router, args.http.limits()?, stop)
            .await
            .context("serving MCP over HTTP")
    })
}
