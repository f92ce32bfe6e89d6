//! The checks the sender makes before every send, as pure functions over facts it has already loaded:
//! suppression, subscription, quiet hours and frequency caps. A message held back by quiet hours or a cap is
//! deferred (sent later), never dropped, unless a cap's rule says `"onExceeded": "skip"`.

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};
use serde::{Deserialize, Serialize};

/// A rule that does not make sense, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RuleError {
    pub field: String,
    pub reason: String,
}

fn rule_error(field: &str, reason: impl Into<String>) -> RuleError {
    RuleError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// What one timing check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    SendNow,
    /// Send at this instant, when the check will pass (the sender evaluates everything again then).
    DeferUntil(Timestamp),
    /// Do not send at all.
    Skip,
}

/// The hours of the recipient's day when marketing messages wait: `{"start": "21:00", "end": "08:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHoursRule {
    pub start: String,
    pub end: String,
    /// Transactional messages (no subscription group) ignore quiet hours unless this is true.
    #[serde(default)]
    pub include_transactional: bool,
}

/// A validated [`QuietHoursRule`]. `start == end` is an empty window (never quiet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
    pub include_transactional: bool,
}

impl QuietHoursRule {
    pub fn validate(&self) -> Result<QuietHours, RuleError> {
        Ok(QuietHours {
            start: parse_clock_time("quietHours.start", &self.start)?,
            end: parse_clock_time("quietHours.end", &self.end)?,
            include_transactional: self.include_transactional,
        })
    }
}

/// `HH:MM` on a 24-hour clock.
fn parse_clock_time(field: &str, text: &str) -> Result<Time, RuleError> {
    let invalid = || {
        rule_error(
            field,
            format!("{text:?} is not a time of day like \"21:00\""),
        )
    };
    let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(invalid());
    }
    let hours: i8 = hours.parse().map_err(|_| invalid())?;
    let minutes: i8 = minutes.parse().map_err(|_| invalid())?;
    Time::new(hours, minutes, 0, 0).map_err(|_| invalid())
}

/// The zone a recipient's clock is read in: theirs when their profile has a known IANA name, else the
/// workspace's.
pub fn recipient_time_zone(user_time_zone: Option<&str>, workspace: &TimeZone) -> TimeZone {
    user_time_zone
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or_else(|| workspace.clone())
}

/// Whether `now` falls in the quiet hours of `zone`, and if so until when. The window may wrap midnight
/// (`21:00`–`08:00`). Quiet hours end at the first instant the recipient's wall clock shows `end` or later,
/// so on a day when the clocks jump over `end` they end at the jump.
pub fn quiet_hours(rule: &QuietHours, now: Timestamp, zone: &TimeZone) -> Decision {
    if rule.start == rule.end {
        return Decision::SendNow;
    }
    let local = now.to_zoned(zone.clone());
    let time = local.time();
    let quiet = if rule.start < rule.end {
        rule.start <= time && time < rule.end
    } else {
        time >= rule.start || time < rule.end
    };
    if !quiet {
        return Decision::SendNow;
    }
    let today = local.date();
    let candidates = [today.yesterday().ok(), Some(today), today.tomorrow().ok()];
    candidates
        .into_iter()
        .flatten()
        .flat_map(|date| instants_showing(zone, date, rule.end))
        .filter(|instant| *instant > now)
        .min()
        .map_or(Decision::SendNow, Decision::DeferUntil)
}

/// The instants at which the wall clock of `zone` reaches `time` on `date`: one normally, two when the
/// clocks fall back over it, and the instant of the jump when they spring forward over it.
fn instants_showing(zone: &TimeZone, date: Date, time: Time) -> Vec<Timestamp> {
    let ambiguous = zone.to_ambiguous_timestamp(date.to_datetime(time));
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset
            .to_timestamp(date.to_datetime(time))
            .into_iter()
            .collect(),
        AmbiguousOffset::Fold { before, after } => [before, after]
            .into_iter()
            .filter_map(|offset| offset.to_timestamp(date.to_datetime(time)).ok())
            .collect(),
        AmbiguousOffset::Gap { before, .. } => {
            // Read with the offset in force before the jump, the time lies after the jump: the jump itself
            // is the latest transition before that instant.
            let after_jump = before.to_timestamp(date.to_datetime(time));
            after_jump
                .ok()
                .and_then(|instant| zone.preceding(instant).next())
                .map(|transition| transition.timestamp())
                .into_iter()
                .collect()
        }
    }
}

