//! The stored (catalog) JSON form of a [`FittedEncoder`]: `to_json`, `from_json`, the
//! serde impls, and exact float encoding.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::super::error::EngineError;
use super::{
    check_kind, encoder_to_json, json_type, null_policy_to_json, parse_encoder, parse_null_policy,
    parse_weight, validate_spec,
};
use super::{
    CatIndex, ColumnKind, Encoder, FeatureSpec, Fitted, FittedEncoder, Model, NullPolicy, NumModel,
    OneHotModel, Pre, ENCODER_JSON_VERSION,
};

impl FittedEncoder {
    /// The stored form: `{"version": 1, "dim": d, "features": [...]}` (see the module
    /// doc). Stable: the same encoder always gives the same JSON, and
    /// `from_json(to_json(e)) == e`, also through a text round trip.
    pub fn to_json(&self) -> Json {
        let feats: Vec<Json> = self
            .features
            .iter()
            .map(|f| {
                let mut o = Map::new();
                o.insert("name".into(), Json::String(f.spec.name.clone()));
                o.insert("kind".into(), Json::String(f.kind.name().into()));
                let (k, v) = encoder_to_json(&f.spec.encoder);
                let mut e = Map::new();
                e.insert(k, v);
                o.insert("encoder".into(), Json::Object(e));
                o.insert("null".into(), null_policy_to_json(&f.spec.null_policy));
                o.insert("weight".into(), num_to_json(f.spec.weight));
                match &f.model {
                    Model::Num(m) => {
                        o.insert("center".into(), num_to_json(m.center));
                        o.insert("scale".into(), num_to_json(m.scale));
                        o.insert("fill".into(), m.fill.map_or(Json::Null, num_to_json));
                        if let Pre::Bins(edges) = &m.pre {
                            o.insert(
                                "edges".into(),
                                Json::Array(edges.iter().map(|e| num_to_json(*e)).collect()),
                            );
                        }
                    }
                    Model::OneHot(m) => {
                        o.insert(
                            "categories".into(),
                            Json::Array(
                                m.cats
                                    .values
                                    .iter()
                                    .map(|c| Json::String(c.clone()))
                                    .collect(),
                            ),
                        );
                        o.insert(
                            "fill".into(),
                            m.fill
                                .as_ref()
                                .map_or(Json::Null, |s| Json::String(s.clone())),
                        );
                    }
                }
                Json::Object(o)
            })
            .collect();
        let mut top = Map::new();
        top.insert("version".into(), Json::from(ENCODER_JSON_VERSION));
        top.insert("dim".into(), Json::from(self.dim));
        top.insert("features".into(), Json::Array(feats));
        Json::Object(top)
    }

    /// Read the form written by [`FittedEncoder::to_json`]. Anything malformed or
    /// inconsistent is an `InvalidParameter` on "encoder".
    pub fn from_json(v: &Json) -> Result<Self, EngineError> {
        let err = |reason: String| EngineError::invalid("encoder", reason);
        let top = v
            .as_object()
            .ok_or_else(|| err(format!("expected an object, got {}", json_type(v))))?;
        match top.get("version").and_then(Json::as_u64) {
            Some(ENCODER_JSON_VERSION) => {}
            other => {
                return Err(err(format!(
                "unsupported encoder version {}; this build reads version {ENCODER_JSON_VERSION}",
                other.map_or("(missing)".to_string(), |v| v.to_string())
            )))
            }
        }
        let feats = top
            .get("features")
            .and_then(Json::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| err("\"features\" must be a non-empty array".into()))?;
        let mut features = Vec::with_capacity(feats.len());
        let mut names = std::collections::HashSet::new();
        for (i, fj) in feats.iter().enumerate() {
            let f = read_feature(fj).map_err(|e| err(format!("feature {i}: {e}")))?;
            if !names.insert(f.spec.name.clone()) {
                return Err(err(format!("feature \"{}\" appears twice", f.spec.name)));
            }
            features.push(f);
        }
        let enc = FittedEncoder::assemble(features);
        if let Some(d) = top.get("dim") {
            if d.as_u64() != Some(enc.dim as u64) {
                return Err(err(format!(
                    "\"dim\" is {d} but the features encode to {} columns",
                    enc.dim
                )));
            }
        }
        Ok(enc)
    }
}

impl Serialize for FittedEncoder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FittedEncoder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Json::deserialize(d)?;
        FittedEncoder::from_json(&v).map_err(serde::de::Error::custom)
    }
}

