//! `mycel key`: keys in standard Ethereum JSON keystores (Web3 Secret Storage v3, scrypt + AES-128-CTR),
//! so the same files work with geth, foundry's `cast wallet` and any wallet that imports keystores.
//!
//! Guarantees: a key file is written with mode 0600 inside a keystore directory of mode 0700 and is
//! never overwritten; a private key or passphrase is never printed or logged. Each file also carries
//! the geth-style `address` field, so `key list` needs no passphrase.

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Where keys live unless `--keystore` or `MYCEL_KEYSTORE` says otherwise: `~/.mycel/keys`.
const DEFAULT_KEYSTORE: &str = ".mycel/keys";

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new random key, store it encrypted, and print its address.
    New(NewArgs),
    /// List the keys in the keystore directory: name and address.
    List(ListArgs),
    /// Import a raw private key (hex, from a file) into an encrypted keystore.
    Import(ImportArgs),
    /// Print the address of a key, given its name in the keystore or the path of a keystore file.
    ExportAddress(ExportAddressArgs),
}

/// Where the keystores are.
#[derive(Debug, Clone, Args)]
pub struct KeystoreArgs {
    /// Directory of the encrypted key files [default: ~/.mycel/keys].
    #[arg(long, value_name = "DIR", env = "MYCEL_KEYSTORE")]
    pub keystore: Option<PathBuf>,
}

/// Where the passphrase comes from.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// Read the keystore passphrase from the first line of FILE. Without it the passphrase comes
    /// from the MYCEL_PASSWORD environment variable, else a prompt on the terminal, else one line
    /// of standard input.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Name of the key in the keystore (letters, digits, '.', '_', '-') [default: its address].
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Print a JSON object instead of the address alone.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// File holding the private key as 64 hex digits (with or without 0x). Delete it afterwards.
    #[arg(long, value_name = "FILE")]
    pub private_key_file: PathBuf,
    /// Name of the key in the keystore (letters, digits, '.', '_', '-') [default: its address].
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Print a JSON object instead of the address alone.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportAddressArgs {
    /// A key name in the keystore, or the path of a keystore file.
    #[arg(value_name = "NAME|FILE")]
    pub key: String,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Print a JSON object instead of the address alone.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::New(args) => {
            let dir = keystore_dir(&args.keystore)?;
            let signer = PrivateKeySigner::random();
            let name = args.name.unwrap_or_else(|| default_name(signer.address()));
            check_name(&name)?;
            ensure_absent(&dir, &name)?;
            let passphrase = new_passphrase(&args.password)?;
            let path = store_key(&dir, &name, &signer, &passphrase)?;
            print_key(&name, signer.address(), &path, args.json)
        }
        KeyCommand::Import(args) => {
            let signer = read_private_key_file(&args.private_key_file)?;
            let dir = keystore_dir(&args.keystore)?;
            let name = args.name.unwrap_or_else(|| default_name(signer.address()));
            check_name(&name)?;
            ensure_absent(&dir, &name)?;
            let passphrase = new_passphrase(&args.password)?;
            let path = store_key(&dir, &name, &signer, &passphrase)?;
            print_key(&name, signer.address(), &path, args.json)
        }
        KeyCommand::List(args) => {
            let dir = keystore_dir(&args.keystore)?;
            let keys = list_keys(&dir)?;
            if args.json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "name": k.name,
                            "address": k.address.map(|a| a.to_checksum(None)),
                            "path": k.path,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if keys.is_empty() {
                eprintln!(
                    "no keys in {}: create one with `mycel key new`",
                    dir.display()
                );
            } else {
                let width = keys.iter().map(|k| k.name.len()).max().unwrap_or(4).max(4);
                println!("{:<width$}  ADDRESS", "NAME");
                for k in &keys {
                    let address = k
                        .address
                        .map(|a| a.to_checksum(None))
                        .unwrap_or_else(|| "(not recorded: use `mycel key export-address`)".into());
                    println!("{:<width$}  {address}", k.name);
                }
            }
            Ok(())
        }
        KeyCommand::ExportAddress(args) => {
            let path = resolve_key(&args.keystore, &args.key)?;
            let address = match recorded_address(&path)? {
                Some(address) => address,
                // A keystore without the geth `address` field: the passphrase is the only way in.
                None => unlock(&path, &args.password)?.address(),
            };
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"address": address.to_checksum(None)})
                );
            } else {
                println!("{}", address.to_checksum(None));
            }
            Ok(())
        }
    }
}

