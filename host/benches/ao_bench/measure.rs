//! Medians and units: every section reports medians over repeated runs.

use std::time::{Duration, Instant};

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nanoseconds per call of `call`, the median of 7 samples of `iterations` calls after a tenth
/// as many to warm up.
pub(crate) fn per_call_ns(iterations: u32, mut call: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        call();
    }
    let samples: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                call();
            }
            started.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    median(samples)
}
