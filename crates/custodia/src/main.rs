//! `custodia`: the one binary. Parses arguments and calls into the library crates; nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use custodia_lane::{Lane, LaneConfig, LaneDir};
use custodia_seal::DeviceSigningKey;
use custodia_vault::clock::SystemClock;
use custodia_vault::{MasterKey, Vault, VaultConfig};

mod access;
mod audit;
mod demo;
mod leak;
mod retention;
mod scan;
mod simulate;
mod witness;

/// Custodia keeps border-lane and plate-reader images sealed from the camera on, logs every read,
/// and shreds them on schedule.
#[derive(Parser)]
#[command(name = "custodia", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on generated traffic: a vault, four lanes, 45 days (start here).
    Demo(demo::DemoArgs),
    /// Create a vault folder (admin).
    Init(InitArgs),
    /// Serve the vault's HTTP API.
    Serve(ServeArgs),
    /// Enrol, list and revoke lane devices (admin).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Run or inspect a lane capture agent (on the lane device).
    #[command(subcommand)]
    Lane(LaneCommand),
    /// Check the audit log as an outside auditor: verify, prove, check, tail (auditor).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run a witness that cosigns a vault's log checkpoints (oversight body).
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Add, list and disable principals; issue tokens; give and withdraw grants (admin).
    #[command(subcommand)]
    Principal(access::PrincipalCommand),
    /// Show, check and install the access policy (admin).
    #[command(subcommand)]
    Policy(access::PolicyCommand),
    /// Search records by plate, site/lane and time, or device, with a purpose and a case (officer).
    Search(access::SearchArgs),
    /// Read a record's metadata or one image part, with a purpose and a case (officer).
    Get(access::GetArgs),
    /// Perceptual hashes of files, and scans of leaked dumps against the vault (responder).
    #[command(subcommand)]
    Leak(leak::LeakCommand),
    /// Run retention (crypto-shredding) now, or show what expires next (admin).
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Many simulated lanes against an in-process vault over loopback: load and soak runs.
    Simulate(simulate::SimulateArgs),
}

#[derive(Args)]
struct InitArgs {
    /// The vault folder to create.
    #[arg(long, default_value = "custodia-vault")]
    dir: PathBuf,
    /// A site this vault serves (repeat for several).
    #[arg(long = "site", required = true)]
    sites: Vec<String>,
    /// Take the keystore passphrase from this environment variable (Argon2id) instead of
    /// generating a key file.
    #[arg(long)]
    passphrase_env: Option<String>,
    /// Write the generated master key file here (default: `<dir>.master.key` beside the folder).
    #[arg(long, conflicts_with = "passphrase_env")]
    master_key_file: Option<PathBuf>,
    /// Keep the keys in a PKCS#11 token (an HSM) through this module, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so; the user PIN comes from --pin-env.
    #[arg(long, requires_all = ["hsm_token", "pin_env"], conflicts_with_all = ["passphrase_env", "master_key_file"])]
    hsm_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, requires = "hsm_module")]
    hsm_token: Option<String>,
    /// Environment variable holding the token's user PIN (give the same variable as
    /// --passphrase-env to every later command that opens this vault).
    #[arg(long, requires = "hsm_module")]
    pin_env: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// The vault folder.
    #[arg(long, default_value = "custodia-vault")]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Environment variable holding the keystore passphrase, for a passphrase keystore.
    #[arg(long)]
    passphrase_env: Option<String>,
    /// A witness (`custodia witness serve`) to send each new log checkpoint to; its
    /// cosignatures are published with the checkpoint (repeat for several).
    #[arg(long = "witness")]
    witnesses: Vec<String>,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Create a lane identity, register its public key with the vault, write the lane folder.
    Enroll {
        /// The vault folder.
        #[arg(long, default_value = "custodia-vault")]
        vault: PathBuf,
        /// The site the device is installed at.
        #[arg(long)]
        site: String,
        /// Its lane.
        #[arg(long)]
        lane: String,
        /// The lane folder to create for it.
        #[arg(long)]
        lane_dir: PathBuf,
        /// The URL the lane reaches the vault at.
        #[arg(long, default_value = "http://127.0.0.1:8443")]
        vault_url: String,
        /// Environment variable holding the keystore passphrase, for a passphrase keystore.
        #[arg(long)]
        passphrase_env: Option<String>,
    },
    /// List enrolled devices.
    List {
        /// The vault folder.
        #[arg(long, default_value = "custodia-vault")]
        vault: PathBuf,
        /// Environment variable holding the keystore passphrase, for a passphrase keystore.
        #[arg(long)]
        passphrase_env: Option<String>,
    },
    /// Revoke a device: its captures are refused from now on.
    Revoke {
        /// The vault folder.
        #[arg(long, default_value = "custodia-vault")]
        vault: PathBuf,
        /// The device id (hex).
        device: String,
        /// Environment variable holding the keystore passphrase, for a passphrase keystore.
        #[arg(long)]
        passphrase_env: Option<String>,
    },
}

