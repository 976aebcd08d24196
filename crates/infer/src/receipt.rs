//! The runtime's side of inference receipts. The format — the EIP-712 structs, the canonical
//! request, signing, recovering and checking — is mycel-types' ([`mycel_types::receipt`],
//! re-exported here); what needs the model is here: the receipt of a generation, and re-running
//! a request ([`Model::execute`]) to check one.

use alloy_primitives::{Address, B256};

pub use mycel_types::receipt::*;

use crate::model::{Generation, Model};

/// The receipt of `generation`, the run of `request` on `model`, served by `miner` on subnet
/// `netuid` at `block_height`.
pub fn receipt_for_generation(
    netuid: u16,
    miner: Address,
    model: &Model,
    request: &CanonicalRequest,
    generation: &Generation,
    block_height: u64,
) -> InferenceReceipt {
    InferenceReceipt {
        netuid,
        miner,
        modelId: B256::from(model.id().0),
        requestHash: request.hash(),
        promptTokensHash: token_ids_hash(&generation.prompt_tokens),
        outputTokensHash: token_ids_hash(&generation.output_tokens),
        promptTokenCount: count(generation.prompt_tokens.len()),
        outputTokenCount: count(generation.output_tokens.len()),
        determinismProfile: DETERMINISM_PROFILE.to_string(),
        blockHeight: block_height,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
