//! `HumanDuration`: the one way durations are written in Nest's config files
//! (`"250ms"`, `"30s"`, `"2m"`, `"1h30m"`).

use std::fmt;
use std::time::Duration;

/// A duration written with its unit, for config files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// Why a duration string does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {reason}; write e.g. \"250ms\", \"30s\", \"2m\" or \"1h30m\"")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl HumanDuration {
    /// Parses a sequence of `<integer><unit>` parts, units `ms`, `s`, `m`, `h`, `d`.
    ///
    /// # Errors
    /// [`DurationError`] when the string is empty, a part lacks its number
    /// or unit, or the total overflows.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let (number, tail) = rest.split_at(digits);
            let value: u64 = number.parse().map_err(|_| err("number too large"))?;
            let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, tail) = tail.split_at(unit_len);
            let part = match unit {
                "ms" => Duration::from_millis(value),
                "s" => Duration::from_secs(value),
                "m" => Duration::from_secs(value.checked_mul(60).ok_or_else(|| err("too large"))?),
                "h" => {
                    Duration::from_secs(value.checked_mul(3600).ok_or_else(|| err("too large"))?)
                }
                "d" => {
                    Duration::from_secs(value.checked_mul(86_400).ok_or_else(|| err("too large"))?)
                }
                "" => return Err(err("a unit (ms, s, m, h, d) is required")),
                _ => return Err(err("unknown unit; use ms, s, m, h or d")),
            };
            total = total.checked_add(part).ok_or_else(|| err("too large"))?;
            rest = tail;
        }
        Ok(Self(total))
    }

    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums_parse() {
        let p = |s| HumanDuration::parse(s).map(HumanDuration::get);
        assert_eq!(p("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(p("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(p("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(p("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(p("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn bad_strings_are_refused() {
        for bad in [
            "",
            "10",
            "s",
            "5 minutes",
            "1x",
            "-1s",
            "99999999999999999999s",
        ] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
