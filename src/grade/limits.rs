//! Limits as a suite writes them (`time = "1s"`, `memory = "256M"`), merged per test and
//! turned into the core's [`Limits`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::{format_duration, format_size, parse_duration, parse_size, Limits, MIB};

/// A duration written with its unit: `"1.5s"`, `"500ms"`. A bare number is refused: `1000`
/// was meant as milliseconds as often as seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TextOrNumber", into = "String")]
pub struct DurationValue(pub Duration);

/// A size written with its unit: `"256M"`, `"4096B"`. A bare number is refused: `256` was
/// meant as MiB far more often than as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TextOrNumber", into = "String")]
pub struct SizeValue(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Int(u64),
    Float(f64),
}

impl TextOrNumber {
    /// The text of a value that carries a unit, or the message that asks for one.
    fn with_unit(self, example: impl Fn(&str) -> String) -> Result<String, String> {
        let bare = match self {
            TextOrNumber::Text(t) if t.trim().ends_with(|c: char| c.is_ascii_alphabetic()) => {
                return Ok(t)
            }
            TextOrNumber::Text(t) => t.trim().to_string(),
            TextOrNumber::Int(n) => n.to_string(),
            TextOrNumber::Float(f) => f.to_string(),
        };
        Err(format!("{bare} has no unit: {}", example(&bare)))
    }
}

impl TryFrom<TextOrNumber> for DurationValue {
    type Error = String;
    fn try_from(v: TextOrNumber) -> Result<Self, String> {
        let text = v.with_unit(|n| format!("write \"{n}ms\" or \"{n}s\""))?;
        parse_duration(&text).map(DurationValue)
    }
}

impl From<DurationValue> for String {
    fn from(d: DurationValue) -> String {
        format!("{}ms", d.0.as_millis())
    }
}

impl TryFrom<TextOrNumber> for SizeValue {
    type Error = String;
    fn try_from(v: TextOrNumber) -> Result<Self, String> {
        let text = v.with_unit(|n| format!("write \"{n}M\" (or \"{n}B\" for bytes)"))?;
        parse_size(&text).map(SizeValue)
    }
}

impl From<SizeValue> for String {
    fn from(s: SizeValue) -> String {
        format!("{}B", s.0)
    }
}

/// Limits of a cell as the suite gives them; every field optional so tests can override a few.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSpec {
    /// CPU time of the cell (the judge's "time limit").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DurationValue>,
    /// Wall-clock time; default: [`default_wall_time`] of `time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_time: Option<DurationValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<SizeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Captured bytes of stdout (and of stderr); more is OLE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<SizeValue>,
    /// Size of the writable tmpfs (/tmp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<SizeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<SizeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

impl LimitsSpec {
    /// `self` with every field `over` sets replaced.
    pub fn overridden_by(&self, over: &LimitsSpec) -> LimitsSpec {
        LimitsSpec {
            time: over.time.or(self.time),
            wall_time: over.wall_time.or(self.wall_time),
            memory: over.memory.or(self.memory),
            pids: over.pids.or(self.pids),
            output: over.output.or(self.output),
            disk: over.disk.or(self.disk),
            stack: over.stack.or(self.stack),
            open_files: over.open_files.or(self.open_files),
        }
    }

    /// The core limits, with `defaults` for what is not given.
    pub fn to_limits(&self, defaults: &DefaultLimits) -> Limits {
        let time = self.time.map_or(defaults.time, |d| d.0);
        let wall = self.wall_time.map_or(default_wall_time(time), |d| d.0);
        Limits {
            wall_time: wall,
            cpu_time: Some(time),
            memory: Some(self.memory.map_or(defaults.memory, |s| s.0)),
            pids: Some(self.pids.unwrap_or(defaults.pids)),
            cpus: None,
            disk: self.disk.map_or(defaults.disk, |s| s.0),
            inodes: crate::spec::DEFAULT_INODES,
            output: self.output.map_or(defaults.output, |s| s.0),
            open_files: self.open_files.unwrap_or(256),
            file_size: None,
            stack: self.stack.map(|s| s.0),
        }
    }
}

