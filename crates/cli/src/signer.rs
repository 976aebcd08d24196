//! Who signs: the one definition of the signer flags (`--key`, `--dev-account`, the keystore and
//! its passphrase) and of how a key named on the command line becomes a signer.
//!
//! Every command that signs flattens [`SignerArgs`]; the roles whose keys have other names
//! (`--hotkey`/`--coldkey` of `mycel miner` and `mycel validator`) resolve them with [`resolve`],
//! so a development account and a keystore key are loaded the same way everywhere.

use crate::keys::{self, KeystoreArgs, PasswordArgs};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use mycel_types::keys::{dev_signer, DEV_ACCOUNTS};

/// The signer of a command: a keystore key or a development account.
#[derive(Debug, Clone, Args)]
pub struct SignerArgs {
    /// Sign with this key: a name in the keystore or the path of a keystore file.
    #[arg(long, value_name = "FILE|NAME")]
    pub key: Option<String>,
    /// Sign with development account N (0-9) of the public devnet mnemonic. Devnets only: anyone
    /// can spend from these accounts.
    #[arg(long, value_name = "N")]
    pub dev_account: Option<u32>,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

impl SignerArgs {
    /// The signer the flags name; an error that says which flags to give if they name none.
    pub fn load(&self) -> Result<PrivateKeySigner> {
        self.load_if_given()?
            .ok_or_else(|| anyhow!("say who signs: --key FILE|NAME or --dev-account N"))
    }

    /// The signer the flags name, if they name one.
    pub fn load_if_given(&self) -> Result<Option<PrivateKeySigner>> {
        if self.key.is_some() && self.dev_account.is_some() {
            bail!("give one signer: --key or --dev-account, not both");
        }
        resolve(
            self.key.as_deref(),
            self.dev_account,
            "--dev-account",
            &self.keystore,
            &self.password,
        )
    }
}

/// The key `spec` (a keystore name or file, unlocked with the passphrase) or else development
/// account `dev` (named `dev_flag` in errors); `None` if neither is given.
pub fn resolve(
    spec: Option<&str>,
    dev: Option<u32>,
    dev_flag: &str,
    keystore: &KeystoreArgs,
    password: &PasswordArgs,
) -> Result<Option<PrivateKeySigner>> {
    match (spec, dev) {
        (Some(spec), _) => keys::load_signer(keystore, spec, password).map(Some),
        (None, Some(n)) => dev_account(n, dev_flag).map(Some),
        (None, None) => Ok(None),
    }
}

/// Development account `n`, named `flag` if it does not exist.
pub fn dev_account(n: u32, flag: &str) -> Result<PrivateKeySigner> {
    if n >= DEV_ACCOUNTS {
        bail!(
            "{flag} {n} does not exist: development accounts are 0 to {}",
            DEV_ACCOUNTS - 1
        );
    }
    dev_signer(n).map_err(|e| anyhow!("cannot derive development account {n}: {e}"))
}
