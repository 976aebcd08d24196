//! The one logging setup of the binary: `tracing` to stderr, colored on a terminal, filtered by
//! `RUST_LOG` or else the command's default (each command logs its own crate at info, the rest at
//! warn). The first command a process starts sets it up.
//!
//! `mycel up` runs the subnet's miners, validator and gateway in its own process; each runs inside
//! a [`RoleLog`]'s span, and what it logs goes to that role's file (at [`ROLE_FILES`]) instead of
//! the console, so the console shows the node and the banners, as if the roles ran elsewhere.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// The default filter of `mycel node`, `mycel up` and `mycel localnet`.
pub const NODE: &str = "warn,mycel_chain=info,mycel_blob=info";
/// The default filter of `mycel gateway`.
pub const GATEWAY: &str = "warn,mycel_gateway=info";
/// The default filter of `mycel validator`.
pub const SUBNET: &str = "warn,mycel_subnet=info";
/// `mycel storage`: what it drops, recovers, and which nodes failed.
pub const STORAGE: &str = "warn,mycel_blob=info";
/// What a role of `mycel up` writes to its log file.
pub const ROLE_FILES: &str = "warn,mycel_subnet=info,mycel_gateway=info";

/// The name of a role's span; its field `log` is the path of the role's file.
const ROLE_SPAN: &str = "mycel_role";

/// How the console log is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colored on a terminal).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `span`), for log
    /// collectors.
    Json,
}

impl LogFormat {
    /// The value of `--log-format` that selects it (for the processes a supervisor starts).
    pub fn as_flag(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Logs to stderr with `RUST_LOG`, else `default_filter`, and a role's events to its file. Does
/// nothing if logging is set up.
pub fn init(default_filter: &str) {
    init_with(default_filter, LogFormat::Text);
}

/// [`init`] in the given console format.
pub fn init_with(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let console = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let console = console
        .with_filter(filter)
        .with_filter(DynFilterFn::new(|_, cx| {
            cx.lookup_current()
                .is_none_or(|span| !span.scope().any(|s| s.metadata().name() == ROLE_SPAN))
        }));
    let roles = RoleFiles.with_filter(EnvFilter::new(ROLE_FILES));
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(roles)
        .try_init();
}

/// A role's log file and the span that routes the role's events there.
#[derive(Clone)]
pub struct RoleLog {
    path: PathBuf,
    file: Arc<File>,
    span: tracing::Span,
}

impl RoleLog {
    /// Creates (or empties) the file at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        drop(file);
        let file = append(path).with_context(|| format!("cannot open {}", path.display()))?;
        // At error level, so that every filter keeps the span the role's events are routed by.
        let span = tracing::error_span!(ROLE_SPAN, log = %path.display());
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(file),
            span,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The span to run the role in.
    pub fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Appends `text` (one or more lines) to the file.
    pub fn write(&self, text: &str) {
        let mut text = text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        // One write per call: with O_APPEND the lines of concurrent writers do not interleave.
        let _ = (&*self.file).write_all(text.as_bytes());
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Where a miner, validator or gateway says what it is doing (its banner, its registration): the
/// console when it is its own command, its log file when `mycel up` runs it.
#[derive(Clone)]
pub enum Say {
    Console,
    Log(RoleLog),
}

impl Say {
    /// What the command prints on stdout (its banner).
    pub fn out(&self, text: &str) {
        match self {
            Say::Console => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
                let _ = out.flush();
            }
            Say::Log(log) => log.write(text),
        }
    }

    /// What the command prints on stderr (progress).
    pub fn err(&self, text: &str) {
        match self {
            Say::Console => eprintln!("{}", text.trim_end_matches('\n')),
            Say::Log(log) => log.write(text),
        }
    }
}

/// Writes every event inside a role's span to the role's file.
struct RoleFiles;

/// The open file of a role's span (in the span's extensions).
struct RoleFile(File);

impl<S> Layer<S> for RoleFiles
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != ROLE_SPAN {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let Some(path) = fields
            .values
            .iter()
            .find(|(k, _)| k == "log")
            .map(|(_, v)| v)
        else {
            return;
        };
        if let (Ok(file), Some(span)) = (append(Path::new(path)), ctx.span(id)) {
            span.extensions_mut().insert(RoleFile(file));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let extensions = span.extensions();
            let Some(RoleFile(file)) = extensions.get::<RoleFile>() else {
                continue;
            };
            let mut line = String::new();
            let _ = SystemTime.format_time(&mut Writer::new(&mut line));
            let meta = event.metadata();
            let _ = write!(line, " {:>5} {}:", meta.level(), meta.target());
            let mut fields = Fields::default();
            event.record(&mut fields);
            for (name, value) in &fields.values {
                if name == "message" {
                    let _ = write!(line, " {value}");
                } else {
                    let _ = write!(line, " {name}={value}");
                }
            }
            line.push('\n');
            let _ = (&*file).write_all(line.as_bytes());
            return;
        }
    }
}

/// An event's or span's fields as text, in order.
#[derive(Default)]
struct Fields {
    values: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.values
            .push((field.name().to_string(), value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.values
            .push((field.name().to_string(), format!("{value:?}")));
    }
}