/// What happens to a message over the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnExceeded {
    /// Send it when enough earlier sends have left the window (the default: a capped message is late, not
    /// lost).
    #[default]
    Defer,
    /// Drop it, recorded as skipped (for messages that are pointless late, like a daily digest).
    Skip,
}

/// At most `max` marketing messages per `window` to one user: `{"max": 3, "window": "24h"}`. The window
/// is a duration: `"24h"`, `"90m"`, `"7d"` (days count as 24 hours) or ISO 8601 (`"PT24H"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrequencyCapRule {
    pub max: u32,
    pub window: String,
    #[serde(default)]
    pub on_exceeded: OnExceeded,
    /// Transactional messages are neither capped nor counted unless this is true.
    #[serde(default)]
    pub include_transactional: bool,
}

/// A validated [`FrequencyCapRule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub max: u32,
    pub window: SignedDuration,
    pub on_exceeded: OnExceeded,
    pub include_transactional: bool,
}

impl FrequencyCapRule {
    pub fn validate(&self) -> Result<FrequencyCap, RuleError> {
        if self.max == 0 {
            return Err(rule_error(
                "frequencyCap.max",
                "must be at least 1 (remove the cap instead of setting 0)",
            ));
        }
        let window = parse_window(&self.window)?;
        Ok(FrequencyCap {
            max: self.max,
            window,
            on_exceeded: self.on_exceeded,
            include_transactional: self.include_transactional,
        })
    }
}

fn parse_window(text: &str) -> Result<SignedDuration, RuleError> {
    let window = text.parse::<SignedDuration>().or_else(|_| {
        let span: Span = text.parse().map_err(|error| {
            rule_error(
                "frequencyCap.window",
                format!("{text:?} is not a duration like \"24h\" or \"7d\": {error}"),
            )
        })?;
        span.to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|error| rule_error("frequencyCap.window", error.to_string()))
    })?;
    if window <= SignedDuration::ZERO {
        return Err(rule_error("frequencyCap.window", "must be positive"));
    }
    Ok(window)
}

/// Whether one more message fits under the cap at `now`, given the instants of the user's recent sends that
/// the cap counts. Over the cap, a deferred message waits until enough of the sends in the window have left
/// it (with exactly `max` in the window: until the oldest leaves).
pub fn frequency_cap(cap: &FrequencyCap, now: Timestamp, recent_sends: &[Timestamp]) -> Decision {
    let window_start = now - cap.window;
    let mut in_window: Vec<Timestamp> = recent_sends
        .iter()
        .copied()
        .filter(|sent| *sent > window_start && *sent <= now)
        .collect();
    let max = cap.max as usize;
    if in_window.len() < max {
        return Decision::SendNow;
    }
    if cap.on_exceeded == OnExceeded::Skip {
        return Decision::Skip;
    }
    in_window.sort_unstable();
    // Once this many sends have left, `max - 1` remain and one more fits.
    let must_leave = in_window.len() - max + 1;
    Decision::DeferUntil(in_window[must_leave - 1] + cap.window)
}

/// A stable machine code for why a message was not sent now; stored on the message record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    MissingEmail,
    Suppressed,
    Unsubscribed,
    FrequencyCapped,
    Scheduled,
    QuietHours,
}

impl ReasonCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingEmail => "missing_email",
            Self::Suppressed => "suppressed",
            Self::Unsubscribed => "unsubscribed",
            Self::FrequencyCapped => "frequency_capped",
            Self::Scheduled => "scheduled",
            Self::QuietHours => "quiet_hours",
        }
    }
}

/// A reason: its code, and a sentence for people reading the message record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

impl Reason {
    fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What the sender does with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Send,
    Defer { until: Timestamp, reason: Reason },
    Skip { reason: Reason },
}

