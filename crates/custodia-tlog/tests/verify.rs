//! Whole-log audits, consistency between checkpoints, and fork detection.

use custodia_tlog::{
    Checkpoint, EntryTile, Hash, MemoryHashStore, ReadError, Tile, TileHashReader, TileReader, TileSource, VerifyError,
    check_consistency, detect_fork, format_entry_bundle, new_tiles, prove_tree, read_tile_data, stored_hash_index,
    verify_entries, verify_hash_store, verify_tiled_log,
};
use std::collections::HashMap;

const ORIGIN: &str = "custodia.example/audit";

fn entries(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("event {i} principal p{} purpose case-{}", i % 7, i % 13).into_bytes()).collect()
}

fn store_of(es: &[Vec<u8>]) -> MemoryHashStore {
    let mut s = MemoryHashStore::new();
    for e in es {
        s.append(e);
    }
    s
}

/// A tiled log in memory, as an auditor would fetch it.
struct Served {
    tiles: HashMap<Tile, Vec<u8>>,
    bundles: HashMap<EntryTile, Vec<u8>>,
}

impl Served {
    fn new(es: &[Vec<u8>]) -> Served {
        let s = store_of(es);
        let tiles = new_tiles(0, s.tree_size()).into_iter().map(|t| (t, read_tile_data(&t, &s).unwrap())).collect();
        let bundles = EntryTile::all_for(s.tree_size())
            .map(|b| {
                let lo = (b.n * 256) as usize;
                (b, format_entry_bundle(&es[lo..lo + usize::from(b.width)]).unwrap())
            })
            .collect();
        Served { tiles, bundles }
    }
}

impl TileSource for Served {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, ReadError> {
        self.tiles.get(tile).cloned().ok_or(ReadError::Backend(format!("missing {}", tile.path())))
    }
    fn read_entry_bundle(&self, b: &EntryTile) -> Result<Vec<u8>, ReadError> {
        self.bundles.get(b).cloned().ok_or(ReadError::Backend(format!("missing {}", b.path())))
    }
}

impl TileReader for Served {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        tiles.iter().map(|t| self.read_tile(t)).collect()
    }
}

#[test]
fn verify_entries_with_progress() {
    let es = entries(200_000);
    let s = store_of(&es);
    let cp = Checkpoint::new(ORIGIN, s.tree_size(), s.root()).unwrap();
    let mut calls = Vec::new();
    verify_entries(&es, &cp, |d, t| calls.push((d, t))).unwrap();
    assert_eq!(calls.last(), Some(&(200_000, 200_000)));
    assert_eq!(calls.len(), 200_000 / 65_536 + 1);

    let mut bad = es.clone();
    bad[123_456][0] ^= 1;
    assert!(matches!(verify_entries(&bad, &cp, |_, _| {}), Err(VerifyError::RootMismatch { tree_size: 200_000, .. })));
    assert!(matches!(
        verify_entries(&es[1..], &cp, |_, _| {}),
        Err(VerifyError::EntryCount { expected: 200_000, got: 199_999 })
    ));
    let mut more = es.clone();
    more.push(b"extra".to_vec());
    assert!(matches!(verify_entries(&more, &cp, |_, _| {}), Err(VerifyError::EntryCount { .. })));
}

#[test]
fn verify_tiled_log_pinpoints_tampering() {
    let es = entries(70_000);
    let s = store_of(&es);
    let cp = Checkpoint::new(ORIGIN, s.tree_size(), s.root()).unwrap();
    let served = Served::new(&es);
    verify_tiled_log(&cp, &served, |_, _| {}).unwrap();

    // An entry altered in its bundle: named by index at level 0.
    let mut bad = Served::new(&es);
    let mut e = es.clone();
    e[1000][3] ^= 1;
    bad.bundles.insert(EntryTile { n: 3, width: 256 }, format_entry_bundle(&e[768..1024]).unwrap());
    match verify_tiled_log(&cp, &bad, |_, _| {}) {
        Err(VerifyError::TileMismatch { tile, level: 0, n: 1000, stored_index }) => {
            assert_eq!(tile, "tile/0/003");
            assert_eq!(stored_index, stored_hash_index(0, 1000));
        }
        other => panic!("{other:?}"),
    }

    // A level-1 hash altered in a served tile: named by tile, level and index.
    let mut bad = Served::new(&es);
    let t = Tile { level: 1, n: 0, width: 256 };
    bad.tiles.get_mut(&t).unwrap()[32 * 17 + 4] ^= 0x10;
    match verify_tiled_log(&cp, &bad, |_, _| {}) {
        Err(VerifyError::TileMismatch { tile, level: 8, n: 17, .. }) => assert_eq!(tile, "tile/1/000"),
        other => panic!("{other:?}"),
    }

    // A partial tile at the right edge.
    let mut bad = Served::new(&es);
    let edge = Tile { level: 0, n: 273, width: 112 };
    bad.tiles.get_mut(&edge).unwrap()[32 * 111] ^= 1;
    assert!(matches!(
        verify_tiled_log(&cp, &bad, |_, _| {}),
        Err(VerifyError::TileMismatch { level: 0, n: 69_999, .. })
    ));

    // A malformed bundle is reported with its path.
    let mut bad = Served::new(&es);
    bad.bundles.get_mut(&EntryTile { n: 0, width: 256 }).unwrap().pop();
    match verify_tiled_log(&cp, &bad, |_, _| {}) {
        Err(VerifyError::Tile { path, .. }) => assert_eq!(path, "tile/entries/000"),
        other => panic!("{other:?}"),
    }

    // A checkpoint whose root the log does not have.
    let wrong = Checkpoint::new(ORIGIN, 70_000, Hash([1; 32])).unwrap();
    assert!(matches!(verify_tiled_log(&wrong, &served, |_, _| {}), Err(VerifyError::RootMismatch { .. })));
}

