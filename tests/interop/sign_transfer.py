#!/usr/bin/env python3
"""Sign a mycel Transfer with eth_account, an Ethereum library that knows nothing about mycel.

This is the independent signer of the interop test (crates/state/tests/eth_account_interop.rs): it
builds the EIP-712 typed data from its own copy of the type definitions (docs/transactions.md), signs
it with a raw private key, and prints the transaction's JSON form -- what `POST /v1/txs` takes:

    {"chainId": 1337, "type": "Transfer", "message": {...}, "signature": "0x...65 bytes..."}

With --typed-data it prints the EIP-712 typed data it signs instead, so the test can compare it
with mycel's own.

Needs: pip install eth-account
"""

import argparse
import json
import sys

try:
    from eth_account import Account
    from eth_utils import to_checksum_address
except ImportError:
    sys.exit("sign_transfer.py needs the eth_account package: pip install eth-account")

MYC_ADDRESS = "0x0000000000000000000000000000000000000000"
MUSD_ADDRESS = "0x00000000000000000000000000000000006d5553"

# The EIP-712 types of a mycel Transfer, field for field as docs/transactions.md lists them.
TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "Transfer": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "token", "type": "address"},
        {"name": "amount", "type": "uint256"},
        {"name": "memo", "type": "bytes"},
        {"name": "nonce", "type": "uint64"},
        {"name": "fee", "type": "uint256"},
    ],
}


def typed_data(chain_id, message):
    return {
        "domain": {"name": "mycel", "version": "1", "chainId": chain_id},
        "types": TYPES,
        "primaryType": "Transfer",
        "message": message,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--private-key", required=True, help="the signer's private key, 64 hex digits")
    parser.add_argument("--chain-id", type=int, default=1337)
    parser.add_argument("--to", required=True, help="recipient address")
    parser.add_argument("--token", default="MYC", help="MYC, mUSD, or a token address")
    parser.add_argument("--amount", required=True, type=int, help="amount in base units")
    parser.add_argument("--memo", default="", help="memo text (UTF-8)")
    parser.add_argument("--nonce", required=True, type=int)
    parser.add_argument("--fee", required=True, type=int, help="fee in MYC base units")
    parser.add_argument("--typed-data", action="store_true", help="print the typed data instead of the signed tx")
    args = parser.parse_args()

    account = Account.from_key(args.private_key)
    token = {"myc": MYC_ADDRESS, "musd": MUSD_ADDRESS}.get(args.token.lower(), args.token)
    memo = args.memo.encode("utf-8")

    # What eth_account signs: native Python values.
    message = {
        "from": account.address,
        "to": to_checksum_address(args.to),
        "token": to_checksum_address(token),
        "amount": args.amount,
        "memo": memo,
        "nonce": args.nonce,
        "fee": args.fee,
    }
    # The same message in mycel's JSON form: 256-bit integers as decimal strings, bytes as 0x-hex.
    message_json = dict(message, amount=str(args.amount), memo="0x" + memo.hex(), fee=str(args.fee))

    if args.typed_data:
        print(json.dumps(typed_data(args.chain_id, message_json)))
        return

    signed = Account.sign_typed_data(account.key, full_message=typed_data(args.chain_id, message))
    signature = signed.signature.hex()
    if not signature.startswith("0x"):
        signature = "0x" + signature
    print(json.dumps({
        "chainId": args.chain_id,
        "type": "Transfer",
        "message": message_json,
        "signature": signature,
    }))


if __name__ == "__main__":
    main()
