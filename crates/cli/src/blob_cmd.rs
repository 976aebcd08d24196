//! `mycel storage` (run a storage node) and `mycel blob` (store and read blobs), docs/storage.md.
//! The work is mycel-blob's ([`mycel_blob::node::start`], [`mycel_blob::publish`]); this parses
//! flags, shows progress and prints.

use crate::client::{print_json, ClientArgs};
use crate::http_limits::HttpLimitsArgs;
use crate::send::{self, SendArgs};
use crate::signer::SignerArgs;
use alloy_primitives::{B256, U256};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mycel_blob::publish::{self, Progress};
use mycel_client::api::{Event, StorageEvent};
use mycel_client::NodeClient;
use mycel_types::tx::{DeleteBatchItem, DeleteBlob, ExtendBatchItem, ExtendBlob};
use mycel_types::{format_amount, parse_amount, Token, TxKind};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Run a storage node: keep this node's slivers of the blobs the chain pays for, and serve them.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Where slivers are kept.
    #[arg(long, value_name = "DIR", default_value = "./mycel-storage")]
    pub dir: PathBuf,
    /// Address to serve on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7100")]
    pub listen: SocketAddr,
    /// The URL writers and readers reach this node at, registered on chain [default:
    /// http://LISTEN].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// MYC to lock when registering [default: the chain's minimum].
    #[arg(long, value_name = "MYC")]
    pub stake: Option<String>,
    /// Seconds between the node's rounds of upkeep: dropping expired blobs, rebuilding missing
    /// slivers, challenging the other nodes (once per storage epoch).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub maintain_every: u64,
    /// Publish blobs for HTTP clients: `PUT /v1/blobs?epochs=N` stores the request body as a
    /// blob paid by this node's key (`curl -T FILE URL/v1/blobs`). Needs --publish-token-file
    /// unless --listen is a loopback address.
    #[arg(long)]
    pub publish: bool,
    /// A file holding the bearer token publish callers must send (`Authorization: Bearer …`).
    #[arg(long, value_name = "FILE", requires = "publish")]
    pub publish_token_file: Option<PathBuf>,
    /// The largest upload the publisher stores, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = mycel_blob::publisher::PublisherConfig::DEFAULT_MAX_BYTES)]
    pub publish_max_bytes: u64,
    /// The most epochs one upload may ask the publisher to pay for.
    #[arg(long, value_name = "N", default_value_t = mycel_blob::publisher::PublisherConfig::DEFAULT_MAX_EPOCHS)]
    pub publish_max_epochs: u64,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub http: HttpLimitsArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Store a file: encode it, pay for its epochs, send every storage node its slivers, certify.
    /// Several files (or --batch) are stored as one batch blob of items, each with its own end.
    Put(PutArgs),
    /// Read a blob (or one item of a batch) back from the storage nodes into a file, checked
    /// against its id.
    Get(GetArgs),
    /// A blob's registration: status, size, paid epochs, committee.
    Status(StatusArgs),
    /// Pay for more epochs of a blob, or of one item of a batch (anyone may).
    Extend(ExtendArgs),
    /// End your blob (or one item of your batch) with the current epoch; the epochs no longer
    /// needed are refunded.
    Delete(DeleteArgs),
    /// The storage committee, the epoch and the price.
    Committee(CommitteeArgs),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The file to store; several are stored as one batch (items named by their file names).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Storage epochs to pay for, from the current one (for a batch: every item's).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub epochs: u64,
    /// Store even a single file as a batch (so more items' ends can be managed alike).
    #[arg(long)]
    pub batch: bool,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub blob_id: B256,
    /// Where to write the blob (or the item).
    #[arg(short, long, value_name = "FILE", required_unless_present = "list")]
    pub output: Option<PathBuf>,
    /// Read only the item of this name from a batch (refused once the item has ended).
    #[arg(long, value_name = "NAME", conflicts_with = "list")]
    pub item: Option<String>,
    /// List a batch's items (number, name, length, end epoch) instead of writing a file.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub blob_id: B256,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    pub blob_id: B256,
    #[arg(long, value_name = "N")]
    pub epochs: u64,
    /// Extend only item K of a batch (its number in `mycel blob get ID --list`); it pays only
    /// for the epochs it adds past the batch's end.
    #[arg(long, value_name = "K")]
    pub item: Option<u64>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub blob_id: B256,
    /// Delete only item K of your batch; the batch is refunded the epochs no other item needs.
    #[arg(long, value_name = "K")]
    pub item: Option<u64>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CommitteeArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn chain(client: &ClientArgs) -> Result<NodeClient> {
    NodeClient::new(&client.rpc).map_err(|e| anyhow!("--rpc: {e}"))
}

pub fn run_storage(args: StorageArgs) -> Result<()> {
    crate::logging::init(crate::logging::STORAGE);
    let signer = args.signer.load()?;
    let stake = args
        .stake
        .as_deref()
        .map(|s| parse_amount(s, Token::Myc).with_context(|| format!("bad --stake '{s}' (MYC)")))
        .transpose()?;
    let publisher = if args.publish {
        let token = match &args.publish_token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path)
                    .with_context(|| format!("--publish-token-file {}", path.display()))?
                    .trim()
                    .to_string();
                anyhow::ensure!(
                    token.len() >= 16,
                    "--publish-token-file {}: the token must be at least 16 characters",
                    path.display()
                );
                Some(token)
            }
            None => None,
        };
        Some(mycel_blob::publisher::PublisherConfig {
            max_bytes: args.publish_max_bytes,
            max_epochs: args.publish_max_epochs,
            token,
            ..Default::default()
        })
    } else {
        None
    };
    let config = mycel_blob::node::NodeConfig {
        dir: args.dir.clone(),
        signer,
        chain: chain(&args.client)?,
        listen: args.listen,
        endpoint: args.endpoint.clone(),
        stake,
        limits: args.http.limits()?,
        maintain_every: Some(std::time::Duration::from_secs(args.maintain_every.max(1))),
        publisher,
    };
    crate::run_role(|interrupted| async move {
        let (started, serving) = mycel_blob::node::start(config, interrupted).await?;
        eprintln!(
            "storage node {} serving {} on {} (slivers in {}){}",
            started.address,
            started.endpoint,
            started.addr,
            args.dir.display(),
            if started.registered_now {
                ", registered on chain"
            } else {
                ""
            }
        );
        if args.publish {
            eprintln!(
                "publisher: curl -T FILE '{}/v1/blobs?epochs=1' (paid by {})",
                started.endpoint, started.address
            );
        }
        Ok((started.addr, async move {
            serving.await.context("storage node stopped")
        }))
    })
}