#[test]
fn consistency_and_forks() {
    let es = entries(5000);
    let s = store_of(&es);
    let new = Checkpoint::new(ORIGIN, 5000, s.root()).unwrap();
    let old_s = store_of(&es[..3000]);
    let old = Checkpoint::new(ORIGIN, 3000, old_s.root()).unwrap();
    let proof = prove_tree(5000, 3000, &s).unwrap();
    check_consistency(&old, &new, &proof).unwrap();
    check_consistency(&new, &new, &[]).unwrap();
    assert!(matches!(
        check_consistency(&new, &old, &proof),
        Err(VerifyError::Shrunk { old_size: 5000, new_size: 3000 })
    ));

    // A forked history: entry 2000 differs, same size 3000.
    let mut forked = es[..3000].to_vec();
    forked[2000] = b"rewritten".to_vec();
    let fork = Checkpoint::new(ORIGIN, 3000, store_of(&forked).root()).unwrap();
    assert!(matches!(check_consistency(&old, &fork, &[]), Err(VerifyError::Fork { tree_size: 3000, .. })));
    match check_consistency(&fork, &new, &proof) {
        Err(VerifyError::NotPrefix { old_size: 3000, new_size: 5000, prefix_root: None, .. }) => {}
        other => panic!("{other:?}"),
    }

    // With the larger tree's hashes, through authenticated tiles.
    let served = Served::new(&es);
    let reader = TileHashReader::new(5000, s.root(), &served);
    detect_fork(&old, &new, &reader).unwrap();
    detect_fork(&new, &old, &reader).unwrap();
    match detect_fork(&fork, &new, &reader) {
        Err(VerifyError::NotPrefix { old_size: 3000, prefix_root: Some(p), .. }) => assert_eq!(p, old.hash()),
        other => panic!("{other:?}"),
    }
    let other_origin = Checkpoint::new("elsewhere.example/log", 3000, old.hash()).unwrap();
    assert!(matches!(check_consistency(&other_origin, &new, &proof), Err(VerifyError::OriginMismatch { .. })));

    // The empty tree is a prefix of everything, with the RFC 6962 empty root.
    let empty = Checkpoint::new(ORIGIN, 0, custodia_tlog::EMPTY_TREE_HASH).unwrap();
    check_consistency(&empty, &new, &[]).unwrap();
    let bad_empty = Checkpoint::new(ORIGIN, 0, Hash([0; 32])).unwrap();
    assert!(check_consistency(&bad_empty, &new, &[]).is_err());
}

#[test]
fn verify_hash_store_names_the_corrupt_hash() {
    let es = entries(20_000);
    let s = store_of(&es);
    let cp = Checkpoint::new(ORIGIN, s.tree_size(), s.root()).unwrap();
    verify_hash_store(&es, &cp, &s, |_, _| {}).unwrap();
    let mut hashes = s.hashes().to_vec();
    let bad = stored_hash_index(3, 1234);
    hashes[bad as usize].0[0] ^= 1;
    match verify_hash_store(&es, &cp, &hashes, |_, _| {}) {
        Err(VerifyError::StoredHashMismatch { stored_index, level: 3, n: 1234 }) => assert_eq!(stored_index, bad),
        other => panic!("{other:?}"),
    }
    hashes.truncate(1000);
    assert!(matches!(verify_hash_store(&es, &cp, &hashes, |_, _| {}), Err(VerifyError::Proof(_))));
}
