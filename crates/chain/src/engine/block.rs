//! The mycel block and its wire format.

use bytes::{BufMut, Bytes};
use commonware_codec::{
    varint::UInt, Buf, Encode, EncodeSize, Error as CodecError, MaxEncodeSize, RangeCfg, Read,
    ReadExt, Write,
};
use commonware_consensus::{
    simplex::types::Context as SimplexContext,
    types::{Epoch, Height, Round, View},
    BoundedBlock, CertifiableBlock, Heightable,
};
use commonware_cryptography::{ed25519, sha256::Digest, Digestible, Hasher, Sha256};
use mycel_types::B256;

/// The consensus context a block was proposed in.
pub type Context = SimplexContext<Digest, ed25519::PublicKey>;

/// Limits a decoder enforces before a block is cached, stored or verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most transactions in one block.
    pub max_txs: usize,
    /// Largest encoded transaction.
    pub max_tx_bytes: usize,
}

/// A block: a batch of encoded transactions on top of a parent, with the state root after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Consensus context (round, leader, parent view) the block was proposed in.
    pub context: Context,
    /// Digest of the parent block.
    pub parent: Digest,
    /// Height in the chain; genesis is 0.
    pub height: Height,
    /// Milliseconds since the Unix epoch; strictly greater than the parent's.
    pub timestamp_ms: u64,
    /// State root after executing `txs` on the parent's post-state.
    pub state_root: B256,
    /// Encoded `SignedTx`s, in execution order.
    pub txs: Vec<Bytes>,
    digest: Digest,
}

impl Block {
    pub fn new(
        context: Context,
        parent: Digest,
        height: Height,
        timestamp_ms: u64,
        state_root: B256,
        txs: Vec<Bytes>,
    ) -> Self {
        let mut block = Self {
            context,
            parent,
            height,
            timestamp_ms,
            state_root,
            txs,
            digest: Digest::from([0u8; 32]),
        };
        block.digest = block.compute_digest();
        block
    }

    /// The deterministic height-0 block of a chain: it commits to the genesis hash (as its parent)
    /// and to the genesis state root.
    pub fn genesis(
        genesis_hash: B256,
        genesis_time_ms: u64,
        state_root: B256,
        first_validator: ed25519::PublicKey,
    ) -> Self {
        let context = Context {
            round: Round::new(Epoch::zero(), View::zero()),
            leader: first_validator,
            parent: (View::zero(), Digest::from([0u8; 32])),
        };
        let parent = Digest::from(genesis_hash.0);
        Self::new(
            context,
            parent,
            Height::zero(),
            genesis_time_ms,
            state_root,
            Vec::new(),
        )
    }

    /// Sum of the encoded transaction sizes.
    pub fn tx_bytes(&self) -> usize {
        self.txs.iter().map(|tx| tx.len()).sum()
    }

    fn write_fields(&self, writer: &mut impl BufMut) {
        self.context.write(writer);
        self.parent.write(writer);
        self.height.write(writer);
        UInt(self.timestamp_ms).write(writer);
        self.state_root.0.write(writer);
        self.txs.write(writer);
    }

    fn compute_digest(&self) -> Digest {
        let mut buf = Vec::with_capacity(self.encode_size());
        self.write_fields(&mut buf);
        Sha256::hash(&[buf.as_slice()])
    }
}

/// Converts a consensus digest to the 32-byte hash type used in mycel's public API.
pub fn digest_to_b256(digest: &Digest) -> B256 {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    B256::from(out)
}

impl Write for Block {
    fn write(&self, writer: &mut impl BufMut) {
        self.write_fields(writer);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        self.context.encode_size()
            + self.parent.encode_size()
            + self.height.encode_size()
            + UInt(self.timestamp_ms).encode_size()
            + 32
            + self.txs.encode_size()
    }
}

impl Read for Block {
    type Cfg = BlockLimits;

    fn read_cfg(reader: &mut impl Buf, limits: &BlockLimits) -> Result<Self, CodecError> {
        let context = Context::read(reader)?;
        let parent = Digest::read(reader)?;
        let height = Height::read(reader)?;
        let timestamp_ms = UInt::read(reader)?.into();
        let state_root = B256::from(<[u8; 32]>::read(reader)?);
        let txs = Vec::<Bytes>::read_cfg(
            reader,
            &(
                RangeCfg::from(..=limits.max_txs),
                RangeCfg::from(..=limits.max_tx_bytes),
            ),
        )?;
        Ok(Self::new(
            context,
            parent,
            height,
            timestamp_ms,
            state_root,
            txs,
        ))
    }
}

impl Digestible for Block {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        self.height
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        self.parent
    }
}

impl CertifiableBlock for Block {
    type Context = Context;

    fn context(&self) -> Context {
        self.context.clone()
    }
}

impl BoundedBlock for Block {
    fn max_encode_size(limits: &BlockLimits) -> usize {
        let per_tx = UInt::<u64>::MAX_ENCODE_SIZE + limits.max_tx_bytes;
        Context::MAX_ENCODE_SIZE
            + 32
            + Height::MAX_ENCODE_SIZE
            + UInt::<u64>::MAX_ENCODE_SIZE
            + 32
            + UInt::<u64>::MAX_ENCODE_SIZE
            + limits.max_txs.saturating_mul(per_tx)
    }
}

/// Re-encodes a block to bytes (used by tests and size checks).
#[allow(dead_code)]
pub fn encode_block(block: &Block) -> Vec<u8> {
    block.encode().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{Decode, Encode};
    use commonware_cryptography::Signer;

    fn block(txs: Vec<Bytes>) -> Block {
        let leader = ed25519::PrivateKey::from_seed(1).public_key();
        let genesis = Block::genesis(
            B256::repeat_byte(9),
            0,
            B256::repeat_byte(1),
            leader.clone(),
        );
        let context = Context {
            round: Round::new(Epoch::zero(), View::new(1)),
            leader,
            parent: (View::zero(), genesis.digest()),
        };
        Block::new(
            context,
            genesis.digest(),
            Height::new(1),
            5,
            B256::repeat_byte(2),
            txs,
        )
    }

    #[test]
    fn round_trips_and_commits_to_every_field() {
        let limits = BlockLimits {
            max_txs: 4,
            max_tx_bytes: 8,
        };
        let original = block(vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defgh"),
        ]);
        let decoded = Block::decode_cfg(original.encode(), &limits).expect("decodes");
        assert_eq!(decoded, original);
        assert_eq!(decoded.digest(), original.digest());
        assert!(original.encode_size() <= Block::max_encode_size(&limits));

        let mut other = original.clone();
        other.state_root = B256::repeat_byte(3);
        let other = Block::new(
            other.context,
            other.parent,
            other.height,
            other.timestamp_ms,
            other.state_root,
            other.txs,
        );
        assert_ne!(
            other.digest(),
            original.digest(),
            "the digest covers the state root"
        );
    }

    #[test]
    fn decoding_enforces_limits() {
        let encoded = block(vec![Bytes::from_static(b"abcdefghij")]).encode();
        let tight = BlockLimits {
            max_txs: 4,
            max_tx_bytes: 8,
        };
        assert!(
            Block::decode_cfg(encoded.clone(), &tight).is_err(),
            "tx too large"
        );
        let few = BlockLimits {
            max_txs: 0,
            max_tx_bytes: 64,
        };
        assert!(Block::decode_cfg(encoded, &few).is_err(), "too many txs");
    }
}
