//! Structured JSON logs on stdout, which Lambda ships to CloudWatch Logs as they are.

use tracing_subscriber::EnvFilter;

/// The level when neither `RUST_LOG` nor `AWS_LAMBDA_LOG_LEVEL` says otherwise.
const DEFAULT_LEVEL: &str = "info";

/// Installs the JSON subscriber. The filter comes from `RUST_LOG` (per-target directives, for a developer
/// digging into one module), else from `AWS_LAMBDA_LOG_LEVEL` (the function's `LoggingConfig`), else `info`.
pub fn init_tracing() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let (filter, rejected) = log_filter(rust_log.as_deref(), lambda_level.as_deref());
    let installed = tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_current_span(true)
        .with_env_filter(filter)
        .try_init();
    if let Err(error) = installed {
        tracing::warn!(%error, "a tracing subscriber was already installed; keeping it");
    }
    if let Some(rejected) = rejected {
        tracing::warn!(setting = %rejected, "log filter setting ignored: not a valid filter");
    }
}

/// The filter, and the name of a setting that was present but unusable (so it can be reported once the
/// subscriber is up, instead of silently logging at the wrong level).
fn log_filter(
    rust_log: Option<&str>,
    lambda_level: Option<&str>,
) -> (EnvFilter, Option<&'static str>) {
    let mut rejected = None;
    if let Some(directives) = rust_log.filter(|value| !value.trim().is_empty()) {
        match EnvFilter::try_new(directives) {
            Ok(filter) => return (filter, None),
            Err(_) => rejected = Some("RUST_LOG"),
        }
    }
    if let Some(level) = lambda_level.and_then(lambda_level_directive) {
        return (EnvFilter::new(level), rejected);
    }
    if lambda_level.is_some_and(|value| !value.trim().is_empty()) {
        rejected = Some("AWS_LAMBDA_LOG_LEVEL");
    }
    (EnvFilter::new(DEFAULT_LEVEL), rejected)
}

/// Lambda's application log levels, as `tracing` levels; `FATAL` has no counterpart below `error`.
fn lambda_level_directive(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" => Some("warn"),
        "ERROR" | "FATAL" => Some("error"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directives(
        rust_log: Option<&str>,
        lambda_level: Option<&str>,
    ) -> (String, Option<&'static str>) {
        let (filter, rejected) = log_filter(rust_log, lambda_level);
        (filter.to_string(), rejected)
    }

    #[test]
    fn rust_log_directives_win() {
        assert_eq!(
            directives(Some("tern_app=debug,warn"), Some("ERROR")),
            ("tern_app=debug,warn".into(), None)
        );
    }

    #[test]
    fn the_lambda_log_level_applies_without_rust_log() {
        assert_eq!(directives(None, Some("DEBUG")), ("debug".into(), None));
        assert_eq!(directives(None, Some("FATAL")), ("error".into(), None));
    }

    #[test]
    fn info_is_the_default() {
        assert_eq!(directives(None, None), ("info".into(), None));
    }

    #[test]
    fn an_unusable_setting_is_reported_and_the_next_one_used() {
        assert_eq!(
            directives(Some("tern_app=loud"), Some("WARN")),
            ("warn".into(), Some("RUST_LOG"))
        );
        assert_eq!(
            directives(None, Some("chatty")),
            ("info".into(), Some("AWS_LAMBDA_LOG_LEVEL"))
        );
    }
}
