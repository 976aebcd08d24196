//! The harness's own guarantees, on real child processes: a dropped `Proc` leaves no process, a
//! port clash is retried, a banner that never comes fails with the log, a restarted process's log
//! starts after the old one's.

use mycel_testkit::process::start_with_retry;
use mycel_testkit::{Proc, TestDir};
use std::process::Command;
use std::time::Duration;

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/PID; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn a_dropped_proc_leaves_no_process() {
    let dir = TestDir::new();
    let mut proc = Proc::spawn("sleeper", sh("echo up; exec sleep 600"), &dir.join("log"));
    proc.wait_for_log("up", Duration::from_secs(10));
    let pid = proc.id();
    assert!(alive(pid));
    drop(proc);
    assert!(!alive(pid), "process {pid} outlived its Proc");
}

#[test]
fn a_port_clash_is_retried_with_new_arguments() {
    let dir = TestDir::new();
    let mut attempt = 0;
    let (mut proc, tried) = start_with_retry(
        "server",
        &dir.join("log"),
        "listening",
        Duration::from_secs(10),
        || {
            attempt += 1;
            let script = if attempt == 1 {
                "echo 'Error: Address already in use (os error 98)'; exit 1"
            } else {
                "echo listening; exec sleep 600"
            };
            (sh(script), attempt)
        },
    );
    assert_eq!(tried, 2);
    assert!(proc.is_running());
    // The second attempt's log is its own.
    assert_eq!(proc.log().trim(), "listening");
}

#[test]
#[should_panic(expected = "exited")]
fn a_process_that_dies_before_its_banner_fails_with_its_log() {
    let dir = TestDir::new();
    let mut proc = Proc::spawn("crasher", sh("echo 'bad config'; exit 3"), &dir.join("log"));
    proc.wait_for_log("ready", Duration::from_secs(10));
}

#[test]
fn kill_9_and_terminate_stop_the_process() {
    let dir = TestDir::new();
    let log = dir.join("log");
    let mut first = Proc::spawn("one", sh("echo one; exec sleep 600"), &log);
    first.wait_for_log("one", Duration::from_secs(10));
    first.kill_9();
    assert!(!first.is_running());
    // A process started again on the same log sees only its own lines.
    let mut second = Proc::spawn("two", sh("echo two; exec sleep 600"), &log);
    second.wait_for_log("two", Duration::from_secs(10));
    assert!(!second.log().contains("one"));
    let status = second.terminate(Duration::from_secs(10));
    assert!(status.is_some(), "sleep stops on SIGTERM");
    assert!(!second.is_running());
}
