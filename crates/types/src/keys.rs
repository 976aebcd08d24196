//! Development accounts: keys derived from a published mnemonic, for devnets and tests only.
//!
//! The mnemonic is the well-known Ethereum development phrase, so the first accounts are the same
//! ones that Hardhat and Anvil print (0xf39F…2266 first). Anyone can spend from them: never use
//! them on a network with value.

use alloy_signer_local::{
    coins_bip39::English, LocalSignerError, MnemonicBuilder, PrivateKeySigner,
};

/// The published development mnemonic.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// How many development accounts a devnet funds.
pub const DEV_ACCOUNTS: u32 = 10;

/// The development key with BIP-44 index `index` (path m/44'/60'/0'/0/index).
pub fn dev_signer(index: u32) -> Result<PrivateKeySigner, LocalSignerError> {
    MnemonicBuilder::<English>::default()
        .phrase(DEV_MNEMONIC)
        .index(index)?
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn first_dev_accounts_are_the_published_ones() {
        assert_eq!(
            dev_signer(0).unwrap().address(),
            address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
        assert_eq!(
            dev_signer(1).unwrap().address(),
            address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
        );
    }
}
