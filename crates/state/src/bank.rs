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

/// The accounts a transaction changes, each change applied to the latest version of the account
/// it touches (the sender, after its fee and nonce, first): payer, receiver and sender may be the
/// same account.
pub(crate) struct Touched<'a> {
    state: &'a crate::State,
    accounts: std::collections::BTreeMap<alloy_primitives::Address, Account>,
}

impl<'a> Touched<'a> {
    pub(crate) fn new(
        state: &'a crate::State,
        sender: alloy_primitives::Address,
        account: Account,
    ) -> Self {
        Touched {
            state,
            accounts: std::collections::BTreeMap::from([(sender, account)]),
        }
    }

    fn get(&self, address: &alloy_primitives::Address) -> Account {
        self.accounts
            .get(address)
            .copied()
            .unwrap_or_else(|| self.state.account(address))
    }

    pub(crate) fn debit(
        &mut self,
        address: alloy_primitives::Address,
        token: Token,
        value: Amount,
    ) -> Result<(), TxError> {
        let mut account = self.get(&address);
        let slot = match token {
            Token::Myc => &mut account.myc,
            Token::Musd => &mut account.musd,
        };
        *slot = slot
            .checked_sub(value)
            .ok_or(TxError::InsufficientBalance {
                token,
                needed: value.to_string(),
                available: slot.to_string(),
            })?;
        self.accounts.insert(address, account);
        Ok(())
    }

    pub(crate) fn credit(
        &mut self,
        address: alloy_primitives::Address,
        token: Token,
        value: Amount,
    ) -> Result<(), TxError> {
        let account = credit(self.get(&address), token, value)?;
        self.accounts.insert(address, account);
        Ok(())
    }

    pub(crate) fn writes(self) -> Vec<(alloy_primitives::Address, Account)> {
        self.accounts.into_iter().collect()
    }
}
