//! `mycel node --follow`: a follower process on a free port, for tests.

use crate::{free_port, Proc, TestDir};
use mycel_client::blocking::NodeClient;
use std::path::PathBuf;
use std::time::Duration;

/// A follower of some nodes, with its own data directory; stopped when dropped.
pub struct Follower {
    pub proc: Proc,
    rpc: String,
    args: Vec<String>,
    log: PathBuf,
    name: String,
}

impl Follower {
    /// `mycel node --follow UPSTREAMS --data-dir DIR/NAME ... EXTRA`, once it serves its API.
    #[track_caller]
    pub fn start(dir: &TestDir, name: &str, upstreams: &[&str], extra: &[&str]) -> Follower {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> = vec![
            "node".into(),
            "--follow".into(),
            upstreams.join(","),
            "--data-dir".into(),
            dir.join(name).display().to_string(),
            "--rpc-addr".into(),
            addr.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join(&format!("{name}.log"));
        let mut follower = Follower {
            proc: Proc::mycel(name, &args, "warn,mycel_chain=info", &log),
            rpc: format!("http://{addr}"),
            args,
            log,
            name: name.to_string(),
        };
        follower.wait_serving();
        follower
    }

    #[track_caller]
    fn wait_serving(&mut self) {
        self.proc
            .wait_for_log("follower serving http://", Duration::from_secs(120));
    }

    /// The follower's node API (`http://127.0.0.1:PORT`).
    pub fn rpc(&self) -> &str {
        &self.rpc
    }

    pub fn client(&self) -> NodeClient {
        NodeClient::new(&self.rpc).expect("client of the follower")
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Its finalized height, once it is at least `height`.
    #[track_caller]
    pub fn wait_for_height(&self, height: u64, timeout: Duration) -> u64 {
        crate::devnet::wait_for_height(&self.rpc, height, &self.proc, timeout)
    }

    /// Starts it again with the same directory, port and arguments (after [`Proc::kill_9`]).
    #[track_caller]
    pub fn restart(&mut self) {
        self.proc = Proc::mycel(&self.name, &self.args, "warn,mycel_chain=info", &self.log);
        self.wait_serving();
    }
}
