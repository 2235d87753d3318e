//! Lane devices: enrolment, revocation, listing.
//!
//! A device is enrolled with its Ed25519 public key for one site and lane. Its id is random, so
//! ids say nothing about where a device is. A revoked device's captures are refused at ingest.

use custodia_seal::{DeviceId, DeviceVerifyingKey, LaneName, SiteName};
use custodia_store::index::{DeviceRow, DeviceStatus};

use crate::audit::vault::event_text as text;
use crate::{Vault, VaultError};

impl Vault {
    /// Enrols a device for `site`/`lane` with its public key and returns its row.
    pub fn enroll_device(&self, site: &str, lane: &str, key: &DeviceVerifyingKey) -> Result<DeviceRow, VaultError> {
        let site = SiteName::new(site.to_string())
            .map_err(|e| VaultError::Invalid { what: "site name", reason: e.to_string() })?;
        let lane = LaneName::new(lane.to_string())
            .map_err(|e| VaultError::Invalid { what: "lane name", reason: e.to_string() })?;
        if !self.inner.config.sites.iter().any(|s| s == site.as_str()) {
            return Err(VaultError::Invalid {
                what: "site name",
                reason: format!("this vault serves {:?}; add the site to vault.json first", self.inner.config.sites),
            });
        }
        let mut id = [0u8; 16];
        self.inner.rng.lock().expect("rng lock").fill_bytes(&mut id);
        let row = DeviceRow {
            id: DeviceId(id),
            site: site.as_str().to_string(),
            lane: lane.as_str().to_string(),
            public_key: key.to_bytes(),
            status: DeviceStatus::Active,
            enrolled_at_ms: self.now_ms(),
            revoked_at_ms: None,
        };
        let event = crate::audit::vault::system_event(
            row.enrolled_at_ms,
            crate::audit::Action::DeviceEnrolled {
                device: text(row.id.to_string())?,
                site: text(&row.site)?,
                lane: text(&row.lane)?,
                public_key: row.public_key,
            },
        )?;
        self.logged(&[event], || Ok(self.inner.index.insert_device(&row)?))?;
        Ok(row)
    }

    /// Revokes a device: from now on its captures are refused.
    pub fn revoke_device(&self, id: &DeviceId) -> Result<(), VaultError> {
        let active = self.inner.index.device(id)?.is_some_and(|d| d.status == DeviceStatus::Active);
        if !active {
            // Unknown, or already revoked: nothing changes, nothing to log.
            return if self.inner.index.device(id)?.is_some() {
                Ok(())
            } else {
                Err(VaultError::NoSuchDevice(id.to_string()))
            };
        }
        let now = self.now_ms();
        let event = crate::audit::vault::system_event(
            now,
            crate::audit::Action::DeviceRevoked { device: text(id.to_string())? },
        )?;
        self.logged(&[event], || Ok(self.inner.index.revoke_device(id, now)?))?;
        Ok(())
    }

    /// All enrolled devices.
    pub fn devices(&self) -> Result<Vec<DeviceRow>, VaultError> {
        Ok(self.inner.index.devices()?)
    }
}
