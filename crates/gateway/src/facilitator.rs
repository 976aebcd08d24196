//! The x402 facilitator: verifies "exact" EIP-3009 payments in mUSD and settles them on the mycel
//! chain.
//!
//! Verify runs every check of the reference facilitator (`@x402/evm`'s exact scheme), in its order,
//! with its error codes; see [`reason`]. Settle re-verifies, signs a `TransferWithAuthorization`
//! transaction with the facilitator's key (the facilitator pays the MYC fee), submits it to the
//! node's HTTP API and waits for finality.
//!
//! Beyond the reference, settlement is idempotent on the authorization `(from, nonce)`:
//! - one settlement per `(from, nonce)` runs at a time (in-flight lock); concurrent or repeated
//!   calls wait for it and get its result;
//! - once a transaction is submitted, its hash is remembered: a retry (e.g. after a client-side
//!   timeout) polls that transaction instead of submitting again, and a settle that times out
//!   answers `settlement_pending` with the hash;
//! - the chain refuses a used `(from, nonce)` anyway, so nothing is ever charged twice.
//!
//! Does not: hold the payer's keys, persist its memory of settlements (a restarted facilitator
//! answers a retry of an already executed authorization with `invalid_exact_evm_nonce_already_used`),
//! or settle any token but mUSD.

use crate::wire::{
    AnyPayment, PaymentRequirements, SettleResponse, SupportedKind, SupportedResponse,
    VerifyResponse, SCHEME_EXACT,
};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::api::{self, TxResult, TxState};
use mycel_client::{ClientError, NodeClient};
use mycel_types::{
    eip3009::{self, AuthorizationSignatureError},
    Amount, SignedTx, TransferWithAuthorization, TxKind,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The error codes ("reasons") of verification and settlement.
pub mod reason {
    /// The payment header or body is not valid base64 / JSON / shape.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    pub const INVALID_X402_VERSION: &str = "invalid_x402_version";
    pub const UNSUPPORTED_SCHEME: &str = "unsupported_scheme";
    /// The requirements name a network this facilitator does not settle.
    pub const INVALID_NETWORK: &str = "invalid_network";
    /// The payment's network differs from the requirements'.
    pub const NETWORK_MISMATCH: &str = "invalid_exact_evm_network_mismatch";
    /// mycel-specific: the asset is not mUSD, or the payment's asset differs from the requirements'.
    pub const ASSET_MISMATCH: &str = "invalid_exact_evm_asset_mismatch";
    pub const MISSING_EIP712_DOMAIN: &str = "invalid_exact_evm_missing_eip712_domain";
    pub const TOKEN_NAME_MISMATCH: &str = "invalid_exact_evm_token_name_mismatch";
    pub const TOKEN_VERSION_MISMATCH: &str = "invalid_exact_evm_token_version_mismatch";
    pub const FAILED_TO_PARSE_SIGNATURE: &str = "invalid_exact_evm_failed_to_parse_signature";
    pub const INVALID_SIGNATURE: &str = "invalid_exact_evm_signature";
    pub const RECIPIENT_MISMATCH: &str = "invalid_exact_evm_recipient_mismatch";
    pub const VALID_BEFORE: &str = "invalid_exact_evm_payload_authorization_valid_before";
    pub const VALID_AFTER: &str = "invalid_exact_evm_payload_authorization_valid_after";
    pub const VALUE_MISMATCH: &str = "invalid_exact_evm_payload_authorization_value_mismatch";
    pub const NONCE_ALREADY_USED: &str = "invalid_exact_evm_nonce_already_used";
    pub const INSUFFICIENT_BALANCE: &str = "invalid_exact_evm_insufficient_balance";
    /// The settlement transaction failed on chain or was refused by the node.
    pub const TRANSACTION_FAILED: &str = "invalid_exact_evm_transaction_failed";
    /// Submitted but not final within the settle timeout; the answer carries the tx hash.
    pub const SETTLEMENT_PENDING: &str = "settlement_pending";
    /// The node could not be reached or answered nonsense.
    pub const NODE_UNAVAILABLE: &str = "facilitator_node_unavailable";
}

/// Seconds of margin the reference facilitator demands before `validBefore` (settlement latency).
pub const VALID_BEFORE_MARGIN_SECS: u64 = 6;

/// The time a facilitator checks validity windows against. Injectable for tests.
pub trait Clock: Send + Sync + 'static {
    fn now_secs(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }
}

/// A clock that says what it is told.
#[derive(Debug, Default)]
pub struct FixedClock(pub std::sync::atomic::AtomicU64);

