//! Reading attributes of stored items: a missing or malformed one is `DomainError::Corrupt` naming the item's
//! key, so that the server log says which item to look at.

use jiff::Timestamp;
use tern_ports::Item;

use crate::{DomainError, DomainResult};

/// The error for a stored item that does not hold what Tern wrote: `what` continues a sentence whose subject
/// is the item's key (`"lacks …"`, `"has an invalid …"`).
pub(crate) fn corrupt(item: &Item, what: &str) -> DomainError {
    let key = item.key().map_or_else(
        || "an item without a key".to_string(),
        |k| format!("{}/{}", k.pk, k.sk),
    );
    DomainError::Corrupt(format!("{key} {what}"))
}

/// A string attribute every item of its kind has.
pub(crate) fn required_s<'a>(item: &'a Item, name: &str) -> DomainResult<&'a str> {
    item.get_s(name)
        .ok_or_else(|| corrupt(item, &format!("lacks the string attribute {name:?}")))
}

/// A time attribute (RFC 3339 text), when the item has one.
pub(crate) fn optional_time(item: &Item, name: &str) -> DomainResult<Option<Timestamp>> {
    item.get_s(name)
        .map(|text| {
            text.parse()
                .map_err(|e| corrupt(item, &format!("has an invalid {name} {text:?}: {e}")))
        })
        .transpose()
}

/// A time attribute every item of its kind has.
pub(crate) fn required_time(item: &Item, name: &str) -> DomainResult<Timestamp> {
    optional_time(item, name)?
        .ok_or_else(|| corrupt(item, &format!("lacks the string attribute {name:?}")))
}

#[cfg(test)]
mod tests {
    use tern_ports::Key;

    use super::*;

    fn item() -> Item {
        Item::new(&Key::new("WS#w#U#u", "PROFILE"))
            .with("name", "Ada")
            .with("seen", "2026-01-02T03:04:05Z")
            .with("broken", "yesterday")
    }

    fn corrupt_message(error: DomainError) -> String {
        match error {
            DomainError::Corrupt(message) => message,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn present_attributes_are_read() {
        let item = item();
        assert_eq!(required_s(&item, "name").unwrap(), "Ada");
        let seen: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(optional_time(&item, "seen").unwrap(), Some(seen));
        assert_eq!(required_time(&item, "seen").unwrap(), seen);
        assert_eq!(optional_time(&item, "absent").unwrap(), None);
    }

    #[test]
    fn a_missing_attribute_names_the_item_and_the_attribute() {
        let message = corrupt_message(required_s(&item(), "absent").unwrap_err());
        assert_eq!(
            message,
            "WS#w#U#u/PROFILE lacks the string attribute \"absent\""
        );
        let message = corrupt_message(required_time(&item(), "absent").unwrap_err());
        assert!(message.contains("\"absent\""), "{message}");
    }

    #[test]
    fn a_malformed_time_names_the_item_the_attribute_and_the_text() {
        let message = corrupt_message(optional_time(&item(), "broken").unwrap_err());
        assert!(
            message.starts_with("WS#w#U#u/PROFILE has an invalid broken \"yesterday\""),
            "{message}"
        );
    }
}
