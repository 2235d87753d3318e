//! The blob store's write-once rule under a damaged earlier write: a retry that finds a blob
//! whose bytes are not the ones it carries (pages lost after a failed sync) rewrites it.

use bytes::Bytes;
use custodia_store::blobs::BlobStore;

#[tokio::test]
async fn a_retry_repairs_a_blob_whose_earlier_write_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let body = Bytes::from(vec![7u8; 4096]);
    store.put_new("site/2026/abc.cap", body.clone()).await.unwrap();
    // The same bytes again: accepted, untouched.
    store.put_new("site/2026/abc.cap", body.clone()).await.unwrap();
    assert_eq!(store.get("site/2026/abc.cap").await.unwrap(), body);
    // The kernel dropped the pages: the file is there but short and zeroed.
    std::fs::write(dir.path().join("site/2026/abc.cap"), vec![0u8; 100]).unwrap();
    store.put_new("site/2026/abc.cap", body.clone()).await.unwrap();
    assert_eq!(store.get("site/2026/abc.cap").await.unwrap(), body);
}

/// A write killed between its staging file and the link leaves `<key>#<n>`: the sweep removes
/// those, whether or not the blob itself made it, and nothing else.
#[tokio::test]
async fn abandoned_staging_files_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let body = Bytes::from(vec![9u8; 1000]);
    store.put_new("site/d1/a.cap", body.clone()).await.unwrap();
    // Killed after the link, before the staging name was removed.
    std::fs::hard_link(dir.path().join("site/d1/a.cap"), dir.path().join("site/d1/a.cap#1")).unwrap();
    // Killed while writing: only a partial staging file.
    std::fs::create_dir_all(dir.path().join("site/d2/dev")).unwrap();
    std::fs::write(dir.path().join("site/d2/dev/b.cap#3"), &body[..10]).unwrap();
    // Names the store lists as ordinary objects stay.
    std::fs::write(dir.path().join("site/d2/dev/c#d.cap"), b"x").unwrap();
    std::fs::write(dir.path().join("site/d2/dev/e.cap#"), b"x").unwrap();

    assert_eq!(store.remove_abandoned_staging().await.unwrap(), 2);
    assert!(!dir.path().join("site/d1/a.cap#1").exists());
    assert!(!dir.path().join("site/d2/dev/b.cap#3").exists());
    assert_eq!(store.get("site/d1/a.cap").await.unwrap(), body);
    assert!(dir.path().join("site/d2/dev/c#d.cap").exists());
    assert!(dir.path().join("site/d2/dev/e.cap#").exists());
    assert_eq!(store.remove_abandoned_staging().await.unwrap(), 0);
    // The retry of the capture whose write was killed stores it whole.
    store.put_new("site/d2/dev/b.cap", body.clone()).await.unwrap();
    assert_eq!(store.get("site/d2/dev/b.cap").await.unwrap(), body);
}

/// The sweep never takes a live write's staging file: sweeps running against a stream of writes
/// leave every write succeeding and whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_never_removes_a_write_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..400u32 {
                let body = Bytes::from(vec![(i % 251) as u8; 64 * 1024]);
                store.put_new(&format!("site/d/{i}.cap"), body).await.unwrap();
            }
        })
    };
    let mut sweeps = 0;
    while !writer.is_finished() {
        // Each sweep sees a staging file only if it walks while a write is between its staging
        // file and the link; whatever it found, no write may fail.
        store.remove_abandoned_staging().await.unwrap();
        sweeps += 1;
    }
    writer.await.unwrap();
    assert!(sweeps > 1);
    for i in 0..400u32 {
        assert_eq!(store.get(&format!("site/d/{i}.cap")).await.unwrap(), vec![(i % 251) as u8; 64 * 1024]);
    }
}

/// Once a batch is durable the vault drops its blobs' pages from the page cache: measured with
/// `mincore(2)`, every page of a synced blob is resident before and none after, the blob still
/// reads back whole (from disk), a missing key is skipped, and a remote store does nothing.
#[tokio::test]
async fn released_blobs_leave_the_page_cache_and_still_read_back() {
    // On the target's own file system: a tmpfs (a `TMPDIR` in memory) has no disk to drop to.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if is_tmpfs(dir.path()) {
        eprintln!("skipped: {} is a tmpfs, whose pages cannot be dropped", dir.path().display());
        return;
    }
    let store = BlobStore::local(dir.path()).unwrap();
    let body = Bytes::from((0..256 * 1024u32).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>());
    store.put_new("site/d1/dev/1-ab.cap", body.clone()).await.unwrap();
    store.sync().await.unwrap();
    let file = dir.path().join("site/d1/dev/1-ab.cap");
    let pages = body.len().div_ceil(page_size());
    assert_eq!(resident_pages(&file), pages, "a freshly written blob is in the page cache");

    let released = store.release_cached(vec!["site/d1/dev/1-ab.cap".into(), "site/d1/dev/2-cd.cap".into()]).await;
    assert_eq!(released, 1, "the missing key is skipped");
    assert_eq!(resident_pages(&file), 0, "no page of the released blob is cached");
    assert_eq!(store.get("site/d1/dev/1-ab.cap").await.unwrap(), body);

    let remote = BlobStore::remote(std::sync::Arc::new(object_store::memory::InMemory::new()));
    remote.put_new("site/d1/dev/1-ab.cap", body.clone()).await.unwrap();
    assert_eq!(remote.release_cached(vec!["site/d1/dev/1-ab.cap".into()]).await, 0);
    assert_eq!(remote.get("site/d1/dev/1-ab.cap").await.unwrap(), body);
}

/// How many of a file's pages are in the page cache.
fn resident_pages(path: &std::path::Path) -> usize {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let mut residency = vec![0u8; len.div_ceil(page_size())];
    // SAFETY: a read-only shared mapping of a file we opened, used only for mincore and unmapped
    // before the file is closed; nothing reads through it.
    unsafe {
        let map = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
        assert_ne!(map, libc::MAP_FAILED, "mmap {}", path.display());
        assert_eq!(libc::mincore(map, len, residency.as_mut_ptr()), 0, "mincore");
        libc::munmap(map, len);
    }
    residency.iter().filter(|r| **r & 1 == 1).count()
}

fn page_size() -> usize {
    rustix::param::page_size()
}

fn is_tmpfs(path: &std::path::Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    rustix::fs::statfs(path).expect("statfs").f_type as i64 == TMPFS_MAGIC
}
