//! Phase timings, logged at `info` (`ao-host -v`) as `phase=<name> ms=<elapsed>`, so that where
//! a command spends its time can be read off any run; the benchmarks parse these lines.

use std::time::Instant;

/// Measures consecutive phases of one operation.
pub struct PhaseClock {
    last: Instant,
}

impl PhaseClock {
    pub fn start() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    /// Logs the time since the previous lap (or the start) under `phase`.
    pub fn lap(&mut self, phase: &'static str) {
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1000.0;
        tracing::info!(phase, ms = format_args!("{ms:.2}"), "timing");
        self.last = now;
    }
}

impl Default for PhaseClock {
    fn default() -> Self {
        Self::start()
    }
}
