//! `custodia principal`, `custodia policy` (admin, on the vault folder) and `custodia search`,
//! `custodia get` (officer, over HTTP with a token, a purpose code and a case number).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use custodia_vault::audit::Actor;
use custodia_vault::policy::{Role, Scope, parse_duration};

use crate::open_vault;

/// The vault folder and how to open its keystore.
#[derive(Args)]
pub struct VaultArgs {
    /// The vault folder.
    #[arg(long, default_value = "custodia-vault")]
    vault: PathBuf,
    /// Environment variable holding the keystore passphrase, for a passphrase keystore.
    #[arg(long)]
    passphrase_env: Option<String>,
}

#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Add a principal with one or more roles, and print its first API token (shown once).
    Add {
        #[command(flatten)]
        vault: VaultArgs,
        /// Its id (a-z 0-9 - _ .).
        id: String,
        /// A role: officer, supervisor, admin, maintainer, recipient, auditor, responder (repeat).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Token lifetime, e.g. 30d or 12h (at most the policy's token_lifetime).
        #[arg(long, default_value = "30d")]
        token_lifetime: String,
    },
    /// List principals.
    List {
        #[command(flatten)]
        vault: VaultArgs,
    },
    /// Disable a principal: its tokens stop working at once.
    Disable {
        #[command(flatten)]
        vault: VaultArgs,
        /// Its id.
        id: String,
    },
    /// Issue a new API token for a principal (shown once; only its hash is kept).
    Token {
        #[command(flatten)]
        vault: VaultArgs,
        /// Its id.
        id: String,
        /// Lifetime, e.g. 30d.
        #[arg(long, default_value = "30d")]
        lifetime: String,
    },
    /// Give a principal a role over a scope (site:<s>, lane:<s>/<l>, record:<id>) for a time.
    Grant {
        #[command(flatten)]
        vault: VaultArgs,
        /// Who.
        id: String,
        /// The role granted (officer or supervisor reads data).
        #[arg(long)]
        role: String,
        /// What it covers.
        #[arg(long)]
        scope: String,
        /// How long, e.g. 90d.
        #[arg(long, default_value = "90d")]
        lifetime: String,
    },
    /// Withdraw a principal's grants of a role.
    Revoke {
        #[command(flatten)]
        vault: VaultArgs,
        /// Who.
        id: String,
        /// Which role's grants.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force.
    Show {
        #[command(flatten)]
        vault: VaultArgs,
    },
    /// Check a policy file without installing it: prints the line that is wrong, if any.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Install a policy file (logged; refused with its line if invalid, the old one stays).
    Set {
        #[command(flatten)]
        vault: VaultArgs,
        /// The file.
        file: PathBuf,
    },
}

/// Where and as whom an officer's client calls the vault.
#[derive(Args)]
pub struct ClientArgs {
    /// The vault's URL.
    #[arg(long, default_value = "http://127.0.0.1:8443")]
    url: String,
    /// Environment variable holding your API token.
    #[arg(long, default_value = "CUSTODIA_TOKEN")]
    token_env: String,
    /// Purpose code (see the policy's [purposes]).
    #[arg(long)]
    purpose: String,
    /// Case number.
    #[arg(long)]
    case: String,
}

/// `custodia search`.
#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// A plate (read from this environment variable, so it stays out of shell history).
    #[arg(long)]
    plate_env: Option<String>,
    /// A site.
    #[arg(long)]
    site: Option<String>,
    /// A lane of that site.
    #[arg(long)]
    lane: Option<String>,
    /// A device id.
    #[arg(long)]
    device: Option<String>,
    /// Window start (unix ms); default 30 days before the end.
    #[arg(long)]
    from_ms: Option<i64>,
    /// Window end (unix ms); default now.
    #[arg(long)]
    to_ms: Option<i64>,
    /// Most results.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// `custodia get`.
#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The record id.
    record: String,
    /// An image part (overview, plate-crop, vehicle-crop, face, face-2...); metadata when absent.
    part: Option<String>,
    /// Write the image here (required for images: they never go to a terminal).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn lifetime_ms(text: &str) -> Result<i64> {
    parse_duration(text).map_err(|e| anyhow::anyhow!(e))
}

fn role(text: &str) -> Result<Role> {
    text.parse().map_err(|e: String| anyhow::anyhow!(e))
}

