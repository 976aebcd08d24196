//! Payments: EIP-3009 `transferWithAuthorization` on mUSD, the settlement step of x402's "exact"
//! scheme.
//!
//! A `TransferWithAuthorization` transaction carries a payer's authorization
//! `(from, to, value, validAfter, validBefore, nonce)` and the payer's EIP-712 signature of it
//! under mUSD's domain (`mycel_types::eip3009::musd_domain`). Anyone may submit it; the submitter
//! pays the MYC fee and the payer pays `value` mUSD.
//!
//! Rules, as EIP-3009 states them for a token contract:
//! - the signature must recover to the payer (checked with the stateless checks, once per tx);
//! - the block time `t` (whole seconds of the block's timestamp) must satisfy
//!   `validAfter < t < validBefore`;
//! - `(payer, nonce)` must never have been used; once executed it is recorded forever and is part
//!   of the state root;
//! - the payer must hold `value` mUSD.
//!
//! Each refusal has its own [`TxError`] code; a refused transaction changes nothing (not even the
//! submitter's nonce).
//!
//! State root: the used authorizations are summarised by a running digest,
//! `d' = keccak(0x04 ‖ d ‖ payer ‖ nonce ‖ to ‖ value)` (value: 16 bytes) in execution order (starting from zero), added to the
//! root as `keccak(0x05 ‖ accounts_root ‖ d)` once any authorization has been used. Nodes that
//! executed the same blocks hold the same set in the same order, so the same digest.

use crate::{bank, Account, Event, State, TxError};
use alloy_primitives::{keccak256, Address, B256, U256};
use mycel_types::{
    eip3009::{musd_domain, AuthorizationSignatureError},
    Amount, Token, TransferWithAuthorization,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every EIP-3009 authorization ever executed, whom it paid, and their digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payments {
    /// Persistent collections (they grow with every payment; a copy of the state shares them).
    used: imbl::OrdSet<(Address, B256)>,
    /// Whom each executed authorization paid and how much, by [`authorization_id`] (a feedback
    /// that cites a payment is checked against it).
    #[serde(default)]
    paid: imbl::OrdMap<B256, Paid>,
    digest: B256,
}

/// Whom an executed authorization paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paid {
    pub to: Address,
    #[serde(with = "mycel_types::genesis::amount_string")]
    pub value: Amount,
}

/// An executed EIP-3009 authorization: `(authorizer, nonce)` and the payment it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UsedAuthorization {
    pub(crate) authorizer: Address,
    pub(crate) nonce: B256,
    pub(crate) paid: Paid,
}

/// The key of the authorization `(authorizer, nonce)`: `keccak256(authorizer ‖ nonce)`.
pub fn authorization_id(authorizer: &Address, nonce: &B256) -> B256 {
    let mut buf = [0u8; 52];
    buf[..20].copy_from_slice(authorizer.as_slice());
    buf[20..].copy_from_slice(nonce.as_slice());
    keccak256(buf)
}

impl Payments {
    /// EIP-3009's `authorizationState(authorizer, nonce)`: true once the authorization executed.
    pub fn authorization_state(&self, authorizer: &Address, nonce: &B256) -> bool {
        self.used.contains(&(*authorizer, *nonce))
    }

    /// How many authorizations have executed.
    pub fn used_count(&self) -> usize {
        self.used.len()
    }

    /// The running digest of executed authorizations (zero before the first).
    pub fn digest(&self) -> B256 {
        self.digest
    }

    /// Whom the executed authorization `(authorizer, nonce)` paid; `None` if it never executed.
    pub fn paid(&self, authorizer: &Address, nonce: &B256) -> Option<Paid> {
        self.paid.get(&authorization_id(authorizer, nonce)).copied()
    }

