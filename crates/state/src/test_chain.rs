//! A chain for the state machine's unit tests: dev accounts, one transaction per block, and a
//! check that a refused transaction changes nothing.

use crate::{BlockContext, Event, State, TxError, TxReceipt};
use alloy_primitives::{Address, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use mycel_types::api::AgentEvent;
use mycel_types::tx::RegisterAgent;
use mycel_types::{eip3009, genesis::DEFAULT_MIN_FEE, keys::dev_signer, Genesis, SignedTx, TxKind};

pub(crate) const GENESIS_MS: u64 = 1_700_000_000_000;

pub(crate) static GENESIS: std::sync::LazyLock<Genesis> =
    std::sync::LazyLock::new(|| Genesis::devnet(vec!["ab".repeat(32)], GENESIS_MS).unwrap());
static SIGNERS: std::sync::LazyLock<Vec<PrivateKeySigner>> =
    std::sync::LazyLock::new(|| (0..8).map(|i| dev_signer(i).unwrap()).collect());

pub(crate) fn key(i: usize) -> &'static PrivateKeySigner {
    &SIGNERS[i]
}

pub(crate) fn fee() -> U256 {
    U256::from(DEFAULT_MIN_FEE)
}

pub(crate) struct Chain {
    pub(crate) state: State,
    pub(crate) time_ms: u64,
}

impl Chain {
    pub(crate) fn new() -> Chain {
        Chain::with_genesis(&GENESIS)
    }

    /// A chain from the dev genesis changed by the test (same chain id and accounts).
    pub(crate) fn with_genesis(genesis: &Genesis) -> Chain {
        Chain {
            state: State::from_genesis(genesis),
            time_ms: GENESIS_MS,
        }
    }

    pub(crate) fn now_s(&self) -> u64 {
        self.time_ms / 1000
    }

    pub(crate) fn nonce(&self, who: &PrivateKeySigner) -> u64 {
        self.state.next_nonce(&who.address())
    }

    /// Signs `make(from, nonce)` by `who` and applies it alone in the next block (1 s later).
    pub(crate) fn run(
        &mut self,
        who: &PrivateKeySigner,
        make: impl FnOnce(Address, u64) -> TxKind,
    ) -> Result<TxReceipt, TxError> {
        let kind = make(who.address(), self.nonce(who));
        let tx = SignedTx::sign(kind, GENESIS.chain_id, who).unwrap();
        self.time_ms += 1000;
        let verified = self.state.verify_stateless(tx)?;
        let height = self.state.height() + 1;
        let outcome = self
            .state
            .apply_block(
                BlockContext {
                    height,
                    timestamp_ms: self.time_ms,
                },
                &[verified],
            )
            .unwrap();
        outcome.results.into_iter().next().unwrap()
    }

    /// An empty block `seconds` after the last one.
    pub(crate) fn advance(&mut self, seconds: u64) {
        self.time_ms += seconds * 1000;
        let height = self.state.height() + 1;
        self.state
            .apply_block(
                BlockContext {
                    height,
                    timestamp_ms: self.time_ms,
                },
                &[],
            )
            .unwrap();
    }

    /// `n` empty blocks, a second apart.
    pub(crate) fn advance_blocks(&mut self, n: u64) {
        for _ in 0..n {
            self.advance(1);
        }
    }

    /// Like [`run`](Self::run) but expects a refusal, and checks that it changed nothing.
    pub(crate) fn refused(
        &mut self,
        who: &PrivateKeySigner,
        make: impl FnOnce(Address, u64) -> TxKind,
    ) -> &'static str {
        let kind = make(who.address(), self.nonce(who));
        let tx = SignedTx::sign(kind, GENESIS.chain_id, who).unwrap();
        let verified = self.state.verify_stateless(tx).unwrap();
        let mut before = self.state.clone();
        let root = before.state_root();
        let err = self
            .state
            .apply_verified(&verified)
            .expect_err("transaction should be refused");
        assert_eq!(
            self.state,
            before,
            "refused {} changed the state",
            err.code()
        );
        assert_eq!(self.state.state_root(), root);
        err.code()
    }

    pub(crate) fn register(&mut self, who: &PrivateKeySigner, uri: &str) -> u64 {
        let receipt = self
            .run(who, |from, nonce| {
                TxKind::RegisterAgent(RegisterAgent {
                    from,
                    agentURI: uri.into(),
                    metadata: vec![],
                    nonce,
                    fee: fee(),
                })
            })
            .unwrap();
        match &receipt.events[0] {
            Event::Agent(AgentEvent::Registered { agent_id, .. }) => *agent_id,
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// `payer` pays `to` `value` mUSD with an EIP-3009 authorization of nonce `nonce`.
    pub(crate) fn pay(&mut self, payer: &PrivateKeySigner, to: Address, value: u128, nonce: u8) {
        let auth = eip3009::TransferWithAuthorization {
            from: payer.address(),
            to,
            value: U256::from(value),
            validAfter: U256::ZERO,
            validBefore: U256::from(self.now_s() + 3600),
            nonce: B256::repeat_byte(nonce),
        };
        let sig = payer
            .sign_hash_sync(&auth.signing_hash(&eip3009::musd_domain(GENESIS.chain_id)))
            .unwrap();
        self.run(key(7), |from, tx_nonce| {
            TxKind::TransferWithAuthorization(mycel_types::TransferWithAuthorization {
                from,
                payer: auth.from,
                to: auth.to,
                value: auth.value,
                validAfter: auth.validAfter,
                validBefore: auth.validBefore,
                authorizationNonce: auth.nonce,
                signature: sig.as_bytes().to_vec().into(),
                nonce: tx_nonce,
                fee: fee(),
            })
        })
        .unwrap();
    }
}
