//! The `credwatch` command: argument parsing, logging set-up, and errors to exit codes.
//! Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

use credwatch::config::Config;
use credwatch::probe::Prober;
use credwatch::{check, daemon, demo};

/// Exit status for usage and configuration errors (clap uses 2 for usage errors too).
const EXIT_CONFIG: u8 = 2;

/// Watches Jira, Confluence and Bitbucket credentials (access tokens, API tokens, passwords) and says, before
/// an integration breaks, which one is dead, locked or about to expire.
#[derive(Parser)]
#[command(name = "credwatch", version = credwatch::build::VERSION_LINE, about, propagate_version = true)]
struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or a RUST_LOG-style directive;
    /// default info for `run` (start-up, reloads, state changes), warn for the others.
    /// RUST_LOG, when set, wins.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Worker threads of the async runtime: 1 runs everything on one thread (the least CPU
    /// per probe), 0 one per CPU.
    #[arg(long, global = true, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// Where the state store lives (`run` and `check`).
#[derive(clap::Args)]
struct StateArgs {
    /// The state directory [default: $STATE_DIRECTORY under systemd, else
    /// $XDG_STATE_HOME/credwatch or ~/.local/state/credwatch].
    #[arg(long, env = "CREDWATCH_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep no state: verdicts and the login budget start afresh on every start.
    #[arg(long, conflicts_with = "state_dir")]
    no_state: bool,
}

