use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// Time, behind a port so that journeys, segment windows and schedules can run on a virtual clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to: simulations and tests advance it instead of sleeping.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<Timestamp>,
}

impl VirtualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.now.lock().expect("virtual clock lock poisoned");
        *now = now.checked_add(by).expect("virtual clock overflowed");
    }

    pub fn set(&self, to: Timestamp) {
        *self.now.lock().expect("virtual clock lock poisoned") = to;
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().expect("virtual clock lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_advanced() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = VirtualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_hours(30));
        assert_eq!(clock.now().to_string(), "2026-01-02T06:00:00Z");
    }
}
