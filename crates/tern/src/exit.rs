//! How a command ends when it fails: the message for the operator and the exit status.

use std::process::ExitCode;

/// A failed command: what to print and which status to exit with.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Exit {
    /// The system failed (store unreachable, IO error): status 1.
    pub fn failure(error: impl Into<anyhow::Error>) -> Self {
        Exit { code: 1, error: error.into() }
    }

    /// The input was wrong (unknown kind, malformed JSON, invalid field, conflict): status 2.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Exit { code: 2, error: error.into() }
    }

    /// Prints `tern: <error>: <cause>...` on stderr and returns the exit status.
    pub fn report(self) -> ExitCode {
        eprintln!("tern: {:#}", self.error);
        ExitCode::from(self.code)
    }
}
