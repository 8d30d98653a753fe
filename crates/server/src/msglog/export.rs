//! `relay log`: the message log read with its key and printed as text,
//! one line a record, sanitised as `chat` sanitises what peers send, for
//! export and audit. Reading never truncates: a torn tail is reported,
//! not cut.

use std::io::{self, Write};

use eaxchat_core::history::EntryKind;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::sanitize::sanitize;

use super::Record;

/// Writes `records` as text lines to `out`, only `room`'s if given:
///
/// ```text
/// 2026-12-01T22:16:56.123Z #lobby alice: hello
/// 2026-12-01T22:16:57.000Z #lobby * alice waves
/// 2026-12-01T22:17:00.000Z #lobby -> bob joined
/// 2026-12-01T22:18:00.000Z #lobby <- bob left
/// ```
///
/// A message from a shared-key connection with no name shows `-` as its
/// sender.
pub fn write_text(
    records: &[Record],
    room: Option<&RoomName>,
    out: &mut impl Write,
) -> io::Result<()> {
    for record in records {
        let (record_room, ts) = match record {
            Record::Message {
                room, ts_millis, ..
            }
            | Record::Join {
                room, ts_millis, ..
            }
            | Record::Leave {
                room, ts_millis, ..
            } => (room, *ts_millis),
        };
        if room.is_some_and(|room| room != record_room) {
            continue;
        }
        write!(out, "{} {record_room} ", utc(ts))?;
        match record {
            Record::Message {
                sender, text, kind, ..
            } => {
                let sender = sender.as_ref().map_or("-", |name| name.as_str());
                let text = sanitize(text);
                match kind {
                    EntryKind::Message => writeln!(out, "{sender}: {text}")?,
                    EntryKind::Action => writeln!(out, "* {sender} {text}")?,
                    EntryKind::Mls => {
                        writeln!(out, "{sender}: [end-to-end, {} bytes]", text.len())?
                    }
                }
            }
            Record::Join { name, .. } => writeln!(out, "-> {name} joined")?,
            Record::Leave { name, .. } => writeln!(out, "<- {name} left")?,
        }
    }
    Ok(())
}

/// Unix milliseconds as an RFC 3339 UTC time, to the millisecond.
pub fn utc(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eaxchat_proto::name::Name;

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_796_083_016_500), "2026-11-30T23:56:56.500Z");
    }

    #[test]
    fn records_print_sanitised_one_a_line() {
        let room = RoomName::new(b"lobby").expect("room");
        let alice = Name::new("alice").expect("name");
        let records = [
            Record::Join {
                room: room.clone(),
                name: alice.clone(),
                ts_millis: 0,
            },
            Record::Message {
                room: room.clone(),
                sender: Some(alice.clone()),
                text: b"hi\x1b[2J\nthere".as_slice().into(),
                ts_millis: 1,
                kind: EntryKind::Message,
                id: None,
            },
            Record::Message {
                room: RoomName::new(b"dev").expect("room"),
                sender: None,
                text: b"elsewhere".as_slice().into(),
                ts_millis: 2,
                kind: EntryKind::Action,
                id: None,
            },
        ];
        let mut out = Vec::new();
        write_text(&records, None, &mut out).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "1970-01-01T00:00:00.000Z #lobby -> alice joined");
        assert!(lines[1].starts_with("1970-01-01T00:00:00.001Z #lobby alice: hi"));
        assert!(!lines[1].contains('\x1b'), "{}", lines[1]);
        assert_eq!(lines[2], "1970-01-01T00:00:00.002Z #dev * - elsewhere");
        let mut only = Vec::new();
        write_text(&records, Some(&room), &mut only).expect("written");
        assert_eq!(String::from_utf8_lossy(&only).lines().count(), 2);
    }
}