pub fn run(command: BlobCommand) -> Result<()> {
    match command {
        BlobCommand::Put(args) => put(args),
        BlobCommand::Get(args) => get(args),
        BlobCommand::Status(args) => status(args),
        BlobCommand::Extend(args) => extend(args),
        BlobCommand::Delete(args) => delete(args),
        BlobCommand::Committee(args) => committee(args),
    }
}

/// A progress bar that follows [`Progress`] on stderr (hidden when stderr is not a terminal).
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

fn follow(bar: &ProgressBar, p: Progress) {
    match p {
        Progress::Encoding { done, total } => step(bar, "encoding", done, total),
        Progress::Uploading { done, total } => step(bar, "uploading", done, total),
        Progress::Reading { done, total } => step(bar, "reading", done, total),
        Progress::Registered { height } => {
            bar.println(format!("registered and paid in block {height}"))
        }
        Progress::Certifying => bar.set_message("certifying"),
    }
}

fn step(bar: &ProgressBar, what: &'static str, done: u64, total: u64) {
    bar.set_message(what);
    bar.set_length(total);
    bar.set_position(done);
}

fn put(args: PutArgs) -> Result<()> {
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let signer = args.signer.load()?;
    let node = chain(&args.client)?;
    let items = if args.batch || args.files.len() > 1 {
        let mut items = Vec::with_capacity(args.files.len());
        for path in &args.files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
            items.push((name, path.clone(), args.epochs));
        }
        Some(items)
    } else {
        None
    };
    let source = match &items {
        Some(items) => publish::Source::batch(items)?,
        None => publish::Source::file(&args.files[0], args.epochs)?,
    };
    let bar = progress_bar();
    let stored = runtime()?.block_on(publish::put(&node, &signer, source, &|p| follow(&bar, p)));
    bar.finish_and_clear();
    let stored = stored?;
    let listed: Vec<serde_json::Value> = items
        .iter()
        .flatten()
        .enumerate()
        .map(|(k, (name, _, _))| serde_json::json!({"item": k, "name": name}))
        .collect();
    if args.client.json {
        return print_json(&serde_json::json!({
            "blob_id": stored.blob_id, "length": stored.length, "paid": stored.paid.to_string(),
            "end_epoch": stored.end_epoch, "certified_height": stored.certified_height,
            "confirmed_by": stored.confirmed_by, "items": listed,
        }));
    }
    println!("{}", stored.blob_id);
    for (k, (name, _, _)) in items.iter().flatten().enumerate() {
        eprintln!("  item {k:>3}  {name}");
    }
    if stored.confirmed_by.is_empty() {
        eprintln!(
            "already stored: certified in block {}, paid until epoch {} (`mycel blob extend` pays for more)",
            stored.certified_height, stored.end_epoch
        );
        return Ok(());
    }
    eprintln!(
        "stored {} bytes, certified in block {} by {} storage nodes; paid {} MYC, stored until epoch {}",
        stored.length,
        stored.certified_height,
        stored.confirmed_by.len(),
        format_amount(stored.paid, Token::Myc),
        stored.end_epoch
    );
    Ok(())
}

