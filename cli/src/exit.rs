//! The exit statuses of every command (docs/cli.md, "Exit statuses"), so that a
//! script can tell a failed run from a mistake in how it called `updraft`.
//! Success is 0 (`ExitCode::SUCCESS`); `updraft exec` has the task contract's own
//! statuses (docs/task-contract.md).

/// The work failed: a run ended FAILED or TIMED_OUT, the stack refused a request,
/// a file or the store could not be read or written.
pub const FAILED: u8 = 1;
/// Nothing was done because of how it was asked: bad arguments, an invalid spec,
/// an input of the wrong type or shape, no stack configured.
pub const USAGE: u8 = 2;
/// `updraft sandbox status`: no sandbox runs.
pub const NOT_RUNNING: u8 = 3;
/// Interrupted (Ctrl-C), or the run it followed ended ABORTED.
pub const INTERRUPTED: u8 = 130;
