//! The world the access tests share: a vault holding one real two-group sealed capture of
//! [`PLATE`] (plate group with the metadata part and a plate crop, face group), and principals
//! with tokens. Used by `access_matrix.rs` and `hostile.rs`.

#![allow(dead_code)] // each test file uses its own part of it

use std::sync::Arc;

use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::metadata::ImageRole;
use custodia_seal::test_capture::TestCapture;
use custodia_seal::{DeviceSigningKey, VaultVerifyingKey};
use custodia_vault::audit::Actor;
use custodia_vault::clock::ManualClock;
use custodia_vault::config::DAY_MS;
use custodia_vault::policy::{Role, Scope};
use custodia_vault::{MasterKey, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const NOW: i64 = 1_780_000_000_000;
pub const SITE: &str = "anzalduas";
pub const PLATE: &str = "XQA1234";
pub const PLATE_CROP: &[u8] = b"\xff\xd8plate crop jpeg\xff\xd9";
pub const FACE: &[u8] = b"\xff\xd8occupant face jpeg\xff\xd9";

/// A principal to create: id, role, and whether it gets a day's grant of that role on [`SITE`].
pub type Person = (&'static str, Role, bool);

pub struct World {
    pub dir: tempfile::TempDir,
    pub vault: Vault,
    pub clock: ManualClock,
    pub record: String,
    pub tokens: Vec<(&'static str, String)>,
}

/// The vault, the capture, and `people` with tokens valid for `token_days`.
pub async fn world(people: &[Person], token_days: i64) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(dir.path(), &config, MasterKey::KeyFile, &mut rng).unwrap();
    let clock = ManualClock::new(NOW);
    let vault =
        Vault::open(dir.path(), Arc::new(clock.clone()), Box::new(ChaCha20Rng::seed_from_u64(12)), None).unwrap();
    vault.ensure_epochs(NOW - DAY_MS, NOW + DAY_MS).unwrap();
    let device_key = DeviceSigningKey::generate(&mut rng);
    let device = vault.enroll_device(SITE, "lane-1", &device_key.verifying_key()).unwrap();
    let body = capture(&vault, &device_key, device.id, &mut rng);
    let receipt = vault.ingest(bytes::Bytes::from(body)).await.unwrap();
    let admin = Actor::system();
    let mut tokens = Vec::new();
    for &(name, role, granted) in people {
        vault.add_principal(&admin, name, &[role]).unwrap();
        if granted {
            vault.grant(&admin, name, role, &Scope::Site(SITE.into()), NOW + DAY_MS).unwrap();
        }
        tokens.push((name, vault.issue_token(&admin, name, token_days * DAY_MS).unwrap().token.to_string()));
    }
    World { dir, vault, clock, record: receipt.record_id, tokens }
}

/// A capture as a lane seals it, to the vault's published epochs.
pub fn capture(
    vault: &Vault,
    key: &DeviceSigningKey,
    device: custodia_seal::DeviceId,
    rng: &mut ChaCha20Rng,
) -> Vec<u8> {
    let verifying = VaultVerifyingKey::from_bytes(&vault.epoch_signing_public_key().unwrap()).unwrap();
    let set = SignedEpochSet::from_json(&vault.signed_epoch_set().unwrap()).unwrap().verify(&verifying).unwrap();
    TestCapture::new(device, SITE, "lane-1", NOW - 60_000, 1)
        .plate(PLATE, 0.9)
        .image(ImageRole::PlateCrop, PLATE_CROP)
        .image(ImageRole::Face, FACE)
        .seal(&set, key, rng)
}

/// `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
