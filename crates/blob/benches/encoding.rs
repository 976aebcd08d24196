//! Blob encoding and decoding against raw `reed-solomon-simd` doing the same Reed-Solomon work on
//! the same data (every column extended to n, every row to n; decoding every column from parity
//! rows), so the ratio is what the commitments, checks and bookkeeping cost on one core.
//!
//! cargo bench -p mycel-blob --bench encoding

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mycel_blob::{BlobDecoder, BlobEncoder, Layout};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

const BLOB: usize = 16 << 20;

fn data() -> Vec<u8> {
    (0..BLOB)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

/// The same extensions as the blob encoder, with no hashing and no copies kept.
fn raw_encode(layout: &Layout, data: &[u8]) {
    let (n, r, c, s) = (
        layout.n(),
        layout.primary_source(),
        layout.secondary_source(),
        layout.symbol_bytes,
    );
    let mut columns = ReedSolomonEncoder::new(r, n - r, s).unwrap();
    let mut rows = ReedSolomonEncoder::new(c, n - c, s).unwrap();
    let mut matrix = vec![0u8; n * n * s];
    for seg in 0..layout.segments {
        let range = layout.segment_range(seg);
        let chunk = &data[range.start as usize..range.end as usize];
        for (k, sym) in chunk.chunks(s).enumerate() {
            let at = ((k / c) * n + k % c) * s;
            matrix[at..at + sym.len()].copy_from_slice(sym);
        }
        for col in 0..c {
            for row in 0..r {
                let at = (row * n + col) * s;
                columns.add_original_shard(&matrix[at..at + s]).unwrap();
            }
            let out = columns.encode().unwrap();
            for (k, p) in out.recovery_iter().enumerate() {
                let at = ((r + k) * n + col) * s;
                matrix[at..at + s].copy_from_slice(p);
            }
        }
        for row in 0..n {
            for col in 0..c {
                let at = (row * n + col) * s;
                rows.add_original_shard(&matrix[at..at + s]).unwrap();
            }
            let out = rows.encode().unwrap();
            for (k, p) in out.recovery_iter().enumerate() {
                let at = (row * n + c + k) * s;
                matrix[at..at + s].copy_from_slice(p);
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let data = data();
    let mut group = c.benchmark_group("blob");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(BLOB as u64));
    for nodes in [4u16, 7, 10] {
        let layout = Layout::new(nodes, BLOB as u64).unwrap();
        group.bench_with_input(BenchmarkId::new("encode/mycel", nodes), &layout, |b, l| {
            b.iter(|| {
                let mut enc = BlobEncoder::new(*l).unwrap();
                for seg in 0..l.segments {
                    let r = l.segment_range(seg);
                    enc.push(&data[r.start as usize..r.end as usize]).unwrap();
                }
                enc.finish().unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("encode/raw", nodes), &layout, |b, l| {
            b.iter(|| raw_encode(l, &data))
        });
        // What the commitments alone cost: one BLAKE3 leaf per symbol of the n × n extension.
        group.bench_with_input(
            BenchmarkId::new("encode/leaf-hashes-only", nodes),
            &layout,
            |b, l| {
                let symbols = vec![7u8; l.n() * l.n() * l.symbol_bytes];
                b.iter(|| {
                    for _ in 0..l.segments {
                        for symbol in symbols.chunks_exact(l.symbol_bytes) {
                            std::hint::black_box(mycel_blob::merkle::leaf(symbol));
                        }
                    }
                })
            },
        );

        // Decoding from the parity rows only (no systematic row: every column is decoded).
        let mut enc = BlobEncoder::new(layout).unwrap();
        let (r, n) = (layout.primary_source(), layout.n());
        let rows: Vec<usize> = (n - r..n).collect();
        let mut parts: Vec<Vec<Vec<u8>>> = Vec::new();
        for seg in 0..layout.segments {
            let range = layout.segment_range(seg);
            let ext = enc
                .push(&data[range.start as usize..range.end as usize])
                .unwrap();
            parts.push(rows.iter().map(|i| ext.primary(*i).to_vec()).collect());
        }
        let encoded = enc.finish().unwrap();
        let (metadata, leaves) = (encoded.metadata, encoded.primary_leaves);
        group.bench_with_input(BenchmarkId::new("decode/mycel", nodes), &layout, |b, _| {
            b.iter(|| {
                let mut dec = BlobDecoder::new(metadata.clone()).unwrap();
                for i in &rows {
                    dec.trust_leaves(*i, leaves[*i].clone()).unwrap();
                }
                for seg in &parts {
                    let rows: Vec<(usize, &[u8])> =
                        rows.iter().zip(seg).map(|(i, p)| (*i, &p[..])).collect();
                    dec.push(&rows).unwrap();
                }
                dec.finish().unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("decode/raw", nodes), &layout, |b, l| {
            let (s, cols) = (l.symbol_bytes, l.secondary_source());
            let mut decoder = ReedSolomonDecoder::new(r, n - r, s).unwrap();
            b.iter(|| {
                for seg in &parts {
                    for col in 0..cols {
                        for (k, part) in seg.iter().enumerate() {
                            decoder
                                .add_recovery_shard(rows[k] - r, &part[col * s..(col + 1) * s])
                                .unwrap();
                        }
                        let out = decoder.decode().unwrap();
                        std::hint::black_box(out.restored_original(0));
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