fn get(args: GetArgs) -> Result<()> {
    let node = chain(&args.client)?;
    let bar = progress_bar();
    let rt = runtime()?;
    if args.list {
        let listed = rt.block_on(async {
            let info = publish::certified_blob(&node, args.blob_id).await?;
            let index = publish::read_index(&info, &|p| follow(&bar, p)).await?;
            Ok::<_, publish::PublishError>((info, index))
        });
        bar.finish_and_clear();
        let (info, index) = listed?;
        return list_items(&info, &index, args.client.json);
    }
    let output = args.output.as_deref().context("--output FILE is needed")?;
    if let Some(name) = &args.item {
        let read = rt.block_on(publish::get_item(&node, args.blob_id, name, output, &|p| {
            follow(&bar, p)
        }));
        bar.finish_and_clear();
        let read = read?;
        eprintln!(
            "wrote item {} ({name}, {} bytes) of batch {} to {} (the batch checked against its id)",
            read.position,
            read.length,
            args.blob_id,
            output.display()
        );
        return Ok(());
    }
    let read = rt.block_on(publish::get_file(&node, args.blob_id, output, &|p| {
        follow(&bar, p)
    }));
    bar.finish_and_clear();
    let read = read?;
    for skipped in &read.skipped {
        eprintln!("skipped a storage node: {skipped}");
    }
    eprintln!(
        "wrote {} bytes to {} (checked against blob {})",
        read.length,
        output.display(),
        read.blob_id
    );
    Ok(())
}

fn list_items(
    info: &mycel_client::api::BlobInfo,
    index: &mycel_blob::batch::Index,
    json: bool,
) -> Result<()> {
    let rows: Vec<serde_json::Value> = index
        .entries
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let chain = info.items.get(k);
            serde_json::json!({
                "item": k, "name": e.name, "length": e.length,
                "end_epoch": chain.map(|i| i.end_epoch), "deleted": chain.map(|i| i.deleted),
            })
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    println!("{:>4}  {:>12}  {:>9}  name", "item", "bytes", "ends");
    for (k, e) in index.entries.iter().enumerate() {
        let ends = match info.items.get(k) {
            Some(i) if i.deleted => "deleted".to_string(),
            Some(i) => format!("epoch {}", i.end_epoch),
            None => "?".into(),
        };
        println!("{k:>4}  {:>12}  {ends:>9}  {}", e.length, e.name);
    }
    Ok(())
}