/// Loads and decrypts the key `spec` (a name in the keystore or a keystore file path).
pub fn load_signer(
    keystore: &KeystoreArgs,
    spec: &str,
    password: &PasswordArgs,
) -> Result<PrivateKeySigner> {
    let path = resolve_key(keystore, spec)?;
    unlock(&path, password)
}

/// The address of the key `spec` as its file records it (no passphrase needed).
pub fn address_of(keystore: &KeystoreArgs, spec: &str) -> Result<Address> {
    let path = resolve_key(keystore, spec)?;
    recorded_address(&path)?.ok_or_else(|| {
        anyhow!(
            "{} does not record its address: give the address itself (see `mycel key export-address {spec}`)",
            path.display()
        )
    })
}

/// The keystore directory, from `--keystore`, `MYCEL_KEYSTORE`, or `~/.mycel/keys`.
pub fn keystore_dir(args: &KeystoreArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.keystore {
        return Ok(dir.clone());
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set: pass --keystore DIR or set MYCEL_KEYSTORE"))?;
    Ok(PathBuf::from(home).join(DEFAULT_KEYSTORE))
}

/// A name in the keystore, or the path of a keystore file.
fn resolve_key(keystore: &KeystoreArgs, spec: &str) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    let dir = keystore_dir(keystore)?;
    if check_name(spec).is_ok() {
        for candidate in [dir.join(format!("{spec}.json")), dir.join(spec)] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "no key named '{spec}' in {} and no keystore file at that path: see `mycel key list`, \
         or create one with `mycel key new --name {spec}`",
        dir.display()
    )
}

fn default_name(address: Address) -> String {
    address.to_checksum(None)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!(
            "'{name}' is not a valid key name: use 1 to 64 letters, digits, '.', '_' or '-', \
             not starting with '.'"
        );
    }
    Ok(())
}

fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn ensure_absent(dir: &Path, name: &str) -> Result<()> {
    let path = key_path(dir, name);
    if path.exists() {
        bail!(
            "a key named '{name}' already exists at {}: choose another --name (keys are never overwritten)",
            path.display()
        );
    }
    Ok(())
}

/// Creates the keystore directory with mode 0700. An existing directory is left as it is (it may be
/// one the user shares on purpose), with a warning if other users can read it.
fn prepare_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if dir.is_dir() {
            let mode = std::fs::metadata(dir)
                .with_context(|| format!("cannot inspect {}", dir.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: other users can list the keystore directory {} (mode {:o}); `chmod 700 {}` to fix",
                    dir.display(),
                    mode & 0o777,
                    dir.display()
                );
            }
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the keystore directory {}", dir.display()))?;
        // The mode given to mkdir is reduced by the umask; make it exactly 0700.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the keystore directory {}", dir.display()))?;
    Ok(())
}

/// Encrypts `signer` into `<dir>/<name>.json` (mode 0600, never overwriting) and returns the path.
fn store_key(
    dir: &Path,
    name: &str,
    signer: &PrivateKeySigner,
    passphrase: &str,
) -> Result<PathBuf> {
    prepare_dir(dir)?;
    // eth-keystore writes with the process umask, so it writes a scratch file inside the 0700
    // directory; the real file is created 0600 with `create_new` and the scratch file removed.
    let scratch_name = format!(".new-{}", hex::encode(rand::random::<[u8; 8]>()));
    let scratch = dir.join(&scratch_name);
    let result = (|| -> Result<PathBuf> {
        PrivateKeySigner::encrypt_keystore(
            dir,
            &mut rand::thread_rng(),
            signer.to_bytes(),
            passphrase,
            Some(&scratch_name),
        )
        .map_err(|e| anyhow!("cannot encrypt the key: {e}"))?;
        restrict_file(&scratch)?;
        let text = std::fs::read_to_string(&scratch)
            .with_context(|| format!("cannot read back {}", scratch.display()))?;
        let mut json: serde_json::Value = serde_json::from_str(&text).context("keystore JSON")?;
        // geth's field: lower-case hex without 0x.
        json["address"] = serde_json::Value::String(hex::encode(signer.address()));
        let path = key_path(dir, name);
        write_new_private_file(&path, serde_json::to_string(&json)?.as_bytes())?;
        Ok(path)
    })();
    let _ = std::fs::remove_file(&scratch);
    result
}

fn restrict_file(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot set mode 0600 on {}", path.display()))?;
    }
    Ok(())
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() {
            format!("{} already exists: choose another --name", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    restrict_file(path)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read_private_key_file(path: &Path) -> Result<PrivateKeySigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the private key file {}", path.display()))?;
    let trimmed = text.trim();
    let raw = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    // The message never repeats the file's contents: it is a secret.
    if raw.len() != 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{} does not hold a private key: expected 64 hex digits (32 bytes), optionally prefixed with 0x",
            path.display()
        );
    }
    let bytes = hex::decode(raw).map_err(|_| anyhow!("{} is not valid hex", path.display()))?;
    PrivateKeySigner::from_slice(&bytes).map_err(|_| {
        anyhow!(
            "{} holds 32 bytes that are not a valid secp256k1 private key",
            path.display()
        )
    })
}

