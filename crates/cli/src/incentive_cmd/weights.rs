//! `mycel weights`: set weights, or commit to them and reveal them later (commit-reveal subnets).

use super::*;

/// `UID=W,UID=W` with non-negative decimal weights, scaled so the largest is 65535 (what the
/// chain stores), in integers: w · 65535 / max, rounded half up.
pub(super) fn parse_weights(text: &str) -> Result<(Vec<u16>, Vec<u16>)> {
    let mut uids = Vec::new();
    let mut raw = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (uid, weight) = part.split_once('=').ok_or_else(|| {
            anyhow!("--weights: '{part}' is not UID=WEIGHT (example: --weights 1=0.7,2=0.3)")
        })?;
        let uid: u16 = uid.trim().parse().map_err(|_| {
            anyhow!(
                "--weights: '{}' is not a UID (a whole number 0-65535)",
                uid.trim()
            )
        })?;
        if uids.contains(&uid) {
            bail!("--weights: UID {uid} is given twice");
        }
        let weight = parse_amount(weight.trim(), Token::Myc).map_err(|_| {
            anyhow!(
                "--weights: '{}' (for UID {uid}) is not a non-negative number with at most 9 decimals",
                weight.trim()
            )
        })?;
        uids.push(uid);
        raw.push(weight);
    }
    if uids.is_empty() {
        bail!("--weights is empty: give UID=WEIGHT pairs, e.g. --weights 1=0.7,2=0.3");
    }
    let max = raw.iter().copied().max().unwrap_or(0);
    if max == 0 {
        bail!("--weights: every weight is 0; give at least one UID a positive weight");
    }
    let values = raw
        .iter()
        .map(|w| ((w * 65_535 * 2 + max) / (max * 2)) as u16)
        .collect();
    Ok((uids, values))
}

pub(super) fn weights_set(args: WeightsSetArgs) -> Result<()> {
    let (uids, values) = parse_weights(&args.weights)?;
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let (netuid, version_key) = (args.netuid, args.version_key);
    let shown = weights_text(&uids, &values);
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::SetWeights(SetWeights {
                from,
                netuid,
                uids,
                values,
                versionKey: version_key,
                nonce,
                fee,
            })
        },
    )?;
    if let Some(done) = done.filter(|_| !args.client.json) {
        let uid = done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::WeightsSet { uid, .. } => Some(uid.to_string()),
            _ => None,
        });
        println!(
            "UID {} of subnet {netuid} set weights {shown}",
            uid.unwrap_or_else(|| "?".into())
        );
    }
    Ok(())
}

/// What `weights commit` saves for `weights reveal`.
#[derive(Debug, Serialize, Deserialize)]
struct SavedCommit {
    netuid: u16,
    hotkey: Address,
    uids: Vec<u16>,
    values: Vec<u16>,
    salt: B256,
    version_key: u64,
    hash: B256,
    /// The block the commit was finalized in (unknown with --no-wait).
    block: Option<u64>,
}

