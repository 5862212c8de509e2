//! Schedule expressions of launch plans: five-field cron (with the usual
//! aliases) and fixed rates. Checked here so that a malformed schedule is refused
//! at registration, not when EventBridge first tries to fire it.

use crate::proto::core::{CronSchedule, FixedRate, RateUnit};

const FIELDS: [(&str, u32, u32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7)];
const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A parsed cron expression: the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub minutes: Vec<u32>,
    pub hours: Vec<u32>,
    pub days_of_month: Vec<u32>,
    pub months: Vec<u32>,
    /// 0 = Sunday; 7 is folded into 0.
    pub days_of_week: Vec<u32>,
    /// Whether day-of-month / day-of-week were restricted (cron ORs them when both are).
    pub dom_restricted: bool,
    pub dow_restricted: bool,
}

pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let expanded = match expression.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        alias if alias.starts_with('@') => {
            return Err(format!(
                "unknown alias \"{alias}\"; use @yearly, @monthly, @weekly, @daily or @hourly, or five fields"
            ));
        }
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "cron \"{expression}\" has {} fields; write five: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\" for 03:00 daily",
            fields.len()
        ));
    }
    let mut sets = Vec::with_capacity(5);
    for (i, field) in fields.iter().enumerate() {
        sets.push(parse_field(field, i).map_err(|e| format!("cron \"{expression}\": {} field: {e}", FIELDS[i].0))?);
    }
    let mut days_of_week: Vec<u32> = sets[4].iter().map(|&d| d % 7).collect();
    days_of_week.sort_unstable();
    days_of_week.dedup();
    Ok(Cron {
        minutes: sets[0].clone(),
        hours: sets[1].clone(),
        days_of_month: sets[2].clone(),
        months: sets[3].clone(),
        days_of_week,
        dom_restricted: fields[2] != "*" && fields[2] != "?",
        dow_restricted: fields[4] != "*" && fields[4] != "?",
    })
}

fn parse_field(field: &str, index: usize) -> Result<Vec<u32>, String> {
    let (_, min, max) = FIELDS[index];
    let mut values = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("step \"{s}\" is not a number"))?;
                if step == 0 {
                    return Err("a step of 0 never advances".into());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, index)?, value(b, index)?)
        } else {
            let v = value(range, index)?;
            // "5/15" means from 5 to the end in steps of 15.
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("range {lo}-{hi} runs backwards"));
        }
        values.extend((lo..=hi).step_by(step as usize));
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

fn value(text: &str, index: usize) -> Result<u32, String> {
    let (_, min, max) = FIELDS[index];
    let lower = text.to_ascii_lowercase();
    let named = match index {
        3 => MONTHS.iter().position(|m| *m == lower).map(|i| i as u32 + 1),
        4 => DAYS.iter().position(|d| *d == lower).map(|i| i as u32),
        _ => None,
    };
    let v = match named {
        Some(v) => v,
        None => text.parse::<u32>().map_err(|_| format!("\"{text}\" is not a number"))?,
    };
    if v < min || v > max {
        return Err(format!("{v} is out of range {min}-{max}"));
    }
    Ok(v)
}

/// `6h`, `30m`, `1d`, `"2 hours"`, `"1 day"`.
pub fn parse_rate(text: &str) -> Result<FixedRate, String> {
    let hint = "write a rate such as 30m, 6h, 1d or \"2 hours\"";
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = compact.find(|c: char| !c.is_ascii_digit()).unwrap_or(compact.len());
    let value: u32 = compact[..digits].parse().map_err(|_| format!("cannot read rate \"{text}\"; {hint}"))?;
    let unit = match &compact[digits..] {
        "m" | "min" | "minute" | "minutes" => RateUnit::Minute,
        "h" | "hour" | "hours" => RateUnit::Hour,
        "d" | "day" | "days" => RateUnit::Day,
        other => return Err(format!("unknown rate unit \"{other}\" in \"{text}\"; {hint}")),
    };
    if value == 0 {
        return Err(format!("a rate of zero never fires; {hint}"));
    }
    Ok(FixedRate { value, unit: unit as i32 })
}

/// The IANA time zone names (tzdata 2025b, canonical names and links), one a line:
/// EventBridge Scheduler refuses any other name, so registration does too.
const TIMEZONES: &str = include_str!("timezones.txt");