#[derive(Subcommand)]
enum LaneCommand {
    /// Watch the inbox, seal, and upload until interrupted (Ctrl-C).
    Run {
        /// The lane folder made by `custodia device enroll`.
        #[arg(long)]
        dir: PathBuf,
        /// This lane has no ALPR engine: images alone are normal captures.
        #[arg(long)]
        no_engine: bool,
    },
    /// Print the lane's status (backlog, uploads, quarantine).
    Status {
        /// The lane folder.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CUSTODIA_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("custodia: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Init(args) => init(args),
        Command::Serve(args) => serve(args).await,
        Command::Device(command) => device(command).await,
        Command::Lane(command) => lane(command).await,
        Command::Audit(command) => audit::run(command, open_vault).await,
        Command::Witness(command) => witness::run(command).await,
        Command::Leak(command) => leak::run(command, open_vault).await,
        Command::Retention(command) => retention::run(command, open_vault).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Principal(command) => access::principal(command).await,
        Command::Policy(command) => access::policy(command).await,
        Command::Search(args) => access::search(args).await,
        Command::Get(args) => access::get(args).await,
    }
}

fn passphrase(env: &Option<String>) -> Result<Option<Vec<u8>>> {
    match env {
        None => Ok(None),
        Some(name) => {
            let value = std::env::var(name).with_context(|| format!("environment variable {name} is not set"))?;
            if value.is_empty() {
                bail!("environment variable {name} is empty");
            }
            Ok(Some(value.into_bytes()))
        }
    }
}

fn open_vault(dir: &std::path::Path, passphrase_env: &Option<String>) -> Result<Vault> {
    let passphrase = passphrase(passphrase_env)?;
    Vault::open(dir, Arc::new(SystemClock), Box::new(rand_core::OsRng), passphrase.as_deref())
        .with_context(|| format!("opening the vault at {}", dir.display()))
}

fn init(args: InitArgs) -> Result<()> {
    if let (Some(module), Some(token_label)) = (&args.hsm_module, &args.hsm_token) {
        let pin = passphrase(&args.pin_env)?.expect("clap requires --pin-env with --hsm-module");
        let mut config = VaultConfig { sites: args.sites, ..VaultConfig::default() };
        init_on_token(&args.dir, &mut config, module, token_label, &pin)?;
        println!(
            "Created a vault at {} for {}; its keys live in token {token_label:?} and never leave it.",
            args.dir.display(),
            config.sites.join(", ")
        );
        return Ok(());
    }
    let config = VaultConfig { sites: args.sites, ..VaultConfig::default() };
    let passphrase = passphrase(&args.passphrase_env)?;
    // By default the master key file goes beside the vault folder, never inside it: a copy of
    // the folder alone then opens nothing, and retention's destruction holds against it.
    let default_key_file = || -> Result<PathBuf> {
        let name = args.dir.file_name().context("--dir names no folder")?.to_string_lossy().to_string();
        let parent = args.dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(parent)?;
        Ok(std::fs::canonicalize(parent)?.join(format!("{name}.master.key")))
    };
    let master = match (&passphrase, &args.master_key_file) {
        (Some(p), _) => MasterKey::Passphrase(p, Default::default()),
        (None, Some(path)) => MasterKey::KeyFileAt(path.clone()),
        (None, None) => MasterKey::KeyFileAt(default_key_file()?),
    };
    let key_file = match &master {
        MasterKey::KeyFileAt(path) => Some(path.clone()),
        _ => None,
    };
    Vault::init(&args.dir, &config, master, &mut rand_core::OsRng)
        .with_context(|| format!("creating a vault at {}", args.dir.display()))?;
    println!("Created a vault at {} for {}.", args.dir.display(), config.sites.join(", "));
    if let Some(path) = key_file {
        println!(
            "Its keystore master key is {} (mode 0600), outside the vault folder. Keep it off the\n\
             vault's disk and its backups: with it, a copy of the folder opens what is not yet shredded.",
            path.display()
        );
    }
    Ok(())
}

