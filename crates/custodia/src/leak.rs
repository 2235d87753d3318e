//! `custodia leak`: perceptual hashes of files (`hash`) and a dump scan against a vault's
//! index (`scan`), DESIGN.md §6.
//!
//! The scan reads a folder, a single image, or a zip / tar / tar.gz archive without writing
//! anything it extracts, decodes every JPEG and PNG defensively (size limits before decoding,
//! per-entry and total byte limits against decompression bombs, a panic guard around the
//! decoders), hashes each find as found, without its letterbox/pillarbox bars if it has any, and slightly trimmed (to land near a stored crop), on the pipeline the vault
//! stores, and searches all eight dihedral variants at radius ≤ 31. It opens no sealed
//! capture: the vault's index of perceptual hashes is all it needs. The scan is logged in the
//! vault's audit log (`scanned`, with the SHA-256 of the JSON report) before the report is
//! written.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use custodia_pdq::{Dihedral, DihedralVariant, PdqHash, Pipeline};
use custodia_vault::Vault;
use custodia_vault::leak::{LeakHit, MATCH_RADIUS, MIN_TRUSTED_QUALITY};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sha2::Digest as _;

/// Largest single file or archive entry the scan reads (a 100-megapixel JPEG is well under).
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes read from one scan's files and decompressed archive streams together.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Images whose hashes go to the index in one call (× 8 variants).
const QUERY_CHUNK_IMAGES: usize = 16_384;

/// Perceptual hashes and leak scans.
#[derive(Subcommand)]
pub enum LeakCommand {
    /// Print `path<TAB>pipeline<TAB>hash<TAB>quality` per file (eight hashes with --dihedral,
    /// in the order original, rot90, rot180, rot270, flipx, flipy, flipplus1, flipminus1).
    Hash {
        /// `pdq-canonical-v1` (full-size decode, comparable with other PDQ implementations) or
        /// `pdq-fast-v1` (what lanes store).
        #[arg(long, default_value = "pdq-canonical-v1")]
        pipeline: String,
        /// All eight dihedral hashes.
        #[arg(long)]
        dihedral: bool,
        /// JPEG or PNG files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Scan a folder or a zip / tar / tar.gz archive for images the vault stores.
    Scan(ScanArgs),
}

/// `custodia leak scan`.
#[derive(Args)]
pub struct ScanArgs {
    /// A folder, an image, or a .zip / .tar / .tar.gz archive (detected by content).
    pub path: PathBuf,
    /// The vault folder whose index to search.
    #[arg(long)]
    pub vault: PathBuf,
    /// Write the report as OUT.json and OUT.html (an OUT ending in .json keeps its name).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Take the keystore passphrase from this environment variable.
    #[arg(long)]
    pub passphrase_env: Option<String>,
    /// Largest file or archive entry read, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_ENTRY_BYTES)]
    pub max_entry_bytes: u64,
    /// Most bytes read in total (files plus decompressed archive data).
    #[arg(long, default_value_t = DEFAULT_MAX_TOTAL_BYTES)]
    pub max_total_bytes: u64,
}

/// Runs a `leak` subcommand.
pub async fn run(command: LeakCommand, open_vault: fn(&Path, &Option<String>) -> Result<Vault>) -> Result<()> {
    match command {
        LeakCommand::Hash { pipeline, dihedral, files } => hash_files(&pipeline, dihedral, &files),
        LeakCommand::Scan(args) => {
            let vault = open_vault(&args.vault, &args.passphrase_env)?;
            let report = tokio::task::block_in_place(|| scan(&vault, &args))?;
            println!("{}", report.summary_line());
            Ok(())
        }
    }
}

fn hash_files(pipeline: &str, dihedral: bool, files: &[PathBuf]) -> Result<()> {
    let pipeline: Pipeline = pipeline
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown pipeline {pipeline:?} (pdq-canonical-v1 or pdq-fast-v1)"))?;
    let mut failed = 0;
    for path in files {
        let result = read_bounded(path, custodia_pdq::MAX_INPUT_BYTES as u64).and_then(|bytes| {
            if dihedral {
                let d = custodia_pdq::hash_bytes_dihedral(&bytes, pipeline)?;
                let hashes: Vec<String> = d.hashes.iter().map(ToString::to_string).collect();
                Ok(format!("{}\t{pipeline}\t{}\t{}", path.display(), hashes.join("\t"), d.quality))
            } else {
                let r = custodia_pdq::hash_bytes(&bytes, pipeline)?;
                Ok(format!("{}\t{pipeline}\t{}\t{}", path.display(), r.hash, r.quality))
            }
        });
        match result {
            Ok(line) => println!("{line}"),
            Err(error) => {
                failed += 1;
                eprintln!("custodia: {}: {error:#}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files could not be hashed", files.len());
    }
    Ok(())
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        bail!("over the {max}-byte limit");
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------------
// Reading sources.

/// One thing found in the scanned source.
enum Item {
    /// A file's bytes, within the limits.
    File { name: String, bytes: Vec<u8> },
    /// A file or entry that was not read, and why.
    Skipped { name: String, reason: String },
}

/// Counts bytes read from a stream and fails once the scan's total budget is spent (a
/// decompression bomb ends the archive, not the machine).
struct Budget<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("the scan's total byte limit is reached"));
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads one entry completely if it fits `max`; `Err(reason)` otherwise.
fn read_entry(reader: &mut dyn Read, declared: u64, max: u64) -> Result<Vec<u8>, String> {
    if declared > max {
        return Err(format!("declares {declared} bytes, over the {max}-byte entry limit"));
    }
    let mut bytes = Vec::with_capacity(declared.min(1 << 20) as usize);
    reader.take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("read failed: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("expands past the {max}-byte entry limit"));
    }
    Ok(bytes)
}

#[derive(Clone, Copy)]
struct Limits {
    max_entry: u64,
    max_total: u64,
}

enum SourceKind {
    Folder,
    Zip,
    Tar,
    TarGz,
    Single,
}

fn source_kind(path: &Path) -> Result<SourceKind> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        return Ok(SourceKind::Folder);
    }
    let mut head = [0u8; 512];
    let mut file = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        let k = file.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let head = &head[..n];
    Ok(if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        SourceKind::Zip
    } else if head.starts_with(&[0x1f, 0x8b]) {
        SourceKind::TarGz
    } else if n >= 262 && &head[257..262] == b"ustar" {
        SourceKind::Tar
    } else {
        SourceKind::Single
    })
}

