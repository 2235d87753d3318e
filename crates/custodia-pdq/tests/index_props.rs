//! MultiIndex must return exactly what the brute-force scan returns: same ids, same
//! distances, same order, for planted neighbours at every distance 0..=32 and beyond, for
//! single queries and batch joins, with and without an unbuilt tail.

use custodia_pdq::PdqHash;
use custodia_pdq::index::{BruteForce, MultiIndex};
use proptest::prelude::*;

fn hash_strategy() -> impl Strategy<Value = PdqHash> {
    prop::array::uniform32(any::<u8>()).prop_map(PdqHash)
}

/// `base` with exactly `d` distinct bits flipped, chosen by `seed`.
fn at_distance(base: &PdqHash, d: usize, seed: u64) -> PdqHash {
    let mut bits: Vec<usize> = (0..256).collect();
    let mut s = seed | 1;
    for i in (1..256).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        bits.swap(i, (s % (i as u64 + 1)) as usize);
    }
    bits[..d].iter().fold(*base, |h, &k| h.flip_bit(k))
}

/// Flip `d` bits all inside as few 16-bit slots as possible, the hard case for MIH: with
/// d = 31 spread as 15 slots × 2 bits + 1 slot × 1 bit, only one slot is within one bit.
fn adversarial(base: &PdqHash, d: usize, first_slot: usize) -> PdqHash {
    let mut h = *base;
    let mut left = d;
    for i in 0..16 {
        if left == 0 {
            break;
        }
        let slot = (first_slot + i) % 16;
        let take = left.min(2);
        for b in 0..take {
            // Slot s covers bits (15 - s) * 16 .. +16 in the reference numbering.
            h = h.flip_bit((15 - slot) * 16 + b * 5);
        }
        left -= take;
    }
    h
}

fn build(stored: &[(u64, PdqHash)], built: bool) -> (BruteForce, MultiIndex) {
    let mut bf = BruteForce::new();
    for (id, h) in stored {
        bf.insert(*id, h);
    }
    let mi = if built {
        MultiIndex::from_entries(stored.iter().copied())
    } else {
        // Half built, half in the tail.
        let mut mi = MultiIndex::from_entries(stored[..stored.len() / 2].iter().copied());
        for (id, h) in &stored[stored.len() / 2..] {
            mi.insert(*id, h);
        }
        mi
    };
    (bf, mi)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn multi_index_equals_brute_force(
        base in hash_strategy(),
        noise in prop::collection::vec(hash_strategy(), 0..200),
        seed in any::<u64>(),
        first_slot in 0usize..16,
        radius in prop::sample::select(vec![0u32, 1, 2, 8, 15, 16, 24, 30, 31, 32, 40]),
        built in any::<bool>(),
    ) {
        // Planted neighbours at every distance 0..=33, random and adversarially packed.
        let mut stored: Vec<(u64, PdqHash)> = Vec::new();
        for d in 0..=33usize {
            stored.push((1000 + d as u64, at_distance(&base, d, seed.wrapping_add(d as u64))));
            if d <= 32 {
                // 16 slots × 2 bits: 32 is the most the packed pattern can hold.
                stored.push((2000 + d as u64, adversarial(&base, d, first_slot)));
            }
        }
        stored.push((3000, base)); // a duplicate hash under another id
        stored.extend(noise.iter().enumerate().map(|(i, h)| (i as u64, *h)));
        let (bf, mi) = build(&stored, built);
        let want = bf.query(&base, radius);
        prop_assert_eq!(mi.query(&base, radius), want.clone());
        // Every planted neighbour within the radius is found (guards the oracle too).
        for d in 0..=(radius.min(33) as u64) {
            prop_assert!(want.iter().any(|&(id, dist)| id == 1000 + d && dist == d as u32));
            if d <= 32 {
                prop_assert!(want.iter().any(|&(id, dist)| id == 2000 + d && dist == d as u32));
            }
        }
        prop_assert_eq!(bf.query_portable(&base, radius), want);
    }

    #[test]
    fn batch_join_equals_per_query(
        stored in prop::collection::vec(hash_strategy(), 1..150),
        picks in prop::collection::vec((any::<prop::sample::Index>(), 0usize..34, any::<u64>()), 1..40),
        radius in prop::sample::select(vec![0u32, 5, 16, 31, 32]),
        built in any::<bool>(),
        threads in 0usize..20,
    ) {
        let stored: Vec<(u64, PdqHash)> = stored.into_iter().enumerate().map(|(i, h)| (i as u64 * 7, h)).collect();
        let (bf, mi) = build(&stored, built);
        let queries: Vec<PdqHash> = picks.iter().map(|(ix, d, s)| at_distance(&stored[ix.index(stored.len())].1, *d, *s)).collect();
        let mut want = Vec::new();
        for (qi, q) in queries.iter().enumerate() {
            want.extend(bf.query(q, radius).into_iter().map(|(id, d)| (qi, id, d)));
        }
        prop_assert_eq!(&mi.batch_join(&queries, radius), &want);
        // Any thread count (more than the 16 slots, or 0) gives the same set.
        prop_assert_eq!(mi.batch_join_threads(&queries, radius, threads), want);
    }
}

#[test]
fn hamming_and_text_round_trip() {
    let a: PdqHash = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22".parse().unwrap();
    let b: PdqHash = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22".parse().unwrap();
    // Two published bridge hashes: 0x22 vs 0x2a and 0x2e vs 0x26, one bit each.
    assert_eq!(a.hamming(&b), 2);
    assert_eq!(a.to_string().parse::<PdqHash>().unwrap(), a);
    assert!("f8f8".parse::<PdqHash>().is_err());
    assert!("g8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22".parse::<PdqHash>().is_err());
    // Bit 0 (DCT coefficient (0,0)) is the last hex digit's low bit, as in Hash256::format.
    assert_eq!(PdqHash::ZERO.flip_bit(0).to_string(), format!("{}1", "0".repeat(63)));
    assert_eq!(PdqHash::ZERO.flip_bit(255).to_string(), format!("8{}", "0".repeat(63)));
}
