//! `agentfs serve mcp`: a session's tools (`tools`) over the Model Context Protocol on stdio,
//! through the official Rust SDK (rmcp). This only translates: listing, calling, and a tool's
//! failure as an MCP tool error the agent reads (never a crash of the server).

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt};

use crate::tools::{ToolError, Tools};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the MCP client did not complete the handshake: {0}")]
    Handshake(String),
    #[error("the MCP server stopped: {0}")]
    Stopped(String),
}

#[derive(Clone)]
struct Server {
    tools: Arc<Tools>,
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentfs", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Files of an agentfs session (a copy-on-write view of a project): paths start \
                 at the session's root. Changes land in the session, never in the project; \
                 `changes` and `diff` show what the session changed so far.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .tools
            .offered()
            .iter()
            .map(|spec| {
                let schema = match (spec.schema)() {
                    serde_json::Value::Object(o) => o,
                    _ => serde_json::Map::new(),
                };
                let mut tool = Tool::new(spec.name, spec.description, schema);
                let mut hints = ToolAnnotations::default();
                hints.read_only_hint = Some(!spec.writes);
                tool.annotations = Some(hints);
                tool
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tools = self.tools.clone();
        let name = request.name.to_string();
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
        // The tools block on SQLite and the host's files: off the async workers.
        let outcome = tokio::task::spawn_blocking(move || tools.call(&name, &args))
            .await
            .map_err(|e| ErrorData::internal_error(format!("the tool failed: {e}"), None))?;
        match outcome {
            Ok(text) => Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into()),
            Err(e @ ToolError::Unknown(_)) => Err(ErrorData::invalid_params(e.to_string(), None)),
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(e.to_string())]).into()),
        }
    }
}

/// Serves `tools` on stdin and stdout until the client goes away.
pub fn serve_stdio(tools: Tools) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async {
        let server = Server {
            tools: Arc::new(tools),
        };
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| ServeError::Handshake(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| ServeError::Stopped(e.to_string()))?;
        Ok(())
    })
}
