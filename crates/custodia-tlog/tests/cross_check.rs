//! Outside truth for the tree math: a second Rust implementation (ct-merkle) over random
//! sizes, and reference values computed by Go's golang.org/x/mod/sumdb/tlog.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use custodia_tlog::{
    Hash, MemoryHashStore, ProofError, check_record, check_tree, leaf_hash, prove_record, prove_tree,
    stored_hash_count, stored_hashes_for_record, tree_hash,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

fn hashes_from_bytes(b: &[u8]) -> Vec<Hash> {
    b.chunks_exact(32).map(|c| Hash(c.try_into().unwrap())).collect()
}

fn flat(p: &[Hash]) -> Vec<u8> {
    p.iter().flat_map(|h| h.0).collect()
}

#[test]
fn roots_and_proofs_match_ct_merkle() {
    let mut rng = ChaCha20Rng::seed_from_u64(6962);
    let mut ours = MemoryHashStore::new();
    let mut theirs: MemoryBackedTree<Sha256, Vec<u8>> = MemoryBackedTree::new();
    let mut roots = vec![Hash::default()];
    // Every size up to 300, then random sizes up to ~5000.
    let mut checkpoints: Vec<u64> = (1..=300).collect();
    let mut s = 300u64;
    while s < 5000 {
        s += rng.gen_range(1..400);
        checkpoints.push(s);
    }
    for &size in &checkpoints {
        while ours.tree_size() < size {
            let mut e = vec![0u8; rng.gen_range(0..300)];
            rng.fill(&mut e[..]);
            ours.append(&e);
            theirs.push(e);
            roots.push(ours.root());
        }
        let their_root = theirs.root();
        assert_eq!(&ours.root().0[..], &their_root.as_bytes()[..], "root of size {size}");
        assert_eq!(tree_hash(size, &ours).unwrap(), ours.root());
        assert_eq!(ours.hashes().len() as u64, stored_hash_count(size));

        for _ in 0..8 {
            let n = rng.gen_range(0..size);
            let p = prove_record(size, n, &ours).unwrap();
            let tp = theirs.prove_inclusion(n as usize);
            assert_eq!(flat(&p), tp.as_bytes(), "inclusion proof size {size} index {n}");
            let entry = theirs.get(n as usize).unwrap();
            check_record(&p, size, ours.root(), n, leaf_hash(entry)).unwrap();
            // ct-merkle accepts our proof too.
            let their_p = ct_merkle::InclusionProof::<Sha256>::from_bytes(flat(&p));
            their_root.verify_inclusion(entry, n, &their_p).unwrap();

            let m = rng.gen_range(1..=size);
            let c = prove_tree(size, m, &ours).unwrap();
            if m < size {
                let tc = theirs.prove_consistency((size - m) as usize);
                assert_eq!(flat(&c), tc.as_bytes(), "consistency proof {m} -> {size}");
                let old = ct_merkle::RootHash::<Sha256>::new(roots[m as usize].0.into(), m);
                let their_c = ct_merkle::ConsistencyProof::<Sha256>::try_from_bytes(flat(&c)).unwrap();
                their_root.verify_consistency(&old, &their_c).unwrap();
            } else {
                assert!(c.is_empty());
            }
            check_tree(&c, size, ours.root(), m, roots[m as usize]).unwrap();
        }
    }
}

#[test]
fn proofs_fail_when_anything_changes() {
    let mut store = MemoryHashStore::new();
    for i in 0..777u32 {
        store.append(&i.to_be_bytes());
    }
    let t = store.tree_size();
    let root = store.root();
    let n = 300;
    let p = prove_record(t, n, &store).unwrap();
    let h = leaf_hash(&300u32.to_be_bytes());
    check_record(&p, t, root, n, h).unwrap();
    assert!(matches!(
        check_record(&p, t, root, n + 1, h),
        Err(ProofError::InclusionMismatch { .. } | ProofError::WrongLength { .. })
    ));
    assert!(check_record(&p, t, root, n, leaf_hash(b"x")).is_err());
    assert!(check_record(&p[1..], t, root, n, h).is_err());
    for i in 0..p.len() {
        let mut q = p.clone();
        q[i].0[7] ^= 1;
        assert!(check_record(&q, t, root, n, h).is_err(), "flipped hash {i}");
    }
    assert!(check_record(&p, t, root, t, h).is_err());

    let m = 500;
    let old = tree_hash(m, &store).unwrap();
    let c = prove_tree(t, m, &store).unwrap();
    check_tree(&c, t, root, m, old).unwrap();
    assert!(check_tree(&c, t, root, m, root).is_err());
    assert!(check_tree(&c, t, old, m, old).is_err());
    for i in 0..c.len() {
        let mut q = c.clone();
        q[i].0[0] ^= 0x80;
        assert!(check_tree(&q, t, root, m, old).is_err(), "flipped hash {i}");
    }
    let mut longer = c.clone();
    longer.push(root);
    assert!(check_tree(&longer, t, root, m, old).is_err());
}

#[test]
fn stored_hashes_for_record_matches_appender() {
    let mut store = MemoryHashStore::new();
    let mut by_reader: Vec<Hash> = Vec::new();
    for i in 0..1100u64 {
        let data = format!("record {i}");
        let new = stored_hashes_for_record(i, data.as_bytes(), &by_reader).unwrap();
        by_reader.extend(new);
        store.append(data.as_bytes());
        assert_eq!(store.hashes(), &by_reader[..]);
    }
}

/// Reference values from Go's tlog (testdata/go-tlog-reference.txt, see testdata/README.md).
#[test]
fn matches_go_tlog_reference_output() {
    let text = include_str!("../testdata/go-tlog-reference.txt");
    let mut store = MemoryHashStore::new();
    let mut roots = vec![Hash::default()];
    let mut checked = 0;
    let parse_list = |s: &str| -> Vec<Hash> {
        if s == "-" { Vec::new() } else { s.split(',').map(|h| Hash::from_base64(h).unwrap()).collect() }
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        let n: u64 = f[1].parse().unwrap();
        while store.tree_size() < n {
            store.append(format!("leaf {}", store.tree_size()).as_bytes());
            roots.push(store.root());
        }
        match f[0] {
            "root" => assert_eq!(store.root(), Hash::from_base64(f[2]).unwrap(), "root {n}"),
            "incl" => {
                let j: u64 = f[2].parse().unwrap();
                assert_eq!(prove_record(n, j, &store).unwrap(), parse_list(f[3]), "incl {n} {j}");
                check_record(&parse_list(f[3]), n, roots[n as usize], j, leaf_hash(format!("leaf {j}").as_bytes()))
                    .unwrap();
            }
            "cons" => {
                let m: u64 = f[2].parse().unwrap();
                assert_eq!(prove_tree(n, m, &store).unwrap(), parse_list(f[3]), "cons {n} {m}");
                check_tree(&parse_list(f[3]), n, roots[n as usize], m, roots[m as usize]).unwrap();
            }
            other => panic!("unknown line kind {other}"),
        }
        checked += 1;
    }
    assert!(checked > 300, "reference file too short: {checked}");
    let _ = hashes_from_bytes(&[]);
}
