//! MCP resources: what an assistant may attach as context rather than call for.
//!
//! - `mycel://subnets`: every subnet (netuid, owner, tempo, pool price, emission share);
//! - `mycel://metagraph/{netuid}`: a subnet's metagraph;
//! - `mycel://emission/latest`: where the latest block's emission went (its receipt);
//! - `mycel://agents/{id}/registration`: an ERC-8004 agent's registration file.
//!
//! Each reads as one JSON text; an unknown URI or a missing subnet or agent is a
//! resource-not-found error.

use crate::Server;
use mycel_client::ClientError;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};
use rmcp::ErrorData;

const JSON: &str = "application/json";

pub(crate) fn list() -> ListResourcesResult {
    ListResourcesResult::with_all_items(vec![
        Resource::new("mycel://subnets", "subnets")
            .with_description("Every subnet: netuid, owner, tempo, pool price, emission share.")
            .with_mime_type(JSON),
        Resource::new("mycel://emission/latest", "latest emission receipt")
            .with_description(
                "Where the latest finalized block's MYC emission went, to the base unit.",
            )
            .with_mime_type(JSON),
    ])
}

pub(crate) fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new("mycel://metagraph/{netuid}", "metagraph")
            .with_description(
                "A subnet's metagraph: every UID's hotkey, stake, consensus, incentive, \
                 dividends, emission and endpoint.",
            )
            .with_mime_type(JSON),
        ResourceTemplate::new("mycel://agents/{id}/registration", "agent registration")
            .with_description("An ERC-8004 agent's registration file, fetched from its URI.")
            .with_mime_type(JSON),
    ])
}

fn not_found(uri: &str, why: impl std::fmt::Display) -> ErrorData {
    ErrorData::resource_not_found(
        format!("{uri}: {why}"),
        Some(serde_json::json!({"uri": uri})),
    )
}

fn node_error(uri: &str, e: ClientError) -> ErrorData {
    match &e {
        ClientError::Node { status: 404, .. } => not_found(uri, e),
        _ => ErrorData::internal_error(format!("{uri}: {e}"), None),
    }
}

pub(crate) async fn read(server: &Server, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let path = uri
        .strip_prefix("mycel://")
        .ok_or_else(|| not_found(uri, "mycel's resources are mycel://…"))?;
    let parts: Vec<&str> = path.split('/').collect();
    let json = match parts.as_slice() {
        ["subnets"] => to_json(
            server
                .node
                .subnets()
                .await
                .map_err(|e| node_error(uri, e))?,
        ),
        ["emission", "latest"] => to_json(
            server
                .node
                .latest_emission_receipt()
                .await
                .map_err(|e| node_error(uri, e))?,
        ),
        ["metagraph", netuid] => {
            let netuid: u16 = netuid
                .parse()
                .map_err(|_| not_found(uri, "the netuid is a number"))?;
            to_json(
                server
                    .node
                    .metagraph(netuid)
                    .await
                    .map_err(|e| node_error(uri, e))?,
            )
        }
        ["agents", id, "registration"] => {
            let id: u64 = id
                .parse()
                .map_err(|_| not_found(uri, "the agent id is a number"))?;
            match server.registration(id).await {
                Ok(file) => to_json(file),
                Err(("unknown_agent", message)) => return Err(not_found(uri, message)),
                Err((code, message)) => {
                    return Err(ErrorData::internal_error(
                        format!("{uri}: {message}"),
                        Some(serde_json::json!({"code": code})),
                    ))
                }
            }
        }
        _ => return Err(not_found(uri, "no such resource")),
    };
    let mut contents = ResourceContents::text(json, uri);
    if let ResourceContents::TextResourceContents { mime_type, .. } = &mut contents {
        *mime_type = Some(JSON.into());
    }
    Ok(ReadResourceResult::new(vec![contents]))
}

fn to_json(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).unwrap_or_default()
}
