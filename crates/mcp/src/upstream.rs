//! A third-party MCP server whose tools `mycel mcp` offers (behind the paywall of
//! [`crate::paid`]): launched as a child process and spoken to over its stdio as an MCP client.

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::service::RunningService;
use rmcp::{ErrorData, RoleClient, ServiceExt};
use std::time::Duration;

/// How long one upstream call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A running upstream server and the tools of it that are offered.
pub struct Upstream {
    service: RunningService<RoleClient, ()>,
    tools: Vec<Tool>,
    _child: tokio::process::Child,
}

impl Upstream {
    /// Launches `command` (killed when this is dropped) and lists its tools; only those `offer`
    /// accepts are offered.
    pub async fn spawn(
        command: &[String],
        offer: impl Fn(&str) -> bool,
    ) -> Result<Upstream, String> {
        let (program, args) = command
            .split_first()
            .ok_or("upstream: the command line is empty")?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("upstream {program}: {e}"))?;
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err(format!("upstream {program}: no stdio"));
        };
        let service =
            ().serve((stdout, stdin))
                .await
                .map_err(|e| format!("upstream {program}: {e}"))?;
        let tools = service
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("upstream {program}: listing tools: {e}"))?
            .into_iter()
            .filter(|t| offer(&t.name))
            .collect();
        Ok(Upstream {
            service,
            tools,
            _child: child,
        })
    }

    /// The offered tools, as the upstream describes them.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    pub fn has(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name == name)
    }

    /// Calls the upstream's `name`; its failure is a tool error, not an MCP error.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut params = CallToolRequestParams::new(name.to_string());
        params.arguments = arguments;
        match tokio::time::timeout(CALL_TIMEOUT, self.service.peer().call_tool(params)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(rmcp::ServiceError::McpError(e))) => Err(e),
            Ok(Err(e)) => Err(ErrorData::internal_error(
                format!("upstream tool {name}: {e}"),
                None,
            )),
            Err(_) => Err(ErrorData::internal_error(
                format!("upstream tool {name}: no answer in {CALL_TIMEOUT:?}"),
                None,
            )),
        }
    }
}
