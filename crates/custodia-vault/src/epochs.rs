//! Key epochs: one P-256 key pair per (site, retention class, period), made inside the keystore,
//! published as a signed set ahead of time.
//!
//! Periods are aligned to UTC multiples of the class's epoch length (hours for faces, days for
//! plates and overviews by default), so every vault computes the same boundaries. Each key is made
//! before its row is written; a crash between the two leaves a key whose row the next
//! [`Vault::ensure_epochs`] writes from the key itself.

use custodia_seal::RetentionClass;
use custodia_seal::epochs::{EpochAnnouncement, EpochSet};
use custodia_seal::{EpochId, SiteName};
use custodia_store::index::EpochRow;
use custodia_store::{KeyName, KeyState};

use crate::audit::vault::event_text as text;
use crate::{Vault, VaultError};

/// Keystore name of the Ed25519 key that signs epoch sets.
pub const EPOCH_SIGNING_KEY: &str = "vault/epoch-signing";

pub(crate) fn signing_key_name() -> KeyName {
    KeyName::new(EPOCH_SIGNING_KEY).expect("constant key name is valid")
}

/// Keystore name of the epoch key for (`site`, `class`, period starting at `start`).
pub(crate) fn epoch_key_name(site: &str, class: RetentionClass, start: i64) -> Result<KeyName, VaultError> {
    Ok(KeyName::new(format!("epoch/{}/{start}/{}", class.as_str(), hex::encode(site)))?)
}

const CLASSES: [RetentionClass; 3] = [RetentionClass::Face, RetentionClass::Plate, RetentionClass::Overview];

impl Vault {
    /// Makes sure every site has an epoch for every class and period overlapping
    /// `[from_ms, to_ms)`. Returns how many were created.
    pub fn ensure_epochs(&self, from_ms: i64, to_ms: i64) -> Result<usize, VaultError> {
        let mut created = 0;
        for site in &self.inner.config.sites {
            for class in CLASSES {
                let length = self.inner.config.epoch_length_ms(class);
                let mut start = from_ms.div_euclid(length) * length;
                while start < to_ms {
                    if self.inner.index.epoch_at(site, class, start)?.is_none() {
                        self.create_epoch(site, class, start, start + length)?;
                        created += 1;
                    }
                    start += length;
                }
            }
        }
        Ok(created)
    }

    /// Keeps epochs published `publish_ahead_ms` ahead of now (and covering now).
    pub fn maintain_epochs(&self) -> Result<usize, VaultError> {
        let now = self.now_ms();
        self.ensure_epochs(now, now + self.inner.config.publish_ahead_ms)
    }

    fn create_epoch(&self, site: &str, class: RetentionClass, start: i64, end: i64) -> Result<(), VaultError> {
        let already_shredded = || VaultError::Invalid {
            what: "epoch",
            reason: format!("{site} {} epoch at {start} was already shredded", class.as_str()),
        };
        self.create_epoch_under(&epoch_key_name(site, class, start)?, site, class, (start, end), already_shredded)?;
        Ok(())
    }

    /// Creates the epoch of `site` and `class` for `[not_before, not_after)` under the key `name`
    /// (a published epoch, or a retention extension): makes its key, or takes the one a crash left
    /// without its row, logs `epoch-created` and writes its row. A key already destroyed is
    /// refused with `already_shredded()`.
    pub(crate) fn create_epoch_under(
        &self,
        name: &KeyName,
        site: &str,
        class: RetentionClass,
        (not_before_ms, not_after_ms): (i64, i64),
        already_shredded: impl FnOnce() -> VaultError,
    ) -> Result<EpochRow, VaultError> {
        let public_key = match self.inner.keystore.state(name)? {
            KeyState::Absent => {
                let mut rng = self.inner.rng.lock().expect("rng lock");
                self.inner.keystore.generate_epoch_key(name, rng.as_mut())?
            }
            // Made before a crash that kept its row from being written.
            KeyState::Present => self.inner.keystore.epoch_decapsulator(name)?.public_key(),
            KeyState::Destroyed => return Err(already_shredded()),
        };
        let site_name = SiteName::new(site.to_string())
            .map_err(|e| VaultError::Invalid { what: "site name", reason: e.to_string() })?;
        let id = EpochId::derive(&site_name, class, not_before_ms, not_after_ms, &public_key);
        let row = EpochRow {
            id,
            site: site.to_string(),
            class,
            not_before_ms,
            not_after_ms,
            public_key: public_key.to_sec1_bytes().to_vec(),
            key_name: name.as_str().to_string(),
            destroyed_at_ms: None,
        };
        let event = crate::audit::vault::system_event(
            self.now_ms(),
            crate::audit::Action::EpochCreated {
                epoch: text(id.to_string())?,
                site: text(site)?,
                class: text(class.as_str())?,
                not_before_ms,
                not_after_ms,
                public_key: row.public_key.clone(),
            },
        )?;
        self.logged(&[event], || Ok(self.inner.index.insert_epoch(&row)?))?;
        Ok(row)
    }

    /// The signed set of every epoch a lane may still seal to (not shredded, ending after the
    /// oldest capture time the vault accepts), as JSON.
    pub fn signed_epoch_set(&self) -> Result<Vec<u8>, VaultError> {
        let now = self.now_ms();
        let rows = self.inner.index.live_epochs(now - self.inner.config.max_capture_age_ms)?;
        let mut epochs = Vec::with_capacity(rows.len());
        for row in rows {
            let invalid = |reason: String| VaultError::Invalid { what: "stored epoch", reason };
            epochs.push(EpochAnnouncement {
                epoch_id: row.id,
                site: SiteName::new(row.site.clone()).map_err(|e| invalid(e.to_string()))?,
                class: row.class,
                not_before_ms: row.not_before_ms,
                not_after_ms: row.not_after_ms,
                public_key: custodia_seal::EpochPublicKey::from_sec1_bytes(&row.public_key)
                    .map_err(|e| invalid(e.to_string()))?,
            });
        }
        let set = EpochSet { issued_at_ms: now, epochs };
        let message =
            set.signing_message().map_err(|e| VaultError::Invalid { what: "epoch set", reason: e.to_string() })?;
        let signature = self.inner.keystore.sign(&signing_key_name(), &message)?;
        Ok(set.with_signature(signature).to_json())
    }

    /// The public key lanes use to check epoch sets (Ed25519, 32 bytes).
    pub fn epoch_signing_public_key(&self) -> Result<[u8; 32], VaultError> {
        let mut rng = self.inner.rng.lock().expect("rng lock");
        Ok(self.inner.keystore.ensure_signing_key(&signing_key_name(), rng.as_mut())?)
    }
}
