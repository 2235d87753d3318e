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
