//! Leak search over the stored perceptual hashes (DESIGN.md §6): the in-memory side.
//!
//! The index's `record_pdq_parts` table is the durable truth. The first leak query a vault process
//! answers loads it into one [`MultiIndex`] per pipeline, keyed by the hash id (its row's id and
//! its slot in the row, `custodia_store::index::PDQ_SLOTS`); from then on,
//! every committed batch adds its rows ([`PdqIndexes::refresh`]). A process that never
//! searches (`custodia serve` taking captures, every other subcommand) never holds the index:
//! at ~104 bytes a hash and up to 18 hashes a capture, it would be ~2 KB of memory per stored
//! capture, growing with intake, for a search only a responder runs, in `custodia leak scan`.
//!
//! Every hit is confirmed against the table before it is reported, so a row that retention
//! deleted after it was loaded is never reported, and because row ids are never reused
//! (`AUTOINCREMENT`) a stale id cannot name another record.
//!
//! What it is not: the scan. Walking folders and archives, decoding finds and writing reports
//! is the binary's (`custodia leak scan`); this module answers "which stored image parts are
//! within radius r of these hashes" and logs the scan as a `scanned` event.

use std::collections::HashMap;
use std::sync::RwLock;

use custodia_pdq::PdqHash;
use custodia_pdq::index::MultiIndex;
use custodia_store::index::{Index, IndexError, PdqHitRow};

use crate::{Vault, VaultError};

/// Largest radius PDQ matching uses (DESIGN.md §6): the multi-index's exact range.
pub const MATCH_RADIUS: u32 = MultiIndex::MAX_MIH_RADIUS;

/// Below this quality the reference says a hash is not to be trusted alone.
pub const MIN_TRUSTED_QUALITY: u32 = 50;

/// Most query hashes one call to [`Vault::leak_match`] takes (a batch of a dump's images ×
/// 8 variants); callers chunk larger dumps.
pub const MAX_QUERIES_PER_CALL: usize = 1 << 20;

#[derive(Default)]
struct State {
    /// False until the first leak query of this process loads the table.
    loaded: bool,
    last_id: u64,
    by_pipeline: HashMap<String, MultiIndex>,
}

/// One [`MultiIndex`] per pipeline over the `record_pdq` table, loaded on first use.
#[derive(Default)]
pub(crate) struct PdqIndexes {
    state: RwLock<State>,
}

impl PdqIndexes {
    /// Loads every stored hash (one table build per pipeline) unless already loaded.
    fn ensure_loaded(&self, index: &Index) -> Result<(), IndexError> {
        if self.state.read().expect("pdq index lock poisoned").loaded {
            return Ok(());
        }
        let mut state = self.state.write().expect("pdq index lock poisoned");
        if state.loaded {
            return Ok(());
        }
        let mut entries: HashMap<String, Vec<(u64, PdqHash)>> = HashMap::new();
        let last_id = index.for_each_pdq_since(0, |id, pipeline, hash| {
            entries.entry(pipeline.to_string()).or_default().push((id, PdqHash(*hash)));
        })?;
        let by_pipeline = entries.into_iter().map(|(p, e)| (p, MultiIndex::from_entries(e))).collect();
        *state = State { loaded: true, last_id, by_pipeline };
        Ok(())
    }

    /// Adds the rows committed since the last load or refresh; nothing before the first load.
    pub(crate) fn refresh(&self, index: &Index) -> Result<(), IndexError> {
        let mut state = self.state.write().expect("pdq index lock poisoned");
        if !state.loaded {
            return Ok(());
        }
        let State { last_id, by_pipeline, .. } = &mut *state;
        *last_id = index.for_each_pdq_since(*last_id, |id, pipeline, hash| {
            if !by_pipeline.contains_key(pipeline) {
                by_pipeline.insert(pipeline.to_string(), MultiIndex::new());
            }
            // A full index (u32::MAX rows) drops the insert; far beyond any vault's size.
            by_pipeline.get_mut(pipeline).expect("inserted above").insert(id, &PdqHash(*hash));
        })?;
        Ok(())
    }
}

/// A stored image part within the radius of a query hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakHit {
    /// Position of the query hash in the call's input.
    pub query: usize,
    /// Hamming distance between query and stored hash.
    pub distance: u32,
    /// The stored hash and its record.
    pub stored: PdqHitRow,
}

impl Vault {
    /// Pipelines that have stored hashes, with their counts (loads the leak index on first use).
    pub fn pdq_pipelines(&self) -> Result<Vec<(String, usize)>, VaultError> {
        self.inner.pdq.ensure_loaded(&self.inner.index)?;
        let state = self.inner.pdq.state.read().expect("pdq index lock poisoned");
        let mut out: Vec<(String, usize)> = state.by_pipeline.iter().map(|(p, m)| (p.clone(), m.len())).collect();
        out.sort();
        Ok(out)
    }

    /// Every stored hash of `pipeline` within `radius` (≤ [`MATCH_RADIUS`]) of each query,
    /// confirmed against the index, sorted by query, distance, row. Opens no sealed capture.
    pub fn leak_match(&self, pipeline: &str, queries: &[PdqHash], radius: u32) -> Result<Vec<LeakHit>, VaultError> {
        if queries.len() > MAX_QUERIES_PER_CALL || radius > MATCH_RADIUS {
            return Err(VaultError::Invalid {
                what: "leak query",
                reason: format!("at most {MAX_QUERIES_PER_CALL} hashes at radius ≤ {MATCH_RADIUS}"),
            });
        }
        self.inner.pdq.ensure_loaded(&self.inner.index)?;
        // Rows a crash recovery re-inserted are not announced by the committer; pick them up.
        self.inner.pdq.refresh(&self.inner.index)?;
        let joined = {
            let state = self.inner.pdq.state.read().expect("pdq index lock poisoned");
            match state.by_pipeline.get(pipeline) {
                Some(m) => m.batch_join(queries, radius),
                None => Vec::new(),
            }
        };
        let mut ids: Vec<u64> = joined.iter().map(|&(_, id, _)| id).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows: HashMap<u64, PdqHitRow> =
            self.inner.index.pdq_rows(&ids)?.into_iter().map(|r| (r.pdq_id, r)).collect();
        Ok(joined
            .into_iter()
            .filter_map(|(query, id, distance)| {
                let stored = rows.get(&id)?.clone();
                Some(LeakHit { query, distance, stored })
            })
            .collect())
    }

    /// Logs a finished scan as a `scanned` event (files examined, records matched, SHA-256 of
    /// the report) and returns its sequence number in the log. Call it before handing the
    /// report out: if the log cannot be written, the report must not be used.
    pub fn log_scan(
        &self,
        scan_id: &str,
        files: u64,
        matches: u64,
        report_sha256: [u8; 32],
    ) -> Result<u64, VaultError> {
        let scan = crate::audit::event::text(scan_id)
            .map_err(|e| VaultError::Invalid { what: "scan id", reason: e.to_string() })?;
        let event = crate::audit::vault::system_event(
            self.now_ms(),
            crate::audit::Action::Scanned { scan, files, matches, report: report_sha256 },
        )?;
        self.log_events(&[event])
    }
}

/// After a committed batch: make its hashes searchable. A failure leaves them searchable after
/// the next successful refresh or reopen (the table is the truth), so it is logged, not fatal.
pub(crate) fn after_commit(inner: &crate::Inner) {
    if let Err(error) = inner.pdq.refresh(&inner.index) {
        tracing::error!(%error, "loading new perceptual hashes into the leak index failed");
    }
}
