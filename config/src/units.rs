//! Human-friendly units in config files: durations ([`HumanDuration`]) and sizes ([`ByteSize`]).
//!
//! Both accept a string with a unit or a bare non-negative integer, and say in their error
//! message which spellings are accepted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What a duration may look like, for error messages.
const DURATION_SPELLINGS: &str =
    r#"a duration like "10s", "2m", "1h 30m", "500ms" or a whole number of seconds"#;

/// What a size may look like, for error messages.
const SIZE_SPELLINGS: &str = r#"a size like "500MB", "10 GiB", "1.5G" or a whole number of bytes (KB/MB/GB/TB = 1000^n, KiB/MiB/GiB/TiB = 1024^n)"#;

/// A value in a config file that is not a valid duration or size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseUnitError(String);

/// A duration written for humans: `"10s"`, `"2m"`, `"1h 30m"`, `"500ms"`, or an integer (seconds).
///
/// Serialized as the humantime string (`"1h 30m"`), which parses back to the same value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// No time at all.
    pub const ZERO: Self = Self(Duration::ZERO);

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    /// The plain [`Duration`].
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_duration(self.0), f)
    }
}

impl FromStr for HumanDuration {
    type Err = ParseUnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(secs) = t.parse() {
                return Ok(Self::from_secs(secs));
            }
        }
        humantime::parse_duration(t).map(Self).map_err(|e| {
            use humantime::DurationError as E;
            let why = match e {
                E::UnknownUnit { unit, .. } => format!("unknown unit `{unit}`"),
                E::NumberOverflow => "too large".to_owned(),
                E::Empty => "empty".to_owned(),
                E::InvalidCharacter(_) | E::NumberExpected(_) => "not understood".to_owned(),
            };
            ParseUnitError(format!(
                "invalid duration `{s}` ({why}); expected {DURATION_SPELLINGS}"
            ))
        })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_SPELLINGS)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(HumanDuration::from_secs(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n).map(HumanDuration::from_secs).map_err(|_| {
                    E::custom(format!(
                        "negative duration `{n}`; expected {DURATION_SPELLINGS}"
                    ))
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A size in bytes written for humans: `"500MB"`, `"10 GiB"`, `"1.5G"`, `"1024"`, or an integer.
///
/// Units are case-insensitive; `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB` are powers of 1000 and
/// `KiB`, `MiB`, `GiB`, `TiB` (or `Ki` …) powers of 1024. Fractions round to the nearest byte.
/// Serialized as the plain number of bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = ParseUnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_bytes(s.trim())
            .map(Self)
            .ok_or_else(|| ParseUnitError(format!("invalid size `{s}`; expected {SIZE_SPELLINGS}")))
    }
}

/// Parses `<digits>[.<digits>] [unit]` exactly (no floating point), `None` when invalid.
fn parse_bytes(t: &str) -> Option<u64> {
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let multiplier: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return None,
    };
    let digits = |d: &str| {
        if d.is_empty() {
            Some(0)
        } else {
            d.parse::<u128>().ok()
        }
    };
    let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let scaled = digits(int)?
        .checked_mul(scale)?
        .checked_add(digits(frac)?)?;
    let bytes = scaled.checked_mul(multiplier)?.checked_add(scale / 2)? / scale;
    u64::try_from(bytes).ok()
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_SPELLINGS)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n).map(ByteSize).map_err(|_| {
                    E::custom(format!("negative size `{n}`; expected {SIZE_SPELLINGS}"))
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A free-space threshold: a share of the volume (`"10%"`) or an amount (`"20GB"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreeSpace {
    /// Percent of the volume's size, 0-100.
    Percent(f64),
    /// Bytes.
    Bytes(u64),
}

impl FreeSpace {
    /// The threshold in bytes for a volume of `total` bytes.
    pub fn bytes_of(self, total: u64) -> u64 {
        match self {
            FreeSpace::Percent(p) => (total as f64 * p / 100.0) as u64,
            FreeSpace::Bytes(b) => b,
        }
    }
}

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeSpace::Percent(p) => write!(f, "{p}%"),
            FreeSpace::Bytes(b) => write!(f, "{b}"),
        }
    }
}

const FREE_SPACE_SPELLINGS: &str = r#"a percentage like "10%" or a size like "20GB""#;

impl FromStr for FreeSpace {
    type Err = ParseUnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = || {
            ParseUnitError(format!(
                "invalid free-space threshold `{s}`; expected {FREE_SPACE_SPELLINGS}"
            ))
        };
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            return Ok(FreeSpace::Percent(p));
        }
        parse_bytes(t).map(FreeSpace::Bytes).ok_or_else(bad)
    }
}

impl Serialize for FreeSpace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FreeSpace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FreeSpace;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(FREE_SPACE_SPELLINGS)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(FreeSpace::Bytes(n))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Doc<T> {
        v: T,
    }

    fn de<T: for<'de> Deserialize<'de>>(value: &str) -> Result<T, String> {
        toml::from_str::<Doc<T>>(&format!("v = {value}"))
            .map(|d| d.v)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_parse() {
        let ok = [
            (r#""10s""#, Duration::from_secs(10)),
            (r#""2m""#, Duration::from_secs(120)),
            (r#""1h 30m""#, Duration::from_secs(5400)),
            (r#""500ms""#, Duration::from_millis(500)),
            (r#""0s""#, Duration::ZERO),
            (r#"" 15 ""#, Duration::from_secs(15)),
            ("10", Duration::from_secs(10)),
            ("0", Duration::ZERO),
        ];
        for (input, want) in ok {
            assert_eq!(
                de::<HumanDuration>(input),
                Ok(HumanDuration(want)),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_durations_name_the_value_and_the_spellings() {
        for input in [r#""10 parsecs""#, r#""soon""#, r#""""#, "-5", "1.5", "true"] {
            let err = de::<HumanDuration>(input).unwrap_err();
            assert!(err.contains(r#""1h 30m""#), "{input}: {err}");
            let shown = input.trim_matches('"');
            assert!(shown.is_empty() || err.contains(shown), "{input}: {err}");
        }
    }

    #[test]
    fn durations_serialize_as_humantime_and_round_trip() {
        for (d, text) in [
            (HumanDuration::from_secs(10), "10s"),
            (HumanDuration::from_secs(5400), "1h 30m"),
            (HumanDuration::from_millis(500), "500ms"),
            (HumanDuration::ZERO, "0s"),
        ] {
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<HumanDuration>(&json).unwrap(), d);
        }
    }

    #[test]
    fn sizes_parse() {
        let ok = [
            (r#""500MB""#, 500_000_000),
            (r#""10 GiB""#, 10 << 30),
            (r#""1.5G""#, 1_500_000_000),
            (r#""1024""#, 1024),
            (r#""1kb""#, 1000),
            (r#""1KiB""#, 1024),
            (r#""0.5 Ki""#, 512),
            (r#""2 TB""#, 2_000_000_000_000),
            (r#""7 B""#, 7),
            (r#"".5k""#, 500),
            ("4096", 4096),
            ("0", 0),
        ];
        for (input, want) in ok {
            assert_eq!(de::<ByteSize>(input), Ok(ByteSize(want)), "{input}");
        }
    }

    #[test]
    fn bad_sizes_name_the_value_and_the_spellings() {
        let bad = [
            r#""12 parsecs""#,
            r#""MB""#,
            r#""1.2.3k""#,
            r#""""#,
            r#""99999999999 TiB""#,
        ];
        for input in bad.into_iter().chain(["-1", "1.5", "false"]) {
            let err = de::<ByteSize>(input).unwrap_err();
            assert!(err.contains("KiB"), "{input}: {err}");
            let shown = input.trim_matches('"');
            assert!(shown.is_empty() || err.contains(shown), "{input}: {err}");
        }
    }

    #[test]
    fn sizes_serialize_as_integers() {
        assert_eq!(serde_json::to_string(&ByteSize(1536)).unwrap(), "1536");
        assert_eq!(
            toml::to_string(&Doc { v: ByteSize(10) }).unwrap().trim(),
            "v = 10"
        );
    }
}
