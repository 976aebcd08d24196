//! mycel-types: the vocabulary every other mycel crate speaks.
//!
//! Guarantees:
//! - Accounts are Ethereum-style: 20-byte [`Address`]es recovered from secp256k1 signatures.
//! - Every transaction is EIP-712 typed data under the domain `{name: "mycel", version: "1",
//!   chainId}`, so viem, ethers, eth_account and alloy sign it with no mycel-specific code.
//! - [`SignedTx`] has exactly one binary encoding ([`SignedTx::encode`]); its hash is the keccak-256
//!   of that encoding, so a tx hash is the same for every node and every client.
//! - Amounts are integers in base units ([`Amount`] = `u128`); decimals are only for display and
//!   parsing ([`amount`]).
//! - Inference receipts ([`receipt`]) are EIP-712 typed data under the domain
//!   `{name: "mycel-receipt", version: "1", chainId}`: their structs, the canonical request they
//!   bind, signing, recovering, checking what a receipt binds, and their JSON forms. Checking a
//!   receipt needs this crate only, not the model runtime.
//! - The JSON `types` of every typed data come from alloy's EIP-712 resolver over the `sol!`
//!   declarations ([`eip712`]), never from a second parser.
//!
//! Does not: do I/O, read clocks, keep state, check balances and nonces (that is `mycel-state`),
//! or run a model (re-running a receipt's request is `mycel-infer`).

pub mod amount;
pub mod api;
pub mod eip3009;
pub mod eip712;
pub mod genesis;
pub mod keys;
pub mod market;
pub mod receipt;
pub mod storage;
pub mod time;
pub mod tx;
pub mod x402;

pub use alloy_primitives::{Address, B256, U256};
pub use amount::{
    format_amount, parse_amount, parse_decimal_u256, parse_hex_u256, Amount, AmountError,
    IntegerError, Token,
};
pub use eip3009::{MUSD_EIP712_NAME, MUSD_EIP712_VERSION};
pub use genesis::{Genesis, GenesisAccount, GenesisError};
pub use receipt::{
    token_ids_hash, BindingError, CanonicalRequest, ChatMessage, Endpoint, InferenceReceipt,
    InvalidSampling, ReceiptBinding, ReceiptError, ReceiptJson, SamplingParams, SignedReceipt,
    DETERMINISM_PROFILE,
};
pub use tx::TransferWithAuthorization;
pub use tx::{
    channel_id, ChannelVoucher, ClaimChannel, OpenChannel, RequestChannelWithdraw, TopUpChannel,
    WithdrawChannel,
};
pub use tx::{DecodeError, SignedTx, Transfer, TxJson, TxKind, MAX_MEMO_BYTES};

/// The EIP-712 domain name of mycel transactions.
pub const DOMAIN_NAME: &str = "mycel";
/// The EIP-712 domain version of mycel transactions. Changes only with the tx wire format.
pub const DOMAIN_VERSION: &str = "1";
