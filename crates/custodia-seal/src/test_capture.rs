//! Sealed captures built from a few fields, for the tests and benches of the crates downstream
//! (cargo feature `test-support`).
//!
//! A [`TestCapture`] is what a lane writes for one vehicle: a header, a metadata part carrying the
//! plate read and describing every image, and each image in the group of its role's class (see
//! [`ImageRole::class`]), every group sealed to the epoch a verified set publishes for the
//! capture's time. The metadata part leads the plate group, where the lane puts it whenever there
//! is a plate read; a test capture puts it there even without one, so it always has a plate group.
//!
//! What it is not: the lane. There are no inputs, no metadata stripping and no perceptual hashing
//! here (a test that needs hashes sets them on a [`TestImage`]); `custodia-lane`'s planner is
//! what seals real captures.

use rand_core::{CryptoRng, RngCore};

use crate::epochs::EpochSet;
use crate::metadata::{CaptureMetadata, ImageRecord, ImageRole, METADATA_VERSION, PdqRecord, PlateReadRecord};
use crate::{CaptureHeader, DeviceId, DeviceSigningKey, GroupToSeal, LaneName, PartKind, PartToSeal, RetentionClass};
use crate::{SiteName, seal};

/// One image of a [`TestCapture`].
#[derive(Clone, Debug)]
pub struct TestImage<'a> {
    /// What the image shows; decides its group.
    pub role: ImageRole,
    /// The image bytes, sealed as a JPEG part.
    pub bytes: &'a [u8],
    /// Perceptual hashes the metadata records for it.
    pub pdq: Vec<PdqRecord>,
    /// Whether the metadata describes it (a capture with an undescribed image part is refused).
    pub described: bool,
}

impl<'a> TestImage<'a> {
    /// An image the metadata describes, with no perceptual hashes.
    pub fn new(role: ImageRole, bytes: &'a [u8]) -> Self {
        Self { role, bytes, pdq: Vec::new(), described: true }
    }
}

/// The fields of a sealed test capture.
#[derive(Clone, Debug)]
pub struct TestCapture<'a> {
    /// The sealing device.
    pub device_id: DeviceId,
    /// The site whose epochs seal it.
    pub site: &'a str,
    /// The lane, as the device is enrolled.
    pub lane: &'a str,
    /// Capture time, Unix milliseconds; picks the epochs.
    pub time_ms: i64,
    /// The device's sequence number.
    pub sequence: u64,
    /// The plate read, if any.
    pub read: Option<PlateReadRecord>,
    /// The images, in the order their parts are sealed within each group.
    pub images: Vec<TestImage<'a>>,
    /// Whether the metadata part is sealed at all (a capture without one is refused).
    pub with_metadata: bool,
}

impl<'a> TestCapture<'a> {
    /// A capture of `device_id` at `site`/`lane` with a metadata part but no read and no images
    /// yet.
    pub fn new(device_id: DeviceId, site: &'a str, lane: &'a str, time_ms: i64, sequence: u64) -> Self {
        Self { device_id, site, lane, time_ms, sequence, read: None, images: Vec::new(), with_metadata: true }
    }

    /// With a read of `plate` at `confidence`, with no region, candidates, box or vehicle.
    pub fn plate(mut self, plate: &str, confidence: f32) -> Self {
        self.read = Some(PlateReadRecord {
            plate: plate.into(),
            confidence,
            region: None,
            candidates: Vec::new(),
            bbox: None,
            vehicle: Vec::new(),
        });
        self
    }

    /// With one more image of `role`.
    pub fn image(mut self, role: ImageRole, bytes: &'a [u8]) -> Self {
        self.images.push(TestImage::new(role, bytes));
        self
    }

