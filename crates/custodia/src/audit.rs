//! `custodia audit`: what an outside auditor runs, with nothing but the log's verifier key.
//!
//! - `verify <dir|url> --key K`: fetch the signed checkpoint, recompute the whole tree from every
//!   entry bundle, compare every served hash tile, check the signature, and check that the tree
//!   extends the last checkpoint this auditor accepted (kept in a local state file): a rewritten
//!   or rolled-back history is refused, naming what differs.
//! - `prove <record-id|index> --vault DIR`: a C2SP tlog-proof for one event (and the event).
//! - `check <proof> --key K --entry FILE`: verify a tlog-proof offline.
//! - `tail <url> --key K`: follow new checkpoints, checking each extends the previous, and print
//!   the new events.
//! - `key --vault DIR`: print the log's verifier key.
//! - `export --vault DIR --out DIR`: a static C2SP tlog-tiles mirror (checkpoint, tiles, bundles),
//!   optionally with one entry's proof and a consistency proof from an older checkpoint.
//!
//! Sources: `http://host:port` (the vault's `/log/` routes), a vault folder (its `log/`, read
//! only), or a mirror folder (`checkpoint` + `tile/...`). Plain HTTP only in this build (no TLS
//! backend is compiled in): put auditors behind a TLS-terminating proxy or use a mirror.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use custodia_tlog::{
    Checkpoint, EntryTile, NoteVerifier, ReadError, SignedCheckpoint, Tile, TileHashReader, TileReader, TileSource,
    TlogProof, Verifiers, detect_fork, new_tiles, parse_entry_bundle, parse_tile_path, verify_tiled_log,
};
use custodia_vault::audit::{Event, LogFile};

/// `custodia audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the whole log and check it against its signed checkpoint and your last one.
    Verify(VerifyArgs),
    /// Write a C2SP tlog-proof for one event (a record id's `ingested` event, or an entry index).
    Prove {
        /// A record id (`<device>-<sequence>`) or an entry index.
        what: String,
        /// The vault folder.
        #[arg(long, default_value = "custodia-vault")]
        vault: PathBuf,
        /// Write the proof here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the event's bytes here (needed by `audit check --entry`).
        #[arg(long)]
        entry_out: Option<PathBuf>,
        /// Environment variable holding the keystore passphrase, for a passphrase keystore.
        #[arg(long)]
        passphrase_env: Option<String>,
    },
    /// Verify a tlog-proof offline against the log key.
    Check {
        /// The proof file.
        proof: PathBuf,
        /// The log's verifier key (`name+id+base64`), or @FILE to read it from a file.
        #[arg(long)]
        key: String,
        /// The event the proof is for (its exact bytes).
        #[arg(long)]
        entry: PathBuf,
        /// A witness verifier key whose cosignature is required (repeat for several).
        #[arg(long = "witness")]
        witnesses: Vec<String>,
    },
    /// Follow a vault's log: check each new checkpoint extends the last and print new events.
    Tail {
        /// The vault URL or folder.
        source: String,
        /// The log's verifier key, or @FILE.
        #[arg(long)]
        key: String,
        /// Seconds between polls.
        #[arg(long, default_value_t = 2)]
        interval: u64,
        /// Stop after this many new checkpoints (default: never).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print the log's verifier key (give it to auditors and witnesses).
    Key {
        /// The vault folder.
        #[arg(long, default_value = "custodia-vault")]
        vault: PathBuf,
        /// Environment variable holding the keystore passphrase, for a passphrase keystore.
        #[arg(long)]
        passphrase_env: Option<String>,
    },
    /// Write a static mirror of the log (C2SP tlog-tiles layout) from a vault folder.
    Export(ExportArgs),
}