fn read_feature(fj: &Json) -> Result<Fitted, String> {
    let o = fj.as_object().ok_or("expected an object")?;
    let name = o
        .get("name")
        .and_then(Json::as_str)
        .ok_or("missing \"name\"")?
        .to_string();
    let kind = match o.get("kind").and_then(Json::as_str) {
        Some("numeric") => ColumnKind::Numeric,
        Some("text") => ColumnKind::Text,
        Some("bool") => ColumnKind::Bool,
        _ => return Err(format!("\"{name}\": bad or missing \"kind\"")),
    };
    let encoder = match o.get("encoder") {
        Some(Json::Object(m)) if m.len() == 1 => {
            let (k, opts) = m.iter().next().expect("one entry");
            parse_encoder(&name, k, Some(opts)).map_err(|e| e.to_string())?
        }
        Some(Json::String(s)) => parse_encoder(&name, s, None).map_err(|e| e.to_string())?,
        _ => return Err(format!("\"{name}\": bad or missing \"encoder\"")),
    };
    let null_policy = match o.get("null") {
        None => NullPolicy::Error,
        Some(p) => parse_null_policy(&name, p).map_err(|e| e.to_string())?,
    };
    let weight = match o.get("weight") {
        None => 1.0,
        Some(w) => parse_weight(&name, w).map_err(|e| e.to_string())?,
    };
    let spec = FeatureSpec {
        name: name.clone(),
        encoder,
        null_policy,
        weight,
    };
    validate_spec(&spec).map_err(|e| e.to_string())?;
    check_kind(&spec, kind).map_err(|e| e.to_string())?;
    let num = |key: &str| -> Result<f64, String> {
        o.get(key)
            .and_then(num_from_json)
            .ok_or_else(|| format!("\"{name}\": bad or missing \"{key}\""))
    };
    let model = match &spec.encoder {
        Encoder::OneHot { top, null_category } => {
            let cats: Vec<String> = o
                .get("categories")
                .and_then(Json::as_array)
                .ok_or_else(|| format!("\"{name}\": missing \"categories\""))?
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("\"{name}\": categories must be text"))?;
            if cats.len() > *top || cats.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "\"{name}\": categories must be sorted, distinct and at most top = {top}"
                ));
            }
            let fill = match o.get("fill") {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) => Some(s.clone()),
                Some(_) => return Err(format!("\"{name}\": one_hot fill must be text")),
            };
            let needs_fill = matches!(spec.null_policy, NullPolicy::Mode | NullPolicy::Constant(_));
            if needs_fill != fill.is_some() {
                return Err(format!("\"{name}\": fill does not match the NULL policy"));
            }
            Model::OneHot(OneHotModel {
                cats: CatIndex::new(cats),
                fill,
                null_category: *null_category,
                fill_col: None,
            })
        }
        enc => {
            let center = num("center")?;
            let scale = num("scale")?;
            if scale == 0.0 {
                return Err(format!("\"{name}\": scale must not be 0"));
            }
            let fill = match o.get("fill") {
                None | Some(Json::Null) => None,
                Some(f) => Some(num_from_json(f).ok_or_else(|| format!("\"{name}\": bad fill"))?),
            };
            let needs_fill = !matches!(spec.null_policy, NullPolicy::Error | NullPolicy::Skip);
            if needs_fill != fill.is_some() {
                return Err(format!("\"{name}\": fill does not match the NULL policy"));
            }
            let pre = match enc {
                Encoder::LogStandard => Pre::Log1p,
                Encoder::Ordinal { order } => Pre::Rank(CatIndex::new(order.clone())),
                Encoder::QuantileBins { .. } => {
                    let edges: Vec<f64> = o
                        .get("edges")
                        .and_then(Json::as_array)
                        .ok_or_else(|| format!("\"{name}\": missing \"edges\""))?
                        .iter()
                        .map(num_from_json)
                        .collect::<Option<_>>()
                        .ok_or_else(|| format!("\"{name}\": edges must be numbers"))?;
                    if edges.len() < 2 || edges.windows(2).any(|w| w[0] > w[1]) {
                        return Err(format!(
                            "\"{name}\": edges must be at least two ascending numbers"
                        ));
                    }
                    Pre::Bins(edges)
                }
                _ => Pre::Identity,
            };
            Model::Num(NumModel {
                pre,
                center,
                scale,
                fill,
                indicator: spec.null_policy == NullPolicy::Indicator,
                min_max: false,
                inv_scale: 1.0,
                fill_out: 0.0,
            })
        }
    };
    Ok(Fitted {
        spec,
        kind,
        model,
        sw: 1.0,
        offset: 0,
        width: 0,
    })
}

/// A finite f64 as JSON: a number when serde_json's default parser reads it back
/// bit-exactly, else its shortest round-trip decimal as a string.
pub(super) fn num_to_json(x: f64) -> Json {
    if !x.is_finite() {
        return Json::Null;
    }
    let exact = serde_json::to_string(&x)
        .ok()
        .and_then(|s| serde_json::from_str::<f64>(&s).ok())
        .is_some_and(|y| y.to_bits() == x.to_bits());
    if exact {
        Json::from(x)
    } else {
        Json::String(format!("{x:?}"))
    }
}

/// A finite f64 from a JSON number or a decimal string.
pub(super) fn num_from_json(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite())
}
