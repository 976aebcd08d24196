#!/usr/bin/env python3
"""Check a mycel inference receipt with eth_account, an Ethereum library that knows nothing about mycel.

This is the independent verifier of the receipt interop tests (crates/subnet/tests/receipt_interop.rs
and crates/cli/tests/miner.rs). It rebuilds the EIP-712 typed data from its own copy of the type
definitions in docs/receipts.md, recovers the signer, and recomputes the request hash from the
canonical request that the receipt carries. It prints one JSON object:

    {"signer": "0x…", "miner": "0x…", "signature_valid": true,
     "signing_hash": "0x…", "request_hash": "0x…", "request_hash_matches": true,
     "output_tokens_hash": "0x…" (only with --output-tokens)}

Input: a receipt's JSON form, or a whole completion response with a "receipt" field, from FILE
or standard input ("-").

Needs: pip install eth-account
"""

import argparse
import json
import struct
import sys

try:
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from eth_utils import keccak, to_checksum_address
except ImportError:
    sys.exit("verify_receipt.py needs the eth_account package: pip install eth-account")

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]

# Field for field as docs/receipts.md lists them.
RECEIPT_TYPES = {
    "EIP712Domain": DOMAIN_TYPE,
    "InferenceReceipt": [
        {"name": "netuid", "type": "uint16"},
        {"name": "miner", "type": "address"},
        {"name": "modelId", "type": "bytes32"},
        {"name": "requestHash", "type": "bytes32"},
        {"name": "promptTokensHash", "type": "bytes32"},
        {"name": "outputTokensHash", "type": "bytes32"},
        {"name": "promptTokenCount", "type": "uint32"},
        {"name": "outputTokenCount", "type": "uint32"},
        {"name": "determinismProfile", "type": "string"},
        {"name": "blockHeight", "type": "uint64"},
    ],
}

REQUEST_TYPES = {
    "EIP712Domain": DOMAIN_TYPE,
    "InferenceRequest": [
        {"name": "endpoint", "type": "string"},
        {"name": "messages", "type": "Message[]"},
        {"name": "prompt", "type": "string"},
        {"name": "temperature", "type": "uint32"},
        {"name": "topP", "type": "uint32"},
        {"name": "topK", "type": "uint32"},
        {"name": "seed", "type": "uint64"},
        {"name": "maxTokens", "type": "uint32"},
        {"name": "stop", "type": "string[]"},
    ],
    "Message": [
        {"name": "role", "type": "string"},
        {"name": "content", "type": "string"},
    ],
}


def domain(chain_id):
    return {"name": "mycel-receipt", "version": "1", "chainId": chain_id}


def f32_bits(value):
    """The IEEE-754 binary32 bit pattern of a number, as an unsigned integer."""
    return struct.unpack("<I", struct.pack("<f", float(value)))[0]


def hex32(text):
    raw = bytes.fromhex(text[2:] if text.startswith("0x") else text)
    if len(raw) != 32:
        raise ValueError(f"{text} is not 32 bytes")
    return raw


def request_hash(chain_id, request):
    """hashStruct(InferenceRequest): the body of the EIP-712 message eth_account encodes."""
    message = {
        "endpoint": request["endpoint"],
        "messages": [{"role": m["role"], "content": m["content"]} for m in request["messages"]],
        "prompt": request["prompt"],
        "temperature": f32_bits(request["temperature"]),
        "topP": f32_bits(request["top_p"]),
        "topK": request["top_k"],
        "seed": request["seed"],
        "maxTokens": request["max_tokens"],
        "stop": list(request["stop"]),
    }
    signable = encode_typed_data(full_message={
        "domain": domain(chain_id),
        "types": REQUEST_TYPES,
        "primaryType": "InferenceRequest",
        "message": message,
    })
    return signable.body


def token_ids_hash(ids):
    return keccak(b"".join(int(i).to_bytes(4, "big") for i in ids))


def check(receipt, output_tokens=None):
    """Recovers the signer of a receipt (its JSON form, as a dict) and recomputes its hashes."""
    if receipt.get("type") != "InferenceReceipt":
        raise ValueError(f"not an InferenceReceipt: type = {receipt.get('type')!r}")
    chain_id = receipt["chainId"]
    m = receipt["message"]

    # What eth_account signs: native Python values.
    message = {
        "netuid": m["netuid"],
        "miner": to_checksum_address(m["miner"]),
        "modelId": hex32(m["modelId"]),
        "requestHash": hex32(m["requestHash"]),
        "promptTokensHash": hex32(m["promptTokensHash"]),
        "outputTokensHash": hex32(m["outputTokensHash"]),
        "promptTokenCount": m["promptTokenCount"],
        "outputTokenCount": m["outputTokenCount"],
        "determinismProfile": m["determinismProfile"],
        "blockHeight": m["blockHeight"],
    }
    signable = encode_typed_data(full_message={
        "domain": domain(chain_id),
        "types": RECEIPT_TYPES,
        "primaryType": "InferenceReceipt",
        "message": message,
    })
    signer = Account.recover_message(signable, signature=receipt["signature"])
    signing_hash = keccak(b"\x19" + signable.version + signable.header + signable.body)

    out = {
        "signer": signer,
        "miner": message["miner"],
        "signature_valid": signer == message["miner"],
        "signing_hash": "0x" + signing_hash.hex(),
    }
    if receipt.get("request") is not None:
        computed = request_hash(chain_id, receipt["request"])
        out["request_hash"] = "0x" + computed.hex()
        out["request_hash_matches"] = computed == message["requestHash"]
    if output_tokens is not None:
        out["output_tokens_hash"] = "0x" + token_ids_hash(output_tokens).hex()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="receipt JSON (or a completion response with a receipt field); - for stdin")
    parser.add_argument("--output-tokens", help="comma-separated output token ids to hash")
    args = parser.parse_args()

    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    data = json.loads(text)
    receipt = data.get("receipt", data)
    ids = None
    if args.output_tokens is not None:
        ids = [int(t) for t in args.output_tokens.split(",") if t.strip()]
    try:
        out = check(receipt, ids)
    except (KeyError, ValueError) as e:
        sys.exit(f"cannot read the receipt: {e}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
