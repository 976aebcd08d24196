#!/usr/bin/env python3
"""Talk to a mycel miner with the official `openai` Python client, as any OpenAI user would.

The client of the miner test (crates/cli/tests/miner.rs). Against BASE_URL (e.g.
http://127.0.0.1:8000/v1) it runs, with a fixed seed and small max_tokens:

  - a chat completion (not streamed), reading the x-mycel-receipt header too;
  - the same chat completion streamed (stream=True, with usage), collecting the deltas and the
    receipt of the last chunk;
  - a text completion (/v1/completions);
  - GET /v1/models;
  - a request for a model the miner does not serve (expects openai.NotFoundError).

Every receipt is checked with eth_account (verify_receipt.py beside this file). Prints one JSON
object with everything it saw, for the Rust test to assert on.

Needs: pip install -r tests/interop/requirements.txt (openai, eth-account)
"""

import argparse
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import openai
    from openai import OpenAI
except ImportError:
    sys.exit("openai_client.py needs the openai package: pip install -r tests/interop/requirements.txt")

from verify_receipt import check  # noqa: E402


def extra(obj, name):
    """A field the OpenAI schema does not know (the client keeps them as extras)."""
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key="not-needed", max_retries=0, timeout=300)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    settings = dict(model=args.model, max_tokens=args.max_tokens, temperature=0.8, top_p=0.95, seed=7)
    out = {"openai_version": openai.__version__}

    # Not streamed: the parsed completion and the raw response's headers.
    raw = client.chat.completions.with_raw_response.create(messages=messages, **settings)
    chat = raw.parse()
    header = raw.headers.get("x-mycel-receipt")
    receipt = extra(chat, "receipt")
    out["chat"] = {
        "id": chat.id,
        "object": chat.object,
        "text": chat.choices[0].message.content,
        "role": chat.choices[0].message.role,
        "finish_reason": chat.choices[0].finish_reason,
        "usage": chat.usage.model_dump(),
        "system_fingerprint": chat.system_fingerprint,
        "receipt": receipt,
        "header_receipt": json.loads(base64.b64decode(header)) if header else None,
        "verified": check(receipt),
    }

    # Streamed: the same request gives the same tokens.
    stream = client.chat.completions.create(
        messages=messages, stream=True, stream_options={"include_usage": True}, **settings
    )
    pieces, finish, stream_receipt, usage, chunks = [], None, None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason is not None:
                finish = choice.finish_reason
                stream_receipt = extra(chunk, "receipt")
    out["stream"] = {
        "text": "".join(pieces),
        "pieces": len(pieces),
        "chunks": chunks,
        "finish_reason": finish,
        "usage": usage,
        "receipt": stream_receipt,
        "verified": check(stream_receipt) if stream_receipt else None,
    }

    # A plain text completion.
    completion = client.completions.create(
        model=args.model, prompt="The capital of France is", max_tokens=4, temperature=0
    )
    completion_receipt = extra(completion, "receipt")
    out["completion"] = {
        "object": completion.object,
        "text": completion.choices[0].text,
        "finish_reason": completion.choices[0].finish_reason,
        "usage": completion.usage.model_dump(),
        "receipt": completion_receipt,
        "verified": check(completion_receipt),
    }

    out["models"] = [m.id for m in client.models.list()]

    try:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
        out["unknown_model"] = {"raised": None}
    except openai.NotFoundError as e:
        out["unknown_model"] = {"raised": "NotFoundError", "status": e.status_code, "code": e.code, "param": e.param}
    except openai.APIError as e:
        out["unknown_model"] = {"raised": type(e).__name__, "message": str(e)}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
