//! The engine's one error type. Every variant carries the numbers or names a user needs
//! to fix the input; [`EngineError::kind`] tells the SQL layer which SQLSTATE class to
//! raise and [`EngineError::hint`] supplies the HINT line.

/// Which SQLSTATE family an [`EngineError`] belongs to. The SQL layer maps these to
/// 22023 (invalid parameter), 22000 (data exception), 54000 (program limit),
/// 57014 (query canceled) and XX000 (internal: a bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidParameter,
    DataException,
    ProgramLimit,
    Canceled,
    Internal,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A parameter is outside its domain (k < 1, n_init < 1, tol < 0, bad spec ...).
    #[error("invalid parameter \"{name}\": {reason}")]
    InvalidParameter { name: String, reason: String },

    /// k (or, when choosing k, the smallest k tried: `name` says which) is larger than
    /// the number of distinct rows.
    #[error("{name} = {k} exceeds the number of distinct rows ({distinct})")]
    TooFewDistinctPoints {
        name: &'static str,
        k: usize,
        distinct: usize,
    },

    /// Nothing to work on.
    #[error("no rows to train on")]
    NoRows,

    /// Zero-width data.
    #[error("no features: the data has 0 columns")]
    NoFeatures,

    /// NaN or +/-Infinity in an already-encoded matrix.
    #[error("non-finite value {value} at row {row}, feature {feature}")]
    NonFinite {
        row: usize,
        feature: usize,
        value: f64,
    },

    /// A vector of the wrong length.
    #[error("dimension mismatch: expected {expected} values, got {got}")]
    DimensionMismatch { expected: usize, got: usize },

    /// A feature could not be encoded (NULL under policy "error", negative value for
    /// log_standard, wrong value type, ...). `row` is the 0-based row index in the
    /// input when known; the SQL layer translates it into the row's id.
    #[error("feature \"{feature}\": {reason}")]
    Encode {
        feature: String,
        row: Option<usize>,
        reason: String,
    },

    /// A memory budget would be exceeded.
    #[error("the rows need {needed} bytes, more than the memory budget ({budget} bytes)")]
    MemoryBudget { needed: usize, budget: usize },

    /// The interrupt hook asked to stop.
    #[error("canceled")]
    Canceled,

    /// An invariant broke: always a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        EngineError::InvalidParameter {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    /// Check one incoming row of a streaming state: `d` values, all finite. `row` is the
    /// 0-based position reported in the error.
    pub fn check_row(x: &[f64], d: usize, row: usize) -> Result<(), EngineError> {
        if x.len() != d {
            return Err(EngineError::DimensionMismatch {
                expected: d,
                got: x.len(),
            });
        }
        match x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            Some((feature, &value)) => Err(EngineError::NonFinite {
                row,
                feature,
                value,
            }),
            None => Ok(()),
        }
    }

    /// Check that a matrix holds only finite values; the error names the first
    /// offender in row-major order. Contiguous data is scanned in vectorisable chunks and
    /// the culprit located only on failure.
    pub fn check_finite(x: &ndarray::ArrayView2<f64>) -> Result<(), EngineError> {
        let all_finite = x.as_slice().is_some_and(|s| {
            s.chunks(4096)
                .all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite()))
        });
        if all_finite {
            return Ok(());
        }
        for (row, r) in x.outer_iter().enumerate() {
            for (feature, &value) in r.iter().enumerate() {
                if !value.is_finite() {
                    return Err(EngineError::NonFinite {
                        row,
                        feature,
                        value,
                    });
                }
            }
        }
        Ok(())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::InvalidParameter { .. } => ErrorKind::InvalidParameter,
            EngineError::TooFewDistinctPoints { .. } => ErrorKind::InvalidParameter,
            EngineError::NoRows | EngineError::NoFeatures => ErrorKind::DataException,
            EngineError::NonFinite { .. } | EngineError::Encode { .. } => ErrorKind::DataException,
            EngineError::DimensionMismatch { .. } => ErrorKind::DataException,
            EngineError::MemoryBudget { .. } => ErrorKind::ProgramLimit,
            EngineError::Canceled => ErrorKind::Canceled,
            EngineError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            EngineError::TooFewDistinctPoints { name, distinct, .. } => Some(format!(
                "Choose {name} between 1 and {distinct}, or add more distinct rows."
            )),
            EngineError::InvalidParameter { name, .. } if name == "k" => Some(format!(
                "Customer segments are few (3 to 20 is usual); k is at most {}.",
                crate::kmeans::MAX_K
            )),
            EngineError::NoRows => Some("The source has no usable rows.".into()),
            EngineError::NoFeatures => Some("Select at least one feature.".into()),
            EngineError::NonFinite { .. } => {
                Some("Remove or impute NaN and Infinity before training.".into())
            }
            EngineError::DimensionMismatch { .. } => {
                Some("All vectors must have the same number of elements.".into())
            }
            EngineError::Encode { reason, .. } if reason.contains("NULL") => Some(
                "Set a NULL policy for the feature, e.g. {\"standard\": {}, \"null\": \"mean\"}, or filter the rows."
                    .into(),
            ),
            EngineError::Encode { reason, .. } if reason.contains("log_standard") => Some(
                "log_standard needs values >= 0; use standard or robust for columns with negative values."
                    .into(),
            ),
            EngineError::MemoryBudget { .. } => Some(
                "Raise maintenance_work_mem, aggregate a sample (TABLESAMPLE), or train with segment_train, which samples."
                    .into(),
            ),
            _ => None,
        }
    }
}