impl FixedClock {
    pub fn at(secs: u64) -> FixedClock {
        FixedClock(std::sync::atomic::AtomicU64::new(secs))
    }
    pub fn set(&self, secs: u64) {
        self.0.store(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_secs(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The token a facilitator settles and the chain it lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub chain_id: u64,
    pub address: Address,
    pub name: String,
    pub version: String,
}

impl Asset {
    /// mUSD as the node describes it (`GET /v1/musd`).
    pub fn from_musd(musd: &api::Musd) -> Asset {
        Asset {
            chain_id: musd.chain_id,
            address: musd.asset,
            name: musd.name.clone(),
            version: musd.version.clone(),
        }
    }

    /// The CAIP-2 network id, `eip155:<chain id>`.
    pub fn network(&self) -> String {
        format!("eip155:{}", self.chain_id)
    }

    /// Requirements for `amount` base units paid to `pay_to`.
    pub fn requirements(
        &self,
        amount: Amount,
        pay_to: Address,
        max_timeout_seconds: u64,
    ) -> PaymentRequirements {
        PaymentRequirements::exact(
            self.chain_id,
            self.address,
            (&self.name, &self.version),
            amount,
            pay_to,
            max_timeout_seconds,
        )
    }
}

/// A verification failure: a reason code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
    pub payer: Option<Address>,
}

impl Invalid {
    fn new(reason: &'static str, message: impl Into<String>) -> Invalid {
        Invalid {
            reason,
            message: message.into(),
            payer: None,
        }
    }

    fn payer(mut self, payer: Address) -> Invalid {
        self.payer = Some(payer);
        self
    }
}

/// A payment whose stateless checks passed: the typed authorization and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPayment {
    pub authorization: eip3009::TransferWithAuthorization,
    pub signature: Vec<u8>,
    pub amount: Amount,
}

/// Every check that needs no chain state, against `requirements`, at time `now`.
pub fn check_stateless(
    asset: &Asset,
    payment: &AnyPayment,
    requirements: &PaymentRequirements,
    now: u64,
) -> Result<CheckedPayment, Invalid> {
    if requirements.scheme != SCHEME_EXACT || payment.scheme() != SCHEME_EXACT {
        return Err(Invalid::new(
            reason::UNSUPPORTED_SCHEME,
            format!(
                "scheme '{}' is not supported: this facilitator settles 'exact'",
                if requirements.scheme != SCHEME_EXACT {
                    &requirements.scheme
                } else {
                    payment.scheme()
                }
            ),
        ));
    }
    if requirements.network != asset.network() {
        return Err(Invalid::new(
            reason::INVALID_NETWORK,
            format!(
                "network '{}' is not supported: this facilitator settles on {}",
                requirements.network,
                asset.network()
            ),
        ));
    }
    if payment.network() != requirements.network {
        return Err(Invalid::new(
            reason::NETWORK_MISMATCH,
            format!(
                "payment is for network '{}', the requirements are for '{}'",
                payment.network(),
                requirements.network
            ),
        ));
    }
    let required_asset: Option<Address> = requirements.asset.parse().ok();
    if required_asset != Some(asset.address) {
        return Err(Invalid::new(
            reason::ASSET_MISMATCH,
            format!(
                "asset '{}' is not mUSD ({})",
                requirements.asset, asset.address
            ),
        ));
    }
    if let AnyPayment::V2(p) = payment {
        if p.accepted.asset.parse::<Address>().ok() != Some(asset.address) {
            return Err(Invalid::new(
                reason::ASSET_MISMATCH,
                format!(
                    "payment accepted asset '{}', the requirements ask for mUSD ({})",
                    p.accepted.asset, asset.address
                ),
            ));
        }
    }
    let extra = requirements.extra.as_ref();
    let name = extra.and_then(|e| e.get("name")).and_then(|v| v.as_str());
    let version = extra
        .and_then(|e| e.get("version"))
        .and_then(|v| v.as_str());
    let (Some(name), Some(version)) = (name, version) else {
        return Err(Invalid::new(
            reason::MISSING_EIP712_DOMAIN,
            "requirements lack extra.name and extra.version (the token's EIP-712 domain)",
        ));
    };
    if name != asset.name {
        return Err(Invalid::new(
            reason::TOKEN_NAME_MISMATCH,
            format!(
                "extra.name is '{name}', mUSD's EIP-712 name is '{}'",
                asset.name
            ),
        ));
    }
    if version != asset.version {
        return Err(Invalid::new(
            reason::TOKEN_VERSION_MISMATCH,
            format!(
                "extra.version is '{version}', mUSD's EIP-712 version is '{}'",
                asset.version
            ),
        ));
    }

    let payload = payment.payload();
    let a = &payload.authorization;
    let bad = |field: &str, e: String| {
        Invalid::new(
            reason::INVALID_PAYLOAD,
            format!("authorization.{field} is malformed: {e}"),
        )
    };
    let from: Address = a.from.parse().map_err(|e| bad("from", format!("{e}")))?;
    let to: Address = a.to.parse().map_err(|e| bad("to", format!("{e}")))?;
    let value = parse_uint(&a.value).map_err(|e| bad("value", e))?;
    let valid_after = parse_uint(&a.valid_after).map_err(|e| bad("validAfter", e))?;
    let valid_before = parse_uint(&a.valid_before).map_err(|e| bad("validBefore", e))?;
    let nonce: B256 = a.nonce.parse().map_err(|e| bad("nonce", format!("{e}")))?;
    let authorization = eip3009::TransferWithAuthorization {
        from,
        to,
        value,
        validAfter: valid_after,
        validBefore: valid_before,
        nonce,
    };
    let signature = hex::decode(payload.signature.trim_start_matches("0x")).map_err(|e| {
        Invalid::new(
            reason::FAILED_TO_PARSE_SIGNATURE,
            format!("signature is not hex: {e}"),
        )
        .payer(from)
    })?;
    let domain = eip3009::token_domain(&asset.name, &asset.version, asset.chain_id, asset.address);
    match authorization.verify_signature(&domain, &signature) {
        Ok(()) => {}
        Err(AuthorizationSignatureError::WrongSigner { recovered, .. }) => {
            return Err(Invalid::new(
                reason::INVALID_SIGNATURE,
                format!(
                    "signature recovers to {recovered}, not to the payer {from}: signed by another key, for another domain, or a field changed after signing"
                ),
            )
            .payer(from))
        }
        Err(e) => {
            return Err(Invalid::new(reason::FAILED_TO_PARSE_SIGNATURE, e.to_string()).payer(from))
        }
    }
    let pay_to: Option<Address> = requirements.pay_to.parse().ok();
    if Some(to) != pay_to {
        return Err(Invalid::new(
            reason::RECIPIENT_MISMATCH,
            format!(
                "authorization pays {to}, the requirements' payTo is {}",
                requirements.pay_to
            ),
        )
        .payer(from));
    }
    if valid_before < U256::from(now.saturating_add(VALID_BEFORE_MARGIN_SECS)) {
        return Err(Invalid::new(
            reason::VALID_BEFORE,
            format!(
                "authorization expires at {valid_before}, less than {VALID_BEFORE_MARGIN_SECS} s after now ({now}): sign a new one"
            ),
        )
        .payer(from));
    }
    // Strict, as the chain checks `validAfter < block time`: an authorization that becomes valid
    // this very second could still be refused by a block of this second.
    if valid_after >= U256::from(now) {
        return Err(Invalid::new(
            reason::VALID_AFTER,
            format!("authorization is valid only after {valid_after}; now is {now}"),
        )
        .payer(from));
    }
    let required = parse_uint(&requirements.amount).map_err(|e| {
        Invalid::new(
            reason::INVALID_PAYLOAD,
            format!("requirements amount is malformed: {e}"),
        )
    })?;
    if value != required {
        return Err(Invalid::new(
            reason::VALUE_MISMATCH,
            format!("authorization value is {value}, the price is exactly {required}"),
        )
        .payer(from));
    }
    if let AnyPayment::V2(p) = payment {
        if parse_uint(&p.accepted.amount).ok() != Some(required) {
            return Err(Invalid::new(
                reason::VALUE_MISMATCH,
                format!(
                    "payment accepted amount {}, the price is {required}",
                    p.accepted.amount
                ),
            )
            .payer(from));
        }
    }
    let amount = u128::try_from(value).map_err(|_| {
        Invalid::new(reason::VALUE_MISMATCH, "value does not fit in 128 bits").payer(from)
    })?;
    Ok(CheckedPayment {
        authorization,
        signature,
        amount,
    })
}

fn parse_uint(s: &str) -> Result<U256, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a decimal integer string"));
    }
    U256::from_str_radix(s, 10).map_err(|e| e.to_string())
}

