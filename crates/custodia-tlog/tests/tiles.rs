//! Tiles: coordinates, round trips through stored hashes, and authentication of untrusted
//! tiles against a trusted root.

use custodia_tlog::{
    EntryTile, Hash, HashReader, MemoryHashStore, ReadError, Tile, TileError, TileHashReader, TilePath, TileReader,
    format_entry_bundle, hash_from_tile, new_tiles, parse_entry_bundle, parse_tile_path, prove_record, read_tile_data,
    split_stored_hash_index, stored_hash_count, stored_hash_index, stored_hashes_from_tile, tile_for_index, tree_hash,
};
use std::cell::RefCell;
use std::collections::HashMap;

fn store(n: u64) -> MemoryHashStore {
    let mut s = MemoryHashStore::new();
    for i in 0..n {
        s.append(format!("entry {i}").as_bytes());
    }
    s
}

/// Tiles as a log would serve them for a tree size, with optional tampering.
struct MapTiles {
    tiles: HashMap<Tile, Vec<u8>>,
    reads: RefCell<Vec<Tile>>,
}

impl MapTiles {
    fn for_tree(s: &MemoryHashStore) -> MapTiles {
        let tiles = new_tiles(0, s.tree_size()).into_iter().map(|t| (t, read_tile_data(&t, s).unwrap())).collect();
        MapTiles { tiles, reads: RefCell::new(Vec::new()) }
    }
}

impl TileReader for MapTiles {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        self.reads.borrow_mut().extend_from_slice(tiles);
        tiles
            .iter()
            .map(|t| self.tiles.get(t).cloned().ok_or(ReadError::Backend(format!("no tile {}", t.path()))))
            .collect()
    }
}

#[test]
fn paths_round_trip_and_are_strict() {
    let cases = [
        ("tile/0/000", TilePath::Hash(Tile { level: 0, n: 0, width: 256 })),
        ("tile/0/001.p/5", TilePath::Hash(Tile { level: 0, n: 1, width: 5 })),
        ("tile/63/x001/x234/067", TilePath::Hash(Tile { level: 63, n: 1_234_067, width: 256 })),
        ("tile/entries/x001/x234/067.p/255", TilePath::Entries(EntryTile { n: 1_234_067, width: 255 })),
        ("tile/entries/000", TilePath::Entries(EntryTile { n: 0, width: 256 })),
    ];
    for (p, want) in cases {
        assert_eq!(parse_tile_path(p).unwrap(), want, "{p}");
        let back = match want {
            TilePath::Hash(t) => t.path(),
            TilePath::Entries(t) => t.path(),
        };
        assert_eq!(back, p);
    }
    let max = Tile { level: 0, n: u64::MAX, width: 256 }.path();
    assert_eq!(parse_tile_path(&max).unwrap(), TilePath::Hash(Tile { level: 0, n: u64::MAX, width: 256 }));
    for bad in [
        "tile/0/1",
        "tile/00/000",
        "tile/64/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/05",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/0/x1/002",
        "tile/0/000/",
        "tile/data/000",
        "tiles/0/000",
        "tile/0/000.p/",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
        "tile//000",
        "tile/0/00a",
        "tile/entries/000.p/256",
    ] {
        assert!(parse_tile_path(bad).is_err(), "{bad}");
    }
    assert!(parse_tile_path(&format!("tile/0/{}", "x001/".repeat(40) + "000")).is_err());
}

#[test]
fn tile_data_round_trips_through_stored_hashes() {
    let s = store(70_000);
    let mut rebuilt: Vec<Option<Hash>> = vec![None; s.hashes().len()];
    for t in new_tiles(0, s.tree_size()) {
        let data = read_tile_data(&t, &s).unwrap();
        assert_eq!(data.len(), usize::from(t.width) * 32);
        for (i, h) in stored_hashes_from_tile(&t, &data).unwrap() {
            assert_eq!(s.hashes()[i as usize], h, "index {i} from {}", t.path());
            rebuilt[i as usize] = Some(h);
        }
    }
    // Every stored hash is determined by the tiles.
    assert!(rebuilt.iter().all(Option::is_some));
    // hash_from_tile agrees for a sample of indexes.
    for index in (0..stored_hash_count(s.tree_size())).step_by(97) {
        let (t, _, _) = tile_for_index(index);
        let full = t.parent(0, s.tree_size()).unwrap();
        let data = read_tile_data(&full, &s).unwrap();
        assert_eq!(hash_from_tile(&full, &data, index).unwrap(), s.hashes()[index as usize]);
        let (l, n) = split_stored_hash_index(index);
        assert_eq!(stored_hash_index(l, n), index);
    }
}

#[test]
fn new_tiles_cover_growth() {
    assert_eq!(new_tiles(0, 1), vec![Tile { level: 0, n: 0, width: 1 }]);
    assert_eq!(new_tiles(255, 256), vec![Tile { level: 0, n: 0, width: 256 }, Tile { level: 1, n: 0, width: 1 }]);
    assert_eq!(new_tiles(256, 257), vec![Tile { level: 0, n: 1, width: 1 }]);
    assert_eq!(new_tiles(100, 100), vec![]);
    let t = new_tiles(1000, 70_000);
    assert!(t.contains(&Tile { level: 0, n: 3, width: 256 }));
    assert!(t.contains(&Tile { level: 2, n: 0, width: 1 }));
}