/// The workspace's delivery rules; both are optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryRules {
    pub quiet_hours: Option<QuietHours>,
    pub frequency_cap: Option<FrequencyCap>,
}

/// Everything [`decide`] needs, loaded by the sender.
#[derive(Debug, Clone, Copy)]
pub struct SendFacts<'a> {
    pub now: Timestamp,
    /// No subscription group: ignores subscriptions, and caps and quiet hours unless their rules include it.
    pub transactional: bool,
    /// The recipient's address, if the profile has one.
    pub email: Option<&'a str>,
    /// Why the address is on the suppression list (bounce, complaint, global unsubscribe), if it is.
    pub suppression: Option<&'a str>,
    /// Whether the user is subscribed to the message's group, with the group's opt-in/opt-out default
    /// already applied. Ignored for transactional messages.
    pub subscribed: bool,
    /// The request's `notBefore`.
    pub not_before: Option<Timestamp>,
    /// The IANA zone on the profile, if any.
    pub user_time_zone: Option<&'a str>,
    pub workspace_time_zone: &'a TimeZone,
    /// The instants of the user's recent sends that the frequency cap counts (marketing ones; all of them
    /// when the cap includes transactional messages).
    pub recent_sends: &'a [Timestamp],
    pub rules: &'a DeliveryRules,
}

/// The checks, in order: the ones that drop a message first (missing email, suppressed, unsubscribed, cap
/// with `skip`), then the ones that delay it (`notBefore`, quiet hours, cap with `defer`). When several
/// delay it, the latest instant wins (with its reason); the sender evaluates everything again then.
pub fn decide(facts: &SendFacts<'_>) -> Outcome {
    if let Some(reason) = skip_reason(facts) {
        return Outcome::Skip { reason };
    }
    let mut latest: Option<(Timestamp, Reason)> = None;
    for (until, reason) in deferrals(facts) {
        if latest.as_ref().is_none_or(|(current, _)| until > *current) {
            latest = Some((until, reason));
        }
    }
    match latest {
        Some((until, reason)) => Outcome::Defer { until, reason },
        None => Outcome::Send,
    }
}

fn skip_reason(facts: &SendFacts<'_>) -> Option<Reason> {
    if facts.email.is_none_or(|email| email.trim().is_empty()) {
        return Some(Reason::new(
            ReasonCode::MissingEmail,
            "The profile has no email address.",
        ));
    }
    if let Some(why) = facts.suppression {
        return Some(Reason::new(
            ReasonCode::Suppressed,
            format!("The address is on the suppression list: {why}."),
        ));
    }
    if !facts.transactional && !facts.subscribed {
        return Some(Reason::new(
            ReasonCode::Unsubscribed,
            "The user is not subscribed to the message's subscription group.",
        ));
    }
    if let Some(cap) = applicable_cap(facts)
        && frequency_cap(cap, facts.now, facts.recent_sends) == Decision::Skip
    {
        return Some(Reason::new(
            ReasonCode::FrequencyCapped,
            cap_message(cap, "skipped"),
        ));
    }
    None
}

fn deferrals(facts: &SendFacts<'_>) -> Vec<(Timestamp, Reason)> {
    let mut deferrals = Vec::new();
    if let Some(not_before) = facts.not_before
        && not_before > facts.now
    {
        deferrals.push((
            not_before,
            Reason::new(ReasonCode::Scheduled, "The request asks to send it later."),
        ));
    }
    if let Some(rule) = &facts.rules.quiet_hours
        && (!facts.transactional || rule.include_transactional)
    {
        let zone = recipient_time_zone(facts.user_time_zone, facts.workspace_time_zone);
        if let Decision::DeferUntil(until) = quiet_hours(rule, facts.now, &zone) {
            let zone_name = zone.iana_name().unwrap_or("the workspace's zone");
            deferrals.push((
                until,
                Reason::new(
                    ReasonCode::QuietHours,
                    format!(
                        "Quiet hours {}–{} in {zone_name}.",
                        rule.start.strftime("%H:%M"),
                        rule.end.strftime("%H:%M")
                    ),
                ),
            ));
        }
    }
    if let Some(cap) = applicable_cap(facts)
        && let Decision::DeferUntil(until) = frequency_cap(cap, facts.now, facts.recent_sends)
    {
        deferrals.push((
            until,
            Reason::new(ReasonCode::FrequencyCapped, cap_message(cap, "deferred")),
        ));
    }
    deferrals
}