    pub(crate) fn record(&mut self, used: UsedAuthorization) {
        let UsedAuthorization {
            authorizer,
            nonce,
            paid,
        } = used;
        let inserted = self.used.insert((authorizer, nonce)).is_none();
        assert!(
            inserted,
            "authorization ({authorizer}, {nonce}) recorded twice: plan must refuse a used nonce"
        );
        self.paid
            .insert(authorization_id(&authorizer, &nonce), paid);
        let mut buf = [0u8; 1 + 32 + 20 + 32 + 20 + 16];
        buf[0] = 0x04;
        buf[1..33].copy_from_slice(self.digest.as_slice());
        buf[33..53].copy_from_slice(authorizer.as_slice());
        buf[53..85].copy_from_slice(nonce.as_slice());
        buf[85..105].copy_from_slice(paid.to.as_slice());
        buf[105..].copy_from_slice(&paid.value.to_be_bytes());
        self.digest = keccak256(buf);
    }

    /// Folds the payments into the state root (unchanged while no authorization was used).
    pub(crate) fn fold_root(&self, accounts_root: B256) -> B256 {
        if self.used.is_empty() {
            return accounts_root;
        }
        let mut buf = [0u8; 65];
        buf[0] = 0x05;
        buf[1..33].copy_from_slice(accounts_root.as_slice());
        buf[33..].copy_from_slice(self.digest.as_slice());
        keccak256(buf)
    }
}

/// The stateless check: the authorization's signature recovers to its payer under mUSD's domain
/// on `chain_id`.
pub(crate) fn verify_authorization_signature(
    t: &TransferWithAuthorization,
    chain_id: u64,
) -> Result<(), TxError> {
    match t
        .authorization()
        .verify_signature(&musd_domain(chain_id), &t.signature)
    {
        Ok(()) => Ok(()),
        Err(AuthorizationSignatureError::WrongSigner { from, recovered }) => {
            Err(TxError::AuthorizationWrongSigner {
                payer: from,
                recovered,
            })
        }
        Err(other) => Err(TxError::AuthorizationBadSignature(other.to_string())),
    }
}

/// What executing an authorization writes.
pub(crate) struct AuthorizationPlan {
    pub(crate) writes: Vec<(Address, Account)>,
    pub(crate) event: Event,
    pub(crate) used: UsedAuthorization,
    /// The payer is a delegated key: its owner paid, and the grant after it.
    pub(crate) delegated: Option<crate::allowances::DelegatedSpend>,
}

