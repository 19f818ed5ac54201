//! Property tests of every search space: sampling, mutation and neighbours stay inside the
//! space; formats and encodings round-trip; canonical hashes agree with canonical forms.

use hwnas_core::space::{DartsSpace, Nb201Space, OfaSpace, SearchSpace};
use proptest::prelude::*;
use rand::SeedableRng;

fn spaces() -> Vec<Box<dyn SearchSpace>> {
    vec![
        Box::new(Nb201Space::new()),
        Box::new(DartsSpace::new()),
        Box::new(OfaSpace::default()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutation_and_neighbours_stay_inside(seed in any::<u64>()) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for space in spaces() {
            let arch = space.sample(&mut rng);
            space.validate(&arch).unwrap();
            let child = space.mutate(&arch, &mut rng);
            space.validate(&child).unwrap();
            let differing: Vec<usize> = (0..arch.0.len()).filter(|&i| arch.0[i] != child.0[i]).collect();
            prop_assert_eq!(differing.len(), 1, "{}", space.name());
            prop_assert!(space.active(&arch)[differing[0]], "{}: only active decisions mutate", space.name());
            for neighbour in space.neighbours(&arch).iter().take(50) {
                space.validate(neighbour).unwrap();
            }
        }
    }

    #[test]
    fn text_and_encodings_round_trip(seed in any::<u64>()) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for space in spaces() {
            let arch = space.sample(&mut rng);
            prop_assert_eq!(space.parse(&space.format(&arch)).unwrap(), arch.clone());
            let encoded = space.one_hot(&arch);
            prop_assert_eq!(encoded.len(), space.encoding_len());
            let decoded = space.decode(&encoded).unwrap();
            prop_assert_eq!(space.canonical(&decoded), space.canonical(&arch));
            prop_assert_eq!(space.canonical_hash(&arch), space.canonical_hash(&space.canonical(&arch)));
        }
    }
}

#[test]
fn space_sizes_are_the_published_ones() {
    assert!((Nb201Space::new().log10_size() - 15_625f64.log10()).abs() < 1e-9);
    assert_eq!(
        Nb201Space::new()
            .neighbours(&hwnas_core::Arch(vec![0; 6]))
            .len(),
        24
    );
    assert_eq!(DartsSpace::new().decisions().len(), 24);
    assert_eq!(OfaSpace::default().decisions().len(), 46);
}
