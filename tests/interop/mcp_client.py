#!/usr/bin/env python3
"""Drive `mycel mcp` with the official Python MCP client (PyPI `mcp`), a client that knows nothing
about mycel: connect over stdio (launching the command) or streamable HTTP, negotiate the protocol
(`--mode auto`: the stateless 2026-07-28 revision via server/discover; `--mode legacy`: the
2025-11-25 initialize handshake), list the tools and call the ones given, and print one JSON object:

    {"protocol_version": "...", "tools": [{"name", "description", "input_schema"}...],
     "results": [{"tool", "is_error", "structured", "text", "progress"} or {"tool", "exception"}...]}

A call is [tool, arguments]; {"read": URI} reads a resource instead ({"uri", "mime_type", "json"} or
{"uri", "exception"}); `progress` lists the progress notifications the call got, as
[progress, total, message]. With --resources the output also has "resources" and "templates".

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
        if args.resources:
            listed = await client.list_resources()
            out["resources"] = [r.uri for r in listed.resources]
            templates = await client.list_resource_templates()
            out["templates"] = [t.uri_template for t in templates.resource_templates]
        for call in calls:
            if isinstance(call, dict):
                uri = call["read"]
                try:
                    read = await client.read_resource(uri)
                except Exception as e:
                    out["results"].append({"uri": uri, "exception": str(e)})
                    continue
                contents = read.contents[0]
                out["results"].append(
                    {"uri": uri, "mime_type": contents.mime_type, "json": json.loads(contents.text)}
                )
                continue
            tool, arguments = call
            progress = []

            async def on_progress(done, total, message, progress=progress):
                progress.append([done, total, message])

            try:
                result = await client.call_tool(tool, arguments, progress_callback=on_progress)
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
                    "progress": progress,
                }
            )
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stdio", help="the server command line, as a JSON list")
    parser.add_argument("--url", help="the server's streamable HTTP URL (…/mcp)")
    parser.add_argument("--mode", default="auto", help="auto (2026-07-28 if the server speaks it) or legacy (initialize)")
    parser.add_argument("--calls", default="[]", help='JSON list of [tool, arguments] pairs and {"read": URI}')
    parser.add_argument("--resources", action="store_true", help="list the resources and resource templates")
    args = parser.parse_args()
    if bool(args.stdio) == bool(args.url):
        sys.exit("give exactly one of --stdio and --url")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