/// How a facilitator behaves.
#[derive(Clone)]
pub struct FacilitatorConfig {
    /// Sign and pay for settlement transactions, taking turns. Each key can have 64 settlements
    /// pending in the node's mempool; more keys settle more per block.
    pub signers: Vec<PrivateKeySigner>,
    /// Fee per settlement transaction, MYC base units [default: the chain's minimum].
    pub fee: Option<Amount>,
    /// How long settle waits for finality before answering `settlement_pending`.
    pub settle_timeout: Duration,
    pub clock: Arc<dyn Clock>,
}

/// What a settlement of one `(from, nonce)` came to.
#[derive(Debug, Clone)]
enum Settlement {
    /// Submitted as `tx` by submitter number `submitter`; not known final yet.
    Submitted { tx: B256, submitter: usize },
    /// Final: the answer every later call gets.
    Done(SettleResponse),
}

struct SettlementSlot {
    /// The authorization's signing hash, so that a different payment reusing `(from, nonce)` is
    /// not answered with this one's result.
    digest: B256,
    valid_before: U256,
    state: Option<Settlement>,
}

type Slot = Arc<tokio::sync::Mutex<SettlementSlot>>;

/// Why a facilitator could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    #[error("no signer key: a facilitator needs at least one")]
    NoSigner,
    #[error("cannot read the chain from the node: {0}")]
    Node(#[from] ClientError),
}

