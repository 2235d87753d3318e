//! Set-up shared by the integration tests that run lanes against a vault.

use custodia_lane::{LaneConfig, LaneDir};
use custodia_seal::DeviceSigningKey;
use custodia_vault::Vault;

/// How a test lane paces itself: `(settle_ms, pair_grace_ms, upload_concurrency)`.
pub type LanePace = (u64, u64, usize);

/// Enrols a new device for `site`/`lane` with `vault` and creates its lane folder in `dir`,
/// pointed at `vault_url` with the vault's epoch key pinned.
pub fn enrol_lane(vault: &Vault, site: &str, lane: &str, dir: &LaneDir, vault_url: String, pace: LanePace) {
    let key = DeviceSigningKey::generate(&mut rand_core::OsRng);
    let device = vault.enroll_device(site, lane, &key.verifying_key()).unwrap();
    let (settle_ms, pair_grace_ms, upload_concurrency) = pace;
    dir.create(
        &LaneConfig {
            device_id: device.id.to_string(),
            site: site.into(),
            lane: lane.into(),
            vault_url,
            vault_epoch_key: hex::encode(vault.epoch_signing_public_key().unwrap()),
            settle_ms,
            pair_grace_ms,
            upload_concurrency,
        },
        &key,
    )
    .unwrap();
}
