//! Accounts and balances.

use crate::TxError;
use mycel_types::{genesis::amount_string, Amount, Token};
use serde::{Deserialize, Serialize};

/// One account: its balances in base units and its next nonce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(with = "amount_string")]
    pub myc: Amount,
    #[serde(with = "amount_string")]
    pub musd: Amount,
    pub nonce: u64,
}

impl Account {
    pub fn balance(&self, token: Token) -> Amount {
        match token {
            Token::Myc => self.myc,
            Token::Musd => self.musd,
        }
    }
}

pub(crate) fn credit(
    mut account: Account,
    token: Token,
    amount: Amount,
) -> Result<Account, TxError> {
    let slot = match token {
        Token::Myc => &mut account.myc,
        Token::Musd => &mut account.musd,
    };
    *slot = slot
        .checked_add(amount)
        .ok_or_else(|| TxError::AmountTooLarge(amount.to_string()))?;
    Ok(account)
}
