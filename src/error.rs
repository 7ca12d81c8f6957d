//! Raising errors: every ERROR pg_segment reports goes through here, so each has a
//! SQLSTATE, a message naming the offending thing, and (where one helps) a HINT.
use crate::engine::{EngineError, ErrorKind};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

pub use pgrx::PgSqlErrorCode as Code;

/// Raise an ERROR with a SQLSTATE, message and optional hint. Never returns.
#[track_caller]
pub fn raise(code: Code, message: impl Into<String>, hint: Option<String>) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "pg_segment");
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Raise an ERROR with a detail line as well.
#[track_caller]
pub fn raise_detail(
    code: Code,
    message: impl Into<String>,
    detail: String,
    hint: Option<String>,
) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "pg_segment").set_detail(detail);
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// The SQLSTATE for an engine error.
pub fn code_of(err: &EngineError) -> Code {
    match err.kind() {
        ErrorKind::InvalidParameter => Code::ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::DataException => Code::ERRCODE_DATA_EXCEPTION,
        ErrorKind::ProgramLimit => Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        ErrorKind::Canceled => Code::ERRCODE_QUERY_CANCELED,
        ErrorKind::Internal => Code::ERRCODE_INTERNAL_ERROR,
    }
}

/// Raise an engine error, prefixing `context` (e.g. `segment_train("customers")`).
#[track_caller]
pub fn raise_engine(err: EngineError, context: &str) -> ! {
    let msg = if context.is_empty() {
        err.to_string()
    } else {
        format!("{context}: {err}")
    };
    raise(code_of(&err), msg, err.hint())
}

/// Unwrap an engine result or raise it as an ERROR.
pub trait OrRaise<T> {
    fn or_raise(self, context: &str) -> T;
}

impl<T> OrRaise<T> for Result<T, EngineError> {
    #[track_caller]
    fn or_raise(self, context: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise_engine(e, context),
        }
    }
}

/// Raise 22004 for a NULL argument that needs a value.
#[track_caller]
pub fn require<T>(value: Option<T>, function: &str, argument: &str) -> T {
    value.unwrap_or_else(|| {
        raise(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{function}: argument \"{argument}\" must not be NULL"),
            None,
        )
    })
}