impl StateArgs {
    fn location(self) -> credwatch::store::Location {
        credwatch::store::Location::resolve(self.state_dir, self.no_state)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// `credwatch run`'s arguments.
#[derive(clap::Args)]
struct RunArgs {
    /// A configuration file, or a directory whose *.toml files are merged.
    #[arg(long, short = 'c', value_name = "PATH")]
    config: PathBuf,
    /// Where to serve the endpoints.
    #[arg(long, default_value = daemon::DEFAULT_LISTEN, value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// Enable POST /-/reload (off by default, like Prometheus's --web.enable-lifecycle).
    #[arg(long)]
    enable_lifecycle: bool,
    /// Probe and export only shard K of N of the connections (rendezvous hashing of their
    /// names). K may be a StatefulSet pod name ending in -<ordinal>.
    #[arg(long, env = "CREDWATCH_SHARD", value_name = "K/N")]
    shard: Option<credwatch::shard::Shard>,
    /// This process is replica I of an HA group of N that watch the same configuration:
    /// every replica probes the tokens, and each Basic login account is probed by the one
    /// replica that owns it. I may be a StatefulSet pod name ending in -<ordinal>.
    #[arg(long, env = "CREDWATCH_REPLICA", value_name = "I/N")]
    replica: Option<credwatch::replica::Replica>,
    /// How long shutdown may take before probes in flight are abandoned.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    shutdown_grace: std::time::Duration,
    /// Do not reload when the configuration's files change (by default they are looked at
    /// every 5 s, and a change reloads all or nothing, as SIGHUP does).
    #[arg(long)]
    no_watch_config: bool,
    #[command(flatten)]
    state: StateArgs,
    /// How long each connection's state changes are kept (GET
    /// /api/v1/connections/NAME/history).
    #[arg(long, default_value = "90d", value_name = "DURATION", value_parser = humantime::parse_duration)]
    history_retention: std::time::Duration,
    /// The most HTTP connections open at once; at the limit the one waiting longest (idle,
    /// or still sending its request head) is closed to make room. Never more than half the
    /// open-file limit.
    #[arg(long = "web.max-connections", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    web_max_connections: u32,
    /// How long a request head may take to arrive whole.
    #[arg(long = "web.head-timeout", default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    web_head_timeout: std::time::Duration,
    /// How long a kept-alive connection may wait for its next request.
    #[arg(long = "web.idle-timeout", default_value = "2m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    web_idle_timeout: std::time::Duration,
    /// Serve only /metrics, /healthz, /readyz and the lifecycle endpoints: the status
    /// page and the JSON API answer 404.
    #[arg(long = "web.disable-ui")]
    web_disable_ui: bool,
    /// The web configuration file, in the Prometheus exporter-toolkit's format: TLS, client
    /// certificates, bcrypt basic auth, response headers and a rate limit (re-read on
    /// reload).
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,
}

/// `credwatch check`'s arguments.
#[derive(clap::Args)]
struct CheckArgs {
    /// A configuration file, or a directory whose *.toml files are merged.
    #[arg(long, short = 'c', value_name = "PATH")]
    config: PathBuf,
    /// Probe only this connection (repeatable).
    #[arg(long = "connection", value_name = "NAME")]
    connections: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
    /// How many probes may run at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    #[command(flatten)]
    state: StateArgs,
    /// Send a Basic login even for a connection whose login budget is spent (the attempt
    /// is still recorded).
    #[arg(long)]
    force: bool,
    /// Check as replica I of an HA group of N (as `run --replica`): the Basic connections
    /// whose login account another replica owns are not probed, and their owner is named.
    #[arg(long, env = "CREDWATCH_REPLICA", value_name = "I/N")]
    replica: Option<credwatch::replica::Replica>,
    /// Probe even the connections whose site or token endpoint the daemon's store says asked
    /// for quiet (a Retry-After not yet passed); a 429 then closes the gate again.
    #[arg(long)]
    ignore_rate_limits: bool,
    /// Read the organizations' token lists only, and print them (no probe is sent).
    #[arg(long)]
    orgs: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: probe every connection on its schedule and serve /metrics, the API
    /// and health endpoints. SIGHUP reloads the configuration; SIGTERM and SIGINT stop it.
    Run(RunArgs),
    /// Probe the selected connections once and print what each product said (exit 0: all valid,
    /// 1: some not valid, 2: usage or configuration error).
    Check(CheckArgs),
    /// Print a shell completion script for bash, zsh or fish (see docs/cli.md: "Shell
    /// completions and the man page").
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print credwatch's man page (roff), as installed under man1.
    Man,
    /// Lift the pause of a connection the running daemon stopped probing (after two failed
    /// Basic logins of its login account, or a CAPTCHA lock), once a person reset the
    /// account's count in Jira: the account's budget starts afresh and every connection of it
    /// is probed at once. Needs the daemon's --enable-lifecycle.
    Resume {
        /// The connection.
        #[arg(value_name = "NAME")]
        name: String,
        /// The running daemon's base URL.
        #[arg(long, default_value = "http://127.0.0.1:9847", value_name = "URL")]
        url: String,
    },
    /// Load and validate the configuration, and print each connection's effective settings
    /// with secrets masked (exit 0, or 2 with every error found).
    Validate {
        /// A configuration file, or a directory whose *.toml files are merged.
        #[arg(long, short = 'c', value_name = "PATH")]
        config: PathBuf,
        /// Print only the errors (for `ExecReload=` and scripts: the exit code says it all).
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Run the daemon against a simulated fleet that shows every credential state, and
    /// serve its status page, metrics and API.
    Demo {
        /// Where the daemon serves its status page, metrics and API.
        #[arg(long, default_value = demo::DEFAULT_LISTEN, value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// How often the demo fleet is probed.
        #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = demo_interval)]
        interval: std::time::Duration,
    },
    /// Run only the built-in Atlassian simulator with the demo fleet, writing a configuration for
    /// it, until interrupted.
    Simulate {
        /// Where the simulator listens.
        #[arg(long, default_value = "127.0.0.1:8089", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Where to write the fleet's configuration and secret files.
        #[arg(long, value_name = "DIR")]
        write_config: Option<PathBuf>,
        /// The probe interval written into that configuration.
        #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = demo_interval)]
        interval: std::time::Duration,
        /// Serve this many valid PAT connections instead of the demo fleet (soak tests and
        /// benchmarks).
        #[arg(long, value_name = "N")]
        scale: Option<usize>,
        /// With --scale: spread the connections over this many sites.
        #[arg(long, default_value_t = 10, value_name = "N", requires = "scale")]
        sites: usize,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Close every connection after its answer, so each probe pays for a new connection.
        #[arg(long)]
        close_connections: bool,
        /// With --scale: no per-user rate-limit bucket (for benchmarks that drive one account
        /// far above Jira's budget).
        #[arg(long, requires = "scale")]
        no_rate_limit: bool,
        /// Write `ca_file = PATH` into the configuration (to trust --tls-cert's issuer).
        #[arg(long, value_name = "PEM", requires = "write_config")]
        ca_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    init_logging(
        cli.log_level.as_deref().unwrap_or(default_level),
        cli.log_format,
    );
    let mut builder = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if cli.threads > 1 {
            builder.worker_threads(cli.threads);
        }
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            error_line(&format!("cannot start the async runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            error_line(&format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `credwatch run`: the daemon until SIGTERM; a state directory or web configuration that
/// cannot be used is a configuration error (exit 2).
async fn run_daemon(args: RunArgs) -> anyhow::Result<u8> {
    let Some(config) = load(&args.config) else {
        return Ok(EXIT_CONFIG);
    };
    let options = daemon::Options {
        config: args.config,
        enable_lifecycle: args.enable_lifecycle,
        grace: args.shutdown_grace,
        shard: args.shard,
        replica: args.replica,
        state: args.state.location(),
        history_retention: args.history_retention,
        watch_config: (!args.no_watch_config).then_some(daemon::CONFIG_POLL),
        web: daemon::WebLimits {
            head_timeout: args.web_head_timeout,
            idle_timeout: args.web_idle_timeout,
            max_connections: usize::try_from(args.web_max_connections).unwrap_or(usize::MAX),
        },
        disable_ui: args.web_disable_ui,
        web_config: args.web_config_file,
    };
    match daemon::run(config, args.listen, options).await {
        Ok(()) => Ok(0),
        Err(error) => match error.downcast_ref::<daemon::StartError>() {
            Some(daemon::StartError::State(_) | daemon::StartError::WebConfig(_)) => {
                error_line(&error.to_string());
                Ok(EXIT_CONFIG)
            }
            _ => Err(error),
        },
    }
}

/// `credwatch check`: the selected connections (all by default) probed once, after their
/// organizations' lists; a table or JSON; exit 0 only when every credential is valid.
async fn run_check(args: CheckArgs) -> anyhow::Result<u8> {
    let Some(config) = load(&args.config) else {
        return Ok(EXIT_CONFIG);
    };
    let mut selected = Vec::new();
    for name in &args.connections {
        match config.connection(name) {
            Some(connection) => selected.push(connection.clone()),
            None => {
                error_line(&format!(
                    "no connection named {name:?} in the configuration"
                ));
                return Ok(EXIT_CONFIG);
            }
        }
    }
    if args.connections.is_empty() {
        selected = config.connections.clone();
    }
    let store = match check::open_store(&args.state.location()) {
        Ok(store) => store,
        Err(error) => {
            error_line(&error.to_string());
            return Ok(EXIT_CONFIG);
        }
    };
    let prober = Prober::new()?;
    let every_org = args.connections.is_empty() || args.orgs;
    let read = check::read_orgs(&prober, &config.orgs, &selected, every_org).await;
    if args.orgs {
        match args.output {
            Output::Table => print!("{}", check::render_orgs_table(&read)),
            Output::Json => println!("{}", check::render_orgs_json(&read)),
        }
        return Ok(check::orgs_exit_code(&read));
    }
    let options = check::Options {
        concurrency: usize::from(args.concurrency),
        store: store.map(std::sync::Arc::new),
        force: args.force,
        ignore_rate_limits: args.ignore_rate_limits,
        replica: args.replica,
        orgs: read,
    };
    let reports = check::run(&prober, selected, &options).await;
    match args.output {
        Output::Table => {
            print!(
                "{}",
                check::render_table(&reports, !args.connections.is_empty())
            );
            print!("{}", check::render_orgs_table(&options.orgs));
        }
        Output::Json => println!("{}", check::render_json(&reports)),
    }
    Ok(check::exit_code(&reports))
}

async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => run_daemon(args).await,
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "credwatch", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            // The plain version: the page must not change with every commit.
            let command = Cli::command().version(credwatch::build::VERSION);
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            Ok(0)
        }
        Command::Resume { name, url } => Ok(credwatch::resume::run(&url, &name).await),
        Command::Check(args) => run_check(args).await,
        Command::Validate { config, quiet } => {
            let Some(config) = load(&config) else {
                return Ok(EXIT_CONFIG);
            };
            if quiet {
                return Ok(0);
            }
            print!("{}", config.effective_toml());
            let orgs = match config.orgs.len() {
                0 => String::new(),
                1 => ", 1 organization".to_owned(),
                n => format!(", {n} organizations"),
            };
            eprintln!(
                "configuration is valid: {} connection{}{orgs}",
                config.connections.len(),
                if config.connections.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            Ok(0)
        }
        Command::Demo { listen, interval } => demo::run(listen, interval).await,
        Command::Simulate {
            listen,
            write_config,
            interval,
            scale,
            sites,
            tls_cert,
            tls_key,
            close_connections,
            ca_file,
            no_rate_limit,
        } => {
            let options = demo::SimulateOptions {
                write_config,
                interval,
                scale: scale.map(|connections| demo::Scale { connections, sites }),
                tls: tls_cert.zip(tls_key),
                close_connections,
                ca_file,
                no_rate_limit,
            };
            demo::simulate(listen, options).await
        }
    }
}

/// A demo interval: a duration of at least 1 s (shorter would be impolite even to a simulator).
fn demo_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < std::time::Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(interval)
}

/// Loads the configuration, printing every error; `None` when there was one.
fn load(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            Some(config)
        }
        Err(errors) => {
            for error in &errors.0 {
                error_line(&error.to_string());
            }
            None
        }
    }
}

/// The log format chosen on the command line, for the errors printed outside the logger.
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Prints an error of credwatch itself on stderr: `error: ...` as text, or one JSON object
/// with the fields of a log line (`timestamp`, `level`, `target`, `message`) with
/// `--log-format json`, so that a log collector reads it like the rest.
fn error_line(message: &str) {
    match FORMAT.get() {
        Some(LogFormat::Json) => {
            let line = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "ERROR",
                "target": "credwatch",
                "message": message,
            });
            eprintln!("{line}");
        }
        _ => eprintln!("error: {message}"),
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // Flat: the event's fields at the top level beside timestamp, level, target and
        // message, as Loki and ELK expect.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
