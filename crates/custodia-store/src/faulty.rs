//! A fault-injecting `object_store` backend: another store (the local directory) behind a switch
//! that makes it fail the way real storage fails.
//!
//! It exists so that tests can prove what DESIGN.md and issue 6 promise on a bad storage day:
//! intake stops with a clear error while the disk is full or failing, resumes when the fault
//! clears, loses nothing it acknowledged and stores nothing twice. It is an ordinary type a test
//! opts into ([`crate::blobs::BlobStore::local_with_faults`]); nothing in the normal path builds
//! one, and nothing is hidden behind a `cfg` a test cannot reach.
//!
//! The fault is shared ([`Faults`] is a cheap handle) and switched at run time:
//!
//! - [`Fault::DiskFull`]: every write fails with `ENOSPC` (`io::ErrorKind::StorageFull`);
//! - [`Fault::IoError`]: every write and every read fails with `EIO`;
//! - [`Fault::Slow`]: every operation sleeps first, then runs normally;
//! - [`Fault::FailAfter`]: the first `n` writes after the fault was set succeed, then the disk is
//!   full: every later write fails with `ENOSPC` until the fault is cleared;
//! - [`Fault::SyncFails`]: writes succeed but making them durable fails with `EIO`, the way a
//!   device reports a lost write-back only at the flush (the "fsyncgate" case). The blob store
//!   asks [`Faults::sync_verdict`] before its own `syncfs`.
//!
//! A refused write writes nothing: the check runs before the inner store is called, as on a
//! disk that refuses to allocate. What it does not model: torn or partial writes (the local store
//! stages and renames, so a real one leaves no partial object either), and faults in the SQLite
//! index or the audit log, which live beside the blob folder, not in it.
//!
//! ```
//! use std::sync::Arc;
//! use custodia_store::faulty::{Fault, Faults, FaultyStore};
//! let faults = Faults::new();
//! let store = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()), faults.clone());
//! faults.set(Fault::DiskFull);
//! // … every put through `store` now fails with ENOSPC …
//! faults.clear();
//! # drop(store);
//! ```

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// What the storage does wrong, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Storage works.
    #[default]
    None,
    /// The disk is full: writes fail with `ENOSPC`; reads, lists and deletes work.
    DiskFull,
    /// The device fails: writes and reads fail with `EIO`; lists and deletes work.
    IoError,
    /// Every operation waits this long before it runs (a saturated or degraded disk).
    Slow(Duration),
    /// The first `n` writes after this fault is set succeed; every later one fails with
    /// `ENOSPC` (the disk fills up part-way through a batch).
    FailAfter(u64),
    /// Writes and reads work, but every `syncfs` of the blob folder fails with `EIO`.
    SyncFails,
}

#[derive(Debug, Default)]
struct State {
    fault: Fault,
    /// Writes attempted since the fault was last set (for [`Fault::FailAfter`]).
    writes_since_set: u64,
    /// Operations failed on purpose since the handle was made.
    injected: u64,
}

/// The switch: a shared handle a test keeps to set and clear the fault at run time.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

/// What a [`Faults`] handle decides for one operation.
enum Verdict {
    Run,
    Wait(Duration),
    Fail(std::io::Error),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Read,
    Other,
}

impl Faults {
    /// A switch with no fault set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the fault, replacing the previous one; restarts the [`Fault::FailAfter`] count.
    pub fn set(&self, fault: Fault) {
        let mut state = self.lock();
        state.fault = fault;
        state.writes_since_set = 0;
    }

    /// Clears the fault: storage works again.
    pub fn clear(&self) {
        self.set(Fault::None);
    }

    /// The fault in force.
    pub fn current(&self) -> Fault {
        self.lock().fault
    }

    /// How many operations have been failed on purpose (so a test can tell that its fault was
    /// actually reached).
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a test thread panicked while holding it; the state is a
        // few plain values and stays consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn decide(&self, op: Op) -> Verdict {
        let mut state = self.lock();
        if op == Op::Write {
            state.writes_since_set += 1;
        }
        let error = match (state.fault, op) {
            (Fault::Slow(delay), _) => return Verdict::Wait(delay),
            (Fault::DiskFull, Op::Write) => no_space(),
            (Fault::IoError, Op::Write | Op::Read) => io_failure(),
            (Fault::FailAfter(n), Op::Write) if state.writes_since_set > n => no_space(),
            _ => return Verdict::Run,
        };
        state.injected += 1;
        Verdict::Fail(error)
    }

    /// For the blob store's `syncfs`: the error to report instead of syncing, if the fault in
    /// force is [`Fault::SyncFails`]; [`Fault::IoError`] fails it too (the device is failing).
    pub fn sync_verdict(&self) -> Option<std::io::Error> {
        let mut state = self.lock();
        match state.fault {
            Fault::SyncFails | Fault::IoError => {
                state.injected += 1;
                Some(io_failure())
            }
            _ => None,
        }
    }

    /// Applies the verdict for one operation before it runs.
    async fn gate(&self, op: Op) -> Result<()> {
        match self.decide(op) {
            Verdict::Run => Ok(()),
            Verdict::Wait(delay) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Verdict::Fail(source) => Err(object_store::Error::Generic { store: STORE, source: Box::new(source) }),
        }
    }
}

const STORE: &str = "FaultyStore";

/// `ENOSPC`, as the kernel reports it (`io::ErrorKind::StorageFull`).
fn no_space() -> std::io::Error {
    std::io::Error::from(rustix::io::Errno::NOSPC)
}

/// `EIO`, as the kernel reports a failing device.
fn io_failure() -> std::io::Error {
    std::io::Error::from(rustix::io::Errno::IO)
}

