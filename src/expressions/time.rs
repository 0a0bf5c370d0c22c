//! Go `time.Time` values for expressions: `now()`, `date()`, `timezone()` and the methods
//! expr-lang reaches through Go reflection, backed by jiff (which reads the IANA database
//! the way Go's `time.LoadLocation` does).

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

use super::go_layout;
use super::value::Val;

/// The layouts `date(s)` tries without one, in expr-lang v1.17.8's order: dates, clock times,
/// RFC 3339, then Go's RFC 822, 850 and 1123 (which end in a zone abbreviation).
const DEFAULT_LAYOUTS: &[&str] = &[
    "2006-01-02",
    "15:04:05",
    "2006-01-02 15:04:05",
    "2006-01-02T15:04:05Z07:00",
    "02 Jan 06 15:04 MST",
    "Monday, 02-Jan-06 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 MST",
];

/// Go's `time.Month` (1-12) and `time.Weekday` (0 is Sunday).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    Month(i8),
    Weekday(i8),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl TimeUnit {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            TimeUnit::Month(_) => "time.Month",
            TimeUnit::Weekday(_) => "time.Weekday",
        }
    }

    pub(crate) fn number(self) -> i64 {
        match self {
            TimeUnit::Month(n) | TimeUnit::Weekday(n) => n.into(),
        }
    }

    /// What Go's `String()` prints.
    pub(crate) fn name(self) -> &'static str {
        let name = match self {
            TimeUnit::Month(n) => usize::try_from(n - 1).ok().and_then(|i| MONTHS.get(i)),
            TimeUnit::Weekday(n) => usize::try_from(n).ok().and_then(|i| WEEKDAYS.get(i)),
        };
        name.copied().unwrap_or("%!(BAD)")
    }
}

/// `time.LoadLocation`: "" and "UTC" are UTC, "Local" the machine's zone.
pub(crate) fn load_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

/// The name Go's `Location.String()` prints.
pub(crate) fn location_name(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("Local").to_string()
}

pub(crate) fn now(tz: Option<&TimeZone>) -> Val {
    let now = Zoned::now();
    Val::Time(Box::new(match tz {
        Some(tz) => now.with_time_zone(tz.clone()),
        None => now,
    }))
}

/// `date(value[, layout[, zone]])` with an optional leading `timezone()` argument.
pub(crate) fn date(args: &[Val]) -> Result<Val, String> {
    let (tz, args) = match args.first() {
        Some(Val::Location(tz)) => ((**tz).clone(), &args[1..]),
        _ => (TimeZone::UTC, args),
    };
    let text = |i: usize| match args.get(i) {
        Some(Val::Str(s)) => Ok(s.as_str()),
        Some(other) => Err(format!(
            "cannot use {} as argument (type string) to call date",
            other.type_name()
        )),
        None => Err("not enough arguments to call date".to_string()),
    };
    let value = text(0)?;
    let parsed = match args.len() {
        1 => DEFAULT_LAYOUTS
            .iter()
            .find_map(|l| go_layout::parse(value, l, &tz).ok())
            .ok_or_else(|| format!("invalid date {value}"))?,
        2 => go_layout::parse(value, text(1)?, &tz)?,
        3 => go_layout::parse(value, text(1)?, &load_location(text(2)?)?)?,
        n => {
            return Err(format!(
                "too many arguments to call date: got {n}, want at most 3"
            ));
        }
    };
    Ok(Val::Time(Box::new(parsed)))
}

fn nanos(t: &Zoned) -> i128 {
    t.timestamp().as_nanosecond()
}

