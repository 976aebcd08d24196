#!/usr/bin/env python3
"""Drive `mycel mcp` with the official Python MCP client (PyPI `mcp`), a client that knows nothing
about mycel: connect over stdio (launching the command) or streamable HTTP, negotiate the protocol
(`--mode auto`: the stateless 2026-07-28 revision via server/discover; `--mode legacy`: the
2025-11-25 initialize handshake), list the tools and call the ones given, and print one JSON object:

    {"protocol_version": "...", "tools": [{"name", "description", "input_schema"}...],
     "results": [{"tool", "is_error", "structured", "text"} or {"tool", "exception"}...]}

Used by crates/cli/tests/mcp.rs. Needs: pip install mcp
"""

import argparse
import asyncio
import json
import sys

try:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
except ImportError:
    sys.exit("mcp_client.py needs the mcp package: pip install mcp")


async def run(args):
    if args.url:
        server = args.url
    else:
        command = json.loads(args.stdio)
        server = StdioServerParameters(command=command[0], args=command[1:])
    calls = json.loads(args.calls)
    out = {"results": []}
    async with Client(server, mode=args.mode) as client:
        out["protocol_version"] = client.session.protocol_version
        tools = await client.list_tools()
        out["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in tools.tools
        ]
        for tool, arguments in calls:
            try:
                result = await client.call_tool(tool, arguments)
            except Exception as e:  # an MCP error (unknown tool, bad arguments): record it
                out["results"].append({"tool": tool, "exception": str(e)})
                continue
            text = "".join(getattr(c, "text", "") for c in result.content)
            out["results"].append(
                {
                    "tool": tool,
                    "is_error": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": text,
                }
            )
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stdio", help="the server command line, as a JSON list")
    parser.add_argument("--url", help="the server's streamable HTTP URL (…/mcp)")
    parser.add_argument("--mode", default="auto", help="auto (2026-07-28 if the server speaks it) or legacy (initialize)")
    parser.add_argument("--calls", default="[]", help='JSON list of [tool, arguments] pairs')
    args = parser.parse_args()
    if bool(args.stdio) == bool(args.url):
        sys.exit("give exactly one of --stdio and --url")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