/// An `ObjectStore` that forwards to `inner` unless the shared [`Faults`] switch says to fail or
/// to wait first.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Faults,
}

impl FaultyStore {
    /// Wraps `inner`; `faults` is the switch (keep a clone of it to flip the fault).
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Faults) -> Self {
        Self { inner, faults }
    }

    /// The switch.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore").field("inner", &self.inner).field("fault", &self.faults.current()).finish()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

/// The boxed future `async_trait` turns each `async fn` of [`ObjectStore`] into; written out by
/// hand so this crate needs no macro dependency for one test backend.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream that waits for the fault's verdict before yielding anything of `inner`.
fn gated_stream<T: Send + 'static>(
    faults: Faults,
    op: Op,
    inner: impl FnOnce() -> BoxStream<'static, Result<T>> + Send + 'static,
) -> BoxStream<'static, Result<T>> {
    futures::stream::once(async move {
        match faults.gate(op).await {
            Ok(()) => inner(),
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        }
    })
    .flatten()
    .boxed()
}

impl ObjectStore for FaultyStore {
    fn put_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFuture<'async_trait, Result<PutResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.faults.gate(Op::Write).await?;
            self.inner.put_opts(location, payload, opts).await
        })
    }

    fn put_multipart_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        opts: PutMultipartOptions,
    ) -> BoxFuture<'async_trait, Result<Box<dyn MultipartUpload>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        // The whole upload is one write: it is refused (or delayed) when it starts.
        Box::pin(async move {
            self.faults.gate(Op::Write).await?;
            self.inner.put_multipart_opts(location, opts).await
        })
    }

    fn get_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        options: GetOptions,
    ) -> BoxFuture<'async_trait, Result<GetResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.faults.gate(Op::Read).await?;
            self.inner.get_opts(location, options).await
        })
    }

    fn get_ranges<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        ranges: &'life2 [Range<u64>],
    ) -> BoxFuture<'async_trait, Result<Vec<Bytes>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.faults.gate(Op::Read).await?;
            self.inner.get_ranges(location, ranges).await
        })
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        gated_stream(self.faults.clone(), Op::Other, move || inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        gated_stream(self.faults.clone(), Op::Other, move || inner.list(prefix.as_ref()))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let (prefix, offset) = (prefix.cloned(), offset.clone());
        gated_stream(self.faults.clone(), Op::Other, move || inner.list_with_offset(prefix.as_ref(), &offset))
    }

    fn list_with_delimiter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: Option<&'life1 Path>,
    ) -> BoxFuture<'async_trait, Result<ListResult>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.faults.gate(Op::Other).await?;
            self.inner.list_with_delimiter(prefix).await
        })
    }

    fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: CopyOptions,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        // A copy writes a new object.
        Box::pin(async move {
            self.faults.gate(Op::Write).await?;
            self.inner.copy_opts(from, to, options).await
        })
    }

    fn rename_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: RenameOptions,
    ) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.faults.gate(Op::Write).await?;
            self.inner.rename_opts(from, to, options).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    fn kind(error: &object_store::Error) -> std::io::ErrorKind {
        let object_store::Error::Generic { source, .. } = error else { panic!("not a generic error: {error}") };
        source.downcast_ref::<std::io::Error>().expect("an io::Error").kind()
    }

    #[tokio::test]
    async fn each_fault_fails_what_it_names_and_clearing_restores_the_store() {
        let faults = Faults::new();
        let store = FaultyStore::new(Arc::new(InMemory::new()), faults.clone());
        let a = Path::from("a");
        store.put(&a, Bytes::from_static(b"kept").into()).await.unwrap();

        faults.set(Fault::DiskFull);
        let error = store.put(&Path::from("b"), Bytes::from_static(b"x").into()).await.unwrap_err();
        assert_eq!(kind(&error), std::io::ErrorKind::StorageFull);
        assert_eq!(store.get(&a).await.unwrap().bytes().await.unwrap(), "kept", "a full disk still reads");
        assert!(store.head(&Path::from("b")).await.is_err(), "a refused write wrote nothing");

        faults.set(Fault::IoError);
        assert!(store.put(&Path::from("b"), Bytes::from_static(b"x").into()).await.is_err());
        let error = store.get(&a).await.unwrap_err();
        assert_eq!(std::io::Error::from(rustix::io::Errno::IO).kind(), kind(&error));

        faults.set(Fault::FailAfter(2));
        for name in ["c", "d"] {
            store.put(&Path::from(name), Bytes::from_static(b"x").into()).await.unwrap();
        }
        for name in ["e", "f"] {
            let error = store.put(&Path::from(name), Bytes::from_static(b"x").into()).await.unwrap_err();
            assert_eq!(kind(&error), std::io::ErrorKind::StorageFull);
        }
        assert_eq!(faults.injected(), 5);

        faults.clear();
        store.put(&Path::from("e"), Bytes::from_static(b"x").into()).await.unwrap();
        let mut names: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "c", "d", "e"]);
    }

    #[tokio::test]
    async fn slow_waits_before_every_operation_then_runs_it() {
        let faults = Faults::new();
        let store = FaultyStore::new(Arc::new(InMemory::new()), faults.clone());
        faults.set(Fault::Slow(Duration::from_millis(50)));
        let started = std::time::Instant::now();
        store.put(&Path::from("a"), Bytes::from_static(b"x").into()).await.unwrap();
        store.get(&Path::from("a")).await.unwrap();
        let listed = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None)).await.unwrap();
        assert_eq!(listed.len(), 1);
        // Three operations, each waited for first (a lower bound only: this measures nothing).
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(faults.injected(), 0);
    }
}
