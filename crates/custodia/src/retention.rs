//! `custodia retention`: run retention once, or show where it stands (admin).
//!
//! `run` shreds every expired key epoch and blind-index month (each logged before its key is
//! destroyed), then deletes the blobs and index rows nothing can open any more; `custodia serve`
//! does the same every minute. `status` lists the expired epochs the next run will shred and the
//! next expiry. Rules come from the vault's policy (`custodia policy show`): its active
//! jurisdiction profile, or another one it defines named with `--profile`; see
//! `docs/retention.md`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use custodia_vault::Vault;
use custodia_vault::audit::Actor;
use custodia_vault::civil::date_label;
use custodia_vault::retention::{EpochSummary, RetentionRules};

/// Retention by crypto-shredding.
#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Shred every expired epoch and blind-index month now, and delete what can no longer be
    /// opened (one `shredded` audit event per epoch).
    Run(RetentionArgs),
    /// Show expired-but-not-shredded epochs, the next expiry, and what waits for clean-up.
    Status(RetentionArgs),
}

/// Options shared by `run` and `status`.
#[derive(Args)]
pub struct RetentionArgs {
    /// The vault folder.
    #[arg(long, default_value = "custodia-vault")]
    pub dir: PathBuf,
    /// A jurisdiction profile of the policy (default: the policy's active one), e.g. default
    /// (faces 12 h, plates and overviews 30 days), cap-3min, cap-21d, cap-60d.
    #[arg(long)]
    pub profile: Option<String>,
    /// Environment variable holding the keystore passphrase, for a passphrase keystore.
    #[arg(long)]
    pub passphrase_env: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The policy's rules: its active profile, or the named one, or an error listing the names.
pub fn rules(vault: &Vault, profile: Option<&str>) -> Result<RetentionRules> {
    let Some(name) = profile else { return Ok(vault.retention_rules()) };
    match vault.retention_rules_under(name) {
        Some(rules) => Ok(rules),
        None => {
            let policy = vault.policy();
            bail!(
                "the policy defines no retention profile {name:?}: use one of {}",
                policy.profile_names().collect::<Vec<_>>().join(", ")
            )
        }
    }
}

pub async fn run(command: RetentionCommand, open_vault: fn(&Path, &Option<String>) -> Result<Vault>) -> Result<()> {
    match command {
        RetentionCommand::Run(args) => {
            let vault = open_vault(&args.dir, &args.passphrase_env)?;
            let rules = rules(&vault, args.profile.as_deref())?;
            let report = vault.run_retention(&rules, &Actor::system()).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            let count = |class: &str| report.shredded.iter().filter(|s| s.class == class && !s.extension).count();
            let extensions = report.shredded.iter().filter(|s| s.extension).count();
            let records: u64 = report.shredded.iter().map(|s| s.records).sum();
            println!(
                "Shredded {} epochs ({} face, {} plate, {} overview, {} extension) holding {} record groups, \
                 and {} blind-index months ({} entries).",
                report.shredded.len(),
                count("face"),
                count("plate"),
                count("overview"),
                extensions,
                records,
                report.blind_months.len(),
                report.blind_entries
            );
            println!(
                "Deleted {} records, {} blobs, {} perceptual hashes in {:.3} s (keys {:.3} s, index {:.3} s, blobs {:.3} s).",
                report.records_deleted,
                report.blobs_deleted,
                report.pdq_rows_deleted,
                report.seconds,
                report.key_seconds,
                report.index_seconds,
                report.blob_seconds
            );
            Ok(())
        }
        RetentionCommand::Status(args) => {
            let vault = open_vault(&args.dir, &args.passphrase_env)?;
            let rules = rules(&vault, args.profile.as_deref())?;
            let status = vault.retention_status(&rules)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            let profile = args.profile.clone().unwrap_or_else(|| vault.policy().retention.profile.clone());
            println!("Profile {profile} at {}.", time(status.now_ms));
            if status.expired.is_empty() {
                println!("No expired epoch is waiting to be shredded.");
            } else {
                let records: u64 = status.expired.iter().map(|e| e.records).sum();
                println!(
                    "{} expired epochs not yet shredded ({records} record groups); `custodia retention run` shreds them:",
                    status.expired.len()
                );
                for e in &status.expired {
                    println!("  {}", line(e));
                }
            }
            match &status.next {
                Some(e) => println!("Next expiry in {}: {}", duration(e.expires_at_ms - status.now_ms), line(e)),
                None => println!("No epoch is due to expire."),
            }
            println!(
                "{} live epochs, {} records, {} re-sealed groups (holds, hand-offs), {} shredded epochs and {} blobs awaiting clean-up.",
                status.live_epochs, status.records, status.reseals, status.cleanup_epochs, status.purge_queue
            );
            Ok(())
        }
    }
}

fn line(e: &EpochSummary) -> String {
    format!(
        "{} {} {}{} ended {}, expires {}, {} records",
        e.epoch,
        e.site,
        e.class,
        if e.extension { " (extension)" } else { "" },
        time(e.not_after_ms),
        time(e.expires_at_ms),
        e.records
    )
}

fn time(ms: i64) -> String {
    let in_day = ms.rem_euclid(86_400_000);
    format!("{} {:02}:{:02} UTC", date_label(ms), in_day / 3_600_000, in_day % 3_600_000 / 60_000)
}

fn duration(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    match minutes {
        m if m < 120 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: RetentionCommand,
    }

    #[test]
    fn parses_run_and_status_with_a_profile() {
        let cli = Cli::try_parse_from(["x", "run", "--dir", "/v", "--profile", "cap-21d"]).unwrap();
        let RetentionCommand::Run(args) = cli.command else { panic!("not run") };
        assert_eq!((args.dir, args.profile.as_deref(), args.json), (PathBuf::from("/v"), Some("cap-21d"), false));
        let cli = Cli::try_parse_from(["x", "status", "--json"]).unwrap();
        let RetentionCommand::Status(args) = cli.command else { panic!("not status") };
        assert_eq!((args.dir, args.profile.as_deref(), args.json), (PathBuf::from("custodia-vault"), None, true));
    }

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(time(1_559_260_800_000 + 3_600_000 * 13 + 60_000 * 5), "2019-05-31 13:05 UTC");
        assert_eq!(duration(59 * 60_000), "59 min");
        assert_eq!(duration(30 * 3_600_000), "30 h");
        assert_eq!(duration(30 * 86_400_000), "30 days");
    }
}
