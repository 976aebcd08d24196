//! The state root's accounts part: a keccak-256 Merkle tree whose cost per block follows what
//! the block touched, not how many accounts there are.
//!
//! Accounts fall into 65,536 buckets by the first two bytes of their address. A bucket's root is
//! the binary tree over its accounts' leaves in address order (an odd node at the end of a level
//! moves up unchanged; the zero hash if the bucket is empty); the 65,536 bucket roots are the
//! leaves of a complete binary tree of depth 16 in which a node with a zero child is its other
//! child (so two zero children give zero). The accounts' root is `node(header, top)`.
//!
//! leaf(account) = keccak(0x00 ‖ address ‖ myc:u128 ‖ musd:u128 ‖ nonce:u64)
//! leaf(header)  = keccak(0x02 ‖ chain_id:u64 ‖ min_fee:u128 ‖ max_tx_bytes:u32 ‖ myc_issued:u128
//!                        ‖ myc_burned:u128 ‖ musd_issued:u128 ‖ height:u64 ‖ last_block_time_ms:u64)
//! node(l, r)    = keccak(0x01 ‖ l ‖ r); in the tree over buckets node(x, 0) = node(0, x) = x.
//! All integers big-endian.
//!
//! A block that touches k accounts rehashes k buckets (about n / 65,536 leaves each) and at most
//! 16·k nodes above them (fewer while the tree is sparse: a lone filled subtree moves up as is).
//! The cached nodes are shared between copies of the state until one of them changes (copy on
//! write), so copying the state for a block costs nothing here.

use crate::{Account, Params, Supply};
use alloy_primitives::{keccak256, Address, B256};
use imbl::OrdMap;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Bits of the address that choose the bucket.
const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;

/// Nodes per chunk of the cached tree: a chunk is copied when a copy of the state changes a
/// node in it, and an all-zero chunk takes no memory (a small state's tree is mostly zero).
const CHUNK: usize = 256;

#[derive(Debug, Clone, Default)]
pub(crate) struct AccountsTree {
    /// Heap layout: node `i` has children `2i` and `2i + 1`; the root is at 1, bucket `b`'s root
    /// at `BUCKETS + b`. Split in chunks shared between copies of the state (`None`: all zero).
    /// Empty until the first root is asked for.
    chunks: Vec<Option<Arc<[B256; CHUNK]>>>,
    dirty: BTreeSet<u16>,
}

// The tree is derived data: two states are equal whatever their caches hold.
impl PartialEq for AccountsTree {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for AccountsTree {}

fn bucket_of(address: &Address) -> u16 {
    u16::from_be_bytes([address[0], address[1]])
}

impl AccountsTree {
    pub(crate) fn touch(&mut self, address: Address) {
        if !self.chunks.is_empty() {
            self.dirty.insert(bucket_of(&address));
        }
    }

    fn get(&self, i: usize) -> B256 {
        match &self.chunks[i / CHUNK] {
            Some(chunk) => chunk[i % CHUNK],
            None => B256::ZERO,
        }
    }

    fn set(&mut self, i: usize, value: B256) {
        let slot = &mut self.chunks[i / CHUNK];
        if slot.is_none() && value == B256::ZERO {
            return;
        }
        let chunk = slot.get_or_insert_with(|| Arc::new([B256::ZERO; CHUNK]));
        Arc::make_mut(chunk)[i % CHUNK] = value;
    }

    /// Recomputes node `i` from its children.
    fn update(&mut self, i: usize) {
        let value = top_node(self.get(2 * i), self.get(2 * i + 1));
        self.set(i, value);
    }

    pub(crate) fn root(&mut self, header: B256, accounts: &OrdMap<Address, Account>) -> B256 {
        if self.chunks.is_empty() {
            self.build(accounts);
        } else if !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            for &bucket in &dirty {
                self.set(BUCKETS + bucket as usize, bucket_root(bucket, accounts));
            }
            self.rehash_above(dirty.into_iter());
        }
        node(header, self.get(1))
    }

    fn build(&mut self, accounts: &OrdMap<Address, Account>) {
        self.chunks = vec![None; 2 * BUCKETS / CHUNK];
        self.dirty.clear();
        let mut leaves: Vec<B256> = Vec::new();
        let mut current: Option<u16> = None;
        let mut filled = Vec::new();
        for (address, account) in accounts.iter() {
            let bucket = bucket_of(address);
            if current != Some(bucket) {
                if let Some(done) = current {
                    self.set(
                        BUCKETS + done as usize,
                        merkle_root(std::mem::take(&mut leaves)),
                    );
                    filled.push(done);
                }
                current = Some(bucket);
            }
            leaves.push(account_leaf(address, account));
        }
        if let Some(done) = current {
            self.set(BUCKETS + done as usize, merkle_root(leaves));
            filled.push(done);
        }
        // Only the nodes above a filled bucket can be other than zero.
        self.rehash_above(filled.into_iter());
    }

