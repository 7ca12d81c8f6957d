//! The spec grammar parser ([`parse_spec`]) and the validation of one feature spec
//! (encoder options, NULL policy, weight, constants). The grammar is documented on the
//! parent module.

use serde_json::{Map, Value as Json};

use super::*;

const VALID_POLICIES: &str =
    "\"error\", \"mean\", \"median\", \"mode\", \"indicator\", \"skip\", {\"constant\": value}";

// ------------------------------------------------------------------------------------
// Spec parsing
// ------------------------------------------------------------------------------------

pub(super) fn bad(feature: &str, reason: impl Into<String>) -> EngineError {
    EngineError::invalid(feature, reason)
}

/// Parse a user spec (see the module doc for the grammar). Features come back sorted by
/// name. Every problem is an `InvalidParameter` naming the feature.
pub fn parse_spec(spec: &Json) -> Result<Vec<FeatureSpec>, EngineError> {
    let obj = spec.as_object().ok_or_else(|| {
        bad(
            "features",
            format!(
                "must be a JSON object mapping column names to encoders, got {}",
                json_type(spec)
            ),
        )
    })?;
    if obj.is_empty() {
        return Err(bad("features", "the spec names no feature"));
    }
    let mut out = Vec::with_capacity(obj.len());
    for (name, v) in obj {
        out.push(parse_feature(name, v)?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(super) fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

pub(super) fn parse_feature(name: &str, v: &Json) -> Result<FeatureSpec, EngineError> {
    if name.is_empty() {
        return Err(bad("features", "a feature name is empty"));
    }
    let spec = match v {
        Json::String(enc) => FeatureSpec::new(name, parse_encoder(name, enc, None)?),
        Json::Object(m) => {
            let mut encoder = None;
            let mut null_policy = NullPolicy::Error;
            let mut weight = 1.0;
            for (k, val) in m {
                match k.as_str() {
                    "null" => null_policy = parse_null_policy(name, val)?,
                    "weight" => weight = parse_weight(name, val)?,
                    enc if is_encoder_name(enc) => {
                        if let Some((prev, _)) = &encoder {
                            return Err(bad(
                                name,
                                format!("names two encoders, \"{prev}\" and \"{enc}\""),
                            ));
                        }
                        encoder = Some((enc.to_string(), parse_encoder(name, enc, Some(val))?));
                    }
                    other => {
                        return Err(bad(
                            name,
                            format!(
                                "unknown key \"{other}\"; expected one encoder ({VALID_ENCODERS}) plus optional \"null\" and \"weight\""
                            ),
                        ))
                    }
                }
            }
            let (_, encoder) = encoder.ok_or_else(|| {
                bad(
                    name,
                    format!("names no encoder; valid encoders: {VALID_ENCODERS}"),
                )
            })?;
            FeatureSpec {
                name: name.to_string(),
                encoder,
                null_policy,
                weight,
            }
        }
        other => {
            return Err(bad(
                name,
                format!(
                "expected an encoder name or an object, got {}; valid encoders: {VALID_ENCODERS}",
                json_type(other)
            ),
            ))
        }
    };
    validate_spec(&spec)?;
    Ok(spec)
}

pub(super) fn is_encoder_name(s: &str) -> bool {
    matches!(
        s,
        "standard"
            | "min_max"
            | "robust"
            | "log_standard"
            | "one_hot"
            | "ordinal"
            | "quantile_bins"
            | "passthrough"
    )
}

/// Parse an encoder name and its options object (`None` = string form, defaults).
pub(super) fn parse_encoder(
    feature: &str,
    enc: &str,
    opts: Option<&Json>,
) -> Result<Encoder, EngineError> {
    let empty = Map::new();
    let opts = match opts {
        None | Some(Json::Null) => &empty,
        Some(Json::Object(m)) => m,
        Some(other) => {
            return Err(bad(
                feature,
                format!(
                    "options of \"{enc}\" must be an object, got {}",
                    json_type(other)
                ),
            ))
        }
    };
    let allow = |keys: &[&str]| -> Result<(), EngineError> {
        for k in opts.keys() {
            if !keys.contains(&k.as_str()) {
                let valid = if keys.is_empty() {
                    "it takes no options".to_string()
                } else {
                    format!("valid options: {}", keys.join(", "))
                };
                return Err(bad(
                    feature,
                    format!("unknown option \"{k}\" for \"{enc}\"; {valid}"),
                ));
            }
        }
        Ok(())
    };
    let count = |key: &str, default: usize, min: usize| -> Result<usize, EngineError> {
        match opts.get(key) {
            None => Ok(default),
            Some(v) => match v.as_u64() {
                Some(n) if (min as u64..=MAX_CATEGORIES as u64).contains(&n) => Ok(n as usize),
                _ => Err(bad(
                    feature,
                    format!(
                        "\"{enc}\" option \"{key}\" must be an integer between {min} and {MAX_CATEGORIES}, got {v}"
                    ),
                )),
            },
        }
    };
    Ok(match enc {
        "standard" | "min_max" | "robust" | "log_standard" | "passthrough" => {
            allow(&[])?;
            match enc {
                "standard" => Encoder::Standard,
                "min_max" => Encoder::MinMax,
                "robust" => Encoder::Robust,
                "log_standard" => Encoder::LogStandard,
                _ => Encoder::Passthrough,
            }
        }
        "one_hot" => {
            allow(&["top", "null_category"])?;
            let top = count("top", DEFAULT_ONE_HOT_TOP, 1)?;
            let null_category = match opts.get("null_category") {
                None => false,
                Some(Json::Bool(b)) => *b,
                Some(v) => {
                    return Err(bad(
                        feature,
                        format!(
                            "\"one_hot\" option \"null_category\" must be true or false, got {v}"
                        ),
                    ))
                }
            };
            Encoder::OneHot { top, null_category }
        }
        "ordinal" => {
            allow(&["order"])?;
            let order = match opts.get("order") {
                Some(Json::Array(a)) => a
                    .iter()
                    .map(|v| match v {
                        Json::String(s) => Ok(s.clone()),
                        other => Err(bad(
                            feature,
                            format!(
                                "\"ordinal\" order must list text values, got {other}"
                            ),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(other) => {
                    return Err(bad(
                        feature,
                        format!("\"ordinal\" option \"order\" must be an array of text values, got {other}"),
                    ))
                }
                None => {
                    return Err(bad(
                        feature,
                        "\"ordinal\" needs an order, e.g. {\"ordinal\": {\"order\": [\"bronze\", \"silver\", \"gold\"]}}",
                    ))
                }
            };
            Encoder::Ordinal { order }
        }
        "quantile_bins" => {
            allow(&["bins"])?;
            Encoder::QuantileBins {
                bins: count("bins", DEFAULT_QUANTILE_BINS, 2)?,
            }
        }
        other => {
            return Err(bad(
                feature,
                format!("unknown encoder \"{other}\"; valid encoders: {VALID_ENCODERS}"),
            ))
        }
    })
}

pub(super) fn parse_null_policy(feature: &str, v: &Json) -> Result<NullPolicy, EngineError> {
    let p = match v {
        Json::String(s) => match s.as_str() {
            "error" => NullPolicy::Error,
            "mean" => NullPolicy::Mean,
            "median" => NullPolicy::Median,
            "mode" => NullPolicy::Mode,
            "indicator" => NullPolicy::Indicator,
            "skip" => NullPolicy::Skip,
            "constant" => {
                return Err(bad(
                    feature,
                    "NULL policy \"constant\" needs a value: {\"constant\": 0}",
                ))
            }
            other => {
                return Err(bad(
                    feature,
                    format!("unknown NULL policy \"{other}\"; valid policies: {VALID_POLICIES}"),
                ))
            }
        },
        Json::Object(m) if m.len() == 1 && m.contains_key("constant") => {
            let c = &m["constant"];
            match c {
                Json::Number(_) | Json::String(_) | Json::Bool(_) => {}
                other => {
                    return Err(bad(
                        feature,
                        format!(
                            "NULL policy constant must be a number, text or boolean, got {}",
                            json_type(other)
                        ),
                    ))
                }
            }
            NullPolicy::Constant(c.clone())
        }
        other => {
            return Err(bad(
                feature,
                format!("invalid NULL policy {other}; valid policies: {VALID_POLICIES}"),
            ))
        }
    };
    Ok(p)
}

pub(super) fn parse_weight(feature: &str, v: &Json) -> Result<f64, EngineError> {
    match num_from_json(v) {
        Some(w) if w > 0.0 && w <= MAX_WEIGHT => Ok(w),
        _ => Err(bad(
            feature,
            format!("weight must be a number > 0 and <= {MAX_WEIGHT:e}, got {v}"),
        )),
    }
}

/// Checks that do not depend on the data: option ranges, weight, and whether the NULL
/// policy makes sense for the encoder (including a constant's type).
pub(super) fn validate_spec(s: &FeatureSpec) -> Result<(), EngineError> {
    let f = s.name.as_str();
    if f.is_empty() {
        return Err(bad("features", "a feature name is empty"));
    }
    if !(s.weight.is_finite() && s.weight > 0.0 && s.weight <= MAX_WEIGHT) {
        return Err(bad(
            f,
            format!(
                "weight must be a number > 0 and <= {MAX_WEIGHT:e}, got {}",
                s.weight
            ),
        ));
    }
    match &s.encoder {
        Encoder::OneHot { top, null_category } => {
            if !(1..=MAX_CATEGORIES).contains(top) {
                return Err(bad(
                    f,
                    format!("\"one_hot\" option \"top\" must be between 1 and {MAX_CATEGORIES}, got {top}"),
                ));
            }
            match &s.null_policy {
                NullPolicy::Mean | NullPolicy::Median | NullPolicy::Indicator => {
                    return Err(bad(
                        f,
                        format!(
                            "NULL policy \"{}\" does not apply to one_hot; use \"mode\", {{\"constant\": \"...\"}}, \"skip\" or {{\"one_hot\": {{\"null_category\": true}}}}",
                            s.null_policy.name()
                        ),
                    ))
                }
                NullPolicy::Error => {}
                p if *null_category => {
                    return Err(bad(
                        f,
                        format!(
                            "null_category puts NULLs in their own column; it cannot be combined with NULL policy \"{}\"",
                            p.name()
                        ),
                    ))
                }
                NullPolicy::Constant(c) => {
                    constant_text(f, c)?;
                }
                _ => {}
            }
        }
        Encoder::Ordinal { order } => {
            if order.is_empty() {
                return Err(bad(f, "\"ordinal\" order must not be empty"));
            }
            let mut seen = std::collections::HashSet::new();
            for o in order {
                if !seen.insert(o.as_str()) {
                    return Err(bad(f, format!("\"ordinal\" order lists \"{o}\" twice")));
                }
            }
            if let NullPolicy::Constant(c) = &s.null_policy {
                let t = constant_text(f, c)?;
                if !order.contains(&t) {
                    return Err(bad(
                        f,
                        format!(
                            "NULL policy constant \"{t}\" is not in the ordinal order [{}]",
                            order.join(", ")
                        ),
                    ));
                }
            }
        }
        Encoder::QuantileBins { bins } => {
            if !(2..=MAX_CATEGORIES).contains(bins) {
                return Err(bad(
                    f,
                    format!("\"quantile_bins\" option \"bins\" must be between 2 and {MAX_CATEGORIES}, got {bins}"),
                ));
            }
            constant_number(s)?;
        }
        _ => {
            constant_number(s)?;
        }
    }
    Ok(())
}

/// For numeric encoders: the constant of a `constant` policy as a number.
pub(super) fn constant_number(s: &FeatureSpec) -> Result<Option<f64>, EngineError> {
    let NullPolicy::Constant(c) = &s.null_policy else {
        return Ok(None);
    };
    let v = match c {
        Json::Number(_) => num_from_json(c),
        _ => None,
    };
    match v {
        Some(v) if matches!(s.encoder, Encoder::LogStandard) && v < 0.0 => Err(bad(
            &s.name,
            format!("NULL policy constant {v} is negative; log_standard needs values >= 0"),
        )),
        Some(v) => Ok(Some(v)),
        None => Err(bad(
            &s.name,
            format!(
                "NULL policy constant for encoder \"{}\" must be a finite number, got {c}",
                s.encoder.name()
            ),
        )),
    }
}

/// For categorical encoders: the constant of a `constant` policy as category text.
pub(super) fn constant_text(feature: &str, c: &Json) -> Result<String, EngineError> {
    match c {
        Json::String(s) => Ok(s.clone()),
        Json::Bool(b) => Ok(bool_text(*b).to_string()),
        Json::Number(_) => match num_from_json(c) {
            Some(v) => Ok(NumText::new().format(v).to_string()),
            None => Err(bad(
                feature,
                format!("NULL policy constant {c} is not finite"),
            )),
        },
        other => Err(bad(
            feature,
            format!("NULL policy constant must be text, a number or a boolean, got {other}"),
        )),
    }
}
