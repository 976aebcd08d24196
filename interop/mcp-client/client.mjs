// Drive `mycel mcp` with the npm MCP SDK (@modelcontextprotocol/sdk 1.32: protocol 2025-11-25,
// initialize handshake), a client that knows nothing about mycel. Connects over stdio (launching
// the command) or streamable HTTP, lists the tools, calls the ones given, prints one JSON object:
//   {"protocol_version", "tools": [{name, description, inputSchema}], "results": [{tool, isError, structured} | {tool, exception}]}
//
//   node client.mjs --stdio '["mycel","mcp","--rpc","http://127.0.0.1:8545"]' --calls '[["status",{}]]'
//   node client.mjs --url http://127.0.0.1:8765/mcp --calls '[["status",{}]]'
//
// With --pay KEY it is also an x402-over-MCP client written from x402's spec
// (specs/transports-v2/mcp.md, tool-result binding), signing with the official x402 SDK
// (@x402/core + @x402/evm, viem): a call whose result is a PaymentRequired (isError, with
// x402Version and accepts in structuredContent, or as JSON in content[0].text) is paid and
// retried with the PaymentPayload in params._meta["x402/payment"]; the result's
// _meta["x402/payment-response"] is recorded. A call given as [tool, args, {"replay": true}]
// re-sends the previous payment as it was.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { x402Client } from "@x402/core/client";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";

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
const key = arg("--pay");
let payer = null;
if (key) {
  payer = new x402Client();
  payer.register("eip155:*", new ExactEvmScheme(privateKeyToAccount(key)));
}

// The PaymentRequired a tool result carries, if any (structuredContent first, then the text).
function paymentRequired(r) {
  if (!r.isError) return null;
  const asks = (v) => v && typeof v === "object" && "x402Version" in v && "accepts" in v;
  if (asks(r.structuredContent)) return r.structuredContent;
  try {
    const v = JSON.parse(r.content?.[0]?.text ?? "");
    return asks(v) ? v : null;
  } catch {
    return null;
  }
}

const summary = (r) => ({
  isError: Boolean(r.isError),
  structured: r.structuredContent ?? null,
  text: (r.content ?? []).map((c) => c.text ?? "").join(""),
  paymentResponse: r._meta?.["x402/payment-response"] ?? null,
});

let lastPayment = null;
for (const [tool, args, options] of calls) {
  try {
    if (options?.replay) {
      const r = await client.callTool({ name: tool, arguments: args, _meta: { "x402/payment": lastPayment } });
      out.results.push({ tool, replay: true, ...summary(r) });
      continue;
    }
    const r = await client.callTool({ name: tool, arguments: args });
    const asked = paymentRequired(r);
    if (!asked || !payer) {
      out.results.push({ tool, ...summary(r) });
      continue;
    }
    // mUSD is not one of the SDK's default stablecoins: allow what was asked, for this call.
    const need = asked.accepts[0];
    payer.setSpendControls({
      allowedAssets: [{ network: need.network, asset: need.asset, maxAmountPerPayment: need.amount }],
    });
    lastPayment = await payer.createPaymentPayload(asked);
    const paid = await client.callTool({ name: tool, arguments: args, _meta: { "x402/payment": lastPayment } });
    out.results.push({ tool, asked, payer: lastPayment.payload.authorization.from, ...summary(paid) });
  } catch (e) {
    out.results.push({ tool, exception: String(e?.message ?? e) });
  }
}
await client.close();
console.log(JSON.stringify(out));
