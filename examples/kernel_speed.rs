//! Single-thread, in-cache throughput of each inner loop at every SIMD level, in
//! elements per nanosecond (thread CPU time, best of several runs). A development
//! tool for the kernels; the product benchmarks are in benchmarks/.
//!
//!     cargo run --release --no-default-features --example kernel_speed

use std::time::Instant;

use acbmse_rs::kernels::{count_zero_chunk, fold_chunk, scaled_diff_chunk, CHUNK};

fn best_of<F: FnMut()>(mut f: F) -> f64 {
    let reps = 2000;
    (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            start.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let n = CHUNK;
    let target: Vec<f32> = (0..n)
        .map(|i| if i % 50 == 0 { 1.5 } else { 0.0 })
        .collect();
    let pred: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut out = vec![0.0f32; n];
    let per_ns = |secs: f64| n as f64 / (secs * 1e9);
    let fold = best_of(|| {
        std::hint::black_box(fold_chunk(std::hint::black_box(&pred), &target));
    });
    let count = best_of(|| {
        std::hint::black_box(count_zero_chunk(std::hint::black_box(&target)));
    });
    let scaled = best_of(|| {
        std::hint::black_box(scaled_diff_chunk(
            std::hint::black_box(&pred),
            &target,
            0.5,
            2.0,
            &mut out,
        ));
    });
    let dot = best_of(|| {
        let s: f32 = std::hint::black_box(&pred)
            .iter()
            .zip(&target)
            .map(|(a, b)| a * b)
            .sum();
        std::hint::black_box(s);
    });
    println!(
        "simd={:?} f32 elements/ns: fold {:.2}  count_zero {:.2}  scaled_diff {:.2}  (serial f32 dot {:.2})",
        acbmse_rs::kernels::Simd::active(),
        per_ns(fold),
        per_ns(count),
        per_ns(scaled),
        per_ns(dot)
    );
}