struct ListedKey {
    name: String,
    address: Option<Address>,
    path: PathBuf,
}

fn list_keys(dir: &Path) -> Result<Vec<ListedKey>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the keystore directory {}", dir.display()))
        }
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry
            .with_context(|| format!("cannot read the keystore directory {}", dir.display()))?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') || !path.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if json.get("crypto").or_else(|| json.get("Crypto")).is_none() {
            continue;
        }
        let name = file_name
            .strip_suffix(".json")
            .unwrap_or(&file_name)
            .to_string();
        keys.push(ListedKey {
            name,
            address: address_field(&json),
            path,
        });
    }
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
}

fn address_field(json: &serde_json::Value) -> Option<Address> {
    let s = json.get("address")?.as_str()?;
    let raw = s.strip_prefix("0x").unwrap_or(s);
    format!("0x{raw}").parse().ok()
}

/// The address a keystore file records about itself (geth's `address` field), if any.
fn recorded_address(path: &Path) -> Result<Option<Address>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON keystore", path.display()))?;
    if json.get("crypto").or_else(|| json.get("Crypto")).is_none() {
        bail!(
            "{} is not an Ethereum JSON keystore (it has no `crypto` section)",
            path.display()
        );
    }
    Ok(address_field(&json))
}

fn unlock(path: &Path, password: &PasswordArgs) -> Result<PrivateKeySigner> {
    let passphrase = read_passphrase(password, &format!("Passphrase for {}: ", path.display()))?;
    let signer = PrivateKeySigner::decrypt_keystore(path, &passphrase).map_err(|e| {
        if e.to_string().contains("Mac Mismatch") {
            anyhow!("wrong passphrase for {}", path.display())
        } else {
            anyhow!("cannot open the keystore {}: {e}", path.display())
        }
    })?;
    if let Some(recorded) = recorded_address(path)? {
        if recorded != signer.address() {
            bail!(
                "{} says it holds {recorded} but decrypts to {}: the file was altered",
                path.display(),
                signer.address()
            );
        }
    }
    Ok(signer)
}

/// The passphrase for a new key: from a file or MYCEL_PASSWORD, or typed twice on a terminal.
fn new_passphrase(args: &PasswordArgs) -> Result<String> {
    let interactive = args.password_file.is_none()
        && std::env::var_os("MYCEL_PASSWORD").is_none()
        && std::io::stdin().is_terminal();
    let passphrase = read_passphrase(args, "Passphrase for the new key: ")?;
    if passphrase.is_empty() {
        bail!("the passphrase is empty: choose one that protects the key file");
    }
    if interactive {
        let again = rpassword::prompt_password("Repeat the passphrase: ")
            .context("cannot read the passphrase")?;
        if again != passphrase {
            bail!("the two passphrases differ: run the command again");
        }
    }
    Ok(passphrase)
}

/// `--password-file`, else MYCEL_PASSWORD, else a prompt on the terminal, else a line of stdin.
fn read_passphrase(args: &PasswordArgs, prompt: &str) -> Result<String> {
    if let Some(file) = &args.password_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the passphrase file {}", file.display()))?;
        return Ok(first_line(&text).to_string());
    }
    if let Ok(passphrase) = std::env::var("MYCEL_PASSWORD") {
        return Ok(passphrase);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt)
            .context("cannot read the passphrase from the terminal");
    }
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the passphrase from stdin")?;
    if read == 0 {
        bail!("no passphrase: pass --password-file FILE, set MYCEL_PASSWORD, or run in a terminal");
    }
    Ok(first_line(&line).to_string())
}

fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or("");
    line.strip_suffix('\r').unwrap_or(line)
}

fn print_key(name: &str, address: Address, path: &Path, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::json!({"name": name, "address": address.to_checksum(None), "path": path})
        );
    } else {
        println!("{}", address.to_checksum(None));
        eprintln!("saved key '{name}' to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("0xAbC-1_2.x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("../etc").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(".hidden").is_err());
    }

    #[test]
    fn first_line_drops_line_endings() {
        assert_eq!(first_line("pw\r\nrest"), "pw");
        assert_eq!(first_line("pw\n"), "pw");
        assert_eq!(first_line("pw"), "pw");
        assert_eq!(first_line(""), "");
    }
}
