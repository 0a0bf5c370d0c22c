//! Go reference-time layouts ("2006-01-02T15:04:05Z07:00") translated to jiff's strftime
//! directives. Hand-written because no maintained crate reads Go layouts; the translation is
//! a token table, and jiff does the actual parsing and formatting.

use jiff::Zoned;
use jiff::fmt::strtime;
use jiff::tz::TimeZone;

/// Go layout tokens, longest first where one is a prefix of another.
const TOKENS: &[(&str, &str)] = &[
    ("January", "%B"),
    ("Jan", "%b"),
    ("Monday", "%A"),
    ("Mon", "%a"),
    ("2006", "%Y"),
    ("Z07:00", "%:z"),
    ("Z0700", "%z"),
    ("-07:00", "%:z"),
    ("-0700", "%z"),
    ("MST", "%Z"),
    ("002", "%j"),
    ("01", "%m"),
    ("02", "%d"),
    ("_2", "%e"),
    ("03", "%I"),
    ("04", "%M"),
    ("05", "%S"),
    ("06", "%y"),
    ("15", "%H"),
    ("PM", "%p"),
    ("pm", "%P"),
    ("1", "%-m"),
    ("2", "%-d"),
    ("3", "%-I"),
    ("4", "%-M"),
    ("5", "%-S"),
];

/// Translates `layout`; `parsing` makes seconds accept an optional fraction, as Go's parser does.
fn translate(layout: &str, parsing: bool) -> (String, bool) {
    let mut out = String::new();
    let mut utc_z = false;
    let mut rest = layout;
    while !rest.is_empty() {
        if let Some(frac) = fraction(rest) {
            let digits = frac.len() - 1;
            out.push_str(&if frac.as_bytes()[1] == b'0' {
                format!("%.{digits}f")
            } else {
                "%.f".to_string()
            });
            rest = &rest[frac.len()..];
            continue;
        }
        if let Some((tok, dir)) = TOKENS.iter().find(|(t, _)| rest.starts_with(t)) {
            if tok.starts_with('Z') {
                utc_z = true;
            }
            out.push_str(dir);
            if parsing && *tok == "05" && fraction(&rest[2..]).is_none() {
                out.push_str("%.f");
            }
            rest = &rest[tok.len()..];
            continue;
        }
        let ch = rest.chars().next().unwrap_or_default();
        if ch == '%' {
            out.push_str("%%");
        } else {
            out.push(ch);
        }
        rest = &rest[ch.len_utf8()..];
    }
    (out, utc_z)
}

/// `.000` or `.999` (also with a comma) in a layout: fractional seconds.
fn fraction(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() < 2 || !matches!(b[0], b'.' | b',') || !matches!(b[1], b'0' | b'9') {
        return None;
    }
    let n = 1 + b[1..].iter().take_while(|c| **c == b[1]).count();
    // As Go: a run followed by a digit is not a fraction (".01" in "2006.01.02" is a month).
    if b.get(n).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(&s[..n])
}

/// Formats `t` as Go's `Time.Format(layout)` does.
pub(crate) fn format(t: &Zoned, layout: &str) -> Result<String, String> {
    let (fmt, utc_z) = translate(layout, false);
    let fmt = if utc_z && t.offset().seconds() == 0 {
        fmt.replace("%:z", "Z").replace("%z", "Z")
    } else {
        fmt
    };
    strtime::format(fmt.as_str(), t)
        .map_err(|e| format!("cannot format with layout {layout:?}: {e}"))
}

/// Parses `value` as Go's `time.ParseInLocation(layout, value, tz)`: a value with an offset keeps
/// it (UTC for `Z` or +00:00 where the layout allows `Z`), one without is read in `tz`.
pub(crate) fn parse(value: &str, layout: &str, tz: &TimeZone) -> Result<Zoned, String> {
    if let Some(head) = layout.strip_suffix("MST") {
        return parse_abbreviated(value, layout, head, tz);
    }
    let (fmt, utc_z) = translate(layout, true);
    let bad = |e: jiff::Error| format!("parsing time {value:?} as {layout:?}: {e}");
    let mut parsed = strtime::parse(fmt.as_str(), value);
    if parsed.is_err() && utc_z && value.ends_with('Z') {
        // Go's `Z07:00` reads a literal Z as UTC; jiff's %z wants digits.
        let z = if fmt.contains("%:z") {
            "+00:00"
        } else {
            "+0000"
        };
        parsed = strtime::parse(fmt.as_str(), format!("{}{z}", &value[..value.len() - 1]));
    }
    let tm = parsed.map_err(bad)?;
    match tm.offset() {
        Some(offset) => {
            let ts = tm.to_timestamp().map_err(bad)?;
            let zone = if offset.seconds() == 0 {
                TimeZone::UTC
            } else if tz.to_offset(ts) == offset {
                tz.clone()
            } else {
                TimeZone::fixed(offset)
            };
            Ok(ts.to_zoned(zone))
        }
        None => {
            let dt = tm.to_datetime().or_else(|_| {
                // A layout of only a clock time: Go's zero date, year 0 January 1.
                tm.to_time()
                    .map(|t| jiff::civil::date(0, 1, 1).to_datetime(t))
            });
            dt.map_err(bad)?.to_zoned(tz.clone()).map_err(bad)
        }
    }
}

