//! Property tests: every codec round-trips, and parsing what we format gives back the value.

use custodia_tlog::{
    EntryTile, Hash, Tile, TilePath, TlogProof, format_entry_bundle, parse_entry_bundle, parse_tile_path,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn tile_paths(level in 0u8..=63, n in any::<u64>(), width in 1u16..=256, entries in any::<bool>()) {
        if entries {
            let t = EntryTile { n, width };
            prop_assert_eq!(parse_tile_path(&t.path()).unwrap(), TilePath::Entries(t));
        } else {
            let t = Tile::new(level, n, width).unwrap();
            prop_assert_eq!(parse_tile_path(&t.path()).unwrap(), TilePath::Hash(t));
        }
    }

    #[test]
    fn entry_bundles(entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70), 1..=256)) {
        let b = format_entry_bundle(&entries).unwrap();
        let back = parse_entry_bundle(&b, entries.len() as u16).unwrap();
        prop_assert_eq!(back, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn tlog_proof_files(extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
                        index in any::<u64>(),
                        proof in proptest::collection::vec(any::<[u8; 32]>(), 0..64),
                        cp in "[a-z]{1,10}\n[0-9]{1,5}\n[A-Za-z0-9+/]{43}=\n\n— [a-z]{1,8} [A-Za-z0-9+/]{8}\n") {
        let p = TlogProof { extra, index, proof: proof.into_iter().map(Hash).collect(), checkpoint: cp };
        let text = p.to_text();
        prop_assert_eq!(TlogProof::parse(text.as_bytes()).unwrap(), p);
    }
}
