//! A test's own temporary directory, kept when the test fails.

use std::path::{Path, PathBuf};

/// A temporary directory removed when the test passes and kept (its path printed) when it fails
/// or when `MYCEL_TEST_KEEP_DIRS` is set, so that the logs in it can be read.
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    /// A new directory named `mycel-test-<random>` in the system's temporary directory.
    pub fn new() -> TestDir {
        TestDir(Some(
            tempfile::Builder::new()
                .prefix("mycel-test-")
                .tempdir()
                .expect("create a temporary directory"),
        ))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("directory").path()
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

impl Default for TestDir {
    fn default() -> TestDir {
        TestDir::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os("MYCEL_TEST_KEEP_DIRS").is_some();
        if let (true, Some(dir)) = (keep, self.0.take()) {
            eprintln!(
                "kept the test directory with the logs: {}",
                dir.keep().display()
            );
        }
    }
}
