//! Human and JSON rendering shared by the commands.

use collective_events::pb;
use collective_proto::api;

pub fn kind_name(kind: i32) -> &'static str {
    match pb::EntryKind::try_from(kind) {
        Ok(pb::EntryKind::Directory) => "dir",
        Ok(pb::EntryKind::File) => "file",
        _ => "?",
    }
}

pub fn entry_json(entry: &api::EntryInfo) -> serde_json::Value {
    serde_json::json!({
        "path": entry.path,
        "name": entry.name,
        "inode": entry.inode,
        "kind": kind_name(entry.kind),
        "size": entry.size,
        "version": entry.version,
        "modified_at_unix_ms": entry.modified_at_unix_ms,
        "chunks": entry.chunk_count,
        "replicas_min": entry.replicas_min,
        "replicas_wanted": entry.replicas_wanted,
    })
}

/// `2026-11-21 14:03:07` in UTC, or `-` for an unknown time.
pub fn format_time(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "-".into();
    }
    let secs = unix_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `1.5 GiB`-style sizes for humans.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_in_utc() {
        assert_eq!(format_time(0), "-");
        assert_eq!(format_time(1_000), "1970-01-01 00:00:01");
        assert_eq!(format_time(1_795_305_600_000), "2026-11-22 00:00:00");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}

/// Replica health of a file for `ls -l`: `2/2`, or `1/2!` when below the count wanted, `-` for
/// directories and empty files.
pub fn replica_health(entry: &api::EntryInfo) -> String {
    if entry.replicas_wanted == 0 {
        return "-".into();
    }
    let mark = if entry.replicas_min < entry.replicas_wanted {
        "!"
    } else {
        ""
    };
    format!("{}/{}{mark}", entry.replicas_min, entry.replicas_wanted)
}
