//! Resource quantities and durations as people write them: `500m`, `1.5`,
//! `512Mi`, `2Gi`, `90s`, `1h30m`.

use serde_json::Value;
use std::time::Duration;

/// vCPUs to thousandths: `1` → 1000, `1.5` → 1500, `"500m"` → 500.
pub fn parse_cpu(value: &Value) -> Result<u32, String> {
    let hint = "write a number of vCPUs such as 1, 0.5, \"2\" or \"500m\"";
    // As written: `cpu: .nan` reaches here as null, which says nothing to its author.
    let written = match value {
        Value::Null => "(empty, or not a number: .nan and .inf are not numbers of vCPUs)".to_string(),
        other => other.to_string(),
    };
    let millis = match value {
        Value::Number(n) => n.as_f64().map(|v| v * 1000.0),
        Value::String(s) => match s.trim().strip_suffix('m') {
            Some(m) => m.parse::<u32>().ok().map(f64::from),
            None => s.trim().parse::<f64>().ok().map(|v| v * 1000.0),
        },
        _ => None,
    }
    .ok_or_else(|| format!("cannot read cpu {written}; {hint}"))?;
    if millis.is_nan() {
        return Err(format!("cannot read cpu {written}; {hint}"));
    }
    if millis > 1_000_000.0 {
        return Err(format!("cpu {value} is more than any machine has (1000 vCPUs)"));
    }
    if millis <= 0.0 {
        return Err(format!("cpu must be more than zero, found {value}; {hint}"));
    }
    if millis.fract() != 0.0 {
        return Err(format!("cpu {value} is finer than a thousandth of a vCPU; {hint}"));
    }
    Ok(millis as u32)
}

/// Memory to MiB, rounding up: `512Mi` → 512, `2Gi` → 2048, `1G` → 954.
pub fn parse_memory(value: &Value) -> Result<u64, String> {
    let hint = "write memory with a unit, such as 512Mi, 2Gi or 1G";
    let Value::String(text) = value else {
        return Err(format!("memory {value} has no unit; {hint}"));
    };
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().map_err(|_| format!("cannot read memory \"{text}\"; {hint}"))?;
    let bytes_per_unit: f64 = match unit {
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "" => return Err(format!("memory \"{text}\" has no unit; {hint}")),
        other => return Err(format!("unknown memory unit \"{other}\" in \"{text}\"; {hint}")),
    };
    if !number.is_finite() || number <= 0.0 {
        return Err(format!("memory must be more than zero, found \"{text}\""));
    }
    let mib = (number * bytes_per_unit / (1024.0 * 1024.0)).ceil();
    if mib > 64.0 * 1024.0 * 1024.0 {
        return Err(format!("memory \"{text}\" is more than any machine has"));
    }
    Ok(mib as u64)
}

/// A whole number of GPUs.
pub fn parse_gpu(value: &Value) -> Result<u32, String> {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(count) if count <= 64 => Ok(count as u32),
            Some(_) => Err(format!("gpu {n} is more than any instance has (64)")),
            None => Err(format!("gpu must be a whole number of GPUs (0, 1, 2, ...), found {n}")),
        },
        other => Err(format!("gpu must be a whole number of GPUs (0, 1, 2, ...), found {other}")),
    }
}

/// The longest duration a spec may give (timeouts, backoff, duration values): 365 days.
/// Longer values are refused rather than wrapped, so no timeout can turn into an
/// instant kill; it also fits every AWS field a duration is compiled into.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// `90s`, `10m`, `1h30m`, `2d`, `250ms`, or a bare number of seconds; at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let hint = "write a duration such as 90s, 10m, 1h30m or 2d";
    let text = text.trim();
    let too_large = || format!("duration \"{text}\" is too large: the maximum is {}", format_duration(MAX_DURATION));
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = text.parse::<u64>().map_err(|_| too_large())?;
        return check_duration(Duration::from_secs(seconds)).map_err(|_| too_large());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(format!("empty duration; {hint}"));
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("cannot read duration \"{text}\"; {hint}"));
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("duration \"{text}\" lacks a unit after {amount}; {hint}")),
            other => return Err(format!("unknown unit \"{other}\" in duration \"{text}\"; {hint}")),
        };
        let part = amount.checked_mul(millis_per_unit).map(Duration::from_millis).ok_or_else(too_large)?;
        total = total.checked_add(part).ok_or_else(too_large)?;
        if total > MAX_DURATION {
            return Err(too_large());
        }
    }
    Ok(total)
}

/// Refuses a duration longer than [`MAX_DURATION`], naming the maximum.
pub fn check_duration(duration: Duration) -> Result<Duration, String> {
    if duration > MAX_DURATION {
        return Err(format!(
            "duration of {}s is too large: the maximum is {}",
            duration.as_secs(),
            format_duration(MAX_DURATION)
        ));
    }
    Ok(duration)
}

/// The inverse of [`parse_duration`] for whole seconds: `5400s` → `1h30m`.
pub fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    let millis = duration.subsec_millis();
    if secs == 0 {
        return format!("{millis}ms");
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cpu_accepts_numbers_strings_and_millicores() {
        assert_eq!(parse_cpu(&json!(1)), Ok(1000));
        assert_eq!(parse_cpu(&json!(1.5)), Ok(1500));
        assert_eq!(parse_cpu(&json!("1.5")), Ok(1500));
        assert_eq!(parse_cpu(&json!("500m")), Ok(500));
        assert!(parse_cpu(&json!(0)).unwrap_err().contains("more than zero"));
        assert!(parse_cpu(&json!("two")).unwrap_err().contains("cannot read cpu"));
        // YAML's .nan arrives as null; 1e308 vCPUs is too many, not too few.
        assert!(parse_cpu(&Value::Null).unwrap_err().contains(".nan and .inf are not numbers of vCPUs"));
        assert!(parse_cpu(&json!(1e308)).unwrap_err().contains("more than any machine has"));
        assert!(parse_cpu(&json!(-1e308)).unwrap_err().contains("must be more than zero"));
        assert!(parse_cpu(&json!(0.0001)).unwrap_err().contains("thousandth"));
    }

    #[test]
    fn memory_needs_a_unit_and_rounds_up_to_mib() {
        assert_eq!(parse_memory(&json!("200Mi")), Ok(200));
        assert_eq!(parse_memory(&json!("2Gi")), Ok(2048));
        assert_eq!(parse_memory(&json!("1.5Gi")), Ok(1536));
        assert_eq!(parse_memory(&json!("1G")), Ok(954));
        assert!(parse_memory(&json!("1.5")).unwrap_err().contains("no unit"));
        assert!(parse_memory(&json!(512)).unwrap_err().contains("no unit"));
        assert!(parse_memory(&json!("2GB")).unwrap_err().contains("unknown memory unit \"GB\""));
    }

    #[test]
    fn gpu_is_a_whole_count() {
        assert_eq!(parse_gpu(&json!(2)), Ok(2));
        assert!(parse_gpu(&json!(0.5)).unwrap_err().contains("whole number"));
        assert!(parse_gpu(&json!(-1)).unwrap_err().contains("whole number"));
        assert!(parse_gpu(&json!("1")).unwrap_err().contains("whole number"));
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("120"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
    }

    #[test]
    fn huge_durations_are_too_large_not_wrapped() {
        for text in ["999999999999999d", "18446744073709551615s1s", "18446744073709551616", "366d", "8760h1s"] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("too large") && error.contains("maximum is 365d"), "{text}: {error}");
        }
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31536000"), Ok(MAX_DURATION));
        assert!(check_duration(Duration::from_secs(u64::MAX)).unwrap_err().contains("too large"));
    }
}