/// A layout ending in a zone abbreviation (Go's RFC 822, 850 and 1123), read as Go's
/// `time.Parse` does: `UTC` is UTC; an abbreviation `tz` uses at that time means `tz`; `GMT+3`
/// keeps the instant and shows it 3 hours ahead (Go's quirk); any other name (`MST`) is a zone
/// with offset zero. jiff cannot parse abbreviations, so the word is split off first.
fn parse_abbreviated(
    value: &str,
    layout: &str,
    head: &str,
    tz: &TimeZone,
) -> Result<Zoned, String> {
    let start = value
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-'))
        .map_or(0, |i| i + 1);
    let (rest, abbrev) = value.split_at(start);
    let gmt_hours = abbrev.strip_prefix("GMT").filter(|h| !h.is_empty());
    let letters = abbrev.len() >= 3 && abbrev.bytes().take(3).all(|b| b.is_ascii_uppercase());
    let valid = match gmt_hours {
        Some(h) => {
            h.parse::<i8>().is_ok_and(|n| (-23..=23).contains(&n)) && h.starts_with(['+', '-'])
        }
        None => letters && abbrev.len() <= 5 && abbrev.bytes().all(|b| b.is_ascii_alphabetic()),
    };
    if !valid {
        return Err(format!(
            "parsing time {value:?} as {layout:?}: cannot parse {abbrev:?} as \"MST\""
        ));
    }
    let wall = parse(rest, head, &TimeZone::UTC)?;
    let ts = wall.timestamp();
    if abbrev == "UTC" {
        return Ok(ts.to_zoned(TimeZone::UTC));
    }
    if let Some(h) = gmt_hours.and_then(|h| h.parse::<i8>().ok()) {
        let offset = jiff::tz::Offset::from_hours(h).map_err(|e| e.to_string())?;
        return Ok(ts.to_zoned(TimeZone::fixed(offset)));
    }
    let local = wall
        .datetime()
        .to_zoned(tz.clone())
        .map_err(|e| e.to_string())?;
    if local
        .time_zone()
        .to_offset_info(local.timestamp())
        .abbreviation()
        == abbrev
    {
        return Ok(local);
    }
    Ok(ts.to_zoned(TimeZone::fixed(jiff::tz::Offset::ZERO)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_go_layouts() {
        let t = parse(
            "2023-04-23T00:30:00.000+0100",
            "2006-01-02T15:04:05-0700",
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(
            format(&t, "2006-01-02 15:04:05 -07:00").unwrap(),
            "2023-04-23 00:30:00 +01:00"
        );
        let u = parse(
            "2006-01-02T15:04:05Z",
            "2006-01-02T15:04:05Z07:00",
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(
            format(&u, "2006-01-02T15:04:05Z07:00").unwrap(),
            "2006-01-02T15:04:05Z"
        );
        assert_eq!(format(&u, "Jan _2 3:04PM").unwrap(), "Jan  2 3:04PM");
        let d = parse("2006.01.02", "2006.01.02", &TimeZone::UTC).unwrap();
        assert_eq!(format(&d, "Monday 02/01/06").unwrap(), "Monday 02/01/06");
        assert!(parse("error", "2006-01-02", &TimeZone::UTC).is_err());
        // Zone abbreviations, as Go's time.Parse reads them.
        let rfc1123 = "Mon, 02 Jan 2006 15:04:05 MST";
        let mst = parse("Sun, 01 Jun 2025 10:00:00 MST", rfc1123, &TimeZone::UTC).unwrap();
        assert_eq!(mst.timestamp().as_second(), 1_748_772_000);
        let gmt = parse("Sun, 01 Jun 2025 10:00:00 GMT+3", rfc1123, &TimeZone::UTC).unwrap();
        assert_eq!(gmt.timestamp().as_second(), 1_748_772_000);
        assert_eq!(gmt.hour(), 13);
        let paris = TimeZone::get("Europe/Paris").unwrap();
        let cest = parse("Sun, 01 Jun 2025 10:00:00 CEST", rfc1123, &paris).unwrap();
        assert_eq!(cest.timestamp().as_second(), 1_748_772_000 - 7200);
        assert!(parse("Sun, 01 Jun 2025 10:00:00 +0100", rfc1123, &TimeZone::UTC).is_err());
    }
}
