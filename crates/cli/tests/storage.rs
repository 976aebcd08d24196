//! Blob storage with real processes (docs/storage.md): `mycel up`'s four storage nodes, and a
//! localnet of seven `mycel storage` processes with nodes killed, wiped of a sliver or lying.

use alloy_primitives::{B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use mycel_testkit::mycel::{assert_fails_with, stderr};
use mycel_testkit::{dev_address, dev_signer, Devnet, DevnetOptions, TestDir};
use mycel_types::storage::StorageConfirmation;
use mycel_types::tx::{CertifyBlob, RegisterBlob};
use mycel_types::TxKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn random_file(dir: &TestDir, name: &str, len: usize, seed: u64) -> PathBuf {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `mycel blob put FILE` signed by dev account 5; the blob id it prints.
fn put(devnet: &Devnet, file: &Path, epochs: u64) -> B256 {
    let out = devnet.ok(&[
        "blob",
        "put",
        &file.display().to_string(),
        "--epochs",
        &epochs.to_string(),
        "--dev-account",
        "5",
    ]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no blob id in {out:?}"))
}

/// `mycel blob get ID -o OUT`; its stderr. The output must equal `original`.
fn get_same(devnet: &Devnet, id: B256, original: &Path, dir: &TestDir) -> String {
    let out_path = dir.join(&format!("{id}.out"));
    let out = devnet.mycel(&[
        "blob",
        "get",
        &id.to_string(),
        "-o",
        &out_path.display().to_string(),
    ]);
    assert!(out.status.success(), "get failed: {}", stderr(&out));
    assert!(
        std::fs::read(&out_path).unwrap() == std::fs::read(original).unwrap(),
        "blob {id} read back different bytes"
    );
    std::fs::remove_file(&out_path).unwrap();
    stderr(&out)
}

#[test]
fn mycel_up_stores_blobs_from_empty_to_256_mib_and_pays_its_nodes_by_the_epoch() {
    let devnet = Devnet::start_with(DevnetOptions {
        storage_nodes: 4,
        ..DevnetOptions::default().args(&["--storage-epoch-blocks", "15"])
    });
    let dir = TestDir::new();
    // The four nodes register on their own; wait for the committee.
    let client = devnet.client();
    devnet.wait_for_storage_committee(4);
    for (name, len) in [
        ("empty", 0usize),
        ("one", 1),
        ("odd", 65_537),
        ("three-mib", 3 << 20),
        ("big", 256 << 20),
    ] {
        let file = random_file(&dir, name, len, len as u64 + 1);
        let id = put(&devnet, &file, 2);
        let status = devnet.json(&["blob", "status", &id.to_string()]);
        assert_eq!(status["status"], "certified", "{status}");
        assert_eq!(status["length"], len as u64);
        get_same(&devnet, id, &file, &dir);
        if len == 1 {
            // Putting the same bytes again pays nothing and uploads nothing. Checked at once: the
            // blob is paid for two 15-block epochs, which the 256 MiB put below can outlast.
            let again = random_file(&dir, "again", 1, 2);
            let out = devnet.ok(&[
                "blob",
                "put",
                &again.display().to_string(),
                "--dev-account",
                "5",
                "--json",
            ]);
            let stored: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(stored["paid"], "0", "{stored}");
        }
        if len == 256 << 20 {
            std::fs::remove_file(&file).unwrap();
        }
    }
    let again = random_file(&dir, "again", 1, 2);

    // Bad input: each a clear error.
    let unknown = B256::repeat_byte(0x77).to_string();
    let out = devnet.mycel(&[
        "blob",
        "get",
        &unknown,
        "-o",
        &dir.join("x").display().to_string(),
    ]);
    assert_fails_with(&out, "never registered, or its paid epochs are over");
    assert!(!dir.join("x").exists() && !dir.join("x.partial").exists());
    let out = devnet.mycel(&["blob", "put", "/no/such/file", "--dev-account", "5"]);
    assert_fails_with(&out, "/no/such/file");
    let out = devnet.mycel(&[
        "blob",
        "put",
        &again.display().to_string(),
        "--epochs",
        "0",
        "--dev-account",
        "5",
    ]);
    assert_fails_with(&out, "--epochs must be at least 1");
    let out = devnet.mycel(&[
        "blob",
        "put",
        &again.display().to_string(),
        "--epochs",
        "1000",
        "--dev-account",
        "5",
    ]);
    assert_fails_with(&out, "a blob is paid for 1 to 104 epochs");

    // Extend, then delete: the refund is the epochs not begun.
    let file = random_file(&dir, "short", 1000, 9);
    let id = put(&devnet, &file, 5).to_string();
    let before = devnet.json(&["blob", "status", &id]);
    let out = devnet.mycel(&["blob", "extend", &id, "--epochs", "3", "--dev-account", "6"]);
    assert!(
        stderr(&out).contains("stored until epoch"),
        "{}",
        stderr(&out)
    );
    let after = devnet.json(&["blob", "status", &id]);
    assert_eq!(
        after["end_epoch"].as_u64().unwrap(),
        before["end_epoch"].as_u64().unwrap() + 3
    );
    let out = devnet.mycel(&["blob", "delete", &id, "--dev-account", "6"]);
    assert_fails_with(&out, "blob_not_owner");
    let out = devnet.mycel(&["blob", "delete", &id, "--dev-account", "5"]);
    assert!(stderr(&out).contains("refunded"), "{}", stderr(&out));
    assert_eq!(devnet.json(&["blob", "status", &id])["status"], "deleted");

    // The nodes are paid at each epoch's end; the deleted blob is gone after its epoch.
    let info = client.storage().unwrap();
    devnet.wait_for_height(info.epoch_ends_at + 1, Duration::from_secs(60));
    let info = client.storage().unwrap();
    let payout = info.last_payout.expect("an epoch was paid out");
    assert!(payout.total > 0 && payout.blobs > 0, "{payout:?}");
    let out = devnet.mycel(&["blob", "status", &id]);
    assert_fails_with(&out, "no blob");
}

#[test]
fn seven_storage_processes_serve_reads_with_two_killed_and_one_lying() {
    let devnet = Devnet::start();
    let dir = TestDir::new();
    let mut nodes: Vec<(u32, mycel_testkit::Proc, PathBuf)> = (1..=7)
        .map(|k| {
            let (proc, node_dir) = devnet.start_storage_node(k, &[]);
            (k, proc, node_dir)
        })
        .collect();
    assert_eq!(devnet.client().storage().unwrap().members.len(), 7);

    let file = random_file(&dir, "twenty", 20 << 20, 20);
    let id = put(&devnet, &file, 1);
    let blob = devnet.client().blob(id).unwrap();
    // Which process holds which sliver pair (n = 7, f = 2: reads need 3 primary slivers).
    let holder = |sliver: usize| {
        let position = mycel_types::storage::position_of(sliver, 7, &id);
        let address = blob.members[position].address;
        nodes
            .iter()
            .position(|(k, _, _)| dev_address(*k) == address)
            .expect("a node of ours")
    };
    let (first, second, third) = (holder(0), holder(1), holder(2));

    // Any node is also an aggregator: the whole blob over plain HTTP, streamed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = blob.members[0].endpoint.clone();
    let (status, bytes) = rt.block_on(async {
        let r = reqwest::get(format!("{endpoint}/v1/blobs/{id}"))
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap())
    });
    assert_eq!(status, 200);
    assert!(
        bytes[..] == std::fs::read(&file).unwrap()[..],
        "the aggregator served other bytes"
    );
    let status = rt.block_on(async {
        reqwest::get(format!("{endpoint}/v1/blobs/{}", B256::repeat_byte(3)))
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 404);

    // f = 2 nodes down, both holding systematic slivers: the read decodes from parity.
    nodes[first].1.kill_9();
    nodes[second].1.kill_9();
    get_same(&devnet, id, &file, &dir);

    // The third systematic holder lies: its sliver on disk no longer matches its commitment.
    // The reader takes it (its leaves are right), catches the first bad part, skips it, and
    // still returns the right bytes.
    let sliver = nodes[third]
        .2
        .join("blobs")
        .join(format!("{id:x}"))
        .join("primary");
    let mut bytes = std::fs::read(&sliver).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&sliver, bytes).unwrap();
    let log = get_same(&devnet, id, &file, &dir);
    assert!(
        log.contains("do not match its commitment"),
        "the lying node was not named: {log}"
    );

    // Strangers' input to a node: metadata of a blob nobody paid for is refused before anything
    // is kept; an oversized body is refused before it is read.
    let (live, _, _) = nodes
        .iter()
        .find(|(_, p, _)| p.name() != nodes[first].1.name())
        .unwrap();
    let endpoint = blob
        .members
        .iter()
        .find(|m| m.address == dev_address(*live))
        .unwrap()
        .endpoint
        .clone();
    let (encoded, _) = mycel_blob::encode(7, b"nobody paid for this").unwrap();
    let unpaid = encoded.metadata.blob_id();
    let (status, body) = http_put(
        &format!("{endpoint}/v1/slivers/{unpaid}/metadata"),
        encoded.metadata.encode(),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("blob_unknown"), "{body}");
    let (status, body) = http_put(
        &format!("{endpoint}/v1/slivers/{id}/primary?from=0"),
        vec![0u8; 17 << 20],
    );
    assert!(status == 413 || status == 0, "{status} {body}");
    let (status, body) = http_put(
        &format!("{endpoint}/v1/slivers/{id}/primary?from=0"),
        vec![0u8; 3],
    );
    assert!(
        status == 204 || body.contains("bad_sliver_request"),
        "{status} {body}"
    );
}

fn http_put(url: &str, body: Vec<u8>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match reqwest::Client::new().put(url).body(body).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            // The server may answer 413 and close while the body is still being written.
            Err(e) => (0, e.to_string()),
        }
    })
}

