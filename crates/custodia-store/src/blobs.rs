//! The sealed-blob store: captures kept exactly as the lane sent them, through `object_store`.
//!
//! The embedded default is a local directory (`object_store`'s `LocalFileSystem`); an S3 server
//! is the scale-out choice behind the same type. Blobs are written once and never overwritten:
//! keys carry the content digest, so a replayed sequence number with other content can never
//! replace what was accepted.
//!
//! Durability: `LocalFileSystem` writes a staged file and renames it, but does not sync. The
//! vault writes a whole batch of blobs and then calls [`BlobStore::sync`], one `syncfs(2)` for the
//! batch, before it acknowledges any of them ("many captures per fsync"). On S3 a completed PUT
//! is already durable and `sync` does nothing.
//!
//! Page cache: once a batch is durable the vault calls [`BlobStore::release_cached`], which drops
//! those blobs' pages from the kernel's page cache. A vault writes far more than it reads back,
//! and cached blobs would otherwise grow the page cache by the whole ingest volume until memory
//! runs out, pushing out the index's pages on the way. On a VM whose host takes back the memory
//! a guest frees (free page reporting, as on this project's machines), that growth is also what
//! makes writes slow: after the first few GB every new page-cache page faults in the host, and
//! writing 251 KB blobs went to ~1,000 µs of system time each, where dropping the pages after
//! each sync kept it at 130–160 µs over 6 GB (docs/performance.md).
//!
//! Staging files: `LocalFileSystem` writes each blob as `<key>#<n>` and links it into place. A
//! process killed in between leaves that staging file behind, invisible to the store (its
//! listings skip such names) and never reused. [`BlobStore::remove_abandoned_staging`], which the
//! vault runs at every open, deletes them; it waits until no write is in flight in this process,
//! and only one process writes a vault at a time (the audit log's lock), so every staging file
//! it sees then was abandoned.
//!
//! What it is not: an index. It cannot find a blob by plate, time or device; the SQLite index does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use crate::faulty::{Fault, Faults, FaultyStore};

/// Blob store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The object store refused or failed an operation.
    #[error("blob store error: {0}")]
    Store(#[from] object_store::Error),
    /// No blob under this key.
    #[error("no blob stored under {0}")]
    NotFound(String),
    /// Making written blobs durable failed: nothing written since the last sync may be
    /// acknowledged.
    #[error("syncing the blob store to disk failed: {0}")]
    Sync(std::io::Error),
    /// The local folder could not be created or opened.
    #[error("blob folder {path}: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where sealed captures are kept.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Set for a local directory: the folder `sync` flushes.
    local_root: Option<PathBuf>,
    /// Set for a local directory: maps a key to its file for [`BlobStore::release_cached`].
    local_files: Option<Arc<LocalFileSystem>>,
    /// Set by [`BlobStore::local_with_faults`]: consulted before each `syncfs`.
    sync_faults: Option<Faults>,
    /// Held shared by every write while it may have a staging file, and exclusively by
    /// [`BlobStore::remove_abandoned_staging`] while it deletes.
    writes: Arc<tokio::sync::RwLock<()>>,
}