/// Runs `custodia principal ...`. The CLI acts as the vault's operator (`vault`/`system` in
/// the log): whoever runs it holds the vault folder and its keystore already.
pub async fn principal(command: PrincipalCommand) -> Result<()> {
    let operator = Actor::system();
    match command {
        PrincipalCommand::Add { vault, id, roles, token_lifetime } => {
            let v = open_vault(&vault.vault, &vault.passphrase_env)?;
            let roles = roles.iter().map(|r| role(r)).collect::<Result<Vec<_>>>()?;
            v.add_principal(&operator, &id, &roles)?;
            let token = v.issue_token(&operator, &id, lifetime_ms(&token_lifetime)?)?;
            println!("Added {id} ({}).", roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "));
            println!("API token (shown once, keep it secret):\n{}", token.token.as_str());
            Ok(())
        }
        PrincipalCommand::List { vault } => {
            let v = open_vault(&vault.vault, &vault.passphrase_env)?;
            println!("{:<24} {:<32} status", "principal", "roles");
            for p in v.principals()? {
                let status = match (p.disabled_at_ms, p.blocked_at_ms) {
                    (Some(_), _) => "disabled",
                    (None, Some(_)) => "blocked (bulk guard)",
                    _ => "active",
                };
                println!("{:<24} {:<32} {status}", p.id, p.roles.join(","));
            }
            Ok(())
        }
        PrincipalCommand::Disable { vault, id } => {
            open_vault(&vault.vault, &vault.passphrase_env)?.disable_principal(&operator, &id)?;
            println!("Disabled {id}: its tokens no longer work.");
            Ok(())
        }
        PrincipalCommand::Token { vault, id, lifetime } => {
            let token = open_vault(&vault.vault, &vault.passphrase_env)?.issue_token(
                &operator,
                &id,
                lifetime_ms(&lifetime)?,
            )?;
            println!("{}", token.token.as_str());
            Ok(())
        }
        PrincipalCommand::Grant { vault, id, role: granted, scope, lifetime } => {
            let v = open_vault(&vault.vault, &vault.passphrase_env)?;
            let scope: Scope = scope.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let until = v.now_ms() + lifetime_ms(&lifetime)?;
            v.grant(&operator, &id, role(&granted)?, &scope, until)?;
            println!("Granted {id} the {granted} role over {scope} for {lifetime}.");
            Ok(())
        }
        PrincipalCommand::Revoke { vault, id, role: revoked } => {
            let n = open_vault(&vault.vault, &vault.passphrase_env)?.revoke_grants(&operator, &id, role(&revoked)?)?;
            println!("Withdrew {n} {revoked} grant(s) from {id}.");
            Ok(())
        }
    }
}

/// Runs `custodia policy ...`.
pub async fn policy(command: PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Show { vault } => {
            print!("{}", open_vault(&vault.vault, &vault.passphrase_env)?.policy_text());
            Ok(())
        }
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let policy = custodia_vault::policy::Policy::parse(&text).with_context(|| file.display().to_string())?;
            let r = &policy.retention;
            println!(
                "{} is valid: profile {}, faces {} h (hand-off {} d), plates {} d, overviews {} d.",
                file.display(),
                r.profile,
                r.face_ms / 3_600_000,
                r.face_handoff_ms / 86_400_000,
                r.plate_ms as f64 / 86_400_000.0,
                r.overview_ms as f64 / 86_400_000.0
            );
            Ok(())
        }
        PolicyCommand::Set { vault, file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            open_vault(&vault.vault, &vault.passphrase_env)?
                .set_policy(&Actor::system(), &text)
                .with_context(|| format!("{} was refused; the policy in force is unchanged", file.display()))?;
            println!("Installed {} (logged as a policy-changed event).", file.display());
            Ok(())
        }
    }
}

fn client(args: &ClientArgs) -> Result<(reqwest::Client, String)> {
    let token = std::env::var(&args.token_env).with_context(|| format!("set {} to your API token", args.token_env))?;
    Ok((reqwest::Client::builder().build()?, token))
}

async fn call(args: &ClientArgs, request: reqwest::RequestBuilder, token: &str) -> Result<reqwest::Response> {
    let response = request
        .bearer_auth(token)
        .header("custodia-purpose", &args.purpose)
        .header("custodia-case", &args.case)
        .send()
        .await
        .with_context(|| format!("reaching the vault at {}", args.url))?;
    if !response.status().is_success() {
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        bail!("{status}: {} {}", body["title"].as_str().unwrap_or(""), body["detail"].as_str().unwrap_or(""));
    }
    Ok(response)
}

/// Runs `custodia search`.
pub async fn search(args: SearchArgs) -> Result<()> {
    let (http, token) = client(&args.client)?;
    let plate = match &args.plate_env {
        Some(name) => Some(std::env::var(name).with_context(|| format!("environment variable {name} is not set"))?),
        None => None,
    };
    let body = serde_json::json!({
        "plate": plate, "site": args.site, "lane": args.lane, "device": args.device,
        "from_ms": args.from_ms, "to_ms": args.to_ms, "limit": args.limit,
    });
    let url = format!("{}/v1/search", args.client.url.trim_end_matches('/'));
    let found: serde_json::Value = call(&args.client, http.post(url).json(&body), &token).await?.json().await?;
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(())
}

/// Runs `custodia get`.
pub async fn get(args: GetArgs) -> Result<()> {
    let (http, token) = client(&args.client)?;
    let base = args.client.url.trim_end_matches('/');
    let url = match &args.part {
        Some(part) => format!("{base}/v1/records/{}/{part}", args.record),
        None => format!("{base}/v1/records/{}", args.record),
    };
    if args.part.is_some() && args.out.is_none() {
        bail!("give --out FILE for an image part");
    }
    let response = call(&args.client, http.get(url), &token).await?;
    match &args.out {
        Some(path) => {
            let bytes = response.bytes().await?;
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            println!("Wrote {} bytes to {} (the read is in the audit log).", bytes.len(), path.display());
        }
        None => println!("{}", serde_json::to_string_pretty(&response.json::<serde_json::Value>().await?)?),
    }
    Ok(())
}
