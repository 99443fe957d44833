//! The `strongroom` binary: flags → configuration → wiring. No business rules live here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use strongroom_storage::backend::{Backend, WriteOp, WriteOutcome};
use strongroom_storage::cache::CacheConfig;
use strongroom_storage::embedded::{EmbeddedBackend, EmbeddedConfig};
use strongroom_storage::transformer::Transformers;

#[derive(Parser)]
#[command(name = "strongroom", version, about = "Kubernetes Secrets done right, in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Kubernetes API for Secrets over HTTPS.
    Server(ServerArgs),
    /// Administrative tasks on a data directory.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Questions answered from the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Deliver the Secrets of the Pod manifests in a directory to tmpfs, and keep them current.
    Agent(AgentArgs),
    /// Run one container of a Pod manifest as a process, with its Secrets as files and env vars.
    Run(RunArgs),
    /// A docker credential helper answering from a pod's imagePullSecrets (also invoked as
    /// `docker-credential-strongroom ACTION`, with the pod and kubeconfig from the environment).
    CredentialHelper(CredentialHelperArgs),
}

#[derive(clap::Args)]
struct CredentialHelperArgs {
    /// The kubeconfig to reach the API with (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "STRONGROOM_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The Pod manifest whose imagePullSecrets (else its ServiceAccount's) hold the credentials.
    #[arg(short = 'f', long = "filename", env = "STRONGROOM_POD")]
    file: Option<PathBuf>,
    /// The credential helper action: get (server URL on stdin), list, store or erase (refused).
    action: String,
}

/// Flags `strongroom agent` and `strongroom run` share.
#[derive(clap::Args)]
struct DeliveryArgs {
    /// The kubeconfig to reach the API with (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Where volumes are written: ROOT/pods/<namespace>/<pod>/volumes/<volume>/. Must be on tmpfs.
    #[arg(long)]
    root: Option<PathBuf>,
    /// This host's name (the pods' spec.nodeName, the source of Events).
    #[arg(long)]
    node: Option<String>,
    /// How Secret changes are noticed: Watch (a watch per Secret), Cache or Get (a read every
    /// --sync-period), as the kubelet's strategies.
    #[arg(long, default_value = "Watch")]
    change_detection: strongroom_agent::secret_source::ChangeDetection,
    /// How often Cache and Get read each Secret.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    sync_period: Duration,
    /// Make each volumeMounts[].mountPath a symlink to its volume (a subPath mount: to the file,
    /// through the volume, so it follows updates).
    #[arg(long)]
    link_mounts: bool,
    /// Restart a process when a Secret it uses (env or mounted volume) changes: SIGTERM, then
    /// SIGKILL after the grace period.
    #[arg(long, conflicts_with = "signal_on_change")]
    restart_on_change: bool,
    /// Send this signal (e.g. SIGHUP) to a process when a Secret it uses changes.
    #[arg(long, value_parser = parse_signal)]
    signal_on_change: Option<rustix::process::Signal>,
    /// How long a stopping process may take before SIGKILL (default: the pod's
    /// terminationGracePeriodSeconds, else 30s).
    #[arg(long, value_parser = parse_duration)]
    grace_period: Option<Duration>,
}

impl DeliveryArgs {
    fn on_change(&self) -> strongroom_agent::run::OnChange {
        match (self.restart_on_change, self.signal_on_change) {
            (true, _) => strongroom_agent::run::OnChange::Restart,
            (false, Some(sig)) => strongroom_agent::run::OnChange::Signal(sig),
            (false, None) => strongroom_agent::run::OnChange::Nothing,
        }
    }
}