    /// Seals the capture with `key` to the epochs of `set` that cover its time.
    ///
    /// # Panics
    /// If the names are not valid, `set` has no epoch for a class the capture needs, or sealing
    /// fails (a part over the format's limits): each is a broken test set-up.
    pub fn seal(&self, set: &EpochSet, key: &DeviceSigningKey, rng: &mut (impl RngCore + CryptoRng)) -> Vec<u8> {
        let site = SiteName::new(self.site).expect("test capture: site name");
        // The plate group first, since it carries the metadata; then each other class in the
        // order its first image comes.
        let mut classes = vec![RetentionClass::Plate];
        for image in &self.images {
            if !classes.contains(&image.role.class()) {
                classes.push(image.role.class());
            }
        }
        let mut records = Vec::with_capacity(self.images.len());
        let mut next_part = vec![0u8; classes.len()];
        next_part[0] = u8::from(self.with_metadata);
        for image in &self.images {
            let group = classes.iter().position(|c| *c == image.role.class()).expect("listed above");
            let part = next_part[group];
            next_part[group] += 1;
            if !image.described {
                continue;
            }
            records.push(ImageRecord {
                group: group as u8,
                part,
                role: image.role,
                bytes: image.bytes.len() as u64,
                sha256: String::new(),
                stripped: Vec::new(),
                pdq: image.pdq.clone(),
            });
        }
        let metadata = CaptureMetadata {
            version: METADATA_VERSION,
            read: self.read.clone(),
            other_reads: Vec::new(),
            engine: None,
            images: records,
            quarantine: None,
            expired_images: Vec::new(),
        }
        .to_vec();
        let epochs: Vec<_> = classes
            .iter()
            .map(|class| {
                set.find(&site, *class, self.time_ms).unwrap_or_else(|| {
                    panic!("test capture: no {} epoch for {} at {}", class.as_str(), self.site, self.time_ms)
                })
            })
            .collect();
        let groups: Vec<GroupToSeal<'_>> = classes
            .iter()
            .zip(&epochs)
            .map(|(class, epoch)| {
                let mut parts = Vec::new();
                if *class == RetentionClass::Plate && self.with_metadata {
                    parts.push(PartToSeal { kind: PartKind::Metadata, plaintext: &metadata });
                }
                parts.extend(
                    self.images
                        .iter()
                        .filter(|image| image.role.class() == *class)
                        .map(|image| PartToSeal { kind: PartKind::Jpeg, plaintext: image.bytes }),
                );
                GroupToSeal { class: *class, epoch_id: epoch.epoch_id, epoch_key: &epoch.public_key, parts }
            })
            .collect();
        let header = CaptureHeader {
            device_id: self.device_id,
            site,
            lane: LaneName::new(self.lane).expect("test capture: lane name"),
            capture_time_ms: self.time_ms,
            sequence: self.sequence,
        };
        seal(&header, &groups, key, rng).expect("test capture: seal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EpochSecretKey;
    use crate::epochs::EpochAnnouncement;

    #[test]
    fn each_image_lands_in_its_class_group_at_the_part_its_record_names() {
        let mut rng = rand_core::OsRng;
        let site = SiteName::new("anzalduas").unwrap();
        let secrets: Vec<(RetentionClass, EpochSecretKey)> =
            [RetentionClass::Plate, RetentionClass::Overview, RetentionClass::Face]
                .into_iter()
                .map(|class| (class, EpochSecretKey::generate(&mut rng)))
                .collect();
        let set = EpochSet {
            issued_at_ms: 0,
            epochs: secrets
                .iter()
                .map(|(class, secret)| EpochAnnouncement::new(site.clone(), *class, 0, 1_000, secret.public_key()))
                .collect(),
        };
        let device = DeviceSigningKey::generate(&mut rng);
        let device_id = DeviceId([5; 16]);
        let mut capture = TestCapture::new(device_id, "anzalduas", "lane-2", 500, 9)
            .plate("XQA1234", 0.9)
            .image(ImageRole::Face, b"face one")
            .image(ImageRole::PlateCrop, b"plate crop")
            .image(ImageRole::Overview, b"overview")
            .image(ImageRole::Face, b"face two")
            .image(ImageRole::VehicleCrop, b"vehicle crop");
        capture.images[4].described = false;
        let bytes = capture.seal(&set, &device, &mut rng);

        let sealed = crate::SealedCapture::parse(&bytes).unwrap();
        sealed.verify_signature(&device.verifying_key()).unwrap();
        assert_eq!((sealed.header().sequence, sealed.header().lane.as_str()), (9, "lane-2"));
        let classes: Vec<_> = sealed.groups().iter().map(|g| g.class()).collect();
        assert_eq!(classes, [RetentionClass::Plate, RetentionClass::Face, RetentionClass::Overview]);
        assert_eq!(sealed.metadata_part(), Some((0, 0)));
        let open = |group: usize, part: usize| {
            let secret = &secrets.iter().find(|(class, _)| *class == classes[group]).unwrap().1;
            let key = sealed.open_data_key(group, secret).unwrap();
            sealed.open_part(group, part, &key).unwrap().to_vec()
        };
        let metadata = CaptureMetadata::from_slice(&open(0, 0)).unwrap();
        assert_eq!(metadata.read.unwrap().plate, "XQA1234");
        let described: Vec<_> =
            metadata.images.iter().map(|r| (r.role, open(r.group.into(), r.part.into()), r.bytes)).collect();
        let expected = |role, bytes: &[u8]| (role, bytes.to_vec(), bytes.len() as u64);
        assert_eq!(
            described,
            [
                expected(ImageRole::Face, b"face one"),
                expected(ImageRole::PlateCrop, b"plate crop"),
                expected(ImageRole::Overview, b"overview"),
                expected(ImageRole::Face, b"face two"),
            ]
        );
        // The undescribed vehicle crop is still sealed, after the overview in its group.
        assert_eq!(open(2, 1), b"vehicle crop");
    }
}