/// One settlement key and its account's next nonce (held while submitting, so that its
/// transactions get consecutive nonces).
struct Submitter {
    signer: PrivateKeySigner,
    next_nonce: tokio::sync::Mutex<Option<u64>>,
    /// Set when one of this key's transactions can no longer execute but stays in the node's
    /// mempool, holding back every later nonce of the key (the node drops it only when another
    /// transaction of the key is included, or on restart). The key is skipped until the node
    /// reports nothing pending for it.
    blocked: std::sync::atomic::AtomicBool,
}

/// The facilitator. Cheap to share behind an `Arc`.
pub struct Facilitator {
    node: NodeClient,
    asset: Asset,
    config: FacilitatorConfig,
    fee: Amount,
    settlements: Mutex<HashMap<(Address, B256), Slot>>,
    /// Each signer with the next nonce of its account, once known.
    submitters: Vec<Submitter>,
    next_submitter: std::sync::atomic::AtomicUsize,
    counters: Counters,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub verified: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
    pub settled: std::sync::atomic::AtomicU64,
    pub settle_failed: std::sync::atomic::AtomicU64,
    pub settle_deduplicated: std::sync::atomic::AtomicU64,
}

impl Facilitator {
    /// Connects to the node at `node`, reads the chain id and mUSD's EIP-712 identity.
    pub async fn connect(
        node: NodeClient,
        config: FacilitatorConfig,
    ) -> Result<Facilitator, SetupError> {
        if config.signers.is_empty() {
            return Err(SetupError::NoSigner);
        }
        let params = node.chain_params().await?;
        let musd = node.musd().await?;
        let submitters = config
            .signers
            .iter()
            .map(|signer| Submitter {
                signer: signer.clone(),
                next_nonce: tokio::sync::Mutex::new(None),
                blocked: std::sync::atomic::AtomicBool::new(false),
            })
            .collect();
        let fee = config.fee.unwrap_or(params.min_fee).max(params.min_fee);
        Ok(Facilitator {
            node,
            asset: Asset::from_musd(&musd),
            config,
            fee,
            settlements: Mutex::new(HashMap::new()),
            submitters,
            next_submitter: std::sync::atomic::AtomicUsize::new(0),
            counters: Counters::default(),
        })
    }

    pub fn asset(&self) -> &Asset {
        &self.asset
    }

    pub fn node(&self) -> &NodeClient {
        &self.node
    }

    /// The first signer's address.
    pub fn signer_address(&self) -> Address {
        self.submitters[0].signer.address()
    }

