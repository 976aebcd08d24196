// Pays a URL with the stock x402 npm client (@x402/fetch + @x402/evm + viem) and prints one JSON
// line: {status, body, paymentResponse, paymentRequired}.
//
// Usage: node pay.mjs URL [JSON_BODY]
// Environment:
//   PAYER_KEY        the payer's private key, 0x + 64 hex digits (required)
//   MAX_AMOUNT       largest payment accepted, in atomic units of the asset [default 1000000]
//   ASSET, NETWORK   the token (mUSD's address) and network (eip155:<chain id>) to allow; without
//                    them they are read from the first 402 answer of URL
import { x402Client, wrapFetchWithPayment, x402HTTPClient } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";

const [url, body] = process.argv.slice(2);
if (!url) {
  console.error("usage: node pay.mjs URL [JSON_BODY]   (PAYER_KEY=0x... in the environment)");
  process.exit(2);
}
const key = process.env.PAYER_KEY;
if (!key || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
  console.error("PAYER_KEY must be a private key: 0x followed by 64 hex digits");
  process.exit(2);
}

const init = {
  method: body ? "POST" : "GET",
  headers: body ? { "content-type": "application/json" } : {},
  body: body || undefined,
};

// What does the server ask for? (Also shows that an unpaid request gets 402.)
let network = process.env.NETWORK;
let asset = process.env.ASSET;
let paymentRequired = null;
const probe = await fetch(url, init);
if (probe.status === 402) {
  const header = probe.headers.get("payment-required");
  if (header) {
    paymentRequired = JSON.parse(Buffer.from(header, "base64").toString("utf8"));
    network ??= paymentRequired.accepts[0].network;
    asset ??= paymentRequired.accepts[0].asset;
  }
}

const client = new x402Client();
client.register("eip155:*", new ExactEvmScheme(privateKeyToAccount(key)));
if (network && asset) {
  // Tokens other than the SDK's default stablecoins must be allowed explicitly.
  client.setSpendControls({
    allowedAssets: [{ network, asset, maxAmountPerPayment: process.env.MAX_AMOUNT || "1000000" }],
  });
}
const payingFetch = wrapFetchWithPayment(fetch, client);
const res = await payingFetch(url, init);
const text = await res.text();
let paymentResponse = null;
try {
  paymentResponse = new x402HTTPClient(client).getPaymentSettleResponse((n) => res.headers.get(n));
} catch (e) {
  paymentResponse = { error: String(e && e.message ? e.message : e) };
}
console.log(JSON.stringify({ status: res.status, body: text, paymentResponse, paymentRequired }));
