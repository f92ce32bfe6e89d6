//! What every AWS adapter does with an SDK failure before mapping it to a `PortError`: telling an
//! unreachable endpoint from an answer, reading the service's error code and message, recognising
//! throttling, and putting an error and its causes on one line (logs and problem responses want one).

use std::error::Error;

use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The SDK's failure type; every service crate re-exports this same one.
pub(crate) use aws_sdk_dynamodb::error::SdkError;

/// True when the request got no answer: the endpoint could not be reached or did not reply in time. The
/// adapters report it as `PortError::Unavailable`, naming where they tried.
pub(crate) fn is_unreachable<E, R>(error: &SdkError<E, R>) -> bool {
    matches!(
        error,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    )
}

/// The service's error code and message, empty when it gave none (or did not answer at all).
pub(crate) fn code_and_message<E, R>(error: &SdkError<E, R>) -> (&str, &str)
where
    E: ProvideErrorMetadata,
{
    let service = error.as_service_error();
    (
        service
            .and_then(ProvideErrorMetadata::code)
            .unwrap_or_default(),
        service
            .and_then(ProvideErrorMetadata::message)
            .unwrap_or_default(),
    )
}

/// The codes by which AWS services ask a caller to slow down, whatever the service; each adapter adds its
/// service's own.
pub(crate) fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded"
    )
}

/// The error, its causes and the SDK's debug view of it, on one line.
pub(crate) fn one_line(error: &(dyn Error + 'static)) -> String {
    collapse_whitespace(&DisplayErrorContext(error).to_string())
}

/// The error and its causes on one line, without the debug view: the SDK's own display stops at the
/// outermost layer ("dispatch failure"), which does not say what went wrong. A cause whose text an outer
/// layer already shows is left out.
pub(crate) fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    collapse_whitespace(&parts.join(": "))
}

/// `text` with every run of whitespace (newlines included) made one space.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|layer| layer as &(dyn Error + 'static))
        }
    }

    #[test]
    fn a_chain_is_one_line_without_repeats() {
        let error = Layer(
            "dispatch failure: connection refused",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("os\nerror 111", None))),
            ))),
        );
        assert_eq!(
            error_chain(&error),
            "dispatch failure: connection refused: os error 111"
        );
    }

    #[test]
    fn one_line_keeps_the_causes_and_has_no_newline() {
        let error = Layer("outer", Some(Box::new(Layer("inner\nline", None))));
        let line = one_line(&error);
        assert!(line.starts_with("outer: inner line ("), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn common_throttling_codes_are_recognised() {
        assert!(is_throttling("ThrottlingException"));
        assert!(!is_throttling("ValidationException"));
    }
}
