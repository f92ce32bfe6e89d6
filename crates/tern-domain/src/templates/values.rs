//! JSON data (traits, event properties) as Liquid values, and back.

use liquid_core::model::{ScalarCow, Value};
use liquid_core::{Object, ValueView};

/// Converts a JSON value to the Liquid value a template sees.
pub(crate) fn to_liquid(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(flag) => Value::scalar(*flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => Value::scalar(integer),
            None => Value::scalar(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::scalar(text.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(to_liquid).collect()),
        serde_json::Value::Object(map) => Value::Object(object_from_json(map)),
    }
}

/// Converts a JSON object to a Liquid object.
pub(crate) fn object_from_json(map: &serde_json::Map<String, serde_json::Value>) -> Object {
    map.iter()
        .map(|(key, value)| (key.clone().into(), to_liquid(value)))
        .collect()
}

/// Converts what a template computed back to JSON (for the `json` filter).
pub(crate) fn to_json(value: &dyn ValueView) -> serde_json::Value {
    if let Some(scalar) = value.as_scalar() {
        return scalar_to_json(&scalar);
    }
    if let Some(array) = value.as_array() {
        return serde_json::Value::Array(array.values().map(to_json).collect());
    }
    if let Some(object) = value.as_object() {
        return serde_json::Value::Object(
            object
                .iter()
                .map(|(key, value)| (key.to_string(), to_json(value)))
                .collect(),
        );
    }
    serde_json::Value::Null
}

fn scalar_to_json(scalar: &ScalarCow<'_>) -> serde_json::Value {
    if let Some(flag) = scalar.to_bool() {
        return serde_json::Value::Bool(flag);
    }
    // A string scalar answers to_integer when it parses as one; only real numbers become JSON numbers.
    let text = scalar.to_kstr();
    let is_string = matches!(scalar.type_name(), "string");
    if !is_string {
        if let Some(integer) = scalar.to_integer() {
            return serde_json::Value::from(integer);
        }
        if let Some(number) = scalar.to_float().and_then(serde_json::Number::from_f64) {
            return serde_json::Value::Number(number);
        }
    }
    serde_json::Value::String(text.as_str().to_owned())
}