pub fn check_timezone(zone: &str) -> Result<(), String> {
    if TIMEZONES.lines().any(|known| known == zone) {
        return Ok(());
    }
    let hint = "write an IANA name such as UTC, Europe/Paris or America/New_York";
    let folded = zone.trim().to_ascii_lowercase();
    match TIMEZONES.lines().find(|known| known.to_ascii_lowercase() == folded) {
        Some(known) => Err(format!("\"{zone}\" is not an IANA time zone; did you mean \"{known}\"?")),
        None => Err(format!("\"{zone}\" is not an IANA time zone; {hint}")),
    }
}

/// Days in each month, February in a leap year: a schedule fires if a date exists at all.
const DAYS_IN_MONTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Refuses a cron whose day-of-month never occurs in its months (`0 0 30 2 *`).
/// When day-of-week is restricted too, cron fires on either, so it always fires.
fn check_fires(cron: &Cron, expression: &str) -> Result<(), String> {
    if !cron.dom_restricted || cron.dow_restricted {
        return Ok(());
    }
    let fires = cron.months.iter().any(|&m| cron.days_of_month.iter().any(|&d| d <= DAYS_IN_MONTH[m as usize - 1]));
    if fires {
        return Ok(());
    }
    Err(format!(
        "cron \"{expression}\" never fires: no month it names has day {:?}; pick days that exist in those months",
        cron.days_of_month
    ))
}

pub fn cron_schedule(expression: &str, timezone: Option<&str>) -> Result<CronSchedule, String> {
    check_fires(&parse_cron(expression)?, expression)?;
    if let Some(zone) = timezone {
        check_timezone(zone)?;
    }
    Ok(CronSchedule { expression: expression.trim().to_string(), timezone: timezone.unwrap_or_default().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fields_expand() {
        let c = parse_cron("*/15 3 * * mon-fri").unwrap();
        assert_eq!(c.minutes, vec![0, 15, 30, 45]);
        assert_eq!(c.hours, vec![3]);
        assert_eq!(c.days_of_week, vec![1, 2, 3, 4, 5]);
        assert!(c.dow_restricted && !c.dom_restricted);
        assert_eq!(parse_cron("@daily").unwrap(), parse_cron("0 0 * * *").unwrap());
        assert_eq!(parse_cron("0 0 * * 7").unwrap().days_of_week, vec![0]);
        assert_eq!(parse_cron("5/20 * * jan,jul *").unwrap().minutes, vec![5, 25, 45]);
    }

    #[test]
    fn malformed_cron_is_explained() {
        assert!(parse_cron("0 3 * *").unwrap_err().contains("has 4 fields"));
        assert!(parse_cron("0 25 * * *").unwrap_err().contains("hour field: 25 is out of range 0-23"));
        assert!(parse_cron("*/0 * * * *").unwrap_err().contains("step of 0"));
        assert!(parse_cron("0 0 * foo *").unwrap_err().contains("month field"));
        assert!(parse_cron("@sometimes").unwrap_err().contains("unknown alias"));
        assert!(parse_cron("0 10-2 * * *").unwrap_err().contains("backwards"));
    }

    #[test]
    fn a_cron_that_can_never_fire_is_refused() {
        assert!(cron_schedule("0 0 30 2 *", None).unwrap_err().contains("never fires"));
        assert!(cron_schedule("0 0 31 4,6,9,11 *", None).unwrap_err().contains("never fires"));
        assert!(cron_schedule("0 0 29 2 *", None).is_ok(), "leap years have February 29");
        assert!(cron_schedule("0 0 30 2 mon", None).is_ok(), "day-of-week ORs with day-of-month");
        assert!(cron_schedule("0 0 31 1-3 *", None).is_ok());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("6h").unwrap(), FixedRate { value: 6, unit: RateUnit::Hour as i32 });
        assert_eq!(parse_rate("2 days").unwrap(), FixedRate { value: 2, unit: RateUnit::Day as i32 });
        assert!(parse_rate("0m").unwrap_err().contains("never fires"));
        assert!(parse_rate("5 weeks").unwrap_err().contains("unknown rate unit"));
    }

    #[test]
    fn timezones() {
        assert!(check_timezone("Europe/Paris").is_ok());
        assert!(check_timezone("America/Argentina/Buenos_Aires").is_ok());
        assert!(check_timezone("CET ").is_err());
        assert!(check_timezone("Paris").is_err());
        assert!(check_timezone("UTC").is_ok());
        assert!(check_timezone("Mars/Olympus_Mons").unwrap_err().contains("not an IANA time zone"));
        assert!(check_timezone("europe/paris").unwrap_err().contains("did you mean \"Europe/Paris\""));
    }
}
