//! `custodia witness`: the process an oversight body runs (see
//! `custodia_vault::audit::witness` for what it checks), and the vault's side of it,
//! `custodia serve --witness URL` (push model: the vault sends each new checkpoint to each
//! witness and publishes the cosignatures it gets back).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use custodia_tlog::{CosignatureSigner, NoteVerifier};
use custodia_vault::Vault;
use custodia_vault::audit::witness::{Witness, add_checkpoint_body};

/// `custodia witness` subcommands.
#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Make a witness key (cosignature/v1); prints its verifier key.
    Keygen {
        /// The witness's name, e.g. `oig.example/witness-1`.
        #[arg(long)]
        name: String,
        /// Where to write the private key (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve `POST /add-checkpoint` for one log.
    Serve {
        /// The witness private key file (from `keygen`).
        #[arg(long)]
        key_file: PathBuf,
        /// The verifier key of the log to follow (`custodia audit key`), or @FILE.
        #[arg(long)]
        log_key: String,
        /// Where the witness keeps the last checkpoint it cosigned.
        #[arg(long)]
        state: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8444")]
        listen: SocketAddr,
    },
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs one `custodia witness` subcommand.
pub async fn run(command: WitnessCommand) -> Result<()> {
    match command {
        WitnessCommand::Keygen { name, out } => {
            let signer = CosignatureSigner::generate(&name, &mut rand_core::OsRng).context("witness name")?;
            write_secret(&out, signer.to_skey().as_bytes())?;
            println!("{}", signer.verifier().to_vkey());
            Ok(())
        }
        WitnessCommand::Serve { key_file, log_key, state, listen } => {
            let skey = zeroize::Zeroizing::new(
                std::fs::read_to_string(&key_file).with_context(|| format!("reading {}", key_file.display()))?,
            );
            let signer = CosignatureSigner::from_skey(skey.trim()).context("not a witness key")?;
            let log_key = match log_key.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)?.trim().to_string(),
                None => log_key,
            };
            let log_key = NoteVerifier::from_vkey(&log_key).context("--log-key is not a verifier key")?;
            let witness = Arc::new(Witness::new(signer, log_key, &state));
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
            println!(
                "witness {} serving on http://{} (Ctrl-C to stop)",
                witness.verifier_key(),
                listener.local_addr()?
            );
            axum::serve(listener, custodia_server::witness_app(witness, now_secs))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
    }
}

fn write_secret(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// For `custodia serve --witness URL`: every second, sends the latest checkpoint to each witness
/// that has not cosigned it and publishes the cosignatures that come back.
pub fn spawn_witness_client(vault: Vault, urls: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        // What each witness last cosigned (it tells us with 409 if we are wrong).
        let mut known: Vec<u64> = vec![0; urls.len()];
        let mut done: Vec<u64> = vec![u64::MAX; urls.len()];
        loop {
            if let Some(p) = vault.audit_log().latest() {
                let mut lines = Vec::new();
                for (i, url) in urls.iter().enumerate() {
                    if done[i] == p.size {
                        continue;
                    }
                    match cosign(&client, &vault, url, &mut known[i], &p).await {
                        Ok(line) => {
                            lines.push(line);
                            done[i] = p.size;
                        }
                        Err(error) => tracing::error!(%url, error = %format!("{error:#}"), "witness did not cosign"),
                    }
                }
                if !lines.is_empty() {
                    let v = vault.clone();
                    let size = p.size;
                    match tokio::task::spawn_blocking(move || v.audit_log().add_cosignatures(size, &lines)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::error!(%error, "publishing cosignatures failed"),
                        Err(error) => tracing::error!(%error, "publishing cosignatures failed"),
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn cosign(
    client: &reqwest::Client,
    vault: &Vault,
    url: &str,
    known: &mut u64,
    p: &custodia_vault::audit::Published,
) -> Result<String> {
    // The text without cosignature lines of other witnesses is what the log signed; witnesses
    // ignore lines they do not know, so the published text is sent as is.
    for _ in 0..2 {
        let old = (*known).min(p.size);
        let proof = vault.audit_log().prove_consistency(old, p.size)?;
        let body = add_checkpoint_body(old, &proof, &p.text);
        let response = client
            .post(format!("{}/add-checkpoint", url.trim_end_matches('/')))
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {url}/add-checkpoint"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT {
            *known = text.trim().parse().map_err(|_| anyhow!("witness sent a bad size {text:?}"))?;
            continue;
        }
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        *known = p.size;
        return Ok(text);
    }
    bail!("witness keeps answering with another size")
}