/// Creates a vault in `dir` whose keys live in a PKCS#11 token: opens the token with `pin`,
/// records in `config` how to reach it again, and makes the vault's keys inside it.
pub(crate) fn init_on_token(
    dir: &std::path::Path,
    config: &mut VaultConfig,
    module: &std::path::Path,
    token_label: &str,
    pin: &[u8],
) -> Result<()> {
    let pin = zeroize::Zeroizing::new(String::from_utf8(pin.to_vec()).context("the PIN is not UTF-8")?);
    let keystore = custodia_store::Pkcs11Keystore::open(module, token_label, pin)
        .with_context(|| format!("opening token {token_label:?} through {}", module.display()))?;
    config.keystore = custodia_vault::config::KeystoreSetting::Pkcs11 {
        module: module.display().to_string(),
        token_label: token_label.to_string(),
    };
    Vault::init_with_keystore(dir, config, &keystore, &mut rand_core::OsRng)
        .with_context(|| format!("creating a vault at {}", dir.display()))
}

async fn serve(args: ServeArgs) -> Result<()> {
    let vault = open_vault(&args.dir, &args.passphrase_env)?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    custodia_server::spawn_epoch_maintenance(vault.clone(), Duration::from_secs(600));
    // Retention every minute under the policy in force (read at each run).
    custodia_server::spawn_retention(vault.clone(), custodia_vault::retention::DEFAULT_RUN_EVERY);
    if !args.witnesses.is_empty() {
        witness::spawn_witness_client(vault.clone(), args.witnesses);
    }
    println!("custodia vault serving on http://{} (Ctrl-C to stop)", listener.local_addr()?);
    custodia_server::run(listener, vault.clone(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // The last checkpoint covers every action acknowledged before shutdown.
    vault.publish_checkpoint()?;
    Ok(())
}

async fn device(command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::Enroll { vault, site, lane, lane_dir, vault_url, passphrase_env } => {
            let vault = open_vault(&vault, &passphrase_env)?;
            let key = DeviceSigningKey::generate(&mut rand_core::OsRng);
            let lane_dir = LaneDir::new(lane_dir);
            let row = vault.enroll_device(&site, &lane, &key.verifying_key())?;
            let config = LaneConfig {
                device_id: row.id.to_string(),
                site,
                lane,
                vault_url,
                vault_epoch_key: hex::encode(vault.epoch_signing_public_key()?),
                settle_ms: 300,
                pair_grace_ms: 15_000,
                upload_concurrency: 4,
            };
            lane_dir.create(&config, &key)?;
            println!(
                "Enrolled device {} for {}/{}; lane folder {}",
                row.id,
                row.site,
                row.lane,
                lane_dir.root().display()
            );
            Ok(())
        }
        DeviceCommand::List { vault, passphrase_env } => {
            let vault = open_vault(&vault, &passphrase_env)?;
            println!("{:<34} {:<16} {:<12} {:<8} public key", "device", "site", "lane", "status");
            for device in vault.devices()? {
                println!(
                    "{:<34} {:<16} {:<12} {:<8} {}",
                    device.id.to_string(),
                    device.site,
                    device.lane,
                    format!("{:?}", device.status).to_lowercase(),
                    hex::encode(device.public_key)
                );
            }
            Ok(())
        }
        DeviceCommand::Revoke { vault, device, passphrase_env } => {
            let vault = open_vault(&vault, &passphrase_env)?;
            let id = device.parse().map_err(|_| anyhow::anyhow!("{device:?} is not a device id (32 hex digits)"))?;
            vault.revoke_device(&id)?;
            println!("Revoked device {device}: its captures are refused from now on.");
            Ok(())
        }
    }
}

async fn lane(command: LaneCommand) -> Result<()> {
    match command {
        LaneCommand::Run { dir, no_engine } => {
            let mut lane = Lane::open(LaneDir::new(&dir)).with_context(|| format!("opening lane {}", dir.display()))?;
            lane.expects_engine_output = !no_engine;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                flag.store(true, Ordering::SeqCst);
            });
            println!("lane agent running on {} (Ctrl-C to stop)", dir.display());
            lane.run(stop, Duration::from_millis(200)).await?;
            Ok(())
        }
        LaneCommand::Status { dir } => {
            let path = dir.join("state").join("status.json");
            let status = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let backlog = custodia_lane::outbox::pending_in(&dir.join("outbox"))?.len();
            println!("{status}\noutbox now holds {backlog} sealed capture(s)");
            Ok(())
        }
    }
}