/// The stateful checks of a `TransferWithAuthorization` whose signatures were verified, and the
/// accounts it would write. `submitter` is the submitter's account after its fee and nonce.
pub(crate) fn plan_transfer_with_authorization(
    state: &State,
    submitter_address: Address,
    submitter: Account,
    t: &TransferWithAuthorization,
) -> Result<AuthorizationPlan, TxError> {
    let now = state.last_block_time_ms() / 1000;
    let now_u256 = U256::from(now);
    if now_u256 <= t.validAfter {
        return Err(TxError::AuthorizationNotYetValid {
            valid_after: t.validAfter.to_string(),
            block_time: now,
        });
    }
    if now_u256 >= t.validBefore {
        return Err(TxError::AuthorizationExpired {
            valid_before: t.validBefore.to_string(),
            block_time: now,
        });
    }
    if state
        .payments()
        .authorization_state(&t.payer, &t.authorizationNonce)
    {
        return Err(TxError::AuthorizationUsed {
            payer: t.payer,
            nonce: t.authorizationNonce,
        });
    }
    let value: Amount =
        u128::try_from(t.value).map_err(|_| TxError::AmountTooLarge(t.value.to_string()))?;
    // Payer, receiver and submitter may be the same account: apply each change to the latest
    // version of the account it touches.
    let mut touched: BTreeMap<Address, Account> = BTreeMap::new();
    touched.insert(submitter_address, submitter);
    let latest = |touched: &BTreeMap<Address, Account>, address: &Address| {
        touched
            .get(address)
            .copied()
            .unwrap_or_else(|| state.account(address))
    };
    // A delegated key's authorization moves its owner's mUSD, within the allowance.
    let delegated = crate::allowances::delegated_spend(
        state,
        t.payer,
        "TransferWithAuthorization",
        t.to,
        Token::Musd,
        value,
    )?;
    let paying = delegated.as_ref().map_or(t.payer, |d| d.owner);
    let mut payer = latest(&touched, &paying);
    payer.musd = payer
        .musd
        .checked_sub(value)
        .ok_or(TxError::InsufficientBalance {
            token: Token::Musd,
            needed: value.to_string(),
            available: payer.musd.to_string(),
        })?;
    touched.insert(paying, payer);
    let receiver = bank::credit(latest(&touched, &t.to), Token::Musd, value)?;
    touched.insert(t.to, receiver);
    let writes = touched.into_iter().collect();
    Ok(AuthorizationPlan {
        writes,
        event: Event::Transfer {
            token: Token::Musd,
            from: paying,
            to: t.to,
            amount: value,
        },
        used: UsedAuthorization {
            authorizer: t.payer,
            nonce: t.authorizationNonce,
            paid: Paid { to: t.to, value },
        },
        delegated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlockContext;
    use alloy_primitives::Bytes;
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;
    use mycel_types::{
        eip3009, genesis::DEFAULT_MIN_FEE, keys::dev_signer, Genesis, SignedTx, TxKind,
    };

    const GENESIS_MS: u64 = 1_700_000_000_000;

    static GENESIS: std::sync::LazyLock<Genesis> =
        std::sync::LazyLock::new(|| Genesis::devnet(vec!["ab".repeat(32)], GENESIS_MS).unwrap());

    fn genesis() -> Genesis {
        GENESIS.clone()
    }

    /// Deriving a key from the mnemonic is slow (PBKDF2): derive the dev keys once.
    static SIGNERS: std::sync::LazyLock<Vec<PrivateKeySigner>> =
        std::sync::LazyLock::new(|| (0..10).map(|i| dev_signer(i).unwrap()).collect());

    fn signer(i: u32) -> PrivateKeySigner {
        SIGNERS[i as usize].clone()
    }

    struct Auth {
        payer: PrivateKeySigner,
        to: Address,
        value: u128,
        valid_after: u64,
        valid_before: u64,
        nonce: B256,
    }

    impl Auth {
        fn new(payer: u32, nonce: u8) -> Auth {
            Auth {
                payer: signer(payer),
                to: Address::repeat_byte(0x77),
                value: 250_000,
                valid_after: 0,
                valid_before: GENESIS_MS / 1000 + 3600,
                nonce: B256::repeat_byte(nonce),
            }
        }

        fn message(&self, submitter: &PrivateKeySigner, tx_nonce: u64) -> TxKind {
            let auth = eip3009::TransferWithAuthorization {
                from: self.payer.address(),
                to: self.to,
                value: U256::from(self.value),
                validAfter: U256::from(self.valid_after),
                validBefore: U256::from(self.valid_before),
                nonce: self.nonce,
            };
            let signature = self
                .payer
                .sign_hash_sync(&auth.signing_hash(&musd_domain(genesis().chain_id)))
                .unwrap();
            TxKind::TransferWithAuthorization(TransferWithAuthorization {
                from: submitter.address(),
                payer: auth.from,
                to: auth.to,
                value: auth.value,
                validAfter: auth.validAfter,
                validBefore: auth.validBefore,
                authorizationNonce: auth.nonce,
                signature: Bytes::from(signature.as_bytes().to_vec()),
                nonce: tx_nonce,
                fee: U256::from(DEFAULT_MIN_FEE),
            })
        }

        fn tx(&self, submitter: &PrivateKeySigner, tx_nonce: u64) -> SignedTx {
            SignedTx::sign(
                self.message(submitter, tx_nonce),
                genesis().chain_id,
                submitter,
            )
            .unwrap()
        }
    }

    /// Applies `tx` expecting a refusal; checks that nothing changed and that the mempool check agrees.
    fn refused(state: &mut State, tx: &SignedTx) -> TxError {
        let before = state.clone();
        let root = state.state_root();
        let err = state.apply_tx(tx).expect_err("tx should be refused");
        assert_eq!(*state, before, "a refused tx changed the state");
        assert_eq!(state.state_root(), root);
        assert_eq!(state.check_tx(tx), Err(err.clone()));
        err
    }

    fn resign(kind: TxKind, submitter: &PrivateKeySigner) -> SignedTx {
        SignedTx::sign(kind, genesis().chain_id, submitter).unwrap()
    }

    #[test]
    fn executes_once_moves_musd_and_records_the_nonce() {
        let mut state = State::from_genesis(&genesis());
        let facilitator = signer(0);
        let auth = Auth::new(1, 1);
        let payer = auth.payer.address();
        let before_payer = state.account(&payer);
        let before_fac = state.account(&facilitator.address());
        let root_before = state.state_root();
        assert!(!state.authorization_state(&payer, &auth.nonce));

        let receipt = state.apply_tx(&auth.tx(&facilitator, 0)).unwrap();
        assert_eq!(receipt.tx_type, "TransferWithAuthorization");
        assert!(receipt.events.contains(&Event::Transfer {
            token: Token::Musd,
            from: payer,
            to: auth.to,
            amount: auth.value,
        }));
        assert!(receipt.events.contains(&Event::AuthorizationUsed {
            authorizer: payer,
            nonce: auth.nonce,
        }));
        assert!(state.authorization_state(&payer, &auth.nonce));
        assert_eq!(state.account(&payer).musd, before_payer.musd - auth.value);
        assert_eq!(state.account(&payer).nonce, before_payer.nonce);
        assert_eq!(state.account(&payer).myc, before_payer.myc);
        assert_eq!(state.account(&auth.to).musd, auth.value);
        let fac = state.account(&facilitator.address());
        assert_eq!(fac.myc, before_fac.myc - DEFAULT_MIN_FEE);
        assert_eq!(fac.nonce, 1);
        assert_ne!(state.state_root(), root_before);
        state.assert_books_balance();

        // Replay: the same authorization, by the same or by another submitter, is refused.
        assert_eq!(
            refused(&mut state, &auth.tx(&facilitator, 1)).code(),
            "authorization_used"
        );
        assert_eq!(
            refused(&mut state, &auth.tx(&signer(2), 0)).code(),
            "authorization_used"
        );
        // The same nonce from another payer is another authorization.
        let other = Auth::new(3, 1);
        state.apply_tx(&other.tx(&facilitator, 1)).unwrap();
        state.assert_books_balance();
    }

    #[test]
    fn tampered_fields_are_refused_with_their_own_code() {
        let mut state = State::from_genesis(&genesis());
        let facilitator = signer(0);
        let auth = Auth::new(1, 2);
        let TxKind::TransferWithAuthorization(good) = auth.message(&facilitator, 0) else {
            unreachable!()
        };
        let tamper = |f: &dyn Fn(&mut TransferWithAuthorization)| {
            let mut t = good.clone();
            f(&mut t);
            resign(TxKind::TransferWithAuthorization(t), &facilitator)
        };
        for (what, tx) in [
            ("to", tamper(&|t| t.to = Address::repeat_byte(0x99))),
            ("value", tamper(&|t| t.value += U256::from(1))),
            ("validAfter", tamper(&|t| t.validAfter = U256::from(1))),
            ("validBefore", tamper(&|t| t.validBefore -= U256::from(1))),
            (
                "nonce",
                tamper(&|t| t.authorizationNonce = B256::repeat_byte(3)),
            ),
            ("payer", tamper(&|t| t.payer = signer(4).address())),
        ] {
            assert_eq!(
                refused(&mut state, &tx).code(),
                "authorization_wrong_signer",
                "{what}"
            );
        }
        for (what, sig) in [
            ("short", vec![1u8; 64]),
            ("bad v", {
                let mut s = good.signature.to_vec();
                s[64] = 9;
                s
            }),
        ] {
            let tx = tamper(&|t| t.signature = Bytes::from(sig.clone()));
            assert_eq!(
                refused(&mut state, &tx).code(),
                "authorization_bad_signature",
                "{what}"
            );
        }
        // Signed for another chain's mUSD: recovers someone else.
        let mut other_chain = good.clone();
        let a = other_chain.authorization();
        let sig = auth
            .payer
            .sign_hash_sync(&a.signing_hash(&musd_domain(1)))
            .unwrap();
        other_chain.signature = Bytes::from(sig.as_bytes().to_vec());
        let tx = resign(TxKind::TransferWithAuthorization(other_chain), &facilitator);
        assert_eq!(
            refused(&mut state, &tx).code(),
            "authorization_wrong_signer"
        );
        // The untampered one still executes.
        state.apply_tx(&auth.tx(&facilitator, 0)).unwrap();
    }

    #[test]
    fn validity_window_is_checked_against_block_time() {
        let mut state = State::from_genesis(&genesis());
        let facilitator = signer(0);
        let now = GENESIS_MS / 1000;
        let mut early = Auth::new(1, 3);
        early.valid_after = now;
        assert_eq!(
            refused(&mut state, &early.tx(&facilitator, 0)).code(),
            "authorization_not_yet_valid"
        );
        let mut late = Auth::new(1, 4);
        late.valid_before = now;
        assert_eq!(
            refused(&mut state, &late.tx(&facilitator, 0)).code(),
            "authorization_expired"
        );

        // In a block one second later, `early` is valid (validAfter < t) and is executed.
        let verified = state.verify_stateless(early.tx(&facilitator, 0)).unwrap();
        let outcome = state
            .apply_block(
                BlockContext {
                    height: 1,
                    timestamp_ms: GENESIS_MS + 1_000,
                },
                &[verified],
            )
            .unwrap();
        assert!(outcome.results[0].is_ok(), "{:?}", outcome.results[0]);
        // And a block past validBefore refuses an authorization that was valid before.
        let mut soon = Auth::new(2, 5);
        soon.valid_before = now + 2;
        let tx = soon.tx(&facilitator, 1);
        assert!(state.check_tx(&tx).is_ok());
        let verified = state.verify_stateless(tx).unwrap();
        let outcome = state
            .apply_block(
                BlockContext {
                    height: 2,
                    timestamp_ms: GENESIS_MS + 2_000,
                },
                &[verified],
            )
            .unwrap();
        assert_eq!(
            outcome.results[0].as_ref().unwrap_err().code(),
            "authorization_expired"
        );
        assert!(!state.authorization_state(&soon.payer.address(), &soon.nonce));
    }

    #[test]
    fn insufficient_balance_and_huge_values_are_refused() {
        let mut state = State::from_genesis(&genesis());
        let facilitator = signer(0);
        let mut auth = Auth::new(1, 6);
        auth.value = mycel_types::genesis::DEV_MUSD + 1;
        match refused(&mut state, &auth.tx(&facilitator, 0)) {
            TxError::InsufficientBalance { token, .. } => assert_eq!(token, Token::Musd),
            other => panic!("{other:?}"),
        }
        // An account that never held mUSD.
        let stranger = PrivateKeySigner::random();
        let mut poor = Auth::new(1, 7);
        poor.payer = stranger;
        poor.value = 1;
        assert_eq!(
            refused(&mut state, &poor.tx(&facilitator, 0)).code(),
            "insufficient_balance"
        );
    }

    #[test]
    fn payer_submitter_and_receiver_may_coincide() {
        let mut state = State::from_genesis(&genesis());
        let me = signer(1);
        let start = state.account(&me.address());
        // The payer submits its own authorization.
        let own = Auth::new(1, 8);
        state.apply_tx(&own.tx(&me, 0)).unwrap();
        let a = state.account(&me.address());
        assert_eq!(a.musd, start.musd - own.value);
        assert_eq!(a.myc, start.myc - DEFAULT_MIN_FEE);
        assert_eq!(a.nonce, 1);
        // The facilitator is paid by the authorization it submits.
        let fac = signer(0);
        let fac_start = state.account(&fac.address());
        let mut to_fac = Auth::new(2, 9);
        to_fac.to = fac.address();
        state.apply_tx(&to_fac.tx(&fac, 0)).unwrap();
        let f = state.account(&fac.address());
        assert_eq!(f.musd, fac_start.musd + to_fac.value);
        assert_eq!(f.myc, fac_start.myc - DEFAULT_MIN_FEE);
        assert_eq!(f.nonce, 1);
        // Paying oneself only records the nonce.
        let mut to_self = Auth::new(1, 10);
        to_self.to = me.address();
        let before = state.account(&me.address());
        state.apply_tx(&to_self.tx(&fac, 1)).unwrap();
        assert_eq!(state.account(&me.address()), before);
        assert!(state.authorization_state(&me.address(), &to_self.nonce));
        state.assert_books_balance();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any mix of valid, tampered, replayed and unaffordable authorizations, from any
        /// submitters: mUSD is conserved, the books balance, each (payer, nonce) executes at most
        /// once, and a tampered one never executes.
        #[test]
        fn authorizations_conserve_musd_and_execute_at_most_once(
            ops in proptest::collection::vec(
                (1u32..5, 0u8..6, 0u128..1_500_000_000_000u128, proptest::bool::weighted(0.2), 0u32..3),
                1..20,
            )
        ) {
            let mut state = State::from_genesis(&genesis());
            let musd_total = |s: &State| -> u128 {
                (0..10).map(|i| s.account(&signer(i).address()).musd).sum::<u128>()
                    + s.account(&Address::repeat_byte(0x77)).musd
            };
            let issued = state.supply().musd_issued;
            let mut executed = std::collections::BTreeSet::new();
            for (payer, nonce, value, tamper, submitter) in ops {
                let mut auth = Auth::new(payer, nonce);
                auth.value = value;
                let submitter = signer(submitter);
                let tx_nonce = state.next_nonce(&submitter.address());
                let mut kind = auth.message(&submitter, tx_nonce);
                if tamper {
                    if let TxKind::TransferWithAuthorization(t) = &mut kind {
                        t.value += U256::from(1);
                    }
                }
                let tx = resign(kind, &submitter);
                let key = (auth.payer.address(), auth.nonce);
                match state.apply_tx(&tx) {
                    Ok(_) => {
                        proptest::prop_assert!(!tamper, "a tampered authorization executed");
                        proptest::prop_assert!(executed.insert(key), "executed twice: {key:?}");
                    }
                    Err(e) => {
                        if executed.contains(&key) && !tamper {
                            proptest::prop_assert_eq!(e.code(), "authorization_used");
                        }
                    }
                }
                state.assert_books_balance();
                proptest::prop_assert_eq!(musd_total(&state), issued);
                proptest::prop_assert_eq!(state.payments().used_count(), executed.len());
            }
        }
    }

    #[test]
    fn used_authorizations_survive_a_snapshot() {
        let mut state = State::from_genesis(&genesis());
        let auth = Auth::new(1, 11);
        state.apply_tx(&auth.tx(&signer(0), 0)).unwrap();
        let root = state.state_root();
        let mut back = State::from_snapshot_bytes(&state.to_snapshot_bytes()).unwrap();
        assert_eq!(back.state_root(), root);
        assert!(back.authorization_state(&auth.payer.address(), &auth.nonce));
        assert_eq!(
            refused(&mut back, &auth.tx(&signer(0), 1)).code(),
            "authorization_used"
        );
    }
}
