use super::*;
use proptest::prelude::*;

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Decodes the whole blob from the primary slivers `rows` of each segment.
fn read(
    encoded: &Encoded,
    segments: &[ExtendedSegment],
    rows: &[usize],
) -> Result<Vec<u8>, BlobError> {
    let mut decoder = BlobDecoder::new(encoded.metadata.clone())?;
    for i in rows {
        decoder.trust_leaves(*i, encoded.primary_leaves[*i].clone())?;
    }
    let mut out = Vec::new();
    for segment in segments {
        let parts: Vec<(usize, &[u8])> = rows.iter().map(|i| (*i, segment.primary(*i))).collect();
        out.extend(decoder.push(&parts)?);
    }
    decoder.finish()?;
    Ok(out)
}

fn subset(n: usize, k: usize, pick: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    let mut x = pick | 1;
    for i in (1..n).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        all.swap(i, (x >> 33) as usize % (i + 1));
    }
    all.truncate(k);
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_allowed_subset_of_primary_slivers_decodes_the_blob(
        nodes in prop::sample::select(vec![4u16, 5, 7, 10, 13]),
        len in 0usize..200_000,
        seed: u64,
        pick: u64,
    ) {
        let data = bytes(len, seed);
        let (encoded, segments) = encode(nodes, &data).unwrap();
        let layout = encoded.metadata.layout().unwrap();
        let rows = subset(layout.n(), layout.primary_source(), pick);
        prop_assert_eq!(read(&encoded, &segments, &rows).unwrap(), data);
    }

    #[test]
    fn a_lost_pair_is_rebuilt_from_one_symbol_per_helper_and_proven(
        nodes in prop::sample::select(vec![4u16, 7, 10]),
        len in 1usize..100_000,
        seed: u64,
        lost in 0usize..10,
        pick: u64,
    ) {
        let data = bytes(len, seed);
        let (encoded, segments) = encode(nodes, &data).unwrap();
        let layout = encoded.metadata.layout().unwrap();
        let n = layout.n();
        let lost = lost % n;
        let mut codec = Codec::new(layout).unwrap();
        let others: Vec<usize> = subset(n, n, pick).into_iter().filter(|i| *i != lost).collect();
        for (s, segment) in segments.iter().enumerate() {
            // Secondary sliver `lost` from n − 2f holders of primary slivers.
            let mut from_rows = Vec::new();
            for helper in others.iter().take(layout.primary_source()) {
                let sym = recovery_symbol(&mut codec, Axis::Primary, segment.primary(*helper), lost).unwrap();
                let proof = merkle::Proof::new(&encoded.primary_leaves[*helper], s * n + lost).unwrap();
                prop_assert!(proof.verifies(merkle::leaf(&sym), encoded.metadata.primary_roots[*helper]));
                from_rows.push((*helper, sym));
            }
            prop_assert_eq!(codec.rebuild_secondary(&from_rows).unwrap(), segment.secondary(lost));
            // Primary sliver `lost` from n − f holders of secondary slivers.
            let mut from_columns = Vec::new();
            for helper in others.iter().take(layout.secondary_source()) {
                let sym = recovery_symbol(&mut codec, Axis::Secondary, &segment.secondary(*helper), lost).unwrap();
                let proof = merkle::Proof::new(&encoded.secondary_leaves[*helper], s * n + lost).unwrap();
                prop_assert!(proof.verifies(merkle::leaf(&sym), encoded.metadata.secondary_roots[*helper]));
                from_columns.push((*helper, sym));
            }
            prop_assert_eq!(codec.rebuild_primary(&from_columns).unwrap(), segment.primary(lost).to_vec());
        }
    }
}

#[test]
fn the_first_primary_slivers_hold_the_blob_as_it_is() {
    let data = bytes(300_000, 7);
    let (encoded, segments) = encode(7, &data).unwrap();
    let layout = encoded.metadata.layout().unwrap();
    let mut joined = Vec::new();
    for s in &segments {
        for i in 0..layout.primary_source() {
            joined.extend_from_slice(s.primary(i));
        }
    }
    assert_eq!(&joined[..data.len()], &data[..]);
    assert!(joined[data.len()..].iter().all(|b| *b == 0));
}

#[test]
fn an_empty_blob_round_trips_and_has_an_id() {
    let (encoded, segments) = encode(4, &[]).unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(
        read(&encoded, &segments, &[3, 1]).unwrap(),
        Vec::<u8>::new()
    );
    assert_ne!(
        encoded.metadata.blob_id(),
        encode(4, &[0]).unwrap().0.metadata.blob_id()
    );
}

#[test]
fn each_sliver_checks_against_its_root_and_a_changed_byte_does_not() {
    let data = bytes(600_000, 3);
    let (encoded, segments) = encode(4, &data).unwrap();
    assert!(segments.len() > 1);
    for axis in [Axis::Primary, Axis::Secondary] {
        for index in 0..4 {
            let sliver = Sliver { axis, index };
            let parts: Vec<Vec<u8>> = segments
                .iter()
                .map(|s| match axis {
                    Axis::Primary => s.primary(index).to_vec(),
                    Axis::Secondary => s.secondary(index),
                })
                .collect();
            let mut check = SliverCheck::new(&encoded.metadata, sliver).unwrap();
            parts.iter().for_each(|p| check.push(p).unwrap());
            let leaves = check.finish(&encoded.metadata).unwrap();
            let own = match axis {
                Axis::Primary => &encoded.primary_leaves[index],
                Axis::Secondary => &encoded.secondary_leaves[index],
            };
            assert_eq!(&leaves, own);

            let mut bad = SliverCheck::new(&encoded.metadata, sliver).unwrap();
            for (k, p) in parts.iter().enumerate() {
                let mut p = p.clone();
                if k == parts.len() - 1 {
                    p[0] ^= 1;
                }
                bad.push(&p).unwrap();
            }
            assert_eq!(
                bad.finish(&encoded.metadata),
                Err(BlobError::WrongSliver(axis, index))
            );
            let mut short = SliverCheck::new(&encoded.metadata, sliver).unwrap();
            short.push(&parts[0]).unwrap();
            assert!(short.finish(&encoded.metadata).is_err());
        }
    }
}

