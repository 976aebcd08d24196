//! Child processes that never outlive their test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many lines of a log a failure shows.
const TAIL_LINES: usize = 40;

/// What `mycel up` prints when a role it starts (miner, validator, gateway) failed: a wait for a
/// banner stops there instead of running out its timeout.
const FAILED_TO_START: &str = "did not start";

/// A child process with stdout and stderr in one log file. Dropping it stops the process
/// (SIGTERM, then SIGKILL after 10 s); if the test process dies without unwinding, the kernel
/// kills it ([`die_with_parent`]).
pub struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
    /// Where this process's output starts in the log (a restarted process appends to it).
    log_start: usize,
}

impl Proc {
    /// Starts `command` with its output appended to `log`.
    pub fn spawn(name: &str, command: Command, log: &Path) -> Proc {
        Proc::spawn_with_death_signal(name, command, log, libc::SIGKILL)
    }

    /// [`Proc::spawn`], but the kernel sends `signal` instead of SIGKILL when the test process
    /// dies: SIGTERM lets a supervisor such as `mycel up` stop its own children first.
    pub fn spawn_with_death_signal(
        name: &str,
        mut command: Command,
        log: &Path,
        signal: libc::c_int,
    ) -> Proc {
        let log_start = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        die_with_parent(&mut command, signal);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
            log_start,
        }
    }

    /// `mycel ARGS` (see [`crate::mycel::command`]) with `RUST_LOG` set to `rust_log`.
    pub fn mycel(name: &str, args: &[String], rust_log: &str, log: &Path) -> Proc {
        let mut command = crate::mycel::command(args);
        command.env("RUST_LOG", rust_log);
        Proc::spawn(name, command, log)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process has written so far (not what an earlier process wrote to the
    /// same log).
    pub fn log(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(self.log_start..).unwrap_or_default()).into_owned()
    }

    /// The last lines of the log, for a failure message.
    pub fn log_tail(&self) -> String {
        tail(&self.log(), TAIL_LINES)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status, once the process has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit by itself, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL, as a crash or a power cut would stop it; returns once it is gone.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a clean shutdown), SIGKILL if it has not exited after `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if !self.is_running() {
            return self.try_exit();
        }
        // SAFETY: kill(2) with a pid this process spawned and has not reaped; no memory is shared.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = self.wait_exit(grace);
        if status.is_none() {
            self.kill_9();
        }
        status
    }

    /// Waits until the log contains `needle`; the first line that does. Panics with the log's
    /// tail if the process exits first or `timeout` passes.
    #[track_caller]
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        match self.wait_for_log_or_exit(needle, timeout) {
            Ok(line) => line,
            Err(status) => panic!(
                "{} exited ({status}) before printing {needle:?}; log:\n{}",
                self.name,
                self.log_tail()
            ),
        }
    }

    /// Waits until the log contains `needle` (`Ok` with the first line that does) or the
    /// process exits (`Err` with its status); panics if `timeout` passes first.
    #[track_caller]
    pub fn wait_for_log_or_exit(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let line_with = |log: &str| log.lines().find(|l| l.contains(needle)).map(str::to_string);
        loop {
            let log = self.log();
            if let Some(line) = line_with(&log) {
                return Ok(line);
            }
            assert!(
                !log.contains(FAILED_TO_START),
                "{} failed while starting; log:\n{}",
                self.name,
                self.log_tail()
            );
            if let Some(status) = self.try_exit() {
                // The line may have been written just before the exit.
                return line_with(&self.log()).ok_or(status);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {needle:?} in {timeout:?}; log:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.is_running() {
            self.terminate(Duration::from_secs(10));
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Makes the kernel send `signal` to the child when the test process dies without unwinding (a
/// signal, a nextest timeout), instead of leaving it holding its ports. Linux only; elsewhere a
/// no-op.
pub fn die_with_parent(command: &mut Command, signal: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec; prctl is async-signal-safe
        // and touches no memory of the parent.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (command, signal);
}

/// Starts a server that binds ports chosen by `attempt` and waits for `banner` in its log (the
/// server prints it once its ports are bound). A port from [`crate::free_port`] is free only
/// until someone binds it: when a parallel test took one first, the server exits with "Address
/// already in use" and this tries again with new ports (`attempt` is called again), up to five
/// times. `attempt` returns the command and whatever the caller wants back (the ports). The
/// process gets SIGTERM if the test dies (so a supervisor can stop its own children).
#[track_caller]
pub fn start_with_retry<T>(
    name: &str,
    log: &Path,
    banner: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> (Command, T),
) -> (Proc, T) {
    for _ in 0..5 {
        let (command, value) = attempt();
        let mut proc = Proc::spawn_with_death_signal(name, command, log, libc::SIGTERM);
        match proc.wait_for_log_or_exit(banner, timeout) {
            Ok(_) => return (proc, value),
            Err(status) => {
                let log = proc.log();
                assert!(
                    log.contains("Address already in use") || log.contains("cannot listen"),
                    "{name} exited ({status}); log:\n{}",
                    proc.log_tail()
                );
                // The next attempt appends to the same log; its `Proc::log` starts after this.
                eprintln!("{name}: a port was taken meanwhile; trying others");
            }
        }
    }
    panic!("{name}: five tries, and every time a port was taken before it could bind");
}

/// `mycel ARGS` as a server: its output in `dir/NAME.log`, `RUST_LOG` set to `rust_log`, ready
/// once the log has `banner` (within 300 s: a miner first fetches the model); retried on new ports (see [`start_with_retry`]: `args` is called
/// again and should take fresh ports). The process and the arguments it got.
#[track_caller]
pub fn start_mycel(
    dir: &Path,
    name: &str,
    banner: &str,
    rust_log: &str,
    mut args: impl FnMut() -> Vec<String>,
) -> (Proc, Vec<String>) {
    let log = dir.join(format!("{name}.log"));
    start_with_retry(name, &log, banner, Duration::from_secs(300), || {
        let args = args();
        let mut command = crate::mycel::command(&args);
        command.env("RUST_LOG", rust_log);
        (command, args)
    })
}
