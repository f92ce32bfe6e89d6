//! How the command ends when something went wrong: one line on stderr, exit code 1.

use std::process::ExitCode;

/// Prints `error: a: b: c` for an error and its chain of causes.
pub fn failure(error: &anyhow::Error) -> ExitCode {
    eprintln!(
        "error: {}",
        one_line(error.chain().map(ToString::to_string))
    );
    ExitCode::FAILURE
}

/// Help and version go out as clap writes them; a usage mistake becomes one line like any other error.
pub fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        // `tern` alone: the overview is the useful answer, printed as clap prints it.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::from(2),
        _ => {
            eprintln!(
                "error: {} (see --help)",
                usage_line(&error.render().to_string())
            );
            return ExitCode::FAILURE;
        }
    };
    match error.print() {
        Ok(()) => code,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The causes joined with `: `, without the `(os error N)` that the OS's messages carry, and without a
/// cause repeated by the message above it.
fn one_line(messages: impl Iterator<Item = String>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for message in messages {
        let message = strip_os_error(&message).trim().to_string();
        let repeated = parts
            .last()
            .is_some_and(|previous| previous.ends_with(&message));
        if !message.is_empty() && !repeated {
            parts.push(message);
        }
    }
    parts.join(": ")
}

fn strip_os_error(message: &str) -> &str {
    match message.rfind(" (os error ") {
        Some(start) if message.ends_with(')') => &message[..start],
        _ => message,
    }
}

/// clap's multi-line usage error squeezed onto one line: its message lines, without the `error:` label,
/// the usage synopsis and the pointer to `--help`.
fn usage_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("Usage:")
                && !line.starts_with("For more information")
        })
        .map(|line| line.strip_prefix("error:").unwrap_or(line).trim())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_joined_on_one_line_without_os_error_codes() {
        let messages = [
            "cannot open data directory /x/y",
            "Not a directory (os error 20)",
        ]
        .map(String::from);
        assert_eq!(
            one_line(messages.into_iter()),
            "cannot open data directory /x/y: Not a directory"
        );
    }

    #[test]
    fn a_cause_already_quoted_by_its_message_is_not_repeated() {
        let messages = ["cannot start: database is locked", "database is locked"].map(String::from);
        assert_eq!(
            one_line(messages.into_iter()),
            "cannot start: database is locked"
        );
    }

    #[test]
    fn clap_usage_errors_become_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <NAME>\n\nUsage: tern workspace create <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_line(rendered),
            "the following required arguments were not provided: <NAME>"
        );
    }
}