#[derive(clap::Args)]
struct AgentArgs {
    #[command(flatten)]
    delivery: DeliveryArgs,
    /// The directory of v1 Pod manifests (YAML or JSON, one per file), followed for changes.
    #[arg(long)]
    pods: PathBuf,
    /// Also run each pod's containers as processes (their command and args), restarted as the
    /// pod's restartPolicy says and on changes as --restart-on-change/--signal-on-change say.
    #[arg(long)]
    run_processes: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    delivery: DeliveryArgs,
    /// The Pod manifest.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// The container to run (default: the first).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// The command to run instead of the container's command and args.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Every request that could have returned a secret's value: gets of it, lists and watches of
    /// secrets in its namespace or cluster-wide, and writes (whose responses carry it), across
    /// the log and its rotated files, oldest first.
    Reads {
        /// The audit log (its rotated files next to it are read too).
        #[arg(long, default_value = "strongroom-data/audit.log")]
        log: PathBuf,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// The secret's name.
        #[arg(long)]
        secret: String,
        /// Only requests after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Parser)]
struct ServerArgs {
    /// Where the store, certificates, keys and the admin kubeconfig live.
    #[arg(long, default_value = "strongroom-data")]
    data_dir: PathBuf,
    /// The address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: std::net::SocketAddr,
    /// A Kubernetes EncryptionConfiguration (apiserver.config.k8s.io/v1). Without it, a key
    /// generated in the data directory encrypts everything with aesgcm.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Allow an encryption configuration that stores Secrets in plaintext (identity first).
    #[arg(long)]
    allow_plaintext_at_rest: bool,
    /// How long the watch history is kept, so clients can resume watches (e.g. 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    watch_history: Duration,
    /// Read-only requests in flight before new ones get 429 (kube-apiserver's flag and default).
    #[arg(long, default_value_t = strongroom_server::Limits::default().readonly_inflight)]
    max_requests_inflight: usize,
    /// Mutating requests in flight before new ones get 429 (kube-apiserver's flag and default).
    #[arg(long, default_value_t = strongroom_server::Limits::default().mutating_inflight)]
    max_mutating_requests_inflight: usize,
    /// Open watches before new ones get 429.
    #[arg(long, default_value_t = strongroom_server::Limits::default().watches)]
    max_watches: usize,
    /// Extra host names or IPs for the serving certificate (only used when it is first created).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Static bearer tokens in Kubernetes' CSV format: `token,user,uid,"group1,group2"`.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Let requests without credentials through as `system:anonymous` (group
    /// `system:unauthenticated`); RBAC still decides what they may do.
    #[arg(long)]
    anonymous_auth: bool,
    /// The `iss` of ServiceAccount tokens and the base URL of their OIDC discovery documents;
    /// defaults to this server's HTTPS URL.
    #[arg(long)]
    service_account_issuer: Option<String>,
    /// Audiences the server accepts tokens for (repeatable); defaults to the issuer.
    #[arg(long = "api-audiences", value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// Where audit events go as JSON lines (`-` for stdout). Defaults to DIR/audit.log.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Rotate the audit log when it reaches this many megabytes (0: never).
    #[arg(long, default_value_t = 100)]
    audit_log_maxsize: u64,
    /// How many rotated audit logs to keep (0: all).
    #[arg(long, default_value_t = 10)]
    audit_log_maxbackup: usize,
    /// An audit.k8s.io/v1 Policy; without it, every request touching secrets, tokens,
    /// service accounts or RBAC, and every write, is recorded at Metadata level.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// Serve requests that return secret data even when their audit record cannot be written.
    #[arg(long)]
    audit_fail_open: bool,
    /// How long Events are kept after their last activity (kube-apiserver's flag and default;
    /// 0 keeps them forever).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    event_ttl: Duration,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Rewrite every stored object with the current write key (run after adding a new key first
    /// in the encryption configuration and restarting). Run it with the server stopped.
    Reencrypt {
        #[arg(long, default_value = "strongroom-data")]
        data_dir: PathBuf,
        #[arg(long)]
        encryption_provider_config: Option<PathBuf>,
    },
    /// Print a kubeconfig for a user on stdout, with a new client certificate from the server's
    /// CA (CN = user, O = groups). What the user may do is up to RBAC bindings.
    Kubeconfig {
        #[arg(long, default_value = "strongroom-data")]
        data_dir: PathBuf,
        /// The user name the certificate carries.
        #[arg(long)]
        user: String,
        /// A group the user belongs to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// How long the certificate is valid (e.g. 8h, 30d).
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        ttl: Duration,
        /// The server URL to put in the kubeconfig; defaults to the one in DIR/admin.kubeconfig.
        #[arg(long)]
        server: Option<String>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid duration {s:?}: use s, m, h or d")),
    };
    n.checked_mul(unit_secs).map(Duration::from_secs).ok_or_else(|| format!("duration {s:?} is too long"))
}

fn load_transformers(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<Transformers> {
    match config {
        Some(path) => Transformers::from_config_file(path)
            .with_context(|| format!("cannot load the encryption configuration {}", path.display())),
        None => Transformers::load_or_generate_default(data_dir).context("cannot load the generated encryption key"),
    }
}

fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRONGROOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Docker runs `docker-credential-<name> ACTION`: under that name the binary is the helper.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.first().and_then(|a| Path::new(a).file_name()).is_some_and(|n| n == "docker-credential-strongroom") {
        argv.insert(1, "credential-helper".into());
    }
    let cli = Cli::parse_from(argv);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Server(args) => runtime.block_on(serve(args)),
        Command::Admin(AdminCommand::Reencrypt { data_dir, encryption_provider_config }) => {
            runtime.block_on(reencrypt(&data_dir, encryption_provider_config.as_deref()))
        }
        Command::Audit(AuditCommand::Reads { log, namespace, secret, since, json }) => {
            audit_reads(&log, &namespace, &secret, since, json)
        }
        Command::Agent(args) => runtime.block_on(agent(args)),
        Command::Run(args) => {
            let code = runtime.block_on(run(args))?;
            drop(runtime);
            std::process::exit(code);
        }
        Command::CredentialHelper(args) => {
            let code = runtime.block_on(credential_helper(args))?;
            drop(runtime);
            std::process::exit(code);
        }
        Command::Admin(AdminCommand::Kubeconfig { data_dir, user, groups, ttl, server }) => {
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            let kubeconfig =
                strongroom_server::pki::user_kubeconfig(&data_dir, &user, &groups, ttl, server.as_deref())?;
            use std::io::Write;
            std::io::stdout().write_all(kubeconfig.as_bytes()).context("cannot write the kubeconfig")?;
            Ok(())
        }
    }
}

/// A client for `--kubeconfig` (else $KUBECONFIG, then ~/.kube/config).
async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("cannot use the kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context("no kubeconfig: give --kubeconfig or set KUBECONFIG")?,
    };
    kube::Client::try_from(config).context("cannot build the Kubernetes client")
}