#[test]
fn tile_hash_reader_returns_authentic_hashes() {
    for size in [1u64, 2, 255, 256, 257, 1000, 65_536, 65_537, 70_000] {
        let s = store(size);
        let tiles = MapTiles::for_tree(&s);
        let r = TileHashReader::new(size, s.root(), &tiles);
        assert_eq!(tree_hash(size, &r).unwrap(), s.root(), "size {size}");
        for n in [0, size / 3, size / 2, size - 1] {
            assert_eq!(prove_record(size, n, &r).unwrap(), prove_record(size, n, &s).unwrap());
        }
        let idx: Vec<u64> = (0..stored_hash_count(size)).step_by(13).collect();
        assert_eq!(r.read_hashes(&idx).unwrap(), s.read_hashes(&idx).unwrap());
        assert!(matches!(r.read_hashes(&[stored_hash_count(size)]), Err(ReadError::OutsideTree { .. })));
    }
}

#[test]
fn tampered_tiles_are_rejected() {
    let size = 1000;
    let s = store(size);
    for t in new_tiles(0, size) {
        for byte in [0usize, 31, usize::from(t.width) * 32 - 1] {
            let mut tiles = MapTiles::for_tree(&s);
            tiles.tiles.get_mut(&t).unwrap()[byte] ^= 1;
            let r = TileHashReader::new(size, s.root(), &tiles);
            // Ask for every stored hash: some of them come from the tampered tile.
            let all: Vec<u64> = (0..stored_hash_count(size)).collect();
            let err = r.read_hashes(&all).unwrap_err();
            assert!(
                matches!(err, ReadError::Tile(TileError::RootMismatch { .. } | TileError::ParentMismatch { .. })),
                "{} byte {byte}: {err}",
                t.path()
            );
        }
    }
    // A wrong root rejects even intact tiles.
    let tiles = MapTiles::for_tree(&s);
    let r = TileHashReader::new(size, Hash([9; 32]), &tiles);
    assert!(r.read_hashes(&[0]).is_err());
}

/// For size 1000 the right-edge hashes share tiles (levels 9 and 8 both sit in tile/1/000.p/3,
/// levels 7..3 in tile/0/003.p/232). Go's TileHashReader (x/mod v0.7.0) then starts checking
/// child tiles at position len(stx) = 6 and never checks tile/0/000; ours must.
#[test]
fn child_tile_is_checked_when_right_edge_tiles_are_shared() {
    let size = 1000;
    let s = store(size);
    let mut tiles = MapTiles::for_tree(&s);
    let victim = Tile { level: 0, n: 0, width: 256 };
    tiles.tiles.get_mut(&victim).unwrap()[5] ^= 0x40;
    let r = TileHashReader::new(size, s.root(), &tiles);
    let err = r.read_hashes(&[stored_hash_index(0, 3)]).unwrap_err();
    assert!(matches!(err, ReadError::Tile(TileError::ParentMismatch { .. })), "{err}");
    assert!(tiles.reads.borrow().contains(&victim));
}

#[test]
fn wrong_sized_tiles_are_rejected() {
    let s = store(300);
    let mut tiles = MapTiles::for_tree(&s);
    tiles.tiles.get_mut(&Tile { level: 0, n: 1, width: 44 }).unwrap().pop();
    let r = TileHashReader::new(300, s.root(), &tiles);
    assert!(matches!(r.read_hashes(&[0]), Err(ReadError::Tile(TileError::WrongSize { .. }))));
}

#[test]
fn entry_bundles() {
    let entries: Vec<Vec<u8>> = (0..256u32).map(|i| vec![i as u8; (i * 7 % 300) as usize]).collect();
    let b = format_entry_bundle(&entries).unwrap();
    let back = parse_entry_bundle(&b, 256).unwrap();
    assert_eq!(back, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert!(matches!(parse_entry_bundle(&b, 255), Err(TileError::MalformedBundle { .. })));
    assert!(matches!(parse_entry_bundle(&b[..b.len() - 1], 256), Err(TileError::MalformedBundle { .. })));
    assert!(matches!(
        parse_entry_bundle(&b[..b.len() - 3], 256),
        Err(TileError::BundleCount { .. } | TileError::MalformedBundle { .. })
    ));
    assert!(parse_entry_bundle(&[], 1).is_err());
    assert_eq!(parse_entry_bundle(&[0, 0], 1).unwrap(), vec![&[][..]]);
    assert!(format_entry_bundle(&[vec![0u8; 65_536]]).is_err());
    assert!(format_entry_bundle(&vec![vec![1u8]; 257]).is_err());
    let all: Vec<EntryTile> = EntryTile::all_for(513).collect();
    assert_eq!(all, vec![EntryTile { n: 0, width: 256 }, EntryTile { n: 1, width: 256 }, EntryTile { n: 2, width: 1 }]);
    assert_eq!(all[2].path(), "tile/entries/002.p/1");
}