fn applicable_cap<'f>(facts: &SendFacts<'f>) -> Option<&'f FrequencyCap> {
    facts
        .rules
        .frequency_cap
        .as_ref()
        .filter(|cap| !facts.transactional || cap.include_transactional)
}

fn cap_message(cap: &FrequencyCap, what: &str) -> String {
    format!("At most {} messages per {:#}; {what}.", cap.max, cap.window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn rule(start: &str, end: &str) -> QuietHours {
        QuietHoursRule {
            start: start.into(),
            end: end.into(),
            include_transactional: false,
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn quiet_hours_that_wrap_midnight() {
        let paris = zone("Europe/Paris");
        let night = rule("21:00", "08:00");
        // 22:30 in Paris (UTC+1 in November): deferred to 08:00 the next morning.
        assert_eq!(
            quiet_hours(&night, ts("2026-11-23T21:30:00Z"), &paris),
            Decision::DeferUntil(ts("2026-11-24T07:00:00Z"))
        );
        // 03:00 in Paris: deferred to 08:00 the same day.
        assert_eq!(
            quiet_hours(&night, ts("2026-11-24T02:00:00Z"), &paris),
            Decision::DeferUntil(ts("2026-11-24T07:00:00Z"))
        );
        // 08:00 exactly and 20:59 are outside.
        for now in ["2026-11-24T07:00:00Z", "2026-11-24T19:59:00Z"] {
            assert_eq!(
                quiet_hours(&night, ts(now), &paris),
                Decision::SendNow,
                "{now}"
            );
        }
    }

    #[test]
    fn quiet_hours_within_one_day_and_empty_ones() {
        let utc = TimeZone::UTC;
        let lunch = rule("12:00", "13:30");
        assert_eq!(
            quiet_hours(&lunch, ts("2026-11-23T12:10:00Z"), &utc),
            Decision::DeferUntil(ts("2026-11-23T13:30:00Z"))
        );
        assert_eq!(
            quiet_hours(&lunch, ts("2026-11-23T13:30:00Z"), &utc),
            Decision::SendNow
        );
        assert_eq!(
            quiet_hours(&rule("09:00", "09:00"), ts("2026-11-23T09:00:00Z"), &utc),
            Decision::SendNow
        );
    }

    #[test]
    fn quiet_hours_end_at_local_time_across_a_spring_forward() {
        let new_york = zone("America/New_York");
        // 2026-03-08: clocks go from 02:00 EST to 03:00 EDT. 22:00 EST on the 7th is 03:00Z on the 8th;
        // 08:00 EDT is 12:00Z, only 9 hours later.
        assert_eq!(
            quiet_hours(
                &rule("21:00", "08:00"),
                ts("2026-03-08T03:00:00Z"),
                &new_york
            ),
            Decision::DeferUntil(ts("2026-03-08T12:00:00Z"))
        );
        // Quiet hours that end inside the skipped hour end at the jump, 03:00 EDT (07:00Z).
        assert_eq!(
            quiet_hours(
                &rule("23:00", "02:30"),
                ts("2026-03-08T05:00:00Z"),
                &new_york
            ),
            Decision::DeferUntil(ts("2026-03-08T07:00:00Z"))
        );
    }

    #[test]
    fn quiet_hours_end_at_local_time_across_a_fall_back() {
        let new_york = zone("America/New_York");
        // 2026-11-01: clocks go from 02:00 EDT back to 01:00 EST. 23:00 EDT on Oct 31 is 03:00Z; 08:00 EST
        // is 13:00Z, 11 hours later.
        assert_eq!(
            quiet_hours(
                &rule("21:00", "08:00"),
                ts("2026-11-01T03:00:00Z"),
                &new_york
            ),
            Decision::DeferUntil(ts("2026-11-01T13:00:00Z"))
        );
        // Ending at 01:30, which happens twice: the first time, 01:30 EDT (05:30Z).
        assert_eq!(
            quiet_hours(
                &rule("23:00", "01:30"),
                ts("2026-11-01T04:00:00Z"),
                &new_york
            ),
            Decision::DeferUntil(ts("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn the_recipient_zone_falls_back_to_the_workspace() {
        let workspace = zone("Europe/Paris");
        assert_eq!(
            recipient_time_zone(Some("Asia/Tokyo"), &workspace).iana_name(),
            Some("Asia/Tokyo")
        );
        assert_eq!(
            recipient_time_zone(Some("Mars/Olympus"), &workspace).iana_name(),
            Some("Europe/Paris")
        );
        assert_eq!(
            recipient_time_zone(None, &workspace).iana_name(),
            Some("Europe/Paris")
        );
    }

    #[test]
    fn invalid_rules_name_the_field() {
        for (start, end, field) in [
            ("25:00", "08:00", "quietHours.start"),
            ("21:00", "8", "quietHours.end"),
            ("9:00", "08:00", "quietHours.start"),
        ] {
            let error = QuietHoursRule {
                start: start.into(),
                end: end.into(),
                include_transactional: false,
            }
            .validate()
            .unwrap_err();
            assert_eq!(error.field, field);
        }
        let cap = |max, window: &str| FrequencyCapRule {
            max,
            window: window.into(),
            on_exceeded: OnExceeded::Defer,
            include_transactional: false,
        };
        assert_eq!(
            cap(0, "24h").validate().unwrap_err().field,
            "frequencyCap.max"
        );
        assert_eq!(
            cap(3, "soon").validate().unwrap_err().field,
            "frequencyCap.window"
        );
        assert_eq!(
            cap(3, "-1h").validate().unwrap_err().field,
            "frequencyCap.window"
        );
        assert_eq!(
            cap(3, "7d").validate().unwrap().window,
            SignedDuration::from_hours(168)
        );
        assert_eq!(
            cap(3, "PT24H").validate().unwrap().window,
            SignedDuration::from_hours(24)
        );
    }

    #[test]
    fn rules_read_from_json() {
        let cap: FrequencyCapRule =
            serde_json::from_str(r#"{"max": 2, "window": "24h", "onExceeded": "skip"}"#).unwrap();
        assert_eq!(cap.on_exceeded, OnExceeded::Skip);
        assert!(
            serde_json::from_str::<FrequencyCapRule>(r#"{"max": 2, "window": "24h", "x": 1}"#)
                .is_err()
        );
        let quiet: QuietHoursRule =
            serde_json::from_str(r#"{"start": "21:00", "end": "08:00"}"#).unwrap();
        assert!(!quiet.include_transactional);
    }

    fn cap(max: u32, on_exceeded: OnExceeded) -> FrequencyCap {
        FrequencyCap {
            max,
            window: SignedDuration::from_hours(24),
            on_exceeded,
            include_transactional: false,
        }
    }

    #[test]
    fn a_frequency_cap_defers_until_the_oldest_send_leaves_the_window() {
        let now = ts("2026-11-23T12:00:00Z");
        let sends = [
            ts("2026-11-22T10:00:00Z"), // outside the window
            ts("2026-11-22T15:00:00Z"),
            ts("2026-11-23T09:00:00Z"),
        ];
        assert_eq!(
            frequency_cap(&cap(3, OnExceeded::Defer), now, &sends),
            Decision::SendNow
        );
        assert_eq!(
            frequency_cap(&cap(2, OnExceeded::Defer), now, &sends),
            Decision::DeferUntil(ts("2026-11-23T15:00:00Z"))
        );
        // Two over: both of the oldest must leave.
        assert_eq!(
            frequency_cap(&cap(1, OnExceeded::Defer), now, &sends),
            Decision::DeferUntil(ts("2026-11-24T09:00:00Z"))
        );
        assert_eq!(
            frequency_cap(&cap(2, OnExceeded::Skip), now, &sends),
            Decision::Skip
        );
    }

    struct Case {
        transactional: bool,
        email: Option<&'static str>,
        suppression: Option<&'static str>,
        subscribed: bool,
        not_before: Option<Timestamp>,
        recent: Vec<Timestamp>,
        rules: DeliveryRules,
        now: Timestamp,
    }

    impl Case {
        fn marketing() -> Self {
            Self {
                transactional: false,
                email: Some("ada@example.com"),
                suppression: None,
                subscribed: true,
                not_before: None,
                recent: Vec::new(),
                rules: DeliveryRules {
                    quiet_hours: Some(rule("21:00", "08:00")),
                    frequency_cap: Some(cap(1, OnExceeded::Defer)),
                },
                // 23:00 in UTC: inside quiet hours.
                now: ts("2026-11-23T23:00:00Z"),
            }
        }

        fn decide(&self) -> Outcome {
            decide(&SendFacts {
                now: self.now,
                transactional: self.transactional,
                email: self.email,
                suppression: self.suppression,
                subscribed: self.subscribed,
                not_before: self.not_before,
                user_time_zone: None,
                workspace_time_zone: &TimeZone::UTC,
                recent_sends: &self.recent,
                rules: &self.rules,
            })
        }
    }

    fn code(outcome: &Outcome) -> Option<&'static str> {
        match outcome {
            Outcome::Send => None,
            Outcome::Defer { reason, .. } | Outcome::Skip { reason } => Some(reason.code.as_str()),
        }
    }

    #[test]
    fn decide_skips_for_missing_email_suppression_and_unsubscription_first() {
        let mut case = Case::marketing();
        case.email = None;
        case.suppression = Some("hard bounce");
        assert!(matches!(case.decide(), Outcome::Skip { .. }));
        assert_eq!(code(&case.decide()), Some("missing_email"));
        case.email = Some("ada@example.com");
        assert_eq!(code(&case.decide()), Some("suppressed"));
        case.suppression = None;
        case.subscribed = false;
        assert_eq!(code(&case.decide()), Some("unsubscribed"));
        case.transactional = true;
        assert_eq!(
            case.decide(),
            Outcome::Send,
            "transactional ignores subscriptions"
        );
    }

    #[test]
    fn decide_defers_for_quiet_hours_and_takes_the_latest_deferral() {
        let mut case = Case::marketing();
        let Outcome::Defer { until, reason } = case.decide() else {
            panic!("expected a deferral");
        };
        assert_eq!(until, ts("2026-11-24T08:00:00Z"));
        assert_eq!(reason.code, ReasonCode::QuietHours);
        // A cap that frees up after quiet hours end wins.
        case.recent = vec![ts("2026-11-23T10:00:00Z")];
        let Outcome::Defer { until, reason } = case.decide() else {
            panic!("expected a deferral");
        };
        assert_eq!(until, ts("2026-11-24T10:00:00Z"));
        assert_eq!(reason.code, ReasonCode::FrequencyCapped);
        // notBefore even later.
        case.not_before = Some(ts("2026-11-25T00:00:00Z"));
        assert_eq!(code(&case.decide()), Some("scheduled"));
    }

    #[test]
    fn decide_skips_over_a_skipping_cap_and_exempts_transactional() {
        let mut case = Case::marketing();
        case.recent = vec![ts("2026-11-23T10:00:00Z")];
        case.rules.frequency_cap = Some(cap(1, OnExceeded::Skip));
        assert_eq!(code(&case.decide()), Some("frequency_capped"));
        assert!(matches!(case.decide(), Outcome::Skip { .. }));
        case.transactional = true;
        assert_eq!(case.decide(), Outcome::Send);
        case.rules.quiet_hours = Some(QuietHours {
            include_transactional: true,
            ..rule("21:00", "08:00")
        });
        assert_eq!(code(&case.decide()), Some("quiet_hours"));
    }

    #[test]
    fn decide_sends_when_nothing_holds_it() {
        let mut case = Case::marketing();
        case.now = ts("2026-11-23T12:00:00Z");
        assert_eq!(case.decide(), Outcome::Send);
    }
}
