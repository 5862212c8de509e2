//! No input panics the compiler. Every spec of `examples/` and `tests/data/` is
//! mutated many times over by a seeded generator — spans deleted, lines repeated
//! and swapped, characters replaced, spec tokens and hostile values inserted —
//! and each mutant goes through `compile_text` as YAML and as JSON: it compiles or
//! is refused with a message, never a panic. A panic names the file, the mutant's
//! number and its text, so it can be replayed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use updraft_core::compile::{Options, compile_text};
use updraft_core::spec::Format;

/// Mutants per spec file (two formats each).
const MUTANTS: usize = 300;

/// xorshift64*: reproducible without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What a mistyped or hostile spec holds: structure, references, values at and past the limits.
const TOKENS: &[&str] = &[
    "$",
    "$$",
    "$inputs.",
    "$inputs.x",
    "$a.y",
    "$a.",
    "{{inputs.x}}",
    "{{outputs.",
    "{{code_dir}}",
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "    ",
    "null",
    "~",
    "-1",
    "0",
    "1e308",
    "-1e308",
    ".nan",
    ".inf",
    "99999999999999999999",
    "\"",
    "'",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!tag ",
    "task: ",
    "workflow: ",
    "map: ",
    "branch: ",
    "after: [",
    "inputs: ",
    "outputs: ",
    "nodes: ",
    "tasks: ",
    "workflows: ",
    "launch_plans: ",
    "timeout: 9999999d",
    "timeout: 0s",
    "retries: -3",
    "retries: 999999",
    "cpu: 0",
    "cpu: .nan",
    "memory: 1Ei",
    "gpu: 99",
    "cache: {version: ''}",
    "cron: '* * *'",
    "cron: '0 3 * * *'",
    "timezone: Mars/Base",
    "rate: 1s",
    "min_success_ratio: 2",
    "concurrency: 0",
    "on_failure: sometimes",
    "int",
    "float",
    "list<",
    "list<int>",
    "map<string,",
    "dataframe",
    "file",
    "dir",
    "secrets: [{name: AWS_X, ref: x}]",
    "image: ''",
    "command: []",
    "when: $inputs.x >",
    "else: ",
    "over: [x]",
    "🙂",
    "\u{0}",
    "\t",
    "\r",
    "\u{202e}",
    "ā",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let at = rng.below(lines.len());
        match rng.below(6) {
            0 => {
                let _ = lines.remove(at);
            }
            1 => {
                let copy = lines[at].clone();
                lines.insert(rng.below(lines.len() + 1), copy);
            }
            2 => {
                let other = rng.below(lines.len());
                lines.swap(at, other);
            }
            3 => {
                let line: Vec<char> = lines[at].chars().collect();
                let start = rng.below(line.len() + 1);
                let end = (start + 1 + rng.below(12)).min(line.len());
                lines[at] = line[..start].iter().chain(line[end.max(start)..].iter()).collect();
            }
            4 => {
                let line: Vec<char> = lines[at].chars().collect();
                let cut = rng.below(line.len() + 1);
                let token = TOKENS[rng.below(TOKENS.len())];
                lines[at] = line[..cut].iter().collect::<String>() + token + &line[cut..].iter().collect::<String>();
            }
            _ => {
                let mut line: Vec<char> = lines[at].chars().collect();
                if !line.is_empty() {
                    let i = rng.below(line.len());
                    line[i] = char::from(b' ' + (rng.below(95) as u8));
                }
                lines[at] = line.into_iter().collect();
            }
        }
    }
    lines.join("\n") + "\n"
}

fn spec_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            spec_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
}

#[test]
fn no_mutant_of_a_real_spec_panics_the_compiler() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    spec_files(&root.join("examples"), &mut files);
    spec_files(&root.join("tests/data"), &mut files);
    files.sort();
    assert!(files.len() >= 40, "the seeds are the examples and the test specs: {files:?}");
    let options = Options { version: "v1".into(), ..Default::default() };
    // The compiler's own panics would print for each caught one; the report below says it once.
    std::panic::set_hook(Box::new(|_| {}));
    let mut compiled = 0;
    for (index, file) in files.iter().enumerate() {
        let Ok(seed_text) = std::fs::read_to_string(file) else { continue };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1));
        for mutant in 0..MUTANTS {
            let text = mutate(&seed_text, &mut rng);
            for format in [Format::Yaml, Format::Json] {
                let outcome = catch_unwind(AssertUnwindSafe(|| compile_text(&text, format, &options)));
                match outcome {
                    Ok(Ok(_)) => compiled += 1,
                    Ok(Err(diagnostics)) => assert!(
                        !diagnostics.to_string().is_empty(),
                        "{}: mutant {mutant} was refused with no message",
                        file.display()
                    ),
                    Err(panic) => {
                        let _ = std::panic::take_hook();
                        let why = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        panic!(
                            "{} mutant {mutant} ({format:?}) panicked the compiler: {why}\n--- mutant ---\n{text}",
                            file.display()
                        );
                    }
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    // Some mutants stay valid (a repeated comment, a swapped pair of tasks): the mutations are not all fatal.
    assert!(compiled > 0, "no mutant compiled: the generator only makes noise");
}