/// The wall-clock limit of a cell whose suite gives only a CPU limit: 3 × CPU + 2 s. A
/// grader runs two tests at once on machines that are often busy, so the wall clock is only
/// the backstop for programs that wait (sleep, blocked reads); the CPU limit is the judge's
/// time limit. A wall-clock TLE is reported with `reason: wall` and a warning.
pub fn default_wall_time(cpu: Duration) -> Duration {
    cpu * 3 + Duration::from_secs(2)
}

/// What a cell gets when the suite says nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultLimits {
    pub time: Duration,
    pub memory: u64,
    pub pids: u64,
    pub disk: u64,
    pub output: u64,
}

impl DefaultLimits {
    /// Tests: 2 s CPU, 256 MiB, 64 processes, 8 MiB of output.
    pub fn test() -> Self {
        DefaultLimits {
            time: Duration::from_secs(2),
            memory: 256 * MIB,
            pids: 64,
            disk: 64 * MIB,
            output: 8 * MIB,
        }
    }

    /// Compilers: 30 s CPU, 1 GiB, 64 processes, 256 MiB of disk.
    pub fn compile() -> Self {
        DefaultLimits {
            time: Duration::from_secs(30),
            memory: 1024 * MIB,
            pids: 64,
            disk: 256 * MIB,
            output: MIB,
        }
    }

    /// Checkers: 10 s CPU, 256 MiB.
    pub fn checker() -> Self {
        DefaultLimits {
            time: Duration::from_secs(10),
            memory: 256 * MIB,
            pids: 64,
            disk: 64 * MIB,
            output: MIB,
        }
    }
}

/// `1 s, 256 MiB` for table headers.
pub fn describe(limits: &Limits) -> String {
    let time = limits
        .cpu_time
        .map_or("no CPU limit".to_string(), format_duration);
    let mem = limits
        .memory
        .map_or("no memory limit".to_string(), format_size);
    format!("{time}, {mem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrap {
        limits: LimitsSpec,
    }

    #[test]
    fn parses_text_and_numbers() {
        let w: Wrap =
            toml::from_str("[limits]\ntime = \"1.5s\"\nmemory = \"64M\"\nwall_time = \"3s\"\n")
                .unwrap();
        assert_eq!(
            w.limits.time,
            Some(DurationValue(Duration::from_millis(1500)))
        );
        assert_eq!(w.limits.memory, Some(SizeValue(64 * MIB)));
        assert_eq!(
            w.limits.wall_time,
            Some(DurationValue(Duration::from_secs(3)))
        );
    }

    #[test]
    fn bare_numbers_are_refused_with_the_units_to_write() {
        let err = |text: &str| toml::from_str::<Wrap>(text).err().unwrap().to_string();
        let e = err("[limits]\ntime = 1000\n");
        assert!(
            e.contains("line 2") && e.contains("write \"1000ms\" or \"1000s\""),
            "{e}"
        );
        let e = err("[limits]\n\nmemory = 256\n");
        assert!(e.contains("line 3") && e.contains("write \"256M\""), "{e}");
        let e = err("[limits]\nwall_time = \"2\"\n");
        assert!(e.contains("2 has no unit"), "{e}");
        let e = err("[limits]\ntime = 1.5\n");
        assert!(e.contains("1.5 has no unit"), "{e}");
        // Sizes survive a round trip through their serialized form.
        let s = String::from(SizeValue(4096));
        assert_eq!(
            SizeValue::try_from(TextOrNumber::Text(s)),
            Ok(SizeValue(4096))
        );
    }

    #[test]
    fn bad_values_name_the_line() {
        let err = toml::from_str::<Wrap>("[limits]\n\ntime = \"fast\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        let err = toml::from_str::<Wrap>("[limits]\ntimee = \"1s\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("timee"), "{err}");
    }

    #[test]
    fn overrides_and_defaults() {
        let base = LimitsSpec {
            time: Some(DurationValue(Duration::from_secs(1))),
            memory: Some(SizeValue(64 * MIB)),
            ..LimitsSpec::default()
        };
        let over = LimitsSpec {
            time: Some(DurationValue(Duration::from_secs(3))),
            ..LimitsSpec::default()
        };
        let l = base.overridden_by(&over).to_limits(&DefaultLimits::test());
        assert_eq!(l.cpu_time, Some(Duration::from_secs(3)));
        assert_eq!(l.wall_time, Duration::from_secs(11));
        assert_eq!(l.memory, Some(64 * MIB));
        assert_eq!(l.pids, Some(64));
    }
}