impl BlobStore {
    /// A blob store in a local directory (created if missing).
    pub fn local(root: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root)
            .map_err(|source| BlobError::Folder { path: root.display().to_string(), source })?;
        let store = Arc::new(LocalFileSystem::new_with_prefix(root)?);
        Ok(Self {
            store: store.clone(),
            local_root: Some(root.to_path_buf()),
            local_files: Some(store),
            sync_faults: None,
            writes: Arc::default(),
        })
    }

    /// A local-directory blob store whose writes and reads go through a [`FaultyStore`] switched
    /// by `faults` (tests of full disks, I/O errors and slow storage). `sync` still runs
    /// `syncfs` on `root`, as for [`BlobStore::local`].
    pub fn local_with_faults(root: &Path, faults: Faults) -> Result<Self, BlobError> {
        let local = Self::local(root)?;
        Ok(Self {
            store: Arc::new(FaultyStore::new(local.store, faults.clone())),
            local_root: local.local_root,
            local_files: local.local_files,
            sync_faults: Some(faults),
            writes: local.writes,
        })
    }

    /// A blob store over any `object_store` backend whose completed writes are durable (S3).
    pub fn remote(store: Arc<dyn ObjectStore>) -> Self {
        Self { store, local_root: None, local_files: None, sync_faults: None, writes: Arc::default() }
    }

    /// Writes a new blob. Keys carry the content digest, so a blob already under the key should
    /// hold these very bytes — but a retry after a failed sync may find a file whose pages the
    /// kernel dropped (a later sync can report success for data that is gone). So an existing blob
    /// is read back and compared, and rewritten when it differs; the retry's own sync then makes
    /// the good bytes durable before anything is acknowledged.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = ObjectPath::from(key);
        let _writing = self.writes.read().await;
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&path, PutPayload::from_bytes(bytes.clone()), options).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self.get(key).await;
                if matches!(&existing, Ok(stored) if *stored == bytes) {
                    return Ok(());
                }
                let options = PutOptions { mode: PutMode::Overwrite, ..Default::default() };
                self.store.put_opts(&path, PutPayload::from_bytes(bytes), options).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes every blob written so far durable. See the module doc.
    pub async fn sync(&self) -> Result<(), BlobError> {
        let Some(root) = self.local_root.clone() else { return Ok(()) };
        if let Some(error) = self.sync_faults.as_ref().and_then(Faults::sync_verdict) {
            return Err(BlobError::Sync(error));
        }
        tokio::task::spawn_blocking(move || {
            let dir = std::fs::File::open(&root)?;
            rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
        })
        .await
        .expect("syncfs task does not panic")
        .map_err(BlobError::Sync)
    }

    /// Drops the pages of these blobs from the kernel's page cache (see the module doc); a remote
    /// store keeps no pages here and does nothing. Call it only for blobs that a [`BlobStore::sync`]
    /// has made durable: clean pages are dropped at once, dirty ones would only be queued for
    /// writing. Best effort, like the advice it gives: a blob deleted meanwhile or a file that
    /// cannot be opened is skipped, and the number of blobs whose pages were dropped is returned.
    pub async fn release_cached(&self, keys: Vec<String>) -> usize {
        let Some(files) = self.local_files.clone() else { return 0 };
        tokio::task::spawn_blocking(move || {
            let mut released = 0;
            for key in keys {
                let Ok(path) = files.path_to_filesystem(&ObjectPath::from(key.as_str())) else { continue };
                let advised = std::fs::File::open(&path).and_then(|file| {
                    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).map_err(std::io::Error::from)
                });
                match advised {
                    Ok(()) => released += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => tracing::debug!(%error, %key, "could not drop a blob's cached pages"),
                }
            }
            released
        })
        .await
        .expect("page-cache release task does not panic")
    }

    /// Deletes the staging files (`<key>#<digits>`) that killed writes left in a local blob folder
    /// and returns how many there were; a remote store has none. The folder is walked without
    /// blocking writes; the deletions wait until no write of this process is in flight, so a
    /// staging file still there then belongs to no one. See the module doc.
    pub async fn remove_abandoned_staging(&self) -> Result<usize, BlobError> {
        let Some(root) = self.local_root.clone() else { return Ok(0) };
        let walk_root = root.clone();
        let candidates = tokio::task::spawn_blocking(move || staging_files(&walk_root))
            .await
            .expect("staging walk task does not panic")?;
        if candidates.is_empty() {
            return Ok(0);
        }
        let _quiet = self.writes.write().await;
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for path in candidates {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    // Its own write finished after the walk and removed it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(BlobError::Folder { path: path.display().to_string(), source }),
                }
            }
            Ok(removed)
        })
        .await
        .expect("staging removal task does not panic")
    }

    /// Reads a blob.
    pub async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        match self.store.get(&ObjectPath::from(key)).await {
            Ok(result) => Ok(result.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(key.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a blob; deleting a missing blob succeeds (deletion is resumable).
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let prefix = ObjectPath::from(prefix);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas.into_iter().map(|meta| meta.location.to_string()).collect())
    }
}

/// Whether a file name is a `LocalFileSystem` staging name: everything after its first `#` is one
/// or more digits. That is the rule by which its listings skip a file, so nothing the store
/// would list (`a#b.cap`) is taken for one.
pub fn is_staging_name(name: &str) -> bool {
    name.split_once('#').is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

/// Every staging file under `root`. Symbolic links are not followed.
fn staging_files(root: &Path) -> Result<Vec<PathBuf>, BlobError> {
    let folder = |path: &Path, source| BlobError::Folder { path: path.display().to_string(), source };
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed since it was listed (retention emptied it).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(folder(&dir, source)),
        };
        for entry in entries {
            let entry = entry.map_err(|source| folder(&dir, source))?;
            let kind = entry.file_type().map_err(|source| folder(&entry.path(), source))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_staging_name) {
                found.push(entry.path());
            }
        }
    }
    Ok(found)
}
