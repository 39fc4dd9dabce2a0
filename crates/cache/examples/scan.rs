//! The cost of one semantic search over a full scope: `cargo run --release -p switchyard-cache
//! --example scan -- [ENTRIES...]` (default 1000 10000 35000; 35k is what a 64 MB cache holds
//! in one scope). Random unit vectors of 256 dimensions; prints p50 and p99 of `top_k`.

#![expect(clippy::expect_used, reason = "example")]

use std::time::Instant;

use rand::{Rng, SeedableRng};
use switchyard_cache::index::{normalise, FlatIndex};

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("entry counts"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 35_000]
    } else {
        sizes
    };
    let dim = 256;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut unit = || {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        normalise(&mut v);
        v
    };
    println!("| entries | bytes per row | p50 µs | p99 µs |");
    println!("|---|---|---|---|");
    for n in sizes {
        let mut ix = FlatIndex::new(dim);
        for id in 0..n as u64 {
            ix.push(id, &unit());
        }
        let queries: Vec<Vec<f32>> = (0..300).map(|_| unit()).collect();
        let mut times: Vec<f64> = queries
            .iter()
            .map(|q| {
                let t = Instant::now();
                std::hint::black_box(ix.top_k(q, 4, 0.9));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "| {n} | {} | {:.0} | {:.0} |",
            ix.bytes_per_row(),
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
}