/// `custodia audit verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// `http://host:port`, a vault folder, or a mirror folder.
    pub source: String,
    /// The log's verifier key (`name+id+base64`), or @FILE to read it from a file.
    #[arg(long)]
    pub key: String,
    /// Where this auditor keeps the last checkpoint it accepted (default:
    /// `$HOME/.custodia/auditor/<origin>.checkpoint`).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// A witness verifier key whose cosignature is required (repeat for several).
    #[arg(long = "witness")]
    pub witnesses: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `custodia audit export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The vault folder (read only; the vault may be running).
    #[arg(long, default_value = "custodia-vault")]
    pub vault: PathBuf,
    /// The mirror folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write `entry` and `entry.tlog-proof` for this entry index.
    #[arg(long)]
    pub entry: Option<u64>,
    /// An older signed checkpoint of this log: also write it as `old-checkpoint` with the
    /// `consistency` proof from it to the current one.
    #[arg(long)]
    pub old: Option<PathBuf>,
}

/// Runs one `custodia audit` subcommand.
pub async fn run(
    command: AuditCommand,
    open_vault: impl Fn(&Path, &Option<String>) -> Result<custodia_vault::Vault>,
) -> Result<()> {
    match command {
        AuditCommand::Verify(args) => tokio::task::spawn_blocking(move || verify(&args)).await?,
        AuditCommand::Prove { what, vault, out, entry_out, passphrase_env } => {
            let vault = open_vault(&vault, &passphrase_env)?;
            let (index, entry, proof) = if let Ok(index) = what.parse::<u64>() {
                let entry = vault.audit_log().entry(index).with_context(|| format!("no entry {index}"))?;
                (index, entry, vault.prove_entry(index)?)
            } else {
                let id = what.parse().map_err(|_| anyhow!("{what:?} is neither an entry index nor a record id"))?;
                vault.prove_record(&id)?.ok_or_else(|| anyhow!("no ingested event for record {what}"))?
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, proof.to_text()).with_context(|| format!("writing {}", path.display()))?
                }
                None => print!("{}", proof.to_text()),
            }
            if let Some(path) = entry_out {
                std::fs::write(&path, &entry).with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!("entry {index}: {}", String::from_utf8_lossy(&entry));
            Ok(())
        }
        AuditCommand::Check { proof, key, entry, witnesses } => {
            let (log_key, known) = keys(&key, &witnesses)?;
            let text = std::fs::read(&proof).with_context(|| format!("reading {}", proof.display()))?;
            let entry = std::fs::read(&entry).with_context(|| format!("reading {}", entry.display()))?;
            let parsed = TlogProof::parse(&text).with_context(|| format!("{}: not a tlog-proof", proof.display()))?;
            let cp = parsed
                .verify(&entry, log_key.name().as_str(), &log_key, &known)
                .with_context(|| format!("{}: proof of entry {} does not verify", proof.display(), parsed.index))?;
            require_witnesses(&cp, &witnesses)?;
            println!(
                "ok: entry {} is in {} at tree size {} (root {})",
                parsed.index,
                cp.checkpoint.origin(),
                cp.checkpoint.size(),
                cp.checkpoint.hash()
            );
            if let Ok(event) = Event::parse(&entry) {
                println!("event: {} at {} by {}", event.action.kind(), event.time_ms, event.principal);
            }
            Ok(())
        }
        AuditCommand::Tail { source, key, interval, count } => {
            tokio::task::spawn_blocking(move || tail(&source, &key, interval, count)).await?
        }
        AuditCommand::Key { vault, passphrase_env } => {
            let vault = open_vault(&vault, &passphrase_env)?;
            println!("{}", vault.log_verifier_key());
            Ok(())
        }
        AuditCommand::Export(args) => tokio::task::spawn_blocking(move || export(&args)).await?,
    }
}

fn read_key(key: &str) -> Result<String> {
    match key.strip_prefix('@') {
        Some(path) => {
            Ok(std::fs::read_to_string(path).with_context(|| format!("reading key {path}"))?.trim().to_string())
        }
        None => Ok(key.to_string()),
    }
}

fn keys(log: &str, witnesses: &[String]) -> Result<(NoteVerifier, Verifiers)> {
    let log_key = NoteVerifier::from_vkey(&read_key(log)?).context("--key is not a note verifier key")?;
    let mut known: Verifiers = [log_key.clone()].into_iter().collect();
    for w in witnesses {
        known.push(
            NoteVerifier::from_vkey(&read_key(w)?).with_context(|| format!("--witness {w} is not a verifier key"))?,
        );
    }
    Ok((log_key, known))
}

fn require_witnesses(cp: &SignedCheckpoint, witnesses: &[String]) -> Result<()> {
    for w in witnesses {
        let v = NoteVerifier::from_vkey(&read_key(w)?)?;
        if !cp.note.is_signed_by(&v) {
            bail!("checkpoint of size {} is not cosigned by witness {}", cp.checkpoint.size(), v.name());
        }
    }
    Ok(())
}

/// Where tiles and checkpoints come from.
pub enum Source {
    /// A vault's HTTP API (`/log/...`).
    Http {
        /// Base URL without trailing slash.
        base: String,
        /// Client.
        client: reqwest::Client,
        /// The runtime to block on (we run on a blocking thread).
        handle: tokio::runtime::Handle,
    },
    /// A vault folder, read only.
    Vault {
        /// `<vault>/log`.
        dir: PathBuf,
        /// The log file, opened after the checkpoint was read.
        file: std::sync::Mutex<Option<Box<LogFile>>>,
    },
    /// A static mirror folder.
    Mirror(PathBuf),
}

impl Source {
    /// Recognises a URL, a vault folder or a mirror folder.
    pub fn open(location: &str) -> Result<Source> {
        if location.starts_with("http://") || location.starts_with("https://") {
            let client = reqwest::Client::builder().build().context("HTTP client")?;
            return Ok(Source::Http {
                base: location.trim_end_matches('/').to_string(),
                client,
                handle: tokio::runtime::Handle::current(),
            });
        }
        let dir = PathBuf::from(location);
        if dir.join("log").join(custodia_vault::audit::LOG_FILE).exists() {
            return Ok(Source::Vault { dir: dir.join("log"), file: std::sync::Mutex::new(None) });
        }
        if dir.join("checkpoint").exists() {
            return Ok(Source::Mirror(dir));
        }
        bail!("{location} is not a URL, a vault folder (with log/) or a log mirror (with checkpoint)")
    }

    /// The latest signed checkpoint. For a vault folder, the log file is opened after it, so it
    /// holds at least the checkpoint's entries.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        match self {
            Source::Http { .. } => self.get("checkpoint")?.ok_or_else(|| anyhow!("the vault has no checkpoint")),
            Source::Vault { dir, file } => {
                let cp = std::fs::read(dir.join("checkpoint"))
                    .with_context(|| format!("reading {}/checkpoint", dir.display()))?;
                let log = LogFile::open_read_only(&dir.join(custodia_vault::audit::LOG_FILE))?;
                *file.lock().expect("lock") = Some(Box::new(log));
                Ok(cp)
            }
            Source::Mirror(dir) => Ok(std::fs::read(dir.join("checkpoint"))?),
        }
    }

    /// The bytes at `path` under the log root, or `None` if absent.
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Source::Http { base, client, handle } => {
                let url = format!("{base}/log/{path}");
                handle.block_on(async {
                    let response = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
                    if response.status() == reqwest::StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    if !response.status().is_success() {
                        bail!("GET {url}: {}", response.status());
                    }
                    Ok(Some(response.bytes().await.with_context(|| format!("GET {url}"))?.to_vec()))
                })
            }
            Source::Vault { file, .. } => {
                let guard = file.lock().expect("lock");
                let log = guard.as_ref().ok_or_else(|| anyhow!("checkpoint not read yet"))?;
                Ok(log.tile(parse_tile_path(path)?)?)
            }
            Source::Mirror(dir) => match std::fs::read(dir.join(path)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(path).display())),
            },
        }
    }

    fn must(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        match self.get(path) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(ReadError::Backend(format!("{path}: not served"))),
            Err(e) => Err(ReadError::Backend(format!("{e:#}"))),
        }
    }
}

impl TileSource for Source {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, ReadError> {
        self.must(&tile.path())
    }
    fn read_entry_bundle(&self, bundle: &EntryTile) -> Result<Vec<u8>, ReadError> {
        self.must(&bundle.path())
    }
}

impl TileReader for Source {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        tiles.iter().map(|t| self.must(&t.path())).collect()
    }
}

fn state_path(args_state: &Option<PathBuf>, origin: &str) -> Result<PathBuf> {
    if let Some(p) = args_state {
        return Ok(p.clone());
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; pass --state"))?;
    let name: String =
        origin.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    Ok(PathBuf::from(home).join(".custodia").join("auditor").join(format!("{name}.checkpoint")))
}

/// Checks `new` against the auditor's last accepted checkpoint, using the (already
/// authenticated) tiles of the new tree.
fn check_against_state(old: &Checkpoint, new: &Checkpoint, source: &Source) -> Result<()> {
    if new.size() < old.size() {
        bail!(
            "rollback: the log now has {} entries, but you already accepted a checkpoint of {} entries (root {})",
            new.size(),
            old.size(),
            old.hash()
        );
    }
    let reader = TileHashReader::new(new.size(), new.hash(), source);
    detect_fork(old, new, &reader).map_err(|e| {
        anyhow!("history rewritten: {e} (your last accepted checkpoint: size {}, root {})", old.size(), old.hash())
    })
}

fn open_signed(bytes: &[u8], log_key: &NoteVerifier, known: &Verifiers, what: &str) -> Result<SignedCheckpoint> {
    SignedCheckpoint::open(bytes, log_key.name().as_str(), log_key, known)
        .with_context(|| format!("{what}: the checkpoint does not verify under the log key {}", log_key.to_vkey()))
}

/// `custodia audit verify`.
pub fn verify(args: &VerifyArgs) -> Result<()> {
    let (log_key, known) = keys(&args.key, &args.witnesses)?;
    let source = Source::open(&args.source)?;
    let signed = open_signed(&source.checkpoint()?, &log_key, &known, &args.source)?;
    require_witnesses(&signed, &args.witnesses)?;
    let cp = &signed.checkpoint;
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(cp.size());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} entries ({per_sec}, {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message("recomputing the tree");
        bar
    };
    let started = std::time::Instant::now();
    verify_tiled_log(cp, &source, |done, _| bar.set_position(done))
        .with_context(|| format!("{}: the log does not match its checkpoint of size {}", args.source, cp.size()))?;
    bar.finish_and_clear();
    let state = state_path(&args.state, cp.origin())?;
    let note = match std::fs::read(&state) {
        Ok(bytes) => {
            let old = open_signed(&bytes, &log_key, &known, &state.display().to_string())?;
            check_against_state(&old.checkpoint, cp, &source)?;
            format!("; extends your last accepted checkpoint (size {})", old.checkpoint.size())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "; first checkpoint seen from this log".to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", state.display())),
    };
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, signed_text(&source)?)?;
    std::fs::rename(&tmp, &state)?;
    let cosigners = signed.note.verified_signatures().len().saturating_sub(1);
    println!(
        "ok: {} size {} root {} — every entry, tile and signature checked in {:.1} s{note}; {cosigners} witness cosignature(s) verified",
        cp.origin(),
        cp.size(),
        cp.hash(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn signed_text(source: &Source) -> Result<Vec<u8>> {
    match source {
        // The vault folder's checkpoint may have moved on; what we verified is what we read.
        Source::Vault { dir, .. } => Ok(std::fs::read(dir.join("checkpoint"))?),
        other => other.checkpoint(),
    }
}

fn tail(location: &str, key: &str, interval: u64, count: Option<u64>) -> Result<()> {
    let (log_key, known) = keys(key, &[])?;
    let mut last: Option<Checkpoint> = None;
    let mut seen = 0u64;
    loop {
        let source = Source::open(location)?;
        let signed = open_signed(&source.checkpoint()?, &log_key, &known, location)?;
        let cp = signed.checkpoint;
        if last.as_ref().is_none_or(|l| l.size() != cp.size() || l.hash() != cp.hash()) {
            let from = match &last {
                Some(old) => {
                    check_against_state(old, &cp, &source)?;
                    old.size()
                }
                None => cp.size().saturating_sub(10),
            };
            println!("checkpoint: size {} root {}", cp.size(), cp.hash());
            print_events(&source, &cp, from)?;
            std::io::stdout().flush()?;
            seen += 1;
            last = Some(cp);
            if count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(interval));
    }
}

/// Prints entries `from..cp.size()`, each checked against the authenticated level-0 hashes.
fn print_events(source: &Source, cp: &Checkpoint, from: u64) -> Result<()> {
    let reader = TileHashReader::new(cp.size(), cp.hash(), source);
    for bundle in EntryTile::all_for(cp.size()).skip((from / 256) as usize) {
        let data = source.must(&bundle.path())?;
        let entries = parse_entry_bundle(&data, bundle.width)?;
        for (k, e) in entries.iter().enumerate() {
            let index = bundle.n * 256 + k as u64;
            if index < from {
                continue;
            }
            use custodia_tlog::HashReader as _;
            let want = reader.read_hashes(&[custodia_tlog::stored_hash_index(0, index)])?;
            if want[0] != custodia_tlog::leaf_hash(e) {
                bail!("entry {index} in {} does not match the signed tree", bundle.path());
            }
            match Event::parse(e) {
                Ok(ev) => println!("  {index:>8} {:<16} {} {}/{}", ev.action.kind(), ev.time_ms, ev.principal, ev.role),
                Err(err) => println!("  {index:>8} (not a v1 event: {err})"),
            }
        }
    }
    Ok(())
}

/// `custodia audit export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let source = Source::open(&args.vault.display().to_string())?;
    if !matches!(source, Source::Vault { .. }) {
        bail!("{} is not a vault folder", args.vault.display());
    }
    let text = source.checkpoint()?;
    let body = std::str::from_utf8(&text)?.split_once("\n\n").ok_or_else(|| anyhow!("malformed checkpoint"))?.0;
    let cp = Checkpoint::parse(&format!("{body}\n"))?;
    let write = |name: &str, data: &[u8]| -> Result<()> {
        let p = args.out.join(name);
        std::fs::create_dir_all(p.parent().expect("joined path has a parent"))?;
        std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))
    };
    write("checkpoint", &text)?;
    write("origin", cp.origin().as_bytes())?;
    for t in new_tiles(0, cp.size()) {
        write(&t.path(), &source.must(&t.path())?)?;
    }
    for b in EntryTile::all_for(cp.size()) {
        write(&b.path(), &source.must(&b.path())?)?;
    }
    let Source::Vault { file, .. } = &source else { unreachable!("checked above") };
    let guard = file.lock().expect("lock");
    let log: &LogFile = guard.as_ref().expect("opened by checkpoint()");
    if let Some(index) = args.entry {
        if index >= cp.size() {
            bail!("entry {index} is not in the checkpoint (size {})", cp.size());
        }
        let proof = TlogProof {
            extra: None,
            index,
            proof: custodia_tlog::prove_record(cp.size(), index, log)?,
            checkpoint: String::from_utf8(text.clone())?,
        };
        write("entry", &log.entry(index)?)?;
        write("entry.tlog-proof", proof.to_text().as_bytes())?;
    }
    if let Some(old) = &args.old {
        let old_text = std::fs::read(old).with_context(|| format!("reading {}", old.display()))?;
        let old_body =
            std::str::from_utf8(&old_text)?.split_once("\n\n").ok_or_else(|| anyhow!("malformed old checkpoint"))?.0;
        let old_cp = Checkpoint::parse(&format!("{old_body}\n"))?;
        let proof = custodia_tlog::prove_tree(cp.size(), old_cp.size(), log)?;
        write("old-checkpoint", &old_text)?;
        write("consistency", proof.iter().map(|h| format!("{h}\n")).collect::<String>().as_bytes())?;
    }
    println!("wrote a mirror of {} (size {}) to {}", cp.origin(), cp.size(), args.out.display());
    Ok(())
}