/// The agent's configuration from the shared flags. The root defaults to a private directory
/// on /dev/shm (tmpfs on every Linux distribution).
fn delivery_config(args: &DeliveryArgs, pods_dir: PathBuf) -> anyhow::Result<strongroom_agent::agent::Config> {
    let root = match &args.root {
        Some(r) => r.clone(),
        None => {
            let dir = PathBuf::from(format!("/dev/shm/strongroom-{}", rustix::process::getuid().as_raw()));
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            restrict_dir(&dir)?;
            dir
        }
    };
    let node = match &args.node {
        Some(n) => n.clone(),
        None => rustix::system::uname().nodename().to_string_lossy().into_owned(),
    };
    let mut config = strongroom_agent::agent::Config::new(pods_dir, root, node);
    config.change_detection = args.change_detection;
    config.sync_period = args.sync_period;
    config.link_mounts = args.link_mounts;
    Ok(config)
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let mut config = delivery_config(&args.delivery, args.pods.clone())?;
    if args.run_processes {
        config.processes = Some(strongroom_agent::agent::Processes {
            on_change: args.delivery.on_change(),
            grace_period: args.delivery.grace_period,
        });
    }
    let client = kube_client(args.delivery.kubeconfig.as_deref()).await?;
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    strongroom_agent::agent::run(client, config, shutdown).await?;
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let agent = delivery_config(&args.delivery, PathBuf::new())?;
    let client = kube_client(args.delivery.kubeconfig.as_deref()).await?;
    let config = strongroom_agent::run::RunConfig {
        agent,
        pod_file: args.file,
        container: args.container,
        command: args.command,
        on_change: args.delivery.on_change(),
        grace_period: args.delivery.grace_period,
    };
    Ok(strongroom_agent::run::run(client, config).await?)
}

