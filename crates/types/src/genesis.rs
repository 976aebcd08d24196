//! Genesis: the chain's identity and its first state.

use crate::amount::{Amount, Token};
use crate::keys::{dev_signer, DEV_ACCOUNTS};
use alloy_primitives::{keccak256, Address, B256};
use serde::{Deserialize, Serialize};

/// Chain id of a devnet made by `mycel up` / `mycel init` unless told otherwise.
pub const DEVNET_CHAIN_ID: u64 = 1337;
/// Each dev account starts with this much MYC (base units): 1,000,000 MYC.
pub const DEV_MYC: Amount = 1_000_000 * 1_000_000_000;
/// Each dev account starts with this much mUSD (base units): 1,000,000 mUSD.
pub const DEV_MUSD: Amount = 1_000_000 * 1_000_000;
/// Default minimum fee: 0.00001 MYC.
pub const DEFAULT_MIN_FEE: Amount = 10_000;
/// Default largest encoded transaction.
pub const DEFAULT_MAX_TX_BYTES: u32 = 2048;

/// A chain's genesis. Its hash ([`Genesis::hash`]) names the chain together with `chain_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// EIP-155 chain id: the chain is `eip155:<chain_id>`, and it is in every signature's domain.
    pub chain_id: u64,
    /// Timestamp of the genesis block, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Consensus validators: ed25519 public keys, hex.
    pub validators: Vec<String>,
    /// Opening balances.
    pub accounts: Vec<GenesisAccount>,
    /// The smallest fee (MYC base units) a transaction may pay; fees are burned.
    #[serde(with = "amount_string")]
    pub min_fee: Amount,
    /// The largest encoded transaction, in bytes.
    pub max_tx_bytes: u32,
    /// Blob storage: epoch length, price, node stake.
    #[serde(default)]
    pub storage: crate::storage::StorageParams,
    /// The compute market: bid deposits, bid limits, grace and low-balance periods.
    #[serde(default)]
    pub market: crate::market::MarketParams,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    pub address: Address,
    #[serde(with = "amount_string", default)]
    pub myc: Amount,
    #[serde(with = "amount_string", default)]
    pub musd: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis has no validators: add at least one ed25519 public key")]
    NoValidators,
    #[error("genesis validator '{0}' is not a 32-byte hex ed25519 public key")]
    BadValidator(String),
    #[error("genesis lists validator {0} twice")]
    DuplicateValidator(String),
    #[error("genesis lists account {0} twice")]
    DuplicateAccount(Address),
    #[error("genesis {0} supply overflows 128 bits")]
    SupplyOverflow(Token),
    #[error("genesis max_tx_bytes must be between 256 and 1048576, got {0}")]
    BadMaxTxBytes(u32),
    #[error("dev account derivation failed: {0}")]
    DevKey(String),
}

impl Genesis {
    /// A devnet genesis: the given validators and the [`DEV_ACCOUNTS`] dev accounts funded.
    pub fn devnet(validators: Vec<String>, genesis_time_ms: u64) -> Result<Genesis, GenesisError> {
        let accounts = (0..DEV_ACCOUNTS)
            .map(|i| {
                dev_signer(i)
                    .map(|s| GenesisAccount {
                        address: s.address(),
                        myc: DEV_MYC,
                        musd: DEV_MUSD,
                    })
                    .map_err(|e| GenesisError::DevKey(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let genesis = Genesis {
            chain_id: DEVNET_CHAIN_ID,
            genesis_time_ms,
            validators,
            accounts,
            min_fee: DEFAULT_MIN_FEE,
            max_tx_bytes: DEFAULT_MAX_TX_BYTES,
            storage: crate::storage::StorageParams::default(),
            // A development chain (a block a second) notices a dead provider within 10 s.
            market: crate::market::MarketParams {
                failure_blocks: 10,
                ..crate::market::MarketParams::default()
            },
        };
        genesis.validate()?;
        Ok(genesis)
    }

    /// Checks everything a node relies on before it starts from this genesis.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.validators {
            let raw = v.strip_prefix("0x").unwrap_or(v);
            if raw.len() != 64 || hex::decode(raw).is_err() {
                return Err(GenesisError::BadValidator(v.clone()));
            }
            if !seen.insert(raw.to_ascii_lowercase()) {
                return Err(GenesisError::DuplicateValidator(v.clone()));
            }
        }
        let mut addresses = std::collections::BTreeSet::new();
        for a in &self.accounts {
            if !addresses.insert(a.address) {
                return Err(GenesisError::DuplicateAccount(a.address));
            }
        }
        self.supply(Token::Myc)?;
        self.supply(Token::Musd)?;
        if !(256..=1 << 20).contains(&self.max_tx_bytes) {
            return Err(GenesisError::BadMaxTxBytes(self.max_tx_bytes));
        }
        Ok(())
    }

    /// Total opening supply of `token`.
    pub fn supply(&self, token: Token) -> Result<Amount, GenesisError> {
        self.accounts.iter().try_fold(0u128, |sum, a| {
            let v = match token {
                Token::Myc => a.myc,
                Token::Musd => a.musd,
            };
            sum.checked_add(v)
                .ok_or(GenesisError::SupplyOverflow(token))
        })
    }

    /// keccak-256 of the genesis' canonical JSON.
    pub fn hash(&self) -> B256 {
        keccak256(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Serde for amounts as decimal strings (JSON numbers lose precision above 2^53 in JavaScript);
/// numbers are accepted on input.
pub mod amount_string {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s
                .parse()
                .map_err(|_| de::Error::custom(format!("'{s}' is not an integer amount"))),
            Either::N(n) => Ok(n as u128),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator() -> String {
        "11".repeat(32)
    }

    #[test]
    fn devnet_genesis_is_valid_and_round_trips() {
        let g = Genesis::devnet(vec![validator()], 1_700_000_000_000).unwrap();
        assert_eq!(g.accounts.len(), DEV_ACCOUNTS as usize);
        let json = serde_json::to_string_pretty(&g).unwrap();
        let back: Genesis = serde_json::from_str(&json).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
        assert_eq!(
            g.supply(Token::Myc).unwrap(),
            DEV_MYC * DEV_ACCOUNTS as u128
        );
    }

    #[test]
    fn bad_genesis_is_refused_with_a_reason() {
        let mut g = Genesis::devnet(vec![validator()], 0).unwrap();
        g.validators.clear();
        assert_eq!(g.validate(), Err(GenesisError::NoValidators));
        g.validators = vec!["abc".into()];
        assert!(matches!(g.validate(), Err(GenesisError::BadValidator(_))));
        g.validators = vec![validator(), validator()];
        assert!(matches!(
            g.validate(),
            Err(GenesisError::DuplicateValidator(_))
        ));
        g.validators = vec![validator()];
        let first = g.accounts[0].clone();
        g.accounts.push(first);
        assert!(matches!(
            g.validate(),
            Err(GenesisError::DuplicateAccount(_))
        ));
    }
}
