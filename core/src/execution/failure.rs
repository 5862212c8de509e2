//! One failure vocabulary for every executor: what went wrong (a stable code),
//! whose fault it is (the task's or the system's), and whether another attempt
//! could help. `updraft run`, `updraft exec` and the job definitions' retry
//! rules all read this table, so a failure is retried the same way on a laptop
//! and on AWS Batch.

use crate::proto::core::ErrorKind;

/// Why a node (or one attempt of it) did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// The task exited non-zero.
    NonZeroExit,
    /// The task was killed by a signal (out of memory, for one).
    Killed,
    /// The attempt ran past the task's timeout.
    Timeout,
    /// The program could not be started (not found, not executable).
    CannotStart,
    /// The task wrote more to stdout or stderr than a local run keeps.
    LogLimit,
    /// The task exited 0 but broke the output contract (missing or wrong-typed output).
    BadOutputs,
    /// The job description (in a container: the environment) is wrong.
    BadJob,
    /// Task data could not be read or written, or changed behind Updraft's back.
    DataError,
    /// A transient data failure (throttling, a dropped connection).
    DataUnavailable,
    /// Stopped from outside (SIGTERM: Batch's timeout or a terminated job).
    Terminated,
    /// The run was cancelled (Ctrl-C, an abort).
    Aborted,
    /// The runner died before the execution ended.
    RunnerDied,
    /// The executor itself could not go on (a directory it could not create).
    SystemError,
    /// An input's value is not available (an upstream output that does not exist).
    InputUnavailable,
    /// A workflow output's value is not available.
    OutputUnavailable,
    /// A node refers to a task or workflow that is not part of the compiled closure.
    UnknownTarget,
    /// A branch's `else: {fail: ...}` was taken.
    BranchFailed,
    /// No case of a branch matched and it has no else.
    NoBranchTaken,
    /// A map node's inputs cannot be split into items.
    MapInputs,
    /// Too few map items succeeded.
    MapFailed,
}

impl FailureCode {
    pub const ALL: [FailureCode; 20] = [
        FailureCode::NonZeroExit,
        FailureCode::Killed,
        FailureCode::Timeout,
        FailureCode::CannotStart,
        FailureCode::LogLimit,
        FailureCode::BadOutputs,
        FailureCode::BadJob,
        FailureCode::DataError,
        FailureCode::DataUnavailable,
        FailureCode::Terminated,
        FailureCode::Aborted,
        FailureCode::RunnerDied,
        FailureCode::SystemError,
        FailureCode::InputUnavailable,
        FailureCode::OutputUnavailable,
        FailureCode::UnknownTarget,
        FailureCode::BranchFailed,
        FailureCode::NoBranchTaken,
        FailureCode::MapInputs,
        FailureCode::MapFailed,
    ];