/// Serves one credential helper call; failures are printed on stdout, where docker reads them.
async fn credential_helper(args: CredentialHelperArgs) -> anyhow::Result<i32> {
    use std::io::{Read, Write};
    use strongroom_agent::credentials;
    // Read first: the caller writes the server URL and closes stdin whatever happens next.
    let mut stdin = Vec::new();
    if args.action == "get" {
        std::io::stdin().read_to_end(&mut stdin).context("cannot read the server URL from stdin")?;
    }
    let entries = if credentials::needs_credentials(&args.action) {
        let load = async {
            let file = args.file.as_deref().context("no pod manifest: give -f POD.yaml or set STRONGROOM_POD")?;
            let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let pod = strongroom_agent::agent::parse_pod(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: not a v1 Pod manifest: {e}", file.display()))?;
            let client = kube_client(args.kubeconfig.as_deref()).await?;
            anyhow::Ok(credentials::pull_secret_entries(&client, &pod).await?)
        };
        match load.await {
            Ok(entries) => entries,
            Err(e) => {
                println!("strongroom: {e:#}");
                return Ok(1);
            }
        }
    } else {
        Vec::new()
    };
    let (out, code) = credentials::helper_command(&args.action, &stdin, &entries);
    let mut stdout = std::io::stdout();
    stdout.write_all(out.expose()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    Ok(code)
}

/// A signal by name: `SIGHUP`, `HUP` or `hup`.
fn parse_signal(s: &str) -> Result<rustix::process::Signal, String> {
    use rustix::process::Signal;
    let name = s.trim_start_matches("SIG").trim_start_matches("sig").to_ascii_uppercase();
    Ok(match name.as_str() {
        "HUP" => Signal::HUP,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "TERM" => Signal::TERM,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "KILL" => Signal::KILL,
        "WINCH" => Signal::WINCH,
        _ => return Err(format!("unknown signal {s:?} (HUP, INT, QUIT, TERM, USR1, USR2, KILL, WINCH)")),
    })
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
    restrict_dir(&args.data_dir)?;
    let transformers = load_transformers(&args.data_dir, args.encryption_provider_config.as_deref())?;
    if transformers.writes_plaintext("secrets") && !args.allow_plaintext_at_rest {
        bail!(
            "the encryption configuration stores secrets in plaintext (identity is the first provider); \
             refusing to start without --allow-plaintext-at-rest"
        );
    }
    if transformers.writes_plaintext("secrets") {
        tracing::warn!("secrets are stored in plaintext at rest (--allow-plaintext-at-rest)");
    }
    let embedded =
        EmbeddedConfig { history_window: args.watch_history, ..EmbeddedConfig::new(store_path(&args.data_dir)) };
    let backend: Arc<dyn Backend> =
        Arc::new(EmbeddedBackend::open(embedded).context("cannot open the embedded store")?);
    let cache = CacheConfig { history_window: args.watch_history, ..CacheConfig::default() };
    let config = strongroom_server::Config {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        transformers: Arc::new(transformers),
        backend,
        cache,
        extra_sans: args.tls_sans,
        drain_timeout: Duration::from_secs(30),
        limits: strongroom_server::Limits {
            readonly_inflight: args.max_requests_inflight,
            mutating_inflight: args.max_mutating_requests_inflight,
            watches: args.max_watches,
        },
        identity: strongroom_server::IdentityConfig {
            token_auth_file: args.token_auth_file,
            anonymous: args.anonymous_auth,
            issuer: args.service_account_issuer,
            audiences: args.api_audiences,
        },
        audit: strongroom_server::AuditConfig {
            path: args.audit_log_path,
            max_size_mb: args.audit_log_maxsize,
            max_backups: args.audit_log_maxbackup,
            policy_file: args.audit_policy_file,
            fail_open: args.audit_fail_open,
        },
        event_ttl: args.event_ttl,
    };
    strongroom_server::run(config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn audit_reads(
    log: &Path,
    namespace: &str,
    secret: &str,
    since: Option<jiff::Timestamp>,
    json: bool,
) -> anyhow::Result<()> {
    use strongroom_server::audit;
    let files =
        audit::list_log_files(log).with_context(|| format!("cannot list the audit logs at {}", log.display()))?;
    if files.is_empty() {
        bail!("no audit log at {}", log.display());
    }
    let reads = audit::reads_of_secret(&files, namespace, secret, since)
        .with_context(|| format!("cannot read the audit logs at {}", log.display()))?;
    let mut out = String::new();
    if json {
        for r in &reads.records {
            out.push_str(&serde_json::to_string(r).context("cannot encode a record")?);
            out.push('\n');
        }
    } else {
        let mut rows = vec![["TIME", "USER", "VERB", "ACCESS", "CODE", "SOURCE", "USER AGENT"].map(String::from)];
        for r in &reads.records {
            let user = match &r.impersonated_user {
                Some(as_user) => format!("{} (as {})", r.user.username, as_user.username),
                None => r.user.username.clone(),
            };
            let access = match r.kind {
                audit::ReadKind::Direct => "direct",
                audit::ReadKind::Collection if r.namespace.is_empty() => "all namespaces",
                audit::ReadKind::Collection => "namespace",
                audit::ReadKind::WriteResponse => "write",
            };
            rows.push([
                r.received.to_string(),
                user,
                r.verb.clone(),
                access.to_string(),
                r.code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                r.source_ips.join(","),
                r.user_agent.clone(),
            ]);
        }
        let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for row in &rows {
            let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("   ").trim_end());
            out.push('\n');
        }
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes()).context("cannot write to stdout")?;
    eprintln!(
        "{} request(s) could have read {namespace}/{secret}; {} audit events in {} file(s) scanned{}",
        reads.records.len(),
        reads.events_scanned,
        files.len(),
        if reads.unparsable_lines > 0 {
            format!(", {} unparsable line(s) skipped", reads.unparsable_lines)
        } else {
            String::new()
        },
    );
    Ok(())
}

/// The data directory holds keys: keep it private to its owner.
fn restrict_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict permissions of {}", dir.display()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

async fn reencrypt(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let transformers = load_transformers(data_dir, config)?;
    let path = store_path(data_dir);
    if !path.exists() {
        bail!("no store at {}", path.display());
    }
    let backend = EmbeddedBackend::open(EmbeddedConfig::new(&path))
        .context("cannot open the store (is the server still running? stop it first)")?;
    let mut before: std::collections::BTreeMap<String, u64> = Default::default();
    let mut rewritten = 0u64;
    for kv in backend.raw_objects()? {
        let transformer = transformers.for_resource(kv.key.resource());
        *before.entry(transformer.describe(&kv.value)).or_default() += 1;
        let (plain, stale) = transformer
            .transform_from_storage(&kv.value, kv.key.as_str())
            .with_context(|| format!("cannot decrypt {}: no configured key reads it", kv.key))?;
        if !stale {
            continue;
        }
        let value = transformer.transform_to_storage(plain.expose(), kv.key.as_str())?;
        let op = WriteOp::Update { key: kv.key.clone(), value, expected_mod_revision: kv.mod_revision };
        match backend.write(op).await? {
            WriteOutcome::Done { .. } => rewritten += 1,
            other => bail!("{} changed during re-encryption ({other:?}); run again", kv.key),
        }
    }
    // The watch history still holds values written with the old keys: drop it, so that removing
    // an old key afterwards leaves nothing it alone could read.
    let dropped = backend.compact_all_history()?;
    let mut after: std::collections::BTreeMap<String, u64> = Default::default();
    for kv in backend.raw_objects()? {
        *after.entry(transformers.for_resource(kv.key.resource()).describe(&kv.value)).or_default() += 1;
    }
    println!("rewrote {rewritten} objects with the current write key");
    println!("before: {}", summary(&before));
    println!("after:  {}", summary(&after));
    println!("dropped {dropped} watch history events (clients resuming older watches relist)");
    Ok(())
}

fn summary(counts: &std::collections::BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "no objects".into();
    }
    counts.iter().map(|(k, n)| format!("{n} with {k}")).collect::<Vec<_>>().join(", ")
}
