//! Identifiers. The embedded engine names state machines, versions and executions with ARNs of Step
//! Functions' shape (region `local`, account `000000000000`), so code that reads an identifier behaves the
//! same on both engines.

use tern_ports::{PortError, PortResult};

const ARN_PREFIX: &str = "arn:aws:states:local:000000000000";
/// Step Functions' limit on state machine and execution names.
const MAX_NAME_LENGTH: usize = 80;
const FORBIDDEN: &[char] = &[
    '<', '>', '{', '}', '[', ']', '?', '*', '"', '#', '%', '\\', '^', '|', '~', '`', '$', '&', ',',
    ';', ':', '/',
];

pub fn machine_arn(machine: &str) -> String {
    format!("{ARN_PREFIX}:stateMachine:{machine}")
}

pub fn version_arn(machine: &str, version: i64) -> String {
    format!("{}:{version}", machine_arn(machine))
}

pub fn execution_arn(machine: &str, name: &str) -> String {
    format!("{ARN_PREFIX}:execution:{machine}:{name}")
}

/// What a start names: a state machine (its latest version) or one version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Latest(String),
    Version(String, i64),
}

pub fn parse_target(target: &str) -> PortResult<Target> {
    let not_found = || PortError::NotFound(format!("state machine `{target}`"));
    let rest = target
        .strip_prefix(&format!("{ARN_PREFIX}:stateMachine:"))
        .ok_or_else(not_found)?;
    match rest.split_once(':') {
        None => Ok(Target::Latest(rest.to_string())),
        Some((machine, version)) => {
            let version = version.parse::<i64>().map_err(|_| not_found())?;
            Ok(Target::Version(machine.to_string(), version))
        }
    }
}

/// Checks a state machine or execution name against Step Functions' rules, so that a name accepted here
/// is accepted on AWS too.
pub fn validate_name(kind: &str, name: &str) -> PortResult<()> {
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME_LENGTH {
        return Err(PortError::Invalid(format!(
            "{kind} name `{name}` must be 1 to {MAX_NAME_LENGTH} characters"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(c))
    {
        return Err(PortError::Invalid(format!(
            "{kind} name `{name}` must not contain {bad:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_machine_or_a_version() {
        assert_eq!(
            parse_target(&machine_arn("journey")).unwrap(),
            Target::Latest("journey".into())
        );
        assert_eq!(
            parse_target(&version_arn("journey", 3)).unwrap(),
            Target::Version("journey".into(), 3)
        );
        assert!(matches!(
            parse_target("journey"),
            Err(PortError::NotFound(_))
        ));
        assert!(matches!(
            parse_target(&format!("{}:latest", machine_arn("j"))),
            Err(PortError::NotFound(_))
        ));
    }

    #[test]
    fn names_follow_step_functions_rules() {
        assert!(validate_name("execution", "user-1_journey-2").is_ok());
        for bad in ["", "has space", "a:b", "a/b", "star*", &"x".repeat(81)] {
            assert!(
                matches!(validate_name("execution", bad), Err(PortError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
