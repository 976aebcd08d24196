// The explorer's receipt checker, bundled by build.mjs into crates/rpc/src/explorer/receipt.js
// (served by the node; no CDN). It checks a mycel inference receipt (docs/receipts.md) with viem,
// an Ethereum library that knows nothing about mycel: the EIP-712 signature must recover to the
// miner the receipt names, and the canonical request it carries must hash to its requestHash.
import { recoverTypedDataAddress, hashStruct, getAddress } from "viem";

const RECEIPT_TYPES = {
  InferenceReceipt: [
    { name: "netuid", type: "uint16" },
    { name: "miner", type: "address" },
    { name: "modelId", type: "bytes32" },
    { name: "requestHash", type: "bytes32" },
    { name: "promptTokensHash", type: "bytes32" },
    { name: "outputTokensHash", type: "bytes32" },
    { name: "promptTokenCount", type: "uint32" },
    { name: "outputTokenCount", type: "uint32" },
    { name: "determinismProfile", type: "string" },
    { name: "blockHeight", type: "uint64" },
  ],
};

const REQUEST_TYPES = {
  InferenceRequest: [
    { name: "endpoint", type: "string" },
    { name: "messages", type: "Message[]" },
    { name: "prompt", type: "string" },
    { name: "temperature", type: "uint32" },
    { name: "topP", type: "uint32" },
    { name: "topK", type: "uint32" },
    { name: "seed", type: "uint64" },
    { name: "maxTokens", type: "uint32" },
    { name: "stop", type: "string[]" },
  ],
  Message: [
    { name: "role", type: "string" },
    { name: "content", type: "string" },
  ],
};

// The bits of the IEEE-754 binary32 value nearest to `x`.
function f32bits(x) {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, Number(x));
  return view.getUint32(0);
}

// The request hash of the readable canonical request (`request` in a receipt's JSON form).
export function requestHash(r) {
  return hashStruct({
    types: REQUEST_TYPES,
    primaryType: "InferenceRequest",
    data: {
      endpoint: r.endpoint,
      messages: (r.messages ?? []).map((m) => ({ role: m.role, content: m.content })),
      prompt: r.prompt ?? "",
      temperature: f32bits(r.temperature),
      topP: f32bits(r.top_p),
      topK: Number(r.top_k),
      seed: BigInt(r.seed),
      maxTokens: Number(r.max_tokens),
      stop: r.stop ?? [],
    },
  });
}

// {valid, reason, signer, miner, requestHashMatches} for a receipt's JSON form, or a whole
// completion with a `receipt` field.
export async function checkReceipt(input) {
  const receipt = input && input.receipt ? input.receipt : input;
  if (!receipt || receipt.type !== "InferenceReceipt" || !receipt.message || !receipt.signature) {
    return { valid: false, reason: "not a mycel receipt: it needs type InferenceReceipt, message and signature" };
  }
  const m = receipt.message;
  let signer;
  try {
    signer = await recoverTypedDataAddress({
      domain: { name: "mycel-receipt", version: "1", chainId: BigInt(receipt.chainId) },
      types: RECEIPT_TYPES,
      primaryType: "InferenceReceipt",
      message: { ...m, blockHeight: BigInt(m.blockHeight) },
      signature: receipt.signature,
    });
  } catch (e) {
    return { valid: false, reason: `the signature does not parse: ${e.shortMessage ?? e.message}` };
  }
  const miner = getAddress(m.miner);
  if (signer !== miner) {
    return { valid: false, reason: `signed by ${signer}, not by the miner ${miner} it names: altered or forged`, signer, miner };
  }
  let requestHashMatches = null;
  if (receipt.request) {
    const computed = requestHash(receipt.request);
    requestHashMatches = computed.toLowerCase() === String(m.requestHash).toLowerCase();
    if (!requestHashMatches) {
      return { valid: false, reason: `the request it carries hashes to ${computed}, not to its requestHash ${m.requestHash}`, signer, miner, requestHashMatches };
    }
  }
  return { valid: true, reason: requestHashMatches ? "signed by its miner; the request it carries is the one it binds" : "signed by its miner (no request carried to check)", signer, miner, requestHashMatches };
}

globalThis.mycelReceipt = { checkReceipt, requestHash };
