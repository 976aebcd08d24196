#!/usr/bin/env python3
"""A third-party MCP server (PyPI `mcp`'s MCPServer, over stdio) that knows nothing about mycel or
x402: `mycel mcp --paid-tools` launches it as its upstream and sells its tools per call
(crates/cli/tests/mcp_paid.rs). Every call is appended to the file in $CALLS_LOG, if set, so a
test can tell whether a tool ran.
"""

import os

from mcp.server.mcpserver import MCPServer

app = MCPServer("words")


def record(tool):
    path = os.environ.get("CALLS_LOG")
    if path:
        with open(path, "a") as f:
            f.write(tool + "\n")


@app.tool()
def word_count(text: str) -> str:
    """Count the words of a text."""
    record("word_count")
    return f"{len(text.split())} words"


@app.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    record("shout")
    return text.upper()


@app.tool()
def secret() -> str:
    """Not offered by the mycel server (it is not priced in its file)."""
    record("secret")
    return "hidden"


if __name__ == "__main__":
    app.run()