    /// Every signer's address.
    pub fn signer_addresses(&self) -> Vec<Address> {
        self.submitters.iter().map(|s| s.signer.address()).collect()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// `GET /supported`.
    pub fn supported(&self) -> SupportedResponse {
        let kinds = [1u8, 2]
            .into_iter()
            .map(|v| SupportedKind {
                x402_version: v,
                scheme: SCHEME_EXACT.to_string(),
                network: self.asset.network(),
            })
            .collect();
        let mut signers = BTreeMap::new();
        signers.insert(
            "eip155:*".to_string(),
            self.signer_addresses()
                .iter()
                .map(|a| a.to_checksum(None))
                .collect(),
        );
        SupportedResponse {
            kinds,
            extensions: vec![],
            signers,
        }
    }

    /// Every check, stateless and on chain (nonce unused, balance), without changing anything.
    pub async fn check(
        &self,
        payment: &AnyPayment,
        requirements: &PaymentRequirements,
    ) -> Result<CheckedPayment, Invalid> {
        let checked = check_stateless(
            &self.asset,
            payment,
            requirements,
            self.config.clock.now_secs(),
        )?;
        let a = &checked.authorization;
        let unavailable =
            |e: ClientError| Invalid::new(reason::NODE_UNAVAILABLE, e.to_string()).payer(a.from);
        let (authorization, account) = tokio::join!(
            self.node.authorization(a.from, a.nonce),
            self.node.account(a.from)
        );
        if authorization.map_err(unavailable)?.used {
            return Err(Invalid::new(
                reason::NONCE_ALREADY_USED,
                format!(
                    "authorization nonce {} of {} was already used",
                    a.nonce, a.from
                ),
            )
            .payer(a.from));
        }
        let account = account.map_err(unavailable)?;
        // A delegated key's payment is drawn from its owner within the allowance.
        if account.payable_musd() < checked.amount {
            return Err(Invalid::new(
                reason::INSUFFICIENT_BALANCE,
                format!(
                    "{} may pay {} mUSD base units, the payment is {}",
                    a.from,
                    account.payable_musd(),
                    checked.amount
                ),
            )
            .payer(a.from));
        }
        Ok(checked)
    }

    /// `POST /verify`.
    pub async fn verify(
        &self,
        payment: &AnyPayment,
        requirements: &PaymentRequirements,
    ) -> VerifyResponse {
        use std::sync::atomic::Ordering::Relaxed;
        match self.check(payment, requirements).await {
            Ok(checked) => {
                self.counters.verified.fetch_add(1, Relaxed);
                VerifyResponse {
                    is_valid: true,
                    invalid_reason: None,
                    invalid_message: None,
                    payer: Some(checked.authorization.from.to_checksum(None)),
                }
            }
            Err(invalid) => {
                self.counters.refused.fetch_add(1, Relaxed);
                VerifyResponse {
                    is_valid: false,
                    invalid_reason: Some(invalid.reason.to_string()),
                    invalid_message: Some(invalid.message),
                    payer: invalid.payer.map(|p| p.to_checksum(None)),
                }
            }
        }
    }

    /// `POST /settle`: executes the payment once, whatever the number of calls.
    pub async fn settle(
        &self,
        payment: &AnyPayment,
        requirements: &PaymentRequirements,
    ) -> SettleResponse {
        use std::sync::atomic::Ordering::Relaxed;
        // The stateless checks first: they bind the result to this exact signed authorization.
        let checked = match check_stateless(
            &self.asset,
            payment,
            requirements,
            self.config.clock.now_secs(),
        ) {
            Ok(c) => c,
            Err(invalid) => return self.failure(invalid, None),
        };
        let a = &checked.authorization;
        let digest = a.signing_hash(&eip3009::token_domain(
            &self.asset.name,
            &self.asset.version,
            self.asset.chain_id,
            self.asset.address,
        ));
        let slot = self.slot(a.from, a.nonce, digest, a.validBefore);
        let mut slot = slot.lock().await;
        if slot.digest != digest {
            return self.failure(
                Invalid::new(
                    reason::NONCE_ALREADY_USED,
                    format!(
                        "another payment of {} with nonce {} is being or was settled",
                        a.from, a.nonce
                    ),
                )
                .payer(a.from),
                None,
            );
        }
        match slot.state.clone() {
            Some(Settlement::Done(response)) => {
                self.counters.settle_deduplicated.fetch_add(1, Relaxed);
                return response;
            }
            Some(Settlement::Submitted { tx, submitter }) => {
                self.counters.settle_deduplicated.fetch_add(1, Relaxed);
                let response = self.await_final(tx, submitter, &checked).await;
                if !is_pending(&response) {
                    slot.state = Some(Settlement::Done(response.clone()));
                }
                return response;
            }
            None => {}
        }
        // Re-verify against the chain right before paying.
        if let Err(invalid) = self.check(payment, requirements).await {
            return self.failure(invalid, None);
        }
        let (tx, submitter) = match self.submit(&checked).await {
            Ok(submitted) => submitted,
            Err(invalid) => return self.failure(invalid, None),
        };
        slot.state = Some(Settlement::Submitted { tx, submitter });
        let response = self.await_final(tx, submitter, &checked).await;
        if !is_pending(&response) {
            slot.state = Some(Settlement::Done(response.clone()));
        }
        if response.success {
            self.counters.settled.fetch_add(1, Relaxed);
        }
        response
    }

    fn slot(&self, from: Address, nonce: B256, digest: B256, valid_before: U256) -> Slot {
        let mut map = self.settlements.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 100_000 {
            self.forget_expired(&mut map);
        }
        map.entry((from, nonce))
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(SettlementSlot {
                    digest,
                    valid_before,
                    state: None,
                }))
            })
            .clone()
    }

    /// Drops memories of authorizations that expired an hour ago and are not in use: the chain
    /// refuses them anyway.
    fn forget_expired(&self, map: &mut HashMap<(Address, B256), Slot>) {
        let horizon = U256::from(self.config.clock.now_secs().saturating_sub(3600));
        map.retain(|_, slot| match slot.try_lock() {
            Ok(s) => s.valid_before >= horizon,
            Err(_) => true,
        });
    }

    fn failure(&self, invalid: Invalid, tx: Option<B256>) -> SettleResponse {
        self.counters
            .settle_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SettleResponse {
            success: false,
            error_reason: Some(invalid.reason.to_string()),
            error_message: Some(invalid.message),
            payer: invalid.payer.map(|p| p.to_checksum(None)),
            transaction: tx.map(|t| t.to_string()).unwrap_or_default(),
            network: self.asset.network(),
            amount: None,
        }
    }

    /// Signs and submits the settlement transaction with the facilitator's next nonce.
    /// Makes the next submission through `submitter` re-read its account's next nonce.
    async fn forget_nonce(&self, submitter: usize) {
        *self.submitters[submitter].next_nonce.lock().await = None;
    }

    /// The next key whose transactions can get through, in turn.
    async fn pick_submitter(&self) -> Result<(usize, &Submitter), Invalid> {
        use std::sync::atomic::Ordering::Relaxed;
        let count = self.submitters.len();
        let start = self.next_submitter.fetch_add(1, Relaxed);
        for i in 0..count {
            let index = (start + i) % count;
            let submitter = &self.submitters[index];
            if !submitter.blocked.load(Relaxed) {
                return Ok((index, submitter));
            }
            // Blocked: usable again once the node holds nothing pending for it.
            if let Ok(view) = self.node.account(submitter.signer.address()).await {
                if view.next_nonce == view.nonce {
                    *submitter.next_nonce.lock().await = None;
                    submitter.blocked.store(false, Relaxed);
                    tracing::info!(key = %submitter.signer.address(), "facilitator key unblocked");
                    return Ok((index, submitter));
                }
            }
        }
        Err(Invalid::new(
            reason::NODE_UNAVAILABLE,
            "every facilitator key is blocked by a settlement the node can no longer execute; \
             add keys (--key/--dev-account) or wait for the node to drop it",
        ))
    }

    async fn submit(&self, checked: &CheckedPayment) -> Result<(B256, usize), Invalid> {
        let a = &checked.authorization;
        let (submitter_index, submitter) = self.pick_submitter().await?;
        let signer_address = submitter.signer.address();
        let mut next = submitter.next_nonce.lock().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let nonce = match *next {
                Some(n) => n,
                None => {
                    self.node
                        .account(signer_address)
                        .await
                        .map_err(|e| Invalid::new(reason::NODE_UNAVAILABLE, e.to_string()))?
                        .next_nonce
                }
            };
            let kind = TxKind::TransferWithAuthorization(TransferWithAuthorization {
                from: signer_address,
                payer: a.from,
                to: a.to,
                value: a.value,
                validAfter: a.validAfter,
                validBefore: a.validBefore,
                authorizationNonce: a.nonce,
                signature: Bytes::from(checked.signature.clone()),
                nonce,
                fee: U256::from(self.fee),
            });
            let tx = SignedTx::sign(kind, self.asset.chain_id, &submitter.signer).map_err(|e| {
                Invalid::new(reason::TRANSACTION_FAILED, format!("cannot sign: {e}"))
            })?;
            match self.node.submit(&tx).await {
                Ok(hash) => {
                    *next = Some(nonce + 1);
                    return Ok((hash, submitter_index));
                }
                Err(ClientError::Node { code, message, .. })
                    if attempts < 3
                        && matches!(
                            code.as_str(),
                            "stale_nonce" | "future_nonce" | "nonce_taken" | "nonce_too_far_ahead"
                        ) =>
                {
                    tracing::debug!(%code, %message, "facilitator nonce out of step; re-reading it");
                    *next = None;
                }
                Err(ClientError::Node { code, message, .. }) => {
                    *next = None;
                    let reason = match code.as_str() {
                        "authorization_used" => reason::NONCE_ALREADY_USED,
                        "insufficient_balance" => reason::INSUFFICIENT_BALANCE,
                        "authorization_expired" => reason::VALID_BEFORE,
                        "authorization_not_yet_valid" => reason::VALID_AFTER,
                        _ => reason::TRANSACTION_FAILED,
                    };
                    return Err(Invalid::new(
                        reason,
                        format!("the node refused the settlement: {message} ({code})"),
                    )
                    .payer(a.from));
                }
                Err(e) => {
                    *next = None;
                    return Err(Invalid::new(reason::NODE_UNAVAILABLE, e.to_string()).payer(a.from));
                }
            }
        }
    }

    /// Polls `tx` until it is final or the settle timeout passes.
    async fn await_final(
        &self,
        tx: B256,
        submitter: usize,
        checked: &CheckedPayment,
    ) -> SettleResponse {
        let payer = checked.authorization.from;
        let deadline = Instant::now() + self.config.settle_timeout;
        let mut wait = Duration::from_millis(20);
        loop {
            match self.node.tx(tx).await.map(|status| status.state) {
                Ok(TxState::Finalized {
                    result: TxResult::Receipt(_),
                    ..
                }) => {
                    return SettleResponse {
                        success: true,
                        error_reason: None,
                        error_message: None,
                        payer: Some(payer.to_checksum(None)),
                        transaction: tx.to_string(),
                        network: self.asset.network(),
                        amount: Some(checked.amount.to_string()),
                    }
                }
                Ok(TxState::Finalized {
                    result: TxResult::Error(api::ErrorDetail { code, message }),
                    ..
                }) => {
                    // A refused transaction does not use its nonce: re-read the key's next one.
                    self.forget_nonce(submitter).await;
                    let reason = match code.as_str() {
                        "authorization_used" => reason::NONCE_ALREADY_USED,
                        "insufficient_balance" => reason::INSUFFICIENT_BALANCE,
                        "authorization_expired" => reason::VALID_BEFORE,
                        _ => reason::TRANSACTION_FAILED,
                    };
                    return self.failure(
                        Invalid::new(
                            reason,
                            format!("settlement failed on chain: {message} ({code})"),
                        )
                        .payer(payer),
                        Some(tx),
                    );
                }
                Ok(TxState::Rejected {
                    error: api::ErrorDetail { message, .. },
                }) => {
                    // The node dropped it (and the key's queue behind it): re-read the nonce.
                    self.forget_nonce(submitter).await;
                    return self.failure(
                        Invalid::new(
                            reason::TRANSACTION_FAILED,
                            format!("the node dropped the settlement: {message}"),
                        )
                        .payer(payer),
                        Some(tx),
                    );
                }
                Ok(TxState::Pending)
                    if U256::from(self.config.clock.now_secs())
                        > checked.authorization.validBefore + U256::from(5) =>
                {
                    // Expired while waiting: no block can include it any more, and until the node
                    // drops it, it holds back this key's later transactions.
                    self.submitters[submitter]
                        .blocked
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(%tx, "settlement expired in the mempool; its key is blocked");
                    return self.failure(
                        Invalid::new(
                            reason::VALID_BEFORE,
                            format!("settlement {tx} expired before a block included it; nothing was charged"),
                        )
                        .payer(payer),
                        Some(tx),
                    );
                }
                // Unknown to the node (a restart) or unreachable for now: ask again.
                Ok(TxState::Pending) | Err(_) => {}
            }
            if Instant::now() + wait > deadline {
                // Not final after the whole timeout: this key's queue is stuck or the node is
                // overwhelmed. Send new settlements through other keys until it drains.
                self.submitters[submitter]
                    .blocked
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return SettleResponse {
                    success: false,
                    error_reason: Some(reason::SETTLEMENT_PENDING.to_string()),
                    error_message: Some(format!(
                        "submitted as {tx} but not final after {:?}; settle again to get the result",
                        self.config.settle_timeout
                    )),
                    payer: Some(payer.to_checksum(None)),
                    transaction: tx.to_string(),
                    network: self.asset.network(),
                    amount: Some(checked.amount.to_string()),
                };
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(100));
        }
    }
}