/// Feeds every file of the source to `each`, in a stable order (folders sorted by name,
/// archives in stored order). Never follows symbolic links.
fn walk(path: &Path, limits: Limits, each: &mut dyn FnMut(Item)) -> Result<()> {
    let mut left = limits.max_total;
    match source_kind(path)? {
        SourceKind::Folder => walk_folder(path, path, limits, &mut left, each),
        SourceKind::Single => {
            each(file_item(path, path.display().to_string(), limits, &mut left));
            Ok(())
        }
        SourceKind::Zip => walk_zip(path, limits, each),
        SourceKind::Tar => walk_tar(BufReader::new(File::open(path)?), limits, each),
        SourceKind::TarGz => walk_tar(flate2::read::GzDecoder::new(BufReader::new(File::open(path)?)), limits, each),
    }
}

fn file_item(path: &Path, name: String, limits: Limits, left: &mut u64) -> Item {
    let size = match std::fs::symlink_metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return Item::Skipped { name, reason: format!("unreadable: {e}") },
    };
    if size > *left {
        return Item::Skipped { name, reason: "the scan's total byte limit is reached".into() };
    }
    match File::open(path)
        .map_err(|e| format!("unreadable: {e}"))
        .and_then(|mut f| read_entry(&mut f, size, limits.max_entry))
    {
        Ok(bytes) => {
            *left -= bytes.len() as u64;
            Item::File { name, bytes }
        }
        Err(reason) => Item::Skipped { name, reason },
    }
}

fn walk_folder(root: &Path, dir: &Path, limits: Limits, left: &mut u64, each: &mut dyn FnMut(Item)) -> Result<()> {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_folder(root, &path, limits, left, each)?,
            Ok(t) if t.is_file() => each(file_item(&path, name, limits, left)),
            Ok(_) => each(Item::Skipped { name, reason: "not a regular file (link or device); not followed".into() }),
            Err(e) => each(Item::Skipped { name, reason: format!("unreadable: {e}") }),
        }
    }
    Ok(())
}

