//! Writes a directory for `tests/go-tlog-verify` (Go's x/mod note and tlog verify it):
//!
//! - `origin`, `log.vkey`, `witness.vkey` (no trailing newline)
//! - `checkpoint`: signed by the log key and cosigned by the witness
//! - `entry`, `entry.tlog-proof`: one entry and its C2SP tlog-proof file
//! - `old-checkpoint`, `consistency`: an older signed checkpoint and the proof to `checkpoint`
//! - `tile/...`: every hash tile and entry bundle for the checkpoint's tree size
//!
//! Usage: `cargo run -p custodia-tlog --example write_go_fixture -- DIR [SIZE] [OLD] [INDEX]`.
//! Keys come from a fixed seed: this is test data, not a deployment.

use custodia_tlog::{
    Checkpoint, CosignatureSigner, EntryTile, MemoryHashStore, NoteSigner, TlogProof, add_signature_lines,
    format_entry_bundle, new_tiles, prove_record, prove_tree, read_tile_data, tree_hash,
};
use rand::SeedableRng;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: write_go_fixture DIR [SIZE] [OLD] [INDEX]");
        std::process::exit(2);
    };
    let arg = |i: usize, d: u64| args.get(i).map_or(d, |s| s.parse().expect("number"));
    let (size, old, index) = (arg(1, 1000), arg(2, 300), arg(3, 617));
    assert!(0 < old && old <= size && index < size, "need 0 < OLD <= SIZE and INDEX < SIZE");
    let dir = Path::new(dir);
    let origin = "custodia.example/audit";
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2019);
    let log = NoteSigner::generate(origin, &mut rng).expect("valid name");
    let witness = CosignatureSigner::generate("witness.example/w1", &mut rng).expect("valid name");

    let entries: Vec<Vec<u8>> = (0..size)
        .map(|i| {
            format!(
                "{{\"event\":\"accessed\",\"seq\":{i},\"principal\":\"officer-{}\",\"case\":\"2026-{}\"}}",
                i % 17,
                i % 101
            )
            .into_bytes()
        })
        .collect();
    let mut store = MemoryHashStore::new();
    for e in &entries {
        store.append(e);
    }

    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    };
    let timestamp = 1_790_000_000; // fixed: the example has no clock either
    let cp = Checkpoint::new(origin, size, store.root()).expect("valid");
    let signed = log.sign(&cp.to_text()).expect("sign");
    let signed = add_signature_lines(&signed, &[witness.signature_line(&cp.to_text(), timestamp).expect("cosign")])
        .expect("append");
    let old_cp = Checkpoint::new(origin, old, tree_hash(old, &store).expect("hash")).expect("valid");

    write("origin", origin.as_bytes());
    write("log.vkey", log.verifier().to_vkey().as_bytes());
    write("witness.vkey", witness.verifier().to_vkey().as_bytes());
    write("checkpoint", signed.as_bytes());
    write("entry", &entries[index as usize]);
    let proof = TlogProof {
        extra: None,
        index,
        proof: prove_record(size, index, &store).expect("prove"),
        checkpoint: signed.clone(),
    };
    write("entry.tlog-proof", proof.to_text().as_bytes());
    write("old-checkpoint", log.sign(&old_cp.to_text()).expect("sign").as_bytes());
    let cons: String = prove_tree(size, old, &store).expect("prove").iter().map(|h| format!("{h}\n")).collect();
    write("consistency", cons.as_bytes());
    for t in new_tiles(0, size) {
        write(&t.path(), &read_tile_data(&t, &store).expect("tile"));
    }
    for b in EntryTile::all_for(size) {
        let lo = (b.n * 256) as usize;
        write(&b.path(), &format_entry_bundle(&entries[lo..lo + usize::from(b.width)]).expect("bundle"));
    }
    println!("wrote {} (size {size}, old {old}, index {index})", dir.display());
}