#[test]
fn a_corrupted_sliver_is_named_at_the_end_or_at_once_with_its_leaves() {
    let data = bytes(500_000, 11);
    let (encoded, mut segments) = encode(7, &data).unwrap();
    // A node serves row parts of a segment built from different bytes.
    let layout = encoded.metadata.layout().unwrap();
    let mut wrong = data[..layout.segment_range(0).end as usize].to_vec();
    wrong[12_345] ^= 0xff;
    let mut altered = ExtendedSegment::default();
    Codec::new(layout)
        .unwrap()
        .encode_segment(&wrong, &mut altered)
        .unwrap();
    segments[0] = altered;
    let honest = encode(7, &data).unwrap().1;
    let mut decoder = BlobDecoder::new(encoded.metadata.clone()).unwrap();
    for i in [0usize, 4, 6] {
        decoder
            .trust_leaves(i, encoded.primary_leaves[i].clone())
            .unwrap();
    }
    assert_eq!(
        decoder.trust_leaves(5, encoded.primary_leaves[4].clone()),
        Err(BlobError::WrongSliver(Axis::Primary, 5))
    );
    // Only the node holding row 4 serves the altered part.
    let parts: Vec<(usize, &[u8])> = vec![
        (0, honest[0].primary(0)),
        (4, segments[0].primary(4)),
        (6, honest[0].primary(6)),
    ];
    assert_eq!(
        decoder.push(&parts),
        Err(BlobError::WrongSliver(Axis::Primary, 4))
    );
    // Parts without their leaves checked first are refused.
    let mut unchecked = BlobDecoder::new(encoded.metadata.clone()).unwrap();
    assert!(matches!(
        unchecked.push(&parts),
        Err(BlobError::Metadata(_))
    ));
}

#[test]
fn an_inconsistent_encoding_is_reported_whichever_slivers_are_read() {
    // The writer commits to a parity row that is not the extension of the data.
    let data = bytes(40_000, 5);
    let (mut encoded, segments) = encode(4, &data).unwrap();
    let layout = encoded.metadata.layout().unwrap();
    let mut codec = Codec::new(layout).unwrap();
    let junk_row = 3; // a parity row (n − 2f = 2 source rows)
    let junk: Vec<Vec<u8>> = segments
        .iter()
        .enumerate()
        .map(|(k, _)| bytes(layout.primary_segment_bytes(), 100 + k as u64))
        .collect();
    let mut leaves = Vec::new();
    for part in &junk {
        let row = codec.extend_primary(part).unwrap();
        leaves.extend(row.chunks_exact(layout.symbol_bytes).map(merkle::leaf));
    }
    encoded.metadata.primary_roots[junk_row] = merkle::root(&leaves);

    let read_rows = |rows: &[usize]| {
        let mut decoder = BlobDecoder::new(encoded.metadata.clone()).unwrap();
        for i in rows {
            let own = if *i == junk_row {
                leaves.clone()
            } else {
                encoded.primary_leaves[*i].clone()
            };
            decoder.trust_leaves(*i, own).unwrap();
        }
        for (k, s) in segments.iter().enumerate() {
            let parts: Vec<(usize, &[u8])> = rows
                .iter()
                .map(|i| {
                    (
                        *i,
                        if *i == junk_row {
                            &junk[k][..]
                        } else {
                            s.primary(*i)
                        },
                    )
                })
                .collect();
            decoder.push(&parts).unwrap();
        }
        decoder.finish()
    };
    for rows in [[0usize, 1], [0, 3], [2, 3]] {
        match read_rows(&rows) {
            Err(BlobError::Inconsistent(which)) => assert!(!which.is_empty(), "{rows:?}"),
            other => panic!("rows {rows:?}: {other:?}"),
        }
    }
}

#[test]
fn metadata_round_trips_and_refuses_garbage() {
    let (encoded, _) = encode(7, &bytes(1000, 1)).unwrap();
    let bytes_ = encoded.metadata.encode();
    assert_eq!(bytes_.len() as u64, Metadata::encoded_len(7));
    assert_eq!(Metadata::decode(&bytes_).unwrap(), encoded.metadata);
    assert!(Metadata::decode(&bytes_[..bytes_.len() - 1]).is_err());
    assert!(Metadata::decode(&[0, 3, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
}

#[test]
fn the_metadata_the_chain_prices_is_the_metadata_nodes_store() {
    let (encoded, _) = encode(10, &bytes(5000, 2)).unwrap();
    let layout = encoded.metadata.layout().unwrap();
    assert_eq!(
        encoded.metadata.encode().len() as u64,
        layout.metadata_bytes()
    );
}
