//! Tern's own Liquid filters: `date` in the recipient's time zone, `json`, and `raw` (which opts an output
//! out of HTML escaping; the filter itself passes its input through).

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use liquid_core::{
    Display_filter, Error, Expression, Filter, FilterParameters, FilterReflection,
    FromFilterParameters, ParseFilter, Result, Runtime, Value, ValueView,
};

use super::engine::current_clock;
use super::values::to_json;

/// The filters Tern adds to liquid's standard library.
pub(crate) fn tern_filters() -> Vec<Box<dyn liquid_core::ParseFilter>> {
    vec![Box::new(DateInZone), Box::new(Json), Box::new(Raw)]
}

#[derive(Debug, FilterParameters)]
struct DateArgs {
    #[parameter(
        description = "The strftime format, e.g. \"%B %-d, %Y\".",
        arg_type = "str"
    )]
    format: Expression,
}

#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "date",
    description = "Formats an ISO 8601 date or time, unix seconds, or \"now\" in the recipient's time zone.",
    parameters(DateArgs),
    parsed(DateInZoneFilter)
)]
pub(crate) struct DateInZone;

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "date"]
struct DateInZoneFilter {
    #[parameters]
    args: DateArgs,
}

impl Filter for DateInZoneFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let formatted = current_clock(|zone, now| {
            let Some(moment) = moment_of(input, zone, now) else {
                return Ok(None);
            };
            jiff::fmt::strtime::format(args.format.as_str(), &moment)
                .map(Some)
                .map_err(|_| Error::with_msg(format!("invalid date format `{}`", args.format)))
        })?;
        // Like liquid's own `date`, an input that is not a date passes through unchanged (nil stays nil,
        // so `default` still applies).
        Ok(formatted.map_or_else(|| input.to_value(), Value::scalar))
    }
}

/// Reads the filter's input as an instant in `zone`: an ISO 8601 timestamp (converted to the zone), a civil
/// date or date-time (taken as already in the zone), unix seconds, or "now"/"today".
fn moment_of(input: &dyn ValueView, zone: &TimeZone, now: Timestamp) -> Option<Zoned> {
    let scalar = input.as_scalar()?;
    if scalar.type_name() != "string" {
        let seconds = scalar.to_float()?;
        let timestamp = Timestamp::from_millisecond((seconds * 1000.0).round() as i64).ok()?;
        return Some(timestamp.to_zoned(zone.clone()));
    }
    let text = scalar.to_kstr();
    let text = text.as_str().trim();
    if text.eq_ignore_ascii_case("now") || text.eq_ignore_ascii_case("today") {
        return Some(now.to_zoned(zone.clone()));
    }
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Some(timestamp.to_zoned(zone.clone()));
    }
    if let Ok(datetime) = text.parse::<civil::DateTime>() {
        return datetime.to_zoned(zone.clone()).ok();
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Timestamp::from_second(seconds)
            .ok()
            .map(|at| at.to_zoned(zone.clone()));
    }
    None
}

#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "json",
    description = "Writes the value as JSON.",
    parsed(JsonFilter)
)]
pub(crate) struct Json;

#[derive(Debug, Default, Display_filter)]
#[name = "json"]
struct JsonFilter;

impl Filter for JsonFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        Ok(Value::scalar(to_json(input).to_string()))
    }
}

#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "raw",
    description = "Marks an output as trusted HTML: it is not escaped.",
    parsed(RawFilter)
)]
pub(crate) struct Raw;

#[derive(Debug, Default, Display_filter)]
#[name = "raw"]
struct RawFilter;

impl Filter for RawFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        Ok(input.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::{LiquidTemplate, RenderClock, with_clock};
    use super::super::values::to_liquid;
    use super::*;

    fn render_in(zone: &str, source: &str, data: serde_json::Value) -> String {
        let template = LiquidTemplate::parse(source).unwrap();
        let Value::Object(globals) = to_liquid(&data) else {
            panic!("data must be an object")
        };
        let clock = RenderClock {
            time_zone: TimeZone::get(zone).unwrap(),
            now: "2026-03-01T23:30:00Z".parse().unwrap(),
        };
        with_clock(clock, || template.render(&globals, false)).unwrap()
    }

    #[test]
    fn date_converts_timestamps_to_the_recipients_zone() {
        let data = serde_json::json!({"at": "2026-07-04T03:00:00Z"});
        let source = "{{ at | date: '%Y-%m-%d %H:%M %Z' }}";
        assert_eq!(
            render_in("America/New_York", source, data.clone()),
            "2026-07-03 23:00 EDT"
        );
        assert_eq!(
            render_in("Europe/Paris", source, data),
            "2026-07-04 05:00 CEST"
        );
    }

    #[test]
    fn date_reads_unix_seconds_now_and_civil_dates() {
        let source = "{{ at | date: '%Y-%m-%d %H:%M' }}";
        let unix = serde_json::json!({"at": 1_700_000_000});
        assert_eq!(render_in("UTC", source, unix.clone()), "2023-11-14 22:13");
        assert_eq!(render_in("Asia/Tokyo", source, unix), "2023-11-15 07:13");
        let civil = serde_json::json!({"at": "2026-05-01T09:30:00"});
        assert_eq!(render_in("Asia/Tokyo", source, civil), "2026-05-01 09:30");
        let now = "{{ 'now' | date: '%A %-d %B' }}";
        assert_eq!(
            render_in("Europe/Berlin", now, serde_json::json!({})),
            "Monday 2 March"
        );
    }

    #[test]
    fn date_leaves_non_dates_alone_and_rejects_bad_formats() {
        assert_eq!(
            render_in(
                "UTC",
                "{{ at | date: '%Y' }}",
                serde_json::json!({"at": "soon"})
            ),
            "soon"
        );
        assert_eq!(
            render_in(
                "UTC",
                "{{ missing | date: '%Y' | default: 'n/a' }}",
                serde_json::json!({})
            ),
            "n/a"
        );
        let template = LiquidTemplate::parse("{{ 'now' | date: '%Y %' }}").unwrap();
        assert!(template.render(&liquid_core::Object::new(), false).is_err());
    }

    #[test]
    fn json_writes_values_as_json() {
        let data = serde_json::json!({"v": {"n": 3, "s": "say \"hi\"", "f": [1.5, true, null], "d": "42"}});
        let rendered = render_in("UTC", "{{ v | json }}", data.clone());
        let parsed: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(parsed, data["v"]);
    }

    #[test]
    fn standard_marketing_filters_work() {
        let data = serde_json::json!({"name": "ada lovelace", "q": "a b&c"});
        let cases = [
            ("{{ name | capitalize }}", "Ada lovelace"),
            ("{{ name | upcase }}", "ADA LOVELACE"),
            ("{{ 'HeLLo' | downcase }}", "hello"),
            ("{{ name | truncate: 6 }}", "ada..."),
            ("{{ q | url_encode }}", "a%20b%26c"),
            ("{{ nobody | default: 'there' }}", "there"),
            ("{{ '<b>' | raw }}", "<b>"),
        ];
        for (source, expected) in cases {
            assert_eq!(render_in("UTC", source, data.clone()), expected, "{source}");
        }
    }
}
