//! The `tapline` command line, shared by the `tapline` binary and by any binary a library user
//! builds with extra components: `tapline_service::main(registry, default_config)`.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use tapline_core::config::{self, ConfigSource, Diagnostics, LoadOptions, LoadedConfig, LogFormat};
use tapline_core::pipeline;
use tapline_core::registry::Registry;
use tapline_core::telemetry::Telemetry;

#[derive(Parser, Debug)]
#[command(
    name = "tapline",
    version,
    about = "eBPF network and application telemetry, as OpenTelemetry and Prometheus metrics and traces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct ConfigArgs {
    /// Configuration file; repeat to merge several in order. Without it, the embedded default.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Overrides one value: `--set receivers.flows.sampling=10`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the pipelines until SIGINT/SIGTERM; SIGHUP reloads the configuration.
    Run(ConfigArgs),
    /// Builds the whole pipeline graph without starting it and prints every problem.
    Validate(ConfigArgs),
    /// Lists every component and extension type with the signals it supports.
    Components,
    /// Prints what this kernel supports, per receiver, and the capture each receiver will
    /// choose (probed: BTF, program and map types; run as root).
    Doctor,
}

/// The embedded configuration used when no `--config` is given.
#[derive(Clone, Copy, Debug)]
pub struct DefaultConfig {
    pub name: &'static str,
    pub text: &'static str,
    /// Embedded overlays merged on top when their environment variable is set
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT` adds the OTLP exporter): (variable, name, text).
    pub overlays: &'static [(&'static str, &'static str, &'static str)],
}

impl DefaultConfig {
    /// The sources the default run loads, given the environment.
    pub fn sources(&self, env: &[(String, String)]) -> Vec<ConfigSource> {
        let mut sources = vec![ConfigSource::Embedded {
            name: self.name.to_string(),
            text: self.text.to_string(),
        }];
        for (var, name, text) in self.overlays {
            if env.iter().any(|(k, v)| k == var && !v.is_empty()) {
                sources.push(ConfigSource::Embedded {
                    name: name.to_string(),
                    text: text.to_string(),
                });
            }
        }
        sources
    }
}

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

pub fn main(registry: Registry, default: DefaultConfig) -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Components => {
            print!("{}", components_table(&registry));
            ExitCode::SUCCESS
        }
        Command::Doctor => {
            print!(
                "{}",
                tapline_ebpf::support::table(&tapline_ebpf::support::probe())
            );
            ExitCode::SUCCESS
        }
        Command::Validate(args) => validate(&registry, &load_options(&args, default)),
        Command::Run(args) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(EXIT_RUNTIME);
                }
            };
            rt.block_on(run(registry, load_options(&args, default)))
        }
    }
}

fn load_options(args: &ConfigArgs, default: DefaultConfig) -> LoadOptions {
    let sources = if args.config.is_empty() {
        vec![ConfigSource::Embedded {
            name: default.name.to_string(),
            text: default.text.to_string(),
        }]
    } else {
        args.config
            .iter()
            .cloned()
            .map(ConfigSource::File)
            .collect()
    };
    LoadOptions {
        sources,
        sets: args.set.clone(),
        env: std::env::vars().collect(),
    }
}

pub fn components_table(registry: &Registry) -> String {
    let mut out = String::new();
    for l in registry.listings().into_iter().filter(|l| !l.hidden) {
        let signals = l
            .signals
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&format!(
            "{:<10} {:<18} {:<16} {}\n",
            l.kind.as_str(),
            l.type_name,
            signals,
            l.description
        ));
    }
    out
}

/// Loads and builds; on failure, every problem goes to stderr.
fn load_and_build(
    registry: &Registry,
    opts: &LoadOptions,
    telemetry: &Telemetry,
) -> Result<(LoadedConfig, pipeline::Graph), Diagnostics> {
    let loaded = config::load(opts)?;
    let graph = pipeline::build(&loaded, registry, telemetry)?;
    Ok((loaded, graph))
}

/// Builds and starts `config` again (the configuration that ran before a failed reload).
async fn restart(
    registry: &Registry,
    config: &LoadedConfig,
    telemetry: &Telemetry,
) -> Option<pipeline::RunningGraph> {
    let graph = match pipeline::build(config, registry, telemetry) {
        Ok(g) => g,
        Err(d) => {
            for item in &d.items {
                error!("the previous configuration no longer builds: {item}");
            }
            return None;
        }
    };
    match pipeline::start(graph).await {
        Ok(r) => {
            info!("previous configuration restored");
            Some(r)
        }
        Err(e) => {
            error!("the previous configuration failed to start again: {e:#}");
            None
        }
    }
}

fn validate(registry: &Registry, opts: &LoadOptions) -> ExitCode {
    match load_and_build(registry, opts, &Telemetry::new()) {
        Ok((_, graph)) => {
            eprint!("{}", graph.warnings);
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprint!("{d}");
            let n = d.errors().count();
            eprintln!("{n} error{} found", if n == 1 { "" } else { "s" });
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn init_logging(cfg: &config::LogsConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAPLINE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(registry: Registry, opts: LoadOptions) -> ExitCode {
    let telemetry = Telemetry::new();
    // Logging starts before the graph is built, so what factories log is not lost.
    if let Ok(loaded) = config::load(&opts) {
        init_logging(&loaded.service.telemetry.logs);
    }
    let (loaded, graph) = match load_and_build(&registry, &opts, &telemetry) {
        Ok(x) => x,
        Err(d) => {
            eprint!("{d}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for w in graph.warnings.warnings() {
        warn!("{w}");
    }
    let server_stop = CancellationToken::new();
    if let Some(addr) = loaded.service.telemetry.metrics.endpoint {
        if let Err(e) = crate::server::serve(telemetry.clone(), addr, server_stop.clone()).await {
            error!("{e:#}");
            return ExitCode::from(EXIT_RUNTIME);
        }
        info!(endpoint = %addr, "self-telemetry at /metrics, /healthz, /readyz");
    }
    let code = supervise(&registry, opts, loaded, graph, &telemetry).await;
    server_stop.cancel();
    code
}

/// Runs the graph until a signal or a failure; SIGHUP swaps in a freshly built graph.
async fn supervise(
    registry: &Registry,
    mut opts: LoadOptions,
    mut loaded: LoadedConfig,
    graph: pipeline::Graph,
    telemetry: &Telemetry,
) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut sigterm), Ok(mut sigint), Ok(mut sighup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers");
        return ExitCode::from(EXIT_RUNTIME);
    };
    let mut ready_tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut running = match pipeline::start(graph).await {
        Ok(r) => r,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    telemetry.readiness().set_running(true);
    // The configuration that ran before a reload, while the reloaded one has not been ready
    // yet: a reloaded graph that fails before it is ready gives way to it again.
    let mut previous: Option<LoadedConfig> = None;
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: draining"); break; }
            _ = sigint.recv() => { info!("SIGINT: draining"); break; }
            err = running.failure() => {
                error!("{err:#}");
                telemetry.readiness().set_running(false);
                let restore = previous.take().filter(|_| !telemetry.readiness().report().ready);
                running.shutdown(loaded.service.shutdown_timeout).await;
                let Some(old) = restore else {
                    return ExitCode::from(EXIT_RUNTIME);
                };
                error!("the reloaded configuration failed before it was ready; restoring the previous one");
                match restart(registry, &old, telemetry).await {
                    Some(r) => running = r,
                    None => return ExitCode::from(EXIT_RUNTIME),
                }
                loaded = old;
                telemetry.readiness().set_running(true);
            }
            _ = ready_tick.tick(), if previous.is_some() => {
                if telemetry.readiness().report().ready {
                    previous = None;
                }
            }
            _ = sighup.recv() => {
                info!("SIGHUP: reloading configuration");
                opts.env = std::env::vars().collect();
                match load_and_build(registry, &opts, telemetry) {
                    Err(d) => {
                        for item in &d.items {
                            error!("reload refused, keeping the running configuration: {item}");
                        }
                    }
                    Ok((new_loaded, new_graph)) => {
                        for w in new_graph.warnings.warnings() {
                            warn!("{w}");
                        }
                        telemetry.readiness().set_running(false);
                        // The old graph releases its ports and attachments before the new one starts.
                        running.shutdown(loaded.service.shutdown_timeout).await;
                        match pipeline::start(new_graph).await {
                            Ok(r) => {
                                running = r;
                                previous = Some(std::mem::replace(&mut loaded, new_loaded));
                                info!("configuration reloaded");
                            }
                            Err(e) => {
                                error!("reloaded configuration failed to start: {e:#}; restoring the previous one");
                                match restart(registry, &loaded, telemetry).await {
                                    Some(r) => running = r,
                                    None => return ExitCode::from(EXIT_RUNTIME),
                                }
                            }
                        }
                        telemetry.readiness().set_running(true);
                    }
                }
            }
        }
    }
    telemetry.readiness().set_running(false);
    let report = running.shutdown(loaded.service.shutdown_timeout).await;
    if report.timed_out {
        warn!(
            abandoned_items = report.abandoned_items,
            "shutdown timed out"
        );
    }
    for (kind, component, accepted, refused, dropped, sent) in telemetry.component_totals() {
        info!(%kind, %component, accepted, refused, dropped, sent, "totals");
    }
    info!("stopped");
    ExitCode::SUCCESS
}
