// Drive `mycel mcp` with the npm MCP SDK (@modelcontextprotocol/sdk 1.32: protocol 2025-11-25,
// initialize handshake), a client that knows nothing about mycel. Connects over stdio (launching
// the command) or streamable HTTP, lists the tools, calls the ones given, prints one JSON object:
//   {"protocol_version", "tools": [{name, description, inputSchema}], "results": [{tool, isError, structured} | {tool, exception}]}
//
//   node client.mjs --stdio '["mycel","mcp","--rpc","http://127.0.0.1:8545"]' --calls '[["status",{}]]'
//   node client.mjs --url http://127.0.0.1:8765/mcp --calls '[["status",{}]]'
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const stdio = arg("--stdio");
const url = arg("--url");
const calls = JSON.parse(arg("--calls") ?? "[]");
if (!stdio === !url) {
  console.error("give exactly one of --stdio and --url");
  process.exit(2);
}
const transport = stdio
  ? (() => {
      const [command, ...args] = JSON.parse(stdio);
      return new StdioClientTransport({ command, args, stderr: "inherit" });
    })()
  : new StreamableHTTPClientTransport(new URL(url));
const client = new Client({ name: "mycel-interop", version: "0.1.0" });
await client.connect(transport);
const out = { protocol_version: transport.protocolVersion ?? null, results: [] };
const { tools } = await client.listTools();
out.tools = tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema }));
for (const [tool, args] of calls) {
  try {
    const r = await client.callTool({ name: tool, arguments: args });
    out.results.push({ tool, isError: Boolean(r.isError), structured: r.structuredContent ?? null });
  } catch (e) {
    out.results.push({ tool, exception: String(e?.message ?? e) });
  }
}
await client.close();
console.log(JSON.stringify(out));
