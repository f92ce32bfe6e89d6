//! Settings read from the function's environment. Every required setting fails fast, at cold start, with
//! one line that names the variable — the message a deployer sees in the function's log.

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

/// The table every function reads and writes.
pub const TABLE_NAME: &str = "TERN_TABLE_NAME";
/// The bucket of the lake, uploads and audience manifests.
pub const BUCKET: &str = "TERN_BUCKET";
/// The queues, as `name=url,name=url` (logical name → SQS queue URL).
pub const QUEUE_URLS: &str = "TERN_QUEUE_URLS";
/// The role Step Functions assumes for the state machines Tern publishes; only the publishing function needs it.
pub const SFN_ROLE_ARN: &str = "TERN_SFN_ROLE_ARN";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("missing setting {0}: set it in the function's environment (infra/template.yaml)")]
    Missing(&'static str),
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where settings come from: the process environment in a function, a fixed map in tests.
#[derive(Debug, Clone)]
pub struct Env {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Process,
    Fixed(BTreeMap<String, String>),
}

impl Env {
    /// The process environment, read at the moment a setting is asked for.
    pub fn process() -> Self {
        Self {
            source: Source::Process,
        }
    }

    /// A fixed set of variables, ignoring the process environment.
    pub fn fixed<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        Self {
            source: Source::Fixed(vars),
        }
    }

    /// A setting that must be present and not blank.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name)?.ok_or(ConfigError::Missing(name))
    }

    /// A setting that may be absent; a blank value counts as absent, because an empty
    /// `Environment.Variables` entry in a template means "not set", never "the empty name".
    pub fn optional(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let value = match &self.source {
            Source::Process => match std::env::var(name) {
                Ok(value) => Some(value),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::Invalid {
                        name,
                        reason: "the value is not valid UTF-8".into(),
                    });
                }
            },
            Source::Fixed(vars) => vars.get(name).cloned(),
        };
        Ok(value
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty()))
    }

    /// A required `name=value,name=value` list, such as [`QUEUE_URLS`].
    pub fn required_map(&self, name: &'static str) -> Result<HashMap<String, String>, ConfigError> {
        parse_map(name, &self.required(name)?)
    }
}

fn parse_map(name: &'static str, raw: &str) -> Result<HashMap<String, String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name, reason };
    let mut map = HashMap::new();
    for entry in raw
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (key, value) = entry
            .split_once('=')
            .map(|(key, value)| (key.trim(), value.trim()))
            .filter(|(key, value)| !key.is_empty() && !value.is_empty())
            .ok_or_else(|| invalid(format!("entry `{entry}` is not `name=value`")))?;
        if map.insert(key.to_string(), value.to_string()).is_some() {
            return Err(invalid(format!("`{key}` is given twice")));
        }
    }
    if map.is_empty() {
        return Err(invalid("no `name=value` entries".into()));
    }
    Ok(map)
}

/// The settings the AWS adapters need, validated before any client is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub table_name: String,
    pub bucket: String,
    pub queue_urls: HashMap<String, String>,
    pub sfn_role_arn: Option<String>,
}

impl AwsSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            bucket: env.required(BUCKET)?,
            queue_urls: env.required_map(QUEUE_URLS)?,
            sfn_role_arn: env.optional(SFN_ROLE_ARN)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            (TABLE_NAME, "tern-staging"),
            (BUCKET, "tern-staging-lake"),
            (
                QUEUE_URLS,
                "send=https://sqs.eu-west-1.amazonaws.com/1/send, lake=https://sqs.eu-west-1.amazonaws.com/1/lake",
            ),
        ]
    }

    fn without(name: &str) -> Env {
        Env::fixed(complete().into_iter().filter(|(var, _)| *var != name))
    }

    fn with(name: &'static str, value: &'static str) -> Env {
        Env::fixed(
            complete()
                .into_iter()
                .filter(|(var, _)| *var != name)
                .chain([(name, value)]),
        )
    }

    #[test]
    fn complete_settings_are_read() {
        let settings = AwsSettings::from_env(&Env::fixed(
            complete()
                .into_iter()
                .chain([(SFN_ROLE_ARN, "arn:aws:iam::1:role/sfn")]),
        ))
        .unwrap();

        assert_eq!(settings.table_name, "tern-staging");
        assert_eq!(settings.bucket, "tern-staging-lake");
        assert_eq!(settings.queue_urls.len(), 2);
        assert_eq!(
            settings.queue_urls["send"],
            "https://sqs.eu-west-1.amazonaws.com/1/send"
        );
        assert_eq!(
            settings.queue_urls["lake"],
            "https://sqs.eu-west-1.amazonaws.com/1/lake"
        );
        assert_eq!(
            settings.sfn_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/sfn")
        );
    }

    #[test]
    fn the_step_functions_role_is_optional() {
        assert_eq!(
            AwsSettings::from_env(&Env::fixed(complete()))
                .unwrap()
                .sfn_role_arn,
            None
        );
    }

    #[test]
    fn each_missing_setting_is_named_in_one_line() {
        for name in [TABLE_NAME, BUCKET, QUEUE_URLS] {
            let error = AwsSettings::from_env(&without(name)).unwrap_err();
            assert_eq!(error, ConfigError::Missing(name));
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("missing setting {name}: ")),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn a_blank_setting_counts_as_missing() {
        assert_eq!(
            AwsSettings::from_env(&with(BUCKET, "  ")).unwrap_err(),
            ConfigError::Missing(BUCKET)
        );
    }

    #[test]
    fn a_queue_entry_without_a_url_is_invalid_and_named() {
        let error =
            AwsSettings::from_env(&with(QUEUE_URLS, "send=https://q/send,lake")).unwrap_err();
        assert_eq!(
            error,
            ConfigError::Invalid {
                name: QUEUE_URLS,
                reason: "entry `lake` is not `name=value`".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "invalid setting TERN_QUEUE_URLS: entry `lake` is not `name=value`"
        );
    }

    #[test]
    fn a_queue_named_twice_is_invalid() {
        let error = AwsSettings::from_env(&with(QUEUE_URLS, "send=https://q/a,send=https://q/b"))
            .unwrap_err();
        assert_eq!(
            error,
            ConfigError::Invalid {
                name: QUEUE_URLS,
                reason: "`send` is given twice".into()
            }
        );
    }

    #[test]
    fn a_queue_list_of_only_commas_is_invalid() {
        let error = AwsSettings::from_env(&with(QUEUE_URLS, ",,")).unwrap_err();
        assert_eq!(
            error,
            ConfigError::Invalid {
                name: QUEUE_URLS,
                reason: "no `name=value` entries".into()
            }
        );
    }

    #[test]
    fn a_url_may_contain_equals_signs() {
        let settings =
            AwsSettings::from_env(&with(QUEUE_URLS, "send=http://127.0.0.1:5055/q?x=1")).unwrap();
        assert_eq!(settings.queue_urls["send"], "http://127.0.0.1:5055/q?x=1");
    }
}