fn status(args: StatusArgs) -> Result<()> {
    let info = runtime()?.block_on(chain(&args.client)?.blob(args.blob_id))?;
    if args.client.json {
        return print_json(&info);
    }
    println!("blob         {}", info.blob_id);
    let status = match info.status {
        mycel_client::api::BlobStatus::Registered => "registered (not certified yet)",
        mycel_client::api::BlobStatus::Certified => "certified",
        mycel_client::api::BlobStatus::Deleted => "deleted (kept until its epoch ends)",
    };
    println!("status       {status}");
    println!("length       {} bytes", info.length);
    println!("owner        {}", info.owner);
    println!(
        "epochs       {} .. {} (paid until the start of epoch {})",
        info.start_epoch, info.end_epoch, info.end_epoch
    );
    println!(
        "epoch price  {} MYC",
        format_amount(info.epoch_price, Token::Myc)
    );
    println!(
        "certified    {}",
        info.certified_height
            .map_or("not yet".into(), |h| format!("in block {h}"))
    );
    println!(
        "committee    {} ({} nodes)",
        info.committee,
        info.members.len()
    );
    for m in &info.members {
        println!("  {}  {}", m.address, m.endpoint);
    }
    if !info.items.is_empty() {
        let live = info.items.iter().filter(|i| !i.deleted).count();
        println!(
            "batch        {} items ({live} not deleted; names: `mycel blob get {} --list`)",
            info.items.len(),
            info.blob_id
        );
        for (k, item) in info.items.iter().enumerate() {
            let state = if item.deleted { ", deleted" } else { "" };
            println!("  item {k:>3}  until epoch {}{state}", item.end_epoch);
        }
    }
    Ok(())
}

fn extend(args: ExtendArgs) -> Result<()> {
    let info = runtime()?.block_on(chain(&args.client)?.blob(args.blob_id))?;
    let max = info.epoch_price.saturating_mul(u128::from(args.epochs));
    let (id, epochs, item) = (args.blob_id, args.epochs, args.item);
    let events =
        send::submit_for_events(
            &args.client,
            &args.send,
            move |from, nonce, fee| match item {
                None => TxKind::ExtendBlob(ExtendBlob {
                    from,
                    blobId: id,
                    epochs,
                    maxCost: U256::from(max),
                    nonce,
                    fee,
                }),
                Some(item) => TxKind::ExtendBatchItem(ExtendBatchItem {
                    from,
                    blobId: id,
                    item,
                    epochs,
                    maxCost: U256::from(max),
                    nonce,
                    fee,
                }),
            },
        )?;
    for e in events {
        match e {
            Event::Storage(StorageEvent::BlobExtended {
                end_epoch, paid, ..
            }) => eprintln!(
                "paid {} MYC: stored until epoch {end_epoch}",
                format_amount(paid, Token::Myc)
            ),
            Event::Storage(StorageEvent::BatchItemChanged {
                item,
                end_epoch,
                paid,
                ..
            }) => eprintln!(
                "paid {} MYC: item {item} stored until epoch {end_epoch}",
                format_amount(paid, Token::Myc)
            ),
            _ => {}
        }
    }
    Ok(())
}

fn delete(args: DeleteArgs) -> Result<()> {
    let (id, item) = (args.blob_id, args.item);
    let events =
        send::submit_for_events(
            &args.client,
            &args.send,
            move |from, nonce, fee| match item {
                None => TxKind::DeleteBlob(DeleteBlob {
                    from,
                    blobId: id,
                    nonce,
                    fee,
                }),
                Some(item) => TxKind::DeleteBatchItem(DeleteBatchItem {
                    from,
                    blobId: id,
                    item,
                    nonce,
                    fee,
                }),
            },
        )?;
    for e in events {
        match e {
            Event::Storage(StorageEvent::BlobDeleted { refunded, .. }) => eprintln!(
                "deleted: refunded {} MYC; the nodes drop it when this epoch ends",
                format_amount(refunded, Token::Myc)
            ),
            Event::Storage(StorageEvent::BatchItemChanged {
                item, refunded, ..
            }) => eprintln!(
                "deleted item {item}: no longer readable; refunded {} MYC (the epochs no other item needs)",
                format_amount(refunded, Token::Myc)
            ),
            _ => {}
        }
    }
    Ok(())
}

fn committee(args: CommitteeArgs) -> Result<()> {
    let info = runtime()?.block_on(chain(&args.client)?.storage())?;
    if args.client.json {
        return print_json(&info);
    }
    println!(
        "committee    {} ({} nodes)",
        info.committee,
        info.members.len()
    );
    for m in &info.members {
        println!(
            "  {}  {}  stake {} MYC",
            m.address,
            m.endpoint,
            format_amount(m.stake, Token::Myc)
        );
    }
    println!(
        "epoch        {} (ends at block {})",
        info.epoch, info.epoch_ends_at
    );
    println!(
        "price        {} MYC per MiB stored per epoch",
        format_amount(info.params.price_per_mib_epoch, Token::Myc)
    );
    println!(
        "fund         {} MYC for {} blobs",
        format_amount(info.fund, Token::Myc),
        info.blobs
    );
    Ok(())
}