    /// Recomputes every node above `buckets`, level by level, each once.
    fn rehash_above(&mut self, buckets: impl Iterator<Item = u16>) {
        let mut changed: Vec<usize> = buckets.map(|b| (BUCKETS + b as usize) / 2).collect();
        while !changed.is_empty() {
            changed.sort_unstable();
            changed.dedup();
            for &i in &changed {
                self.update(i);
            }
            changed.retain(|&i| i > 1);
            for i in changed.iter_mut() {
                *i /= 2;
            }
        }
    }
}

fn bucket_root(bucket: u16, accounts: &OrdMap<Address, Account>) -> B256 {
    let mut low = [0u8; 20];
    low[..2].copy_from_slice(&bucket.to_be_bytes());
    let mut high = [0xffu8; 20];
    high[..2].copy_from_slice(&bucket.to_be_bytes());
    let leaves: Vec<B256> = accounts
        .range(Address::from(low)..=Address::from(high))
        .map(|(address, account)| account_leaf(address, account))
        .collect();
    merkle_root(leaves)
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

fn node(l: B256, r: B256) -> B256 {
    tagged_pair(0x01, l, r)
}

/// A node of the tree over buckets: next to an empty subtree (zero), the other one moves up
/// unchanged, so a sparse tree costs one hash per pair of filled subtrees that meet, not one per
/// level.
fn top_node(l: B256, r: B256) -> B256 {
    if l == B256::ZERO {
        r
    } else if r == B256::ZERO {
        l
    } else {
        node(l, r)
    }
}

/// The root of the binary tree over `level` (the zero hash if empty).
fn merkle_root(mut level: Vec<B256>) -> B256 {
    while level.len() > 1 {
        let next = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node(*l, *r),
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

    fn account(myc: u128, nonce: u64) -> Account {
        Account {
            myc,
            musd: 0,
            nonce,
        }
    }

    #[test]
    fn root_of_known_levels() {
        let a = B256::repeat_byte(1);
        let b = B256::repeat_byte(2);
        let c = B256::repeat_byte(3);
        assert_eq!(merkle_root(vec![]), B256::ZERO);
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

    /// The definition written out the slow way: every bucket, every level of the 16-level tree.
    fn root_by_definition(header: B256, accounts: &OrdMap<Address, Account>) -> B256 {
        let mut level: Vec<B256> = (0..BUCKETS)
            .map(|b| {
                let leaves = accounts
                    .iter()
                    .filter(|(a, _)| bucket_of(a) as usize == b)
                    .map(|(a, acc)| account_leaf(a, acc))
                    .collect();
                merkle_root(leaves)
            })
            .collect();
        for _ in 0..BUCKET_BITS {
            level = level.chunks(2).map(|p| top_node(p[0], p[1])).collect();
        }
        assert_eq!(level.len(), 1);
        node(header, level[0])
    }

    #[test]
    fn the_root_of_two_accounts_in_one_bucket_and_one_in_another() {
        // Worked by hand: a and b share bucket 0x0102, c sits in bucket 0x8000.
        let a = Address::from([1u8, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let b = Address::from([1u8, 2, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let c = Address::from([
            0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        let accounts: OrdMap<Address, Account> =
            [(a, account(1, 0)), (b, account(2, 1)), (c, account(3, 2))]
                .into_iter()
                .collect();
        let header = B256::repeat_byte(9);
        // Bucket 0x0102 holds node(leaf a, leaf b), bucket 0x8000 leaf c; every other bucket is
        // empty, so both move up unchanged until they meet at the top (0x0102 is in the left
        // half, 0x8000 in the right).
        let x = node(
            account_leaf(&a, &account(1, 0)),
            account_leaf(&b, &account(2, 1)),
        );
        let y = account_leaf(&c, &account(3, 2));
        let expected = node(header, node(x, y));
        assert_eq!(root_by_definition(header, &accounts), expected);
        assert_eq!(AccountsTree::default().root(header, &accounts), expected);
    }

    #[test]
    fn cached_root_equals_fresh_root() {
        let mut accounts = OrdMap::new();
        for i in 0..37u8 {
            // Several accounts per bucket: the second byte repeats.
            let mut address = [i; 20];
            address[1] = i % 3;
            accounts.insert(Address::from(address), account(i as u128, 0));
        }
        let header = B256::repeat_byte(9);
        let mut cache = AccountsTree::default();
        let first = cache.root(header, &accounts);
        assert_eq!(first, root_by_definition(header, &accounts));

        // A copy shares the nodes; changing the copy leaves the original's root alone.
        let mut copy = cache.clone();
        let mut changed = accounts.clone();
        let mut five = [5u8; 20];
        five[1] = 2;
        changed.insert(Address::from(five), account(999, 3));
        copy.touch(Address::from(five));
        changed.insert(Address::repeat_byte(200), account(1, 1));
        copy.touch(Address::repeat_byte(200));
        let cached = copy.root(header, &changed);
        assert_eq!(cached, root_by_definition(header, &changed));
        assert_eq!(cached, AccountsTree::default().root(header, &changed));
        assert_ne!(cached, first);
        assert_eq!(cache.root(header, &accounts), first);
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