fn commits_dir(args: &CommitsDirArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.commits_dir {
        return Ok(dir.clone());
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set: pass --commits-dir DIR or set MYCEL_COMMITS"))?;
    Ok(PathBuf::from(home).join(".mycel").join("commits"))
}

fn commit_file(dir: &Path, netuid: u16, hotkey: Address, hash: B256) -> PathBuf {
    dir.join(format!("{netuid}-{}-{hash}.json", hex::encode(hotkey)))
}

/// Writes `bytes` to `path` readable by the owner only (the salt keeps the weights secret).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

pub(super) fn weights_commit(args: WeightsCommitArgs) -> Result<()> {
    let (uids, values) = parse_weights(&args.weights)?;
    let dir = commits_dir(&args.commits)?;
    let signer = args.send.load_signer(true)?;
    let hotkey = signer.address();
    let (netuid, version_key) = (args.netuid, args.version_key);
    let salt = B256::from(rand::random::<[u8; 32]>());
    let hash = weights_commit_hash(hotkey, netuid, &uids, &values, salt, version_key);
    let node = args.client.connect()?;
    let subnet = node.subnet(netuid)?;
    if !subnet.params.commit_reveal {
        bail!("subnet {netuid} does not use commit-reveal: set weights directly with `mycel weights set`");
    }
    // Saved before sending: a commit on chain whose salt was lost could never be revealed.
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let path = commit_file(&dir, netuid, hotkey, hash);
    let mut saved = SavedCommit {
        netuid,
        hotkey,
        uids: uids.clone(),
        values: values.clone(),
        salt,
        version_key,
        hash,
        block: None,
    };
    write_private(&path, &serde_json::to_vec_pretty(&saved)?)?;
    let result = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::CommitWeights(CommitWeights {
                from,
                netuid,
                commitHash: hash,
                nonce,
                fee,
            })
        },
    );
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            // Nothing reached the chain: the saved file would only confuse a later reveal.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    if let Some(done) = &done {
        saved.block = Some(done.height);
        std::fs::remove_file(&path).ok();
        write_private(&path, &serde_json::to_vec_pretty(&saved)?)?;
    }
    if args.client.json {
        return Ok(());
    }
    println!(
        "committed {hash} on subnet {netuid}: weights {}",
        weights_text(&uids, &values)
    );
    println!("saved the weights and salt to {}", path.display());
    if let Some(block) = saved.block {
        let (tempo, period) = (subnet.params.tempo, subnet.params.reveal_period);
        let window =
            mycel_state::subnets::EpochSchedule::new(netuid, tempo).reveal_window(block, period);
        let (first, last) = (window.start(), window.end());
        println!("reveal with `mycel weights reveal --netuid {netuid}` from block {first} to block {last}");
    }
    Ok(())
}

pub(super) fn weights_reveal(args: WeightsRevealArgs) -> Result<()> {
    let dir = commits_dir(&args.commits)?;
    let signer = args.send.load_signer(true)?;
    let hotkey = signer.address();
    let netuid = args.netuid;
    let prefix = format!("{netuid}-{}-", hex::encode(hotkey));
    let mut saved = Vec::new();
    if dir.is_dir() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !(name.starts_with(&prefix) && name.ends_with(".json")) {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let commit: SavedCommit = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a saved commit", path.display()))?;
            saved.push((path, commit));
        }
    }
    if saved.is_empty() {
        bail!(
            "no saved commit of hotkey {hotkey} on subnet {netuid} in {}: commit first with `mycel weights commit` (or point --commits-dir where it saved)",
            dir.display()
        );
    }
    let (path, commit) = match args.hash {
        Some(hash) => saved
            .into_iter()
            .find(|(_, c)| c.hash == hash)
            .ok_or_else(|| {
                anyhow!(
                    "no saved commit has hash {hash} (see the files in {})",
                    dir.display()
                )
            })?,
        None => saved
            .into_iter()
            .min_by_key(|(_, c)| c.block.unwrap_or(u64::MAX))
            .expect("not empty"),
    };
    let node = args.client.connect()?;
    let shown = weights_text(&commit.uids, &commit.values);
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::RevealWeights(RevealWeights {
                from,
                netuid,
                uids: commit.uids.clone(),
                values: commit.values.clone(),
                salt: commit.salt,
                versionKey: commit.version_key,
                nonce,
                fee,
            })
        },
    )?;
    if done.is_some() {
        std::fs::remove_file(&path)
            .with_context(|| format!("revealed, but cannot delete {}", path.display()))?;
        if !args.client.json {
            println!(
                "revealed {} on subnet {netuid}: weights {shown}",
                commit.hash
            );
        }
    }
    Ok(())
}

fn weights_text(uids: &[u16], values: &[u16]) -> String {
    uids.iter()
        .zip(values)
        .map(|(u, v)| format!("{u}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
