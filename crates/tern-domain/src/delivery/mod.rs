//! The pure pieces of the send pipeline: the send request and its deterministic message id, the policy
//! checks the sender applies before sending, the retry backoff, and the SSRF guard for webhooks.
//! `docs/delivery.md` describes them for operators.

pub mod backoff;
pub mod policy;
pub mod request;
pub mod ssrf;

pub use backoff::{backoff, parse_retry_after, retry_delay};
pub use policy::{
    Decision, DeliveryRules, FrequencyCap, FrequencyCapRule, OnExceeded, Outcome, QuietHours,
    QuietHoursRule, Reason, ReasonCode, RuleError, SendFacts, decide, frequency_cap, quiet_hours,
    recipient_time_zone,
};
pub use request::{MESSAGE_ID_PREFIX, RequestError, SendRequest, SendSource, message_id};
pub use ssrf::{CheckedUrl, Refusal, check_address, check_url};