/// Go's `t.Sub(u)`, saturating at the limits of a Duration as Go does.
pub(crate) fn sub(t: &Zoned, u: &Zoned) -> i64 {
    (nanos(t) - nanos(u)).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

pub(crate) fn add(t: &Zoned, d: i64) -> Result<Val, String> {
    t.checked_add(SignedDuration::from_nanos(d))
        .map(|t| Val::Time(Box::new(t)))
        .map_err(|e| format!("time out of range: {e}"))
}

pub(crate) fn cmp(t: &Zoned, u: &Zoned) -> std::cmp::Ordering {
    t.timestamp().cmp(&u.timestamp())
}

/// Go's `Time.String()`: "2006-01-02 15:04:05.999999999 -0700 MST".
pub(crate) fn go_string(t: &Zoned) -> String {
    let abbrev = t
        .time_zone()
        .to_offset_info(t.timestamp())
        .abbreviation()
        .to_string();
    let base = go_layout::format(t, "2006-01-02 15:04:05.999999999 -0700").unwrap_or_default();
    format!("{base} {abbrev}")
}

/// RFC 3339 with nanoseconds as needed, as Go's `time.Time` marshals to JSON.
pub(crate) fn rfc3339(t: &Zoned) -> String {
    go_layout::format(t, "2006-01-02T15:04:05.999999999Z07:00").unwrap_or_default()
}

fn round_to(t: &Zoned, d: i64, round: bool) -> Result<Val, String> {
    if d <= 0 {
        return Ok(Val::Time(Box::new(t.clone())));
    }
    // Go rounds relative to the zero time (year 1), which for whole-second multiples dividing a
    // day is the same as relative to the Unix epoch.
    let n = nanos(t);
    let d = d as i128;
    let mut r = n - n.rem_euclid(d);
    if round && n.rem_euclid(d) * 2 >= d {
        r += d;
    }
    let ts = Timestamp::from_nanosecond(r).map_err(|e| format!("time out of range: {e}"))?;
    Ok(Val::Time(Box::new(ts.to_zoned(t.time_zone().clone()))))
}

/// The methods of Go's `time.Time`.
pub(crate) fn method(t: &Zoned, name: &str, args: &[Val]) -> Result<Val, String> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{name} takes {n} argument(s), got {}", args.len()))
        }
    };
    let time_arg = || match args.first() {
        Some(Val::Time(u)) => Ok(u.as_ref()),
        Some(other) => Err(format!(
            "cannot use {} as argument (type time.Time) to call {name}",
            other.type_name()
        )),
        None => Err(format!("not enough arguments to call {name}")),
    };
    let duration_arg = || match args.first() {
        Some(Val::Duration(d)) => Ok(*d),
        Some(other) => Err(format!(
            "cannot use {} as argument (type time.Duration) to call {name}",
            other.type_name()
        )),
        None => Err(format!("not enough arguments to call {name}")),
    };
    let int = |n: i64| Ok(Val::Int(n));
    match name {
        "After" | "Before" | "Equal" | "Compare" | "Sub" => {
            want(1)?;
            let u = time_arg()?;
            let o = cmp(t, u);
            match name {
                "After" => Ok(Val::Bool(o.is_gt())),
                "Before" => Ok(Val::Bool(o.is_lt())),
                "Equal" => Ok(Val::Bool(o.is_eq())),
                "Compare" => int(o as i64),
                _ => Ok(Val::Duration(sub(t, u))),
            }
        }
        "Add" => {
            want(1)?;
            add(t, duration_arg()?)
        }
        "Truncate" | "Round" => {
            want(1)?;
            round_to(t, duration_arg()?, name == "Round")
        }
        "Format" => {
            want(1)?;
            match args.first() {
                Some(Val::Str(layout)) => go_layout::format(t, layout).map(Val::Str),
                _ => Err("Format takes a layout string".to_string()),
            }
        }
        "In" => {
            want(1)?;
            match args.first() {
                Some(Val::Location(tz)) => {
                    Ok(Val::Time(Box::new(t.with_time_zone((**tz).clone()))))
                }
                _ => Err("In takes a location from timezone()".to_string()),
            }
        }
        _ => {
            want(0)?;
            match name {
                "Year" => int(t.year().into()),
                "Month" => Ok(Val::TimeUnit(TimeUnit::Month(t.month()))),
                "Day" => int(t.day().into()),
                "Hour" => int(t.hour().into()),
                "Minute" => int(t.minute().into()),
                "Second" => int(t.second().into()),
                "Nanosecond" => int(t.subsec_nanosecond().into()),
                "Weekday" => Ok(Val::TimeUnit(TimeUnit::Weekday(
                    t.weekday().to_sunday_zero_offset(),
                ))),
                "YearDay" => int(t.day_of_year().into()),
                "Unix" => int(t.timestamp().as_second()),
                "UnixMilli" => int(t.timestamp().as_millisecond()),
                "UnixNano" => int(nanos(t) as i64),
                "UTC" => Ok(Val::Time(Box::new(t.with_time_zone(TimeZone::UTC)))),
                "Local" => Ok(Val::Time(Box::new(t.with_time_zone(TimeZone::system())))),
                "Location" => Ok(Val::Location(Box::new(t.time_zone().clone()))),
                // Go's zero time is January 1, year 1, 00:00:00 UTC.
                "IsZero" => Ok(Val::Bool(
                    t.timestamp()
                        == jiff::civil::date(1, 1, 1)
                            .to_zoned(TimeZone::UTC)
                            .map(|z| z.timestamp())
                            .unwrap_or_default(),
                )),
                "String" => Ok(Val::Str(go_string(t))),
                other => Err(format!("type time.Time has no method {other}")),
            }
        }
    }
}
