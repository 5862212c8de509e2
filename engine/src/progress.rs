//! Live progress on stderr, one line per event, so that it reads the same in a
//! terminal and in a CI log. In a terminal, a status line under the events also
//! names each running node with its elapsed time, rewritten in place every
//! [`STATUS_EVERY`] (a log gets no such line: it would repeat forever).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use updraft_core::proto::core::{CacheStatus, NodePhase};

/// How often the status line's elapsed times move.
pub const STATUS_EVERY: Duration = Duration::from_millis(500);

pub struct Progress {
    enabled: bool,
    start: Instant,
    /// In a terminal: the running nodes, and whether their line is on screen.
    status: Option<Arc<Mutex<Status>>>,
}

#[derive(Default)]
struct Status {
    running: BTreeMap<String, Instant>,
    shown: bool,
}

/// Clears the line the cursor is on (the status line), from its start.
const CLEAR_LINE: &str = "\r\x1b[2K";

impl Status {
    /// The status line: each running node and how long it has run, within `width`.
    fn text(&self, width: usize) -> String {
        let mut text = String::from("running:");
        for (i, (node, since)) in self.running.iter().enumerate() {
            let item = format!(" {node} {}", elapsed(since.elapsed()));
            if text.chars().count() + item.chars().count() + 12 > width {
                text.push_str(&format!(" (+{} more)", self.running.len() - i));
                break;
            }
            text.push_str(&item);
            if i + 1 < self.running.len() {
                text.push(',');
            }
        }
        text
    }

    fn draw(&mut self, out: &mut impl Write) {
        let line = if self.running.is_empty() { String::new() } else { self.text(terminal_width()) };
        let _ = write!(out, "{CLEAR_LINE}{line}");
        self.shown = !line.is_empty();
    }
}

impl Progress {
    /// `enabled`: print at all; the status line also needs stderr to be a terminal.
    pub fn new(enabled: bool) -> Progress {
        let terminal = enabled && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let status = terminal.then(|| Arc::new(Mutex::new(Status::default())));
        if let Some(status) = &status {
            let status = Arc::downgrade(status);
            std::thread::spawn(move || redraw_until_dropped(status));
        }
        Progress { enabled, start: Instant::now(), status }
    }

    fn line(&self, text: &str) {
        if !self.enabled {
            return;
        }
        let line = format!("[{:>7.2}s] {text}\n", self.start.elapsed().as_secs_f64());
        // One write per line (stderr is unbuffered): lines of parallel runs never mix.
        let mut err = std::io::stderr().lock();
        match &self.status {
            Some(status) => {
                let mut status = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let clear = if status.shown { CLEAR_LINE } else { "" };
                let _ = write!(err, "{clear}{line}");
                status.draw(&mut err);
            }
            None => {
                let _ = err.write_all(line.as_bytes());
            }
        }
    }

    pub fn message(&self, text: &str) {
        self.line(text);
    }

    pub fn node(&self, node: &str, phase: NodePhase, seconds: Option<f64>, cache: CacheStatus) {
        if let Some(status) = &self.status {
            let mut status = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if phase == NodePhase::Running {
                status.running.entry(node.to_string()).or_insert_with(Instant::now);
            } else {
                status.running.remove(node);
            }
        }
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

impl Drop for Progress {
    /// The status line goes with the run: what follows starts on a clean line.
    fn drop(&mut self) {
        if let Some(status) = &self.status {
            let mut status = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if status.shown {
                let _ = write!(std::io::stderr().lock(), "{CLEAR_LINE}");
                status.shown = false;
            }
            status.running.clear();
        }
    }
}

/// Rewrites the status line every [`STATUS_EVERY`] while nodes run, until the
/// progress it belongs to is gone.
fn redraw_until_dropped(status: Weak<Mutex<Status>>) {
    loop {
        std::thread::sleep(STATUS_EVERY);
        let Some(status) = status.upgrade() else { return };
        let mut status = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !status.running.is_empty() {
            status.draw(&mut std::io::stderr().lock());
        }
    }
}

/// `4.5s` under a minute, `2m05s` after.
fn elapsed(d: Duration) -> String {
    match d.as_secs() {
        s if s < 60 => format!("{:.1}s", d.as_secs_f64()),
        s => format!("{}m{:02}s", s / 60, s % 60),
    }
}

/// The terminal's width in columns (stderr's), or 100 when it cannot be told.
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct for a terminal fd and fails otherwise.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 { size.ws_col as usize } else { 100 }
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
        NodePhase::Recovered => "RECOVERED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_running_nodes_within_the_width() {
        let mut status = Status::default();
        status.running.insert("fit".into(), Instant::now() - Duration::from_secs(125));
        status.running.insert("predict".into(), Instant::now());
        assert_eq!(status.text(100), "running: fit 2m05s, predict 0.0s");
        for i in 0..40 {
            status.running.insert(format!("node{i:02}"), Instant::now());
        }
        let text = status.text(60);
        assert!(text.chars().count() <= 60 && text.ends_with("more)"), "{text}");
    }
}
