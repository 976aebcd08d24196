//! The state root: a binary keccak-256 Merkle tree over the header leaf and the accounts in
//! address order. Leaf hashes are cached and only recomputed for accounts a block touched.
//!
//! leaf(account) = keccak(0x00 ‖ address ‖ myc:u128 ‖ musd:u128 ‖ nonce:u64)
//! leaf(header)  = keccak(0x02 ‖ chain_id:u64 ‖ min_fee:u128 ‖ max_tx_bytes:u32 ‖ myc_issued:u128
//!                        ‖ myc_burned:u128 ‖ musd_issued:u128 ‖ height:u64 ‖ last_block_time_ms:u64)
//! node(l, r)    = keccak(0x01 ‖ l ‖ r); an odd node at the end of a level moves up unchanged.
//! All integers big-endian.

use crate::{Account, Params, Supply};
use alloy_primitives::{keccak256, Address, B256};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default)]
pub(crate) struct LeafCache {
    built: bool,
    leaves: BTreeMap<Address, B256>,
    dirty: BTreeSet<Address>,
}

// The cache is derived data: two states are equal whatever their caches hold.
impl PartialEq for LeafCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for LeafCache {}

impl LeafCache {
    pub(crate) fn touch(&mut self, address: Address) {
        if self.built {
            self.dirty.insert(address);
        }
    }

    pub(crate) fn root(&mut self, header: B256, accounts: &BTreeMap<Address, Account>) -> B256 {
        if !self.built {
            self.leaves = accounts
                .iter()
                .map(|(a, acc)| (*a, account_leaf(a, acc)))
                .collect();
            self.built = true;
        } else {
            for address in std::mem::take(&mut self.dirty) {
                match accounts.get(&address) {
                    Some(acc) => self.leaves.insert(address, account_leaf(&address, acc)),
                    None => self.leaves.remove(&address),
                };
            }
        }
        let mut level: Vec<B256> = Vec::with_capacity(self.leaves.len() + 1);
        level.push(header);
        level.extend(self.leaves.values().copied());
        merkle_root(level)
    }
}

fn account_leaf(address: &Address, account: &Account) -> B256 {
    let mut buf = [0u8; 1 + 20 + 16 + 16 + 8];
    buf[0] = 0x00;
    buf[1..21].copy_from_slice(address.as_slice());
    buf[21..37].copy_from_slice(&account.myc.to_be_bytes());
    buf[37..53].copy_from_slice(&account.musd.to_be_bytes());
    buf[53..61].copy_from_slice(&account.nonce.to_be_bytes());
    keccak256(buf)
}

pub(crate) fn header_leaf(params: &Params, supply: &Supply, height: u64, time_ms: u64) -> B256 {
    let mut buf = Vec::with_capacity(1 + 8 + 16 + 4 + 16 * 3 + 8 + 8);
    buf.push(0x02);
    buf.extend_from_slice(&params.chain_id.to_be_bytes());
    buf.extend_from_slice(&params.min_fee.to_be_bytes());
    buf.extend_from_slice(&params.max_tx_bytes.to_be_bytes());
    buf.extend_from_slice(&supply.myc_issued.to_be_bytes());
    buf.extend_from_slice(&supply.myc_burned.to_be_bytes());
    buf.extend_from_slice(&supply.musd_issued.to_be_bytes());
    buf.extend_from_slice(&height.to_be_bytes());
    buf.extend_from_slice(&time_ms.to_be_bytes());
    keccak256(buf)
}

fn merkle_root(mut level: Vec<B256>) -> B256 {
    while level.len() > 1 {
        let next = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut buf = [0u8; 65];
                    buf[0] = 0x01;
                    buf[1..33].copy_from_slice(l.as_slice());
                    buf[33..].copy_from_slice(r.as_slice());
                    keccak256(buf)
                }
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
        level = next;
    }
    level.first().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_of_known_levels() {
        let a = B256::repeat_byte(1);
        let b = B256::repeat_byte(2);
        let c = B256::repeat_byte(3);
        assert_eq!(merkle_root(vec![a]), a);
        let mut ab = [0u8; 65];
        ab[0] = 1;
        ab[1..33].copy_from_slice(a.as_slice());
        ab[33..].copy_from_slice(b.as_slice());
        let ab = keccak256(ab);
        assert_eq!(merkle_root(vec![a, b]), ab);
        let mut abc = [0u8; 65];
        abc[0] = 1;
        abc[1..33].copy_from_slice(ab.as_slice());
        abc[33..].copy_from_slice(c.as_slice());
        assert_eq!(merkle_root(vec![a, b, c]), keccak256(abc));
    }

    #[test]
    fn cached_root_equals_fresh_root() {
        let mut accounts = BTreeMap::new();
        for i in 0..37u8 {
            accounts.insert(
                Address::repeat_byte(i),
                Account {
                    myc: i as u128,
                    musd: 0,
                    nonce: 0,
                },
            );
        }
        let header = B256::repeat_byte(9);
        let mut cache = LeafCache::default();
        cache.root(header, &accounts);
        accounts.insert(
            Address::repeat_byte(5),
            Account {
                myc: 999,
                musd: 1,
                nonce: 3,
            },
        );
        cache.touch(Address::repeat_byte(5));
        accounts.insert(
            Address::repeat_byte(200),
            Account {
                myc: 1,
                musd: 1,
                nonce: 1,
            },
        );
        cache.touch(Address::repeat_byte(200));
        let cached = cache.root(header, &accounts);
        assert_eq!(cached, LeafCache::default().root(header, &accounts));
    }
}

/// A running digest of the transactions that changed one part of the state, in execution order:
/// `d' = keccak(tag ‖ d ‖ tx hash)`, folded into the state root as `keccak(fold_tag ‖ root ‖ d)`
/// once anything changed (the root is unchanged before). Nodes that executed the same blocks hold
/// the same digest; its cost per block does not grow with the part's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct RunningDigest(B256);

impl RunningDigest {
    pub(crate) fn extend(&mut self, tag: u8, tx_hash: B256) {
        self.0 = tagged_pair(tag, self.0, tx_hash);
    }

    pub(crate) fn fold(&self, tag: u8, root: B256) -> B256 {
        if self.0 == B256::ZERO {
            return root;
        }
        tagged_pair(tag, root, self.0)
    }
}

fn tagged_pair(tag: u8, a: B256, b: B256) -> B256 {
    let mut buf = [0u8; 65];
    buf[0] = tag;
    buf[1..33].copy_from_slice(a.as_slice());
    buf[33..].copy_from_slice(b.as_slice());
    alloy_primitives::keccak256(buf)
}