fn walk_zip(path: &Path, limits: Limits, each: &mut dyn FnMut(Item)) -> Result<()> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path)?))
        .with_context(|| format!("{} is not a readable zip archive", path.display()))?;
    let mut left = limits.max_total;
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                each(Item::Skipped { name: format!("#{i}"), reason: format!("zip entry unreadable: {e}") });
                continue;
            }
        };
        let name = entry.name().map(|n| n.to_string()).unwrap_or_else(|_| format!("#{i}"));
        if entry.is_dir() {
            continue;
        }
        if left == 0 {
            each(Item::Skipped { name, reason: "the scan's total byte limit is reached".into() });
            continue;
        }
        let declared = entry.size();
        let max = limits.max_entry.min(left);
        match read_entry(&mut entry, declared, max) {
            Ok(bytes) => {
                left -= bytes.len() as u64;
                each(Item::File { name, bytes })
            }
            Err(reason) => each(Item::Skipped { name, reason }),
        }
    }
    Ok(())
}

fn walk_tar(reader: impl Read, limits: Limits, each: &mut dyn FnMut(Item)) -> Result<()> {
    let mut archive = tar::Archive::new(Budget { inner: reader, left: limits.max_total });
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            each(Item::Skipped { name: "(archive)".into(), reason: format!("not a readable tar stream: {e}") });
            return Ok(());
        }
    };
    for (i, entry) in entries.enumerate() {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // A tar stream cannot be resynchronised after a bad header.
                each(Item::Skipped { name: format!("#{i} and after"), reason: format!("archive stream broken: {e}") });
                break;
            }
        };
        let name = entry.path().map(|p| p.display().to_string()).unwrap_or_else(|_| format!("#{i}"));
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let declared = entry.size();
        match read_entry(&mut entry, declared, limits.max_entry) {
            Ok(bytes) => each(Item::File { name, bytes }),
            Err(reason) => each(Item::Skipped { name, reason }),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Hashing finds.

/// A file of the dump that decoded as an image.
struct Find {
    name: String,
    /// Hashes of the image as found, then of the other versions searched ([`hash_find`]),
    /// each with the version's name.
    versions: Vec<(&'static str, Dihedral)>,
}

impl Find {
    fn as_found(&self) -> &Dihedral {
        &self.versions[0].1
    }
}

fn is_image(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// Per mille of each side the scan also trims from a find. The lane stores the whole image and
/// insets of 5, 10 and 20 %; a find cropped by c per side, trimmed by a further ~3.3 %, lands
/// near the next stored inset (2 % + 3.3 % of the rest ≈ 5 %), which PDQ tolerates, where the
/// find itself sits between two stored crops and may be 28–94 bits from both.
pub(crate) const FIND_INSET_PER_MILLE: u32 = 33;

/// Decode (under custodia-pdq's limits) and hash all eight variants of: the image as found
/// (from its bytes, exactly as the lane hashed what it stored); the image with letterbox /
/// pillarbox bars stripped, when it has any (a dark sky or plain wall can look like a bar, so
/// both are searched); and that image trimmed by [`FIND_INSET_PER_MILLE`] per side.
pub(crate) fn hash_find(bytes: &[u8], pipeline: Pipeline) -> Result<Vec<(&'static str, Dihedral)>, String> {
    let guarded = std::panic::catch_unwind(|| -> Result<Vec<(&'static str, Dihedral)>, String> {
        let img = custodia_pdq::decode_image(bytes).map_err(|e| e.to_string())?;
        let mut versions =
            vec![("as-found", custodia_pdq::hash_bytes_dihedral(bytes, pipeline).map_err(|e| e.to_string())?)];
        let stripped = custodia_pdq::crops::strip_borders(&img);
        let base = if (stripped.width(), stripped.height()) != (img.width(), img.height()) {
            versions.push(("bars-stripped", custodia_pdq::hash_image_dihedral(&stripped, pipeline)));
            &stripped
        } else {
            &img
        };
        // PDQ's 64×64 sampling grid is only symmetric when a side divides evenly, so the
        // eight hashes from one DCT miss some flipped or rotated finds (measured: 1 in 6 demo
        // overviews under a vertical flip). Re-orienting the pixels and hashing each of the
        // eight closes that; a ≤ 512 px working copy (the pipeline's own size) keeps it cheap.
        let small = img.thumbnail(custodia_pdq::FAST_MAX_SIDE as u32, custodia_pdq::FAST_MAX_SIDE as u32);
        let mut reoriented = versions[0].1;
        for (v, oriented) in DihedralVariant::ALL.into_iter().zip([
            small.clone(),
            small.rotate270(),
            small.rotate180(),
            small.rotate90(),
            small.flipv(),
            small.fliph(),
            small.rotate90().fliph(),
            small.rotate270().fliph(),
        ]) {
            reoriented.hashes[v.index()] = custodia_pdq::hash_image_with(&oriented, pipeline).hash;
        }
        versions.push(("reoriented", reoriented));
        let (w, h) = (base.width(), base.height());
        let (dx, dy) = (w * FIND_INSET_PER_MILLE / 1000, h * FIND_INSET_PER_MILLE / 1000);
        if dx > 0 && dy > 0 {
            let trimmed = base.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy);
            versions.push(("trimmed-3", custodia_pdq::hash_image_dihedral(&trimmed, pipeline)));
        }
        Ok(versions)
    });
    guarded.unwrap_or_else(|_| Err("the decoder failed on this file (panic contained)".into()))
}

// ---------------------------------------------------------------------------------------------
// The scan and its report.

/// What a scan found, as written to the JSON report.
pub struct ScanOutcome {
    /// The JSON report.
    pub report: Value,
}

impl ScanOutcome {
    fn summary_line(&self) -> String {
        let s = &self.report["summary"];
        format!(
            "scan {}: {} files, {} images; matched {} records ({} vehicles, {} occupants in {} records with faces); {} weak-only, {} unmatched, {} skipped",
            self.report["scan_id"].as_str().unwrap_or(""),
            self.report["files_examined"],
            self.report["images_hashed"],
            s["records"],
            s["vehicles"],
            s["occupants"],
            s["records_with_faces"],
            s["weak_only_records"],
            self.report["unmatched"].as_array().map_or(0, Vec::len),
            self.report["skipped"].as_array().map_or(0, Vec::len),
        )
    }
}

/// One scanned file matched to one stored image part, best distance over variants.
struct Match<'a> {
    find: &'a Find,
    version: &'static str,
    dihedral: DihedralVariant,
    hit: LeakHit,
    weak: bool,
}

fn scan(vault: &Vault, args: &ScanArgs) -> Result<ScanOutcome> {
    let started_ms = vault.now_ms();
    let stored = vault.pdq_pipelines()?;
    let pipeline = [Pipeline::FastV1, Pipeline::CanonicalV1]
        .into_iter()
        .find(|p| stored.iter().any(|(name, n)| name == p.name() && *n > 0))
        .context("the vault stores no perceptual hashes yet: nothing to scan against")?;

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} files, {per_sec}, {elapsed} {msg}")
            .expect("the template is valid"),
    );
    let mut finds = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut files = 0u64;
    let limits = Limits { max_entry: args.max_entry_bytes, max_total: args.max_total_bytes };
    walk(&args.path, limits, &mut |item| {
        files += 1;
        bar.inc(1);
        match item {
            Item::Skipped { name, reason } => skipped.push((name, reason)),
            Item::File { name, bytes } if !is_image(&bytes) => {
                skipped.push((name, "not a JPEG or PNG".into()));
            }
            Item::File { name, bytes } => match hash_find(&bytes, pipeline) {
                Ok(versions) => finds.push(Find { name, versions }),
                Err(reason) => skipped.push((name, format!("not decodable: {reason}"))),
            },
        }
        bar.set_message(format!("{} images hashed, {} skipped", finds.len(), skipped.len()));
    })?;
    bar.set_message(format!("searching {} images × 8 variants", finds.len()));

    // Best hit per (find, stored image part): the closest stored variant, version and dihedral.
    /// A hit with the find it was for, the hash version and the dihedral variant that made it.
    type BestHit = (usize, &'static str, DihedralVariant, LeakHit);
    let mut best: BTreeMap<(usize, String, u8, u8), BestHit> = BTreeMap::new();
    for (chunk_index, chunk) in finds.chunks(QUERY_CHUNK_IMAGES).enumerate() {
        let mut queries: Vec<PdqHash> = Vec::with_capacity(chunk.len() * 32);
        let mut owners: Vec<(usize, &'static str)> = Vec::with_capacity(chunk.len() * 4);
        for (i, f) in chunk.iter().enumerate() {
            for (version, d) in &f.versions {
                queries.extend(d.hashes);
                owners.push((chunk_index * QUERY_CHUNK_IMAGES + i, version));
            }
        }
        for hit in vault.leak_match(pipeline.name(), &queries, MATCH_RADIUS)? {
            let (find, version) = owners[hit.query / 8];
            let variant = DihedralVariant::ALL[hit.query % 8];
            let key = (find, hit.stored.record.to_string(), hit.stored.entry.group, hit.stored.entry.part);
            match best.get(&key) {
                Some((_, _, _, b)) if b.distance <= hit.distance => {}
                _ => {
                    best.insert(key, (find, version, variant, hit));
                }
            }
        }
    }
    bar.finish_and_clear();

    let matches: Vec<Match<'_>> = best
        .into_values()
        .map(|(find, version, dihedral, hit)| {
            let find = &finds[find];
            let weak = find.as_found().quality < MIN_TRUSTED_QUALITY
                || u32::from(hit.stored.entry.quality) < MIN_TRUSTED_QUALITY;
            Match { find, version, dihedral, hit, weak }
        })
        .collect();
    let report = build_report(vault, args, pipeline, started_ms, files, &finds, &matches, &skipped);
    let json_text = serde_json::to_vec_pretty(&report)?;
    let digest: [u8; 32] = sha2::Sha256::digest(&json_text).into();
    let scan_id = report["scan_id"].as_str().unwrap_or_default().to_string();
    let records = report["summary"]["records"].as_u64().unwrap_or(0);
    // Logged before the report leaves this function: an unlogged scan has no report.
    vault.log_scan(&scan_id, files, records, digest).context("logging the scan in the audit log")?;
    if let Some(out) = &args.report {
        let (json_path, html_path) = report_paths(out);
        std::fs::write(&json_path, &json_text).with_context(|| format!("writing {}", json_path.display()))?;
        std::fs::write(&html_path, render_html(&report)).with_context(|| format!("writing {}", html_path.display()))?;
    }
    Ok(ScanOutcome { report })
}

fn report_paths(out: &Path) -> (PathBuf, PathBuf) {
    if out.extension().is_some_and(|e| e == "json") {
        (out.to_path_buf(), out.with_extension("html"))
    } else {
        let mut json = out.as_os_str().to_owned();
        json.push(".json");
        let mut html = out.as_os_str().to_owned();
        html.push(".html");
        (json.into(), html.into())
    }
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    vault: &Vault,
    args: &ScanArgs,
    pipeline: Pipeline,
    started_ms: i64,
    files: u64,
    finds: &[Find],
    matches: &[Match<'_>],
    skipped: &[(String, String)],
) -> Value {
    let date = custodia_vault::civil::date_label;
    let strong: Vec<&Match<'_>> = matches.iter().filter(|m| !m.weak).collect();
    let part_of = |m: &Match<'_>| (m.hit.stored.record.to_string(), m.hit.stored.entry.group, m.hit.stored.entry.part);
    let records: BTreeSet<String> = strong.iter().map(|m| m.hit.stored.record.to_string()).collect();
    let face_parts: BTreeSet<(String, u8, u8)> =
        strong.iter().filter(|m| m.hit.stored.entry.role == "face").map(|m| part_of(m)).collect();
    let face_records: BTreeSet<&String> = face_parts.iter().map(|p| &p.0).collect();
    let vehicle_records: BTreeSet<String> =
        strong.iter().filter(|m| m.hit.stored.entry.role != "face").map(|m| m.hit.stored.record.to_string()).collect();
    let weak_only: BTreeSet<String> = matches
        .iter()
        .filter(|m| m.weak)
        .map(|m| m.hit.stored.record.to_string())
        .filter(|r| !records.contains(r))
        .collect();
    let sites: BTreeSet<&str> = strong.iter().map(|m| m.hit.stored.site.as_str()).collect();
    let lanes: BTreeSet<String> =
        strong.iter().map(|m| format!("{}/{}", m.hit.stored.site, m.hit.stored.lane)).collect();
    let dates: BTreeSet<String> = strong.iter().map(|m| date(m.hit.stored.capture_time_ms)).collect();
    let matched_files: BTreeSet<&str> = matches.iter().map(|m| m.find.name.as_str()).collect();
    let mut random = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    json!({
        "scan_id": format!("scan-{}", hex::encode(random)),
        "started_at_ms": started_ms,
        "vault": vault.dir().display().to_string(),
        "source": args.path.display().to_string(),
        "pipeline": pipeline.name(),
        "radius": MATCH_RADIUS,
        "min_trusted_quality": MIN_TRUSTED_QUALITY,
        "files_examined": files,
        "images_hashed": finds.len(),
        "summary": {
            "records": records.len(),
            "vehicles": vehicle_records.len(),
            "records_with_faces": face_records.len(),
            "occupants": face_parts.len(),
            "weak_only_records": weak_only.len(),
            "sites": sites,
            "lanes": lanes,
            "dates": dates,
        },
        "matches": matches.iter().map(|m| json!({
            "file": m.find.name,
            "record": m.hit.stored.record.to_string(),
            "group": m.hit.stored.entry.group,
            "part": m.hit.stored.entry.part,
            "role": m.hit.stored.entry.role,
            "stored_variant": m.hit.stored.entry.variant,
            "dihedral": m.dihedral.name(),
            "distance": m.hit.distance,
            "find_quality": m.find.as_found().quality,
            "stored_quality": m.hit.stored.entry.quality,
            "find_version": m.version,
            "weak": m.weak,
            "site": m.hit.stored.site,
            "lane": m.hit.stored.lane,
            "captured_at_ms": m.hit.stored.capture_time_ms,
            "captured_on": date(m.hit.stored.capture_time_ms),
        })).collect::<Vec<_>>(),
        "unmatched": finds.iter().filter(|f| !matched_files.contains(f.name.as_str())).map(|f| json!({
            "file": f.name, "quality": f.as_found().quality, "hash": f.as_found().hashes[0].to_string(),
        })).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(file, reason)| json!({"file": file, "reason": reason})).collect::<Vec<_>>(),
    })
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn val(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Array(a) => esc(&a
            .iter()
            .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(", ")),
        other => esc(&other.to_string()),
    }
}

/// A self-contained page (no scripts, no external resources) a responder can read offline.
fn render_html(r: &Value) -> String {
    let s = &r["summary"];
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Custodia leak scan ");
    h.push_str(&val(&r["scan_id"]));
    h.push_str("</title><style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:72em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .5em;text-align:left}th{background:#eee}.weak{color:#888}h1{font-size:1.4em}</style></head><body>");
    h.push_str(&format!("<h1>Leak scan {}</h1>", val(&r["scan_id"])));
    h.push_str(&format!(
        "<p>Source <code>{}</code> against vault <code>{}</code>: {} files examined, {} images hashed ({}, all eight rotations/flips, Hamming distance ≤ {}). Matches whose hashes have quality below {} are shown as <span class=weak>weak</span> and are not counted below.</p>",
        val(&r["source"]), val(&r["vault"]), val(&r["files_examined"]), val(&r["images_hashed"]), val(&r["pipeline"]), val(&r["radius"]), val(&r["min_trusted_quality"])
    ));
    h.push_str("<h2>Who and what is affected</h2><table>");
    for (label, key) in [
        ("Stored records shown", "records"),
        (
            "Vehicles (records whose vehicle, plate or overview image matched; repeat passes count separately)",
            "vehicles",
        ),
        ("Records showing occupants' faces", "records_with_faces"),
        ("Occupants (distinct face images matched)", "occupants"),
        ("Records matched only weakly", "weak_only_records"),
        ("Sites", "sites"),
        ("Lanes", "lanes"),
        ("Capture dates (UTC)", "dates"),
    ] {
        h.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", esc(label), val(&s[key])));
    }
    h.push_str("</table><h2>Matches</h2><table><tr><th>File</th><th>Record</th><th>Role</th><th>Stored variant</th><th>Find version / rotation</th><th>Distance</th><th>Quality (find / stored)</th><th>Site / lane</th><th>Captured</th></tr>");
    for m in r["matches"].as_array().into_iter().flatten() {
        let class = if m["weak"].as_bool() == Some(true) { " class=weak" } else { "" };
        h.push_str(&format!(
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{} / {}</td><td>{} / {}</td><td>{}</td></tr>",
            val(&m["file"]), val(&m["record"]), val(&m["role"]), val(&m["stored_variant"]), val(&m["find_version"]), val(&m["dihedral"]), val(&m["distance"]),
            val(&m["find_quality"]), val(&m["stored_quality"]), val(&m["site"]), val(&m["lane"]), val(&m["captured_on"])
        ));
    }
    h.push_str("</table><h2>Images with no match</h2><table><tr><th>File</th><th>Quality</th></tr>");
    for u in r["unmatched"].as_array().into_iter().flatten() {
        h.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", val(&u["file"]), val(&u["quality"])));
    }
    h.push_str("</table><h2>Files not scanned</h2><table><tr><th>File</th><th>Reason</th></tr>");
    for u in r["skipped"].as_array().into_iter().flatten() {
        h.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", val(&u["file"]), val(&u["reason"])));
    }
    h.push_str("</table></body></html>\n");
    h
}
