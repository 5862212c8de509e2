//! Live progress on stderr, one line per event, so that it reads the same in a
//! terminal and in a CI log.

use std::io::Write;
use std::time::Instant;
use updraft_core::proto::core::{CacheStatus, NodePhase};

pub struct Progress {
    enabled: bool,
    start: Instant,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress { enabled, start: Instant::now() }
    }

    fn line(&self, text: &str) {
        if self.enabled {
            // One write per line (stderr is unbuffered): lines of parallel runs never mix.
            let line = format!("[{:>7.2}s] {text}\n", self.start.elapsed().as_secs_f64());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    pub fn message(&self, text: &str) {
        self.line(text);
    }

    pub fn node(&self, node: &str, phase: NodePhase, seconds: Option<f64>, cache: CacheStatus) {
        let phase = phase_name(phase);
        let cache = match cache {
            CacheStatus::CachePopulated => "  (cached for next time)",
            CacheStatus::CacheOverwritten => "  (cache overwritten)",
            _ => "",
        };
        match seconds {
            Some(s) => self.line(&format!("{node:<24} {phase:<10} {s:>8.2}s{cache}")),
            None => self.line(&format!("{node:<24} {phase}")),
        }
    }

    pub fn items(&self, node: &str, done: usize, total: usize) {
        const WIDTH: usize = 20;
        let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
        let bar: String = "#".repeat(filled) + &".".repeat(WIDTH - filled);
        self.line(&format!("{node:<24} [{bar}] {done}/{total}"));
    }
}

pub fn phase_name(phase: NodePhase) -> &'static str {
    match phase {
        NodePhase::Undefined => "-",
        NodePhase::Queued => "QUEUED",
        NodePhase::Running => "RUNNING",
        NodePhase::Succeeded => "SUCCEEDED",
        NodePhase::Failed => "FAILED",
        NodePhase::Skipped => "SKIPPED",
        NodePhase::Cached => "CACHED",
        NodePhase::Aborted => "ABORTED",
        NodePhase::TimedOut => "TIMED_OUT",
    }
}
