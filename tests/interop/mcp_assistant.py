#!/usr/bin/env python3
"""An assistant-like session against `mycel mcp` with the official Python MCP client (PyPI `mcp`):
what an AI assistant does with the tools, each step using what the previous one returned.

  1. find the inference subnet's miners (metagraph) and the registered agents (find_agents);
  2. ask the network's models (chat: paid per call over x402, progress notifications on);
  3. check the answer's receipt independently (verify_receipt with the receipt chat returned)
     and that it was signed by one of the miners found in step 1;
  4. open a payment session, pay a second question from it with a voucher, read the session,
     and close it.

Prints one JSON object with each step's structured result (and "progress" for the chats).
Usage: mcp_assistant.py --stdio '["mycel","mcp","--rpc",URL,"--gateway",URL,"--dev-account","5"]'
Used by crates/cli/tests/up_subnet.rs. Needs: pip install mcp
"""

import argparse
import asyncio
import json
import sys

try:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
except ImportError:
    sys.exit("mcp_assistant.py needs the mcp package: pip install mcp")


async def call(client, out, name, arguments, key=None):
    progress = []

    async def on_progress(done, total, message):
        progress.append([done, total, message])

    result = await client.call_tool(name, arguments, progress_callback=on_progress)
    step = {"is_error": bool(result.is_error), "structured": result.structured_content}
    if progress:
        step["progress"] = progress
    out[key or name] = step
    if result.is_error:
        print(json.dumps(out))
        sys.exit(f"{name} failed: {result.structured_content}")
    return result.structured_content


async def run(command):
    out = {}
    server = StdioServerParameters(command=command[0], args=command[1:])
    async with Client(server) as client:
        graph = await call(client, out, "metagraph", {"netuid": 1})
        miners = sorted(
            n["hotkey"].lower() for n in graph["neurons"] if (n.get("endpoint") or {}).get("port")
        )
        out["miners"] = miners
        await call(client, out, "find_agents", {})
        chat = await call(
            client, out, "chat", {"prompt": "Name a colour.", "max_tokens": 8, "max_price": "0.05"}
        )
        checked = await call(client, out, "verify_receipt", {"answer": {"receipt": chat["receipt"]}})
        out["signed_by_a_miner"] = checked["miner"].lower() in miners
        session = await call(client, out, "open_session", {"amount": "0.5"})
        channel = session["channel"]
        await call(
            client,
            out,
            "chat",
            {"prompt": "Name a fruit.", "max_tokens": 8, "session": channel},
            key="session_chat",
        )
        await call(client, out, "session", {"channel": channel})
        await call(client, out, "close_session", {"channel": channel})
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stdio", required=True, help="the server command line, as a JSON list")
    args = parser.parse_args()
    asyncio.run(run(json.loads(args.stdio)))


if __name__ == "__main__":
    main()