fn is_pending(response: &SettleResponse) -> bool {
    response.error_reason.as_deref() == Some(reason::SETTLEMENT_PENDING)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AuthorizationJson, ExactEvmPayload, PaymentPayload};
    use alloy_primitives::address;

    /// The x402 spec's example payment, verified at a time inside its window.
    fn golden() -> (Asset, AnyPayment, PaymentRequirements) {
        let asset = Asset {
            chain_id: 84532,
            address: address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            name: "USDC".into(),
            version: "2".into(),
        };
        let requirements = PaymentRequirements {
            scheme: "exact".into(),
            network: "eip155:84532".into(),
            amount: "10000".into(),
            asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
            pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
            max_timeout_seconds: 60,
            extra: Some(serde_json::json!({"name": "USDC", "version": "2"})),
        };
        let payment = AnyPayment::V2(PaymentPayload {
            x402_version: 2,
            resource: None,
            accepted: requirements.clone(),
            payload: ExactEvmPayload {
                signature: "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c".into(),
                authorization: AuthorizationJson {
                    from: "0x857b06519E91e3A54538791bDbb0E22373e36b66".into(),
                    to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
                    value: "10000".into(),
                    valid_after: "1740672089".into(),
                    valid_before: "1740672154".into(),
                    nonce: "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480".into(),
                },
            },
            extensions: None,
        });
        (asset, payment, requirements)
    }

    fn with_auth(payment: &AnyPayment, f: impl Fn(&mut AuthorizationJson)) -> AnyPayment {
        let AnyPayment::V2(mut p) = payment.clone() else {
            unreachable!()
        };
        f(&mut p.payload.authorization);
        AnyPayment::V2(p)
    }

    const INSIDE: u64 = 1_740_672_100;

    #[test]
    fn the_spec_golden_payment_verifies_with_an_injected_clock() {
        let (asset, payment, requirements) = golden();
        let checked = check_stateless(&asset, &payment, &requirements, INSIDE).unwrap();
        assert_eq!(
            checked.authorization.from,
            address!("0x857b06519E91e3A54538791bDbb0E22373e36b66")
        );
        assert_eq!(checked.amount, 10_000);
        // With the real clock (long after the window) it is expired.
        let err =
            check_stateless(&asset, &payment, &requirements, SystemClock.now_secs()).unwrap_err();
        assert_eq!(err.reason, reason::VALID_BEFORE);
        // Before the window: not valid yet.
        let err = check_stateless(&asset, &payment, &requirements, 1_740_672_000).unwrap_err();
        assert_eq!(err.reason, reason::VALID_AFTER);
        // Within the 6-second margin of validBefore: refused as expiring.
        let err = check_stateless(&asset, &payment, &requirements, 1_740_672_149).unwrap_err();
        assert_eq!(err.reason, reason::VALID_BEFORE);
    }

    #[test]
    fn tampered_golden_fields_fail_with_the_right_code() {
        let (asset, payment, requirements) = golden();
        let cases: Vec<(AnyPayment, PaymentRequirements, &str)> = vec![
            (
                with_auth(&payment, |a| a.value = "10001".into()),
                requirements.clone(),
                reason::INVALID_SIGNATURE,
            ),
            (
                with_auth(&payment, |a| {
                    a.to = "0x0000000000000000000000000000000000000001".into()
                }),
                requirements.clone(),
                reason::INVALID_SIGNATURE,
            ),
            (
                with_auth(&payment, |a| a.valid_before = "1740672155".into()),
                requirements.clone(),
                reason::INVALID_SIGNATURE,
            ),
            (
                with_auth(&payment, |a| a.nonce = format!("0x{}", "11".repeat(32))),
                requirements.clone(),
                reason::INVALID_SIGNATURE,
            ),
            (
                with_auth(&payment, |a| a.value = "ten".into()),
                requirements.clone(),
                reason::INVALID_PAYLOAD,
            ),
            (
                with_auth(&payment, |a| a.from = "0x12".into()),
                requirements.clone(),
                reason::INVALID_PAYLOAD,
            ),
            (
                payment.clone(),
                PaymentRequirements {
                    amount: "20000".into(),
                    ..requirements.clone()
                },
                reason::VALUE_MISMATCH,
            ),
            (
                payment.clone(),
                PaymentRequirements {
                    pay_to: "0x0000000000000000000000000000000000000002".into(),
                    ..requirements.clone()
                },
                reason::RECIPIENT_MISMATCH,
            ),
            (
                payment.clone(),
                PaymentRequirements {
                    network: "eip155:8453".into(),
                    ..requirements.clone()
                },
                reason::INVALID_NETWORK,
            ),
            (
                payment.clone(),
                PaymentRequirements {
                    asset: "0x0000000000000000000000000000000000000003".into(),
                    ..requirements.clone()
                },
                reason::ASSET_MISMATCH,
            ),
            (
                payment.clone(),
                PaymentRequirements {
                    scheme: "upto".into(),
                    ..requirements.clone()
                },
                reason::UNSUPPORTED_SCHEME,
            ),
            (
                payment.clone(),
                PaymentRequirements {
                    extra: None,
                    ..requirements.clone()
                },
                reason::MISSING_EIP712_DOMAIN,
            ),
            (
                payment.clone(),
                PaymentRequirements {
                    extra: Some(serde_json::json!({"name": "USD Coin", "version": "2"})),
                    ..requirements.clone()
                },
                reason::TOKEN_NAME_MISMATCH,
            ),
        ];
        for (payment, requirements, expected) in cases {
            let err = check_stateless(&asset, &payment, &requirements, INSIDE).unwrap_err();
            assert_eq!(err.reason, expected, "{}", err.message);
        }
        let AnyPayment::V2(mut other_network) = payment.clone() else {
            unreachable!()
        };
        other_network.accepted.network = "eip155:1".into();
        let err = check_stateless(
            &asset,
            &AnyPayment::V2(other_network),
            &requirements,
            INSIDE,
        )
        .unwrap_err();
        assert_eq!(err.reason, reason::NETWORK_MISMATCH);
        let AnyPayment::V2(mut bad_sig) = payment else {
            unreachable!()
        };
        bad_sig.payload.signature = "0x1234".into();
        let err =
            check_stateless(&asset, &AnyPayment::V2(bad_sig), &requirements, INSIDE).unwrap_err();
        assert_eq!(err.reason, reason::FAILED_TO_PARSE_SIGNATURE);
    }
}
