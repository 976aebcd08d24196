//! Revenue share: after a payment settles, a share of its price is owed to the coldkey of the
//! miner that served it; owed amounts are added up per coldkey and paid in batches by ordinary
//! mUSD `Transfer` transactions signed by the pay-to key, one per coldkey per batch (so a busy
//! miner costs one fee per batch, not one per request).
//!
//! Contract: an amount is owed only after its payment settled on chain (the paywall calls
//! [`RevenueShare::credit`] on a successful settlement); a transfer the node refuses is owed again
//! and retried in the next batch. Shares are in parts per million of the price, rounded down.
//! Does not: persist what is owed across restarts (what was not yet paid out is lost with the
//! process; a batch interval of a few seconds keeps that small), or buy the subnet's alpha (the
//! chain's pools trade MYC for alpha, not mUSD; docs/payments.md).

use alloy_primitives::{Address, Bytes, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::{ClientError, NodeClient};
use mycel_types::{Amount, SignedTx, Transfer, TxKind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Parts per million: 1_000_000 is the whole price.
pub const PPM: u64 = 1_000_000;

/// How the share is paid.
#[derive(Debug, Clone)]
pub struct RevenueConfig {
    /// The miner's share of each settled price, in parts per million.
    pub share_ppm: u64,
    /// How often owed shares are paid out.
    pub interval: Duration,
}

/// Owed and paid shares, and the key that pays them.
pub struct RevenueShare {
    node: NodeClient,
    signer: PrivateKeySigner,
    chain_id: u64,
    musd: Address,
    fee: Amount,
    config: RevenueConfig,
    owed: Mutex<BTreeMap<Address, Amount>>,
    paid: Mutex<BTreeMap<Address, Amount>>,
    transfers: AtomicU64,
    refused: AtomicU64,
}

impl RevenueShare {
    /// Reads the chain's id, mUSD asset and minimum fee from the node.
    pub async fn connect(
        node: NodeClient,
        signer: PrivateKeySigner,
        config: RevenueConfig,
    ) -> Result<RevenueShare, ClientError> {
        let params = node.chain_params().await?;
        let musd = node.musd().await?;
        Ok(RevenueShare {
            node,
            signer,
            chain_id: params.chain_id,
            musd: musd.asset,
            fee: params.min_fee,
            config,
            owed: Mutex::new(BTreeMap::new()),
            paid: Mutex::new(BTreeMap::new()),
            transfers: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// The paying account (the gateway's pay-to).
    pub fn payer(&self) -> Address {
        self.signer.address()
    }

    pub fn config(&self) -> &RevenueConfig {
        &self.config
    }

    /// The share of `price` owed to the miner.
    pub fn share_of(&self, price: Amount) -> Amount {
        price / u128::from(PPM) * u128::from(self.config.share_ppm)
            + price % u128::from(PPM) * u128::from(self.config.share_ppm) / u128::from(PPM)
    }

    /// Records that a payment of `price` settled for an answer `coldkey`'s miner served.
    pub fn credit(&self, coldkey: Address, price: Amount) {
        let share = self.share_of(price);
        if share == 0 {
            return;
        }
        let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        let entry = owed.entry(coldkey).or_default();
        *entry = entry.saturating_add(share);
    }

    /// Pays every owed share now: one transfer per coldkey. Returns how many were submitted.
    pub async fn flush(&self) -> usize {
        let owed = std::mem::take(&mut *self.owed.lock().unwrap_or_else(|e| e.into_inner()));
        if owed.is_empty() {
            return 0;
        }
        let mut nonce = match self.node.account(self.payer()).await {
            Ok(a) => a.next_nonce,
            Err(e) => {
                tracing::warn!("revenue share: cannot read the pay-to account: {e}");
                self.owe_again(owed);
                return 0;
            }
        };
        let mut submitted = 0;
        let mut unpaid = BTreeMap::new();
        for (coldkey, amount) in owed {
            let kind = TxKind::Transfer(Transfer {
                from: self.payer(),
                to: coldkey,
                token: self.musd,
                amount: U256::from(amount),
                memo: Bytes::from_static(b"mycel gateway: miner revenue share"),
                nonce,
                fee: U256::from(self.fee),
            });
            let result = match SignedTx::sign(kind, self.chain_id, &self.signer) {
                Ok(tx) => self.node.submit(&tx).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot sign: {e}")),
            };
            match result {
                Ok(hash) => {
                    tracing::info!(%coldkey, amount = %amount, tx = %hash, "revenue share paid");
                    nonce += 1;
                    submitted += 1;
                    self.transfers.fetch_add(1, Relaxed);
                    *self
                        .paid
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(coldkey)
                        .or_default() += amount;
                }
                Err(e) => {
                    tracing::warn!(%coldkey, "revenue share transfer refused, retried next batch: {e}");
                    self.refused.fetch_add(1, Relaxed);
                    unpaid.insert(coldkey, amount);
                }
            }
        }
        self.owe_again(unpaid);
        submitted
    }

    fn owe_again(&self, amounts: BTreeMap<Address, Amount>) {
        let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        for (coldkey, amount) in amounts {
            let entry = owed.entry(coldkey).or_default();
            *entry = entry.saturating_add(amount);
        }
    }

    /// Pays out every `interval` (forever; spawn it).
    pub async fn run(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.interval).await;
            self.flush().await;
        }
    }

    /// Owed and paid amounts per coldkey (base units), for `GET /v1/miners`.
    pub fn status(&self) -> serde_json::Value {
        let owed = self.owed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let paid = self.paid.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let map = |m: BTreeMap<Address, Amount>| {
            m.into_iter()
                .map(|(k, v)| (k.to_checksum(None), serde_json::Value::from(v.to_string())))
                .collect::<serde_json::Map<_, _>>()
        };
        serde_json::json!({
            "payer": self.payer().to_checksum(None),
            "share_ppm": self.config.share_ppm,
            "interval_seconds": self.config.interval.as_secs_f64(),
            "owed": map(owed),
            "paid": map(paid),
            "transfers": self.transfers.load(Relaxed),
            "refused": self.refused.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(ppm: u64, price: Amount) -> Amount {
        let r = RevenueShare {
            node: NodeClient::new("http://127.0.0.1:1").expect("a node URL"),
            signer: PrivateKeySigner::random(),
            chain_id: 1,
            musd: Address::ZERO,
            fee: 0,
            config: RevenueConfig {
                share_ppm: ppm,
                interval: Duration::from_secs(1),
            },
            owed: Mutex::new(BTreeMap::new()),
            paid: Mutex::new(BTreeMap::new()),
            transfers: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        };
        r.credit(Address::ZERO, price);
        r.credit(Address::ZERO, price);
        let owed = r
            .owed
            .lock()
            .expect("lock")
            .get(&Address::ZERO)
            .copied()
            .unwrap_or(0);
        assert_eq!(owed, r.share_of(price).saturating_mul(2));
        r.share_of(price)
    }

    #[test]
    fn shares_round_down_and_never_overflow() {
        assert_eq!(share(500_000, 1_060), 530);
        assert_eq!(share(500_000, 1_061), 530);
        assert_eq!(share(PPM, 1_061), 1_061);
        assert_eq!(share(333_333, 3_000_000), 999_999);
        assert_eq!(share(PPM, u128::MAX), u128::MAX);
        assert_eq!(share(1, 999_999), 0);
    }
}