    /// The code as records, error documents and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::NonZeroExit => "NonZeroExit",
            FailureCode::Killed => "Killed",
            FailureCode::Timeout => "Timeout",
            FailureCode::CannotStart => "CannotStart",
            FailureCode::LogLimit => "LogLimit",
            FailureCode::BadOutputs => "BadOutputs",
            FailureCode::BadJob => "BadJob",
            FailureCode::DataError => "DataError",
            FailureCode::DataUnavailable => "DataUnavailable",
            FailureCode::Terminated => "Terminated",
            FailureCode::Aborted => "Aborted",
            FailureCode::RunnerDied => "RunnerDied",
            FailureCode::SystemError => "SystemError",
            FailureCode::InputUnavailable => "InputUnavailable",
            FailureCode::OutputUnavailable => "OutputUnavailable",
            FailureCode::UnknownTarget => "UnknownTarget",
            FailureCode::BranchFailed => "BranchFailed",
            FailureCode::NoBranchTaken => "NoBranchTaken",
            FailureCode::MapInputs => "MapInputs",
            FailureCode::MapFailed => "MapFailed",
        }
    }

    pub fn parse(code: &str) -> Option<FailureCode> {
        FailureCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether another attempt of the same task could succeed. Only failures of
    /// an attempt that may be transient are: the task's exit or death, its
    /// timeout, an outside stop, a transient data failure. A broken contract, a
    /// wrong job or a program that cannot start would fail again.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureCode::NonZeroExit
                | FailureCode::Killed
                | FailureCode::Timeout
                | FailureCode::Terminated
                | FailureCode::DataUnavailable
                | FailureCode::SystemError
        )
    }

    /// Whose fault: the task's (fix the code or the spec) or the system's.
    pub fn kind(self) -> ErrorKind {
        match self {
            FailureCode::DataUnavailable
            | FailureCode::Terminated
            | FailureCode::Aborted
            | FailureCode::RunnerDied
            | FailureCode::SystemError => ErrorKind::System,
            _ => ErrorKind::User,
        }
    }

    /// The exit code `updraft exec` ends with for a failure of its own
    /// (sysexits.h numbers); `None` where the task's own exit code is passed on.
    pub fn exit_code(self) -> Option<u8> {
        EXIT_CODES.iter().find(|(code, _)| *code == self).map(|(_, exit)| *exit)
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `updraft exec`'s exit codes for its own failures. Any other non-zero exit is
/// the task's (a signal as 128 + its number), and 143 is SIGTERM.
pub const EXIT_CODES: [(FailureCode, u8); 5] = [
    (FailureCode::BadJob, 64),          // EX_USAGE
    (FailureCode::BadOutputs, 65),      // EX_DATAERR
    (FailureCode::DataError, 74),       // EX_IOERR
    (FailureCode::DataUnavailable, 75), // EX_TEMPFAIL
    (FailureCode::Terminated, 143),     // 128 + SIGTERM
];

/// What a container's exit code means (the Batch side of the table).
pub fn from_exit_code(exit: u8) -> FailureCode {
    match EXIT_CODES.iter().find(|(_, e)| *e == exit) {
        Some((code, _)) => *code,
        None if exit > 128 => FailureCode::Killed,
        None => FailureCode::NonZeroExit,
    }
}

/// Batch's `retryStrategy.evaluateOnExit`: the exit codes after which Batch must
/// not retry, as `updraft run` does not. Batch retries when no rule matches.
pub fn batch_evaluate_on_exit() -> Vec<serde_json::Value> {
    EXIT_CODES
        .iter()
        .filter(|(code, _)| !code.retryable())
        .map(|(_, exit)| serde_json::json!({"onExitCode": exit.to_string(), "action": "EXIT"}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table, stated once: changing a row changes how both executors retry.
    #[test]
    fn the_failure_table() {
        let table: Vec<(&str, bool, ErrorKind, Option<u8>)> =
            FailureCode::ALL.iter().map(|c| (c.as_str(), c.retryable(), c.kind(), c.exit_code())).collect();
        use ErrorKind::{System, User};
        assert_eq!(
            table,
            [
                ("NonZeroExit", true, User, None),
                ("Killed", true, User, None),
                ("Timeout", true, User, None),
                ("CannotStart", false, User, None),
                ("LogLimit", false, User, None),
                ("BadOutputs", false, User, Some(65)),
                ("BadJob", false, User, Some(64)),
                ("DataError", false, User, Some(74)),
                ("DataUnavailable", true, System, Some(75)),
                ("Terminated", true, System, Some(143)),
                ("Aborted", false, System, None),
                ("RunnerDied", false, System, None),
                ("SystemError", true, System, None),
                ("InputUnavailable", false, User, None),
                ("OutputUnavailable", false, User, None),
                ("UnknownTarget", false, User, None),
                ("BranchFailed", false, User, None),
                ("NoBranchTaken", false, User, None),
                ("MapInputs", false, User, None),
                ("MapFailed", false, User, None),
            ]
        );
        for code in FailureCode::ALL {
            assert_eq!(FailureCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn exit_codes_read_back_and_batch_stops_on_the_permanent_ones() {
        for (code, exit) in EXIT_CODES {
            assert_eq!(from_exit_code(exit), code);
        }
        assert_eq!(from_exit_code(1), FailureCode::NonZeroExit);
        assert_eq!(from_exit_code(137), FailureCode::Killed);
        let rules = batch_evaluate_on_exit();
        let stops: Vec<&str> = rules.iter().map(|r| r["onExitCode"].as_str().unwrap()).collect();
        assert_eq!(stops, ["64", "65", "74"]);
        assert!(rules.iter().all(|r| r["action"] == "EXIT"));
        assert!(rules.len() <= 5, "Batch takes at most 5 evaluateOnExit rules");
    }
}