#[test]
fn forged_confirmations_and_bad_uploads_are_refused_and_nothing_unchecked_is_kept() {
    let devnet = Devnet::start();
    let _nodes: Vec<_> = (1..=4).map(|k| devnet.start_storage_node(k, &[])).collect();
    let client = devnet.async_client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let writer = dev_signer(8);
    // A real encoding, registered and paid, but never certified.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (encoded, segments) = mycel_blob::encode(4, &data).unwrap();
    let id = encoded.metadata.blob_id();
    rt.block_on(async {
        let info = client.storage().await.unwrap();
        client
            .send_and_wait(&writer, &Default::default(), |f| {
                TxKind::RegisterBlob(RegisterBlob {
                    from: f.from,
                    blobId: id,
                    length: data.len() as u64,
                    committee: info.committee,
                    epochs: 1,
                    maxCost: U256::MAX,
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await
            .unwrap()
            .applied()
            .unwrap();
        let chain_id = client.chain_params().await.unwrap().chain_id;
        let statement = StorageConfirmation {
            blobId: id,
            committee: info.committee,
        };
        let forge = |k: &PrivateKeySigner| statement_sig(&statement, chain_id, k);
        let strangers: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
        let forged: Vec<u8> = strangers.iter().flat_map(forge).collect();
        let outcome = client
            .send_and_wait(&writer, &Default::default(), |f| {
                TxKind::CertifyBlob(CertifyBlob {
                    from: f.from,
                    blobId: id,
                    signatures: forged.clone().into(),
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await
            .unwrap();
        let error = outcome.applied().unwrap_err();
        assert!(
            error.is_code("blob_confirmation_not_in_committee"),
            "{error}"
        );
        assert!(client.blob(id).await.unwrap().certified_height.is_none());

        // A writer's truncated or corrupted upload is refused at the seal and nothing is kept:
        // the node gives no confirmation for it.
        let blob = client.blob(id).await.unwrap();
        let node = mycel_blob::client::SliverClient::new(
            reqwest::Client::new(),
            &blob.members[0].endpoint,
        );
        node.put_metadata(&id, &encoded.metadata).await.unwrap();
        let sliver = mycel_types::storage::sliver_of(0, 4, &id);
        let mut primary: Vec<u8> = segments
            .iter()
            .flat_map(|s| s.primary(sliver).to_vec())
            .collect();
        let part = primary.len() / segments.len();
        let truncated = primary[..part].to_vec();
        node.put_parts(&id, mycel_blob::Axis::Primary, 0, truncated)
            .await
            .unwrap();
        if segments.len() == 1 {
            primary[7] ^= 1; // one segment: send it corrupted instead
            node.put_parts(&id, mycel_blob::Axis::Primary, 0, primary)
                .await
                .unwrap();
        }
        let sealed = node.seal(&id, mycel_blob::Axis::Primary).await.unwrap_err();
        assert_eq!(sealed.code(), Some("sliver_mismatch"), "{sealed}");
        let none = node.confirmation(&id).await.unwrap_err();
        assert_eq!(none.code(), Some("not_stored"), "{none}");
        // A body that is not whole parts is refused before it is written.
        let odd = node
            .put_parts(&id, mycel_blob::Axis::Primary, 0, vec![0u8; part + 1])
            .await
            .unwrap_err();
        assert_eq!(odd.code(), Some("bad_sliver_request"), "{odd}");
    });
}

fn statement_sig(
    statement: &StorageConfirmation,
    chain_id: u64,
    key: &PrivateKeySigner,
) -> Vec<u8> {
    key.sign_hash_sync(&statement.signing_hash_on(chain_id))
        .unwrap()
        .as_bytes()
        .to_vec()
}

#[test]
fn a_wiped_node_rebuilds_its_slivers_from_the_others_and_serves_reads_again() {
    let devnet = Devnet::start();
    let dir = TestDir::new();
    let mut nodes: Vec<(u32, mycel_testkit::Proc, PathBuf)> = (1..=4)
        .map(|k| {
            let (proc, node_dir) = devnet.start_storage_node(k, &[]);
            (k, proc, node_dir)
        })
        .collect();
    let length = 6 << 20;
    let file = random_file(&dir, "six", length, 6);
    let id = put(&devnet, &file, 1);

    // Node 1 loses its disk and comes back (on another port: it moves its registration).
    nodes[0].1.kill_9();
    std::fs::remove_dir_all(&nodes[0].2).unwrap();
    let (mut proc, node_dir) = devnet.start_storage_node(1, &[]);
    let line = proc.wait_for_log("recovered this node's slivers", Duration::from_secs(60));
    let fetched: u64 = line
        .split("fetched=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    // It rebuilt its pair from one symbol per segment of each helper: about the size of the pair
    // (5/6 of the blob at n = 4), never the whole blob.
    assert!(
        fetched < length as u64,
        "fetched {fetched} bytes to rebuild a blob of {length}"
    );
    assert!(node_dir
        .join("blobs")
        .join(format!("{id:x}"))
        .join("primary")
        .is_file());
    nodes[0].1 = proc;

    // With two of the others down, a read must use the rebuilt node.
    nodes[1].1.kill_9();
    nodes[2].1.kill_9();
    get_same(&devnet, id, &file, &dir);
}

#[test]
fn a_node_that_cannot_answer_its_challenges_is_reported_slashed_and_unpaid() {
    let devnet =
        Devnet::start_with(DevnetOptions::default().args(&["--storage-epoch-blocks", "12"]));
    let dir = TestDir::new();
    let mut nodes: Vec<(u32, mycel_testkit::Proc, PathBuf)> = (1..=4)
        .map(|k| {
            let (proc, node_dir) = devnet.start_storage_node(k, &["--maintain-every", "1"]);
            (k, proc, node_dir)
        })
        .collect();
    let file = random_file(&dir, "challenged", 300_000, 3);
    put(&devnet, &file, 10);
    let stake_of = |k: u32| {
        let info = devnet.client().storage().unwrap();
        info.members
            .iter()
            .find(|m| m.address == dev_address(k))
            .map(|m| m.stake)
            .unwrap()
    };
    let stake = stake_of(4);
    // Node 4 goes away: it answers no challenge.
    nodes[3].1.kill_9();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let payout = loop {
        let info = devnet.client().storage().unwrap();
        if let Some(p) = info.last_payout.clone().filter(|p| !p.slashed.is_empty()) {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no node was slashed: {:?}\n{}",
            info.last_payout,
            nodes[0].1.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        payout.slashed,
        vec![dev_address(4)],
        "only the silent node: {payout:?}"
    );
    assert!(payout.burned > 0);
    assert_eq!(stake_of(4), stake - stake / 10);
    for k in 1..=3 {
        assert_eq!(stake_of(k), stake, "honest node {k} kept its stake");
    }
    let log = nodes[0].1.log();
    assert!(log.contains("failed its storage challenge"), "{log}");
}

/// An HTTP GET's status and body.
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    })
}

#[test]
fn a_batch_of_small_files_costs_less_than_blobs_and_its_items_end_alone() {
    let devnet = Devnet::start_with(DevnetOptions {
        storage_nodes: 4,
        ..DevnetOptions::default()
    });
    let dir = TestDir::new();
    let client = devnet.client();
    devnet.wait_for_storage_committee(4);
    let files = [
        random_file(&dir, "a.txt", 5, 1),
        random_file(&dir, "b.bin", 100 << 10, 2),
        random_file(&dir, "empty", 0, 3),
    ];
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args = vec![
        "blob",
        "put",
        "--epochs",
        "3",
        "--dev-account",
        "5",
        "--json",
    ];
    args.extend(paths.iter().map(String::as_str));
    let stored: serde_json::Value = serde_json::from_str(&devnet.ok(&args)).unwrap();
    let id: B256 = stored["blob_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(stored["items"][1]["name"], "b.bin", "{stored}");
    let batch_paid: u128 = stored["paid"].as_str().unwrap().parse().unwrap();
    // The same three files as blobs of their own each pay a whole blob's metadata.
    let mut alone_paid = 0u128;
    for (k, file) in files.iter().enumerate() {
        let copy = random_file(&dir, &format!("alone-{k}"), 0, 0);
        std::fs::copy(file, &copy).unwrap();
        std::fs::write(
            &copy,
            [std::fs::read(file).unwrap(), vec![k as u8]].concat(),
        )
        .unwrap();
        let out = devnet.ok(&[
            "blob",
            "put",
            &copy.display().to_string(),
            "--epochs",
            "3",
            "--dev-account",
            "5",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        alone_paid += v["paid"].as_str().unwrap().parse::<u128>().unwrap();
    }
    assert!(
        batch_paid * 2 < alone_paid,
        "a batch of three paid {batch_paid}, three blobs {alone_paid}"
    );

    // The index, each item, and the aggregator's item route.
    let listed = devnet.json(&["blob", "get", &id.to_string(), "--list"]);
    let names: Vec<&str> = (0..3)
        .map(|k| listed[k]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "b.bin", "empty"]);
    assert_eq!(listed[1]["length"], 100 << 10);
    for (k, file) in files.iter().enumerate() {
        let out = dir.join(&format!("item-{k}"));
        devnet.ok(&[
            "blob",
            "get",
            &id.to_string(),
            "--item",
            names[k],
            "-o",
            &out.display().to_string(),
        ]);
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(file).unwrap(),
            "item {k}"
        );
    }
    let endpoint = client.blob(id).unwrap().members[2].endpoint.clone();
    let (status, body) = http_get(&format!("{endpoint}/v1/blobs/{id}/items/b.bin"));
    assert_eq!(status, 200);
    assert!(
        body == std::fs::read(&files[1]).unwrap(),
        "the aggregator's item differs"
    );
    let (status, body) = http_get(&format!("{endpoint}/v1/blobs/{id}/items/nope"));
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("batch_no_item"));

    // Items end alone: a deleted item is refused (by the CLI and the aggregator), the others stay.
    let out = devnet.mycel(&[
        "blob",
        "delete",
        &id.to_string(),
        "--item",
        "0",
        "--dev-account",
        "6",
    ]);
    assert_fails_with(&out, "blob_not_owner");
    let out = devnet.mycel(&[
        "blob",
        "delete",
        &id.to_string(),
        "--item",
        "0",
        "--dev-account",
        "5",
    ]);
    assert!(stderr(&out).contains("deleted item 0"), "{}", stderr(&out));
    let gone = dir.join("gone");
    let out = devnet.mycel(&[
        "blob",
        "get",
        &id.to_string(),
        "--item",
        "a.txt",
        "-o",
        &gone.display().to_string(),
    ]);
    assert_fails_with(&out, "was deleted by its owner");
    assert!(!gone.exists());
    let (status, body) = http_get(&format!("{endpoint}/v1/blobs/{id}/items/a.txt"));
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _) = http_get(&format!("{endpoint}/v1/blobs/{id}/items/empty"));
    assert_eq!(status, 200);
    // One item extended past the batch's end pays for the epochs it adds; the rest keep theirs.
    let before = devnet.json(&["blob", "status", &id.to_string()]);
    let out = devnet.mycel(&[
        "blob",
        "extend",
        &id.to_string(),
        "--item",
        "1",
        "--epochs",
        "2",
        "--dev-account",
        "6",
    ]);
    assert!(
        stderr(&out).contains("item 1 stored until epoch"),
        "{}",
        stderr(&out)
    );
    let after = devnet.json(&["blob", "status", &id.to_string()]);
    let end = |v: &serde_json::Value, k: usize| v["items"][k]["end_epoch"].as_u64().unwrap();
    assert_eq!(end(&after, 1), end(&before, 1) + 2);
    assert_eq!(end(&after, 2), end(&before, 2));
    assert_eq!(after["end_epoch"].as_u64().unwrap(), end(&after, 1));
    assert_eq!(after["items"][0]["deleted"], true);

    // Bad input: an item of a plain blob, two items of one name, too many items.
    let plain = put(&devnet, &files[1], 1);
    let out = devnet.mycel(&[
        "blob",
        "get",
        &plain.to_string(),
        "--item",
        "b.bin",
        "-o",
        &gone.display().to_string(),
    ]);
    assert_fails_with(&out, "it is not a batch");
    let out = devnet.mycel(&["blob", "put", &paths[0], &paths[0], "--dev-account", "5"]);
    assert_fails_with(&out, "two items are named `a.txt`");
}

#[test]
fn the_publisher_streams_an_http_upload_into_a_blob_one_at_a_time() {
    use std::io::{Read as _, Write as _};
    let devnet = Devnet::start_with(DevnetOptions {
        storage_nodes: 4,
        ..DevnetOptions::default()
    });
    let dir = TestDir::new();
    let client = devnet.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let publisher = loop {
        let log = devnet.log();
        if let Some(at) = log.find("publisher: curl -T FILE '") {
            let rest = &log[at + "publisher: curl -T FILE '".len()..];
            break rest[..rest.find("/v1/blobs").unwrap()].to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            devnet.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // 40 MiB, more than any request body a node reads whole (16 MiB), sent chunked.
    let file = random_file(&dir, "upload", 40 << 20, 40);
    let bytes = std::fs::read(&file).unwrap();
    let (status, body) = rt.block_on(async {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
        let r = reqwest::Client::new()
            .put(format!("{publisher}/v1/blobs?epochs=2"))
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");
    let published: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id: B256 = published["blob_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(published["length"], 40 << 20);
    assert_ne!(published["paid"], "0");
    let info = client.blob(id).unwrap();
    assert!(
        info.members.iter().any(|m| m.address == info.owner),
        "paid by the publishing node itself"
    );
    get_same(&devnet, id, &file, &dir);

    // One upload at a time: while a client holds one open, another is turned away.
    let addr = publisher.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    )
    .unwrap();
    slow.write_all(&bytes[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let put = |url: String, body: Vec<u8>| {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .put(url)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (status, body) = put(format!("{publisher}/v1/blobs"), b"second".to_vec());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    slow.write_all(&bytes[1 << 20..2 << 20]).unwrap();
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !answer.contains("blob_id") {
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Bad input: epochs out of range, a declared length over the cap (refused before it is
    // read), and a node that does not publish.
    for epochs in ["0", "1000"] {
        let (status, body) = put(format!("{publisher}/v1/blobs?epochs={epochs}"), vec![1]);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("bad_epochs"), "{body}");
    }
    let mut huge = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        huge,
        "PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        2u64 << 30
    )
    .unwrap();
    let mut answer = String::new();
    huge.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = huge.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let other = info
        .members
        .iter()
        .find(|m| m.endpoint != publisher)
        .unwrap()
        .endpoint
        .clone();
    let (status, body) = put(format!("{other}/v1/blobs"), vec![1]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not_a_publisher"), "{body}");
}
