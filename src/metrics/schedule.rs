//! NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`), the format of the
//! Functions timer trigger, so that `serve` without a host runs the report on the same schedule
//! as the deployed timer.

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    fields: [Vec<bool>; 6],
}

const RANGES: [(u32, u32); 6] = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)];

fn parse_field(text: &str, (lo, hi): (u32, u32)) -> Result<Vec<bool>, String> {
    let mut allowed = vec![false; hi as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step 0 in {part:?}"));
        }
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = a.parse().map_err(|_| format!("bad number in {part:?}"))?;
            let b = b.parse().map_err(|_| format!("bad number in {part:?}"))?;
            (a, b)
        } else {
            let v = range
                .parse()
                .map_err(|_| format!("bad number in {part:?}"))?;
            // `5/15` means from 5 every 15.
            (v, if part.contains('/') { hi } else { v })
        };
        if start < lo || end > hi || start > end {
            return Err(format!("{part:?} is outside {lo}-{hi}"));
        }
        for v in (start..=end).step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    Ok(allowed)
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Self, String> {
        let parts: Vec<&str> = expression.split_whitespace().collect();
        if parts.len() != 6 {
            return Err(format!(
                "{expression:?} needs six fields: second minute hour day month day-of-week"
            ));
        }
        let mut fields: [Vec<bool>; 6] = Default::default();
        for (i, part) in parts.iter().enumerate() {
            fields[i] = parse_field(part, RANGES[i])?;
        }
        Ok(Self { fields })
    }

    fn matches_minute(&self, t: OffsetDateTime) -> bool {
        self.fields[1][t.minute() as usize]
            && self.fields[2][t.hour() as usize]
            && self.fields[3][t.day() as usize]
            && self.fields[4][u8::from(t.month()) as usize]
            && self.fields[5][t.weekday().number_days_from_sunday() as usize]
    }

    /// The first time strictly after `after` that the schedule fires, within a year.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .ok()?;
        let mut minute = after.replace_second(0).ok()?;
        for _ in 0..(366 * 24 * 60) {
            if self.matches_minute(minute) {
                for second in 0..60u8 {
                    let candidate = minute.replace_second(second).ok()?;
                    if self.fields[0][second as usize] && candidate > after {
                        return Some(candidate);
                    }
                }
            }
            minute += Duration::minutes(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_fifteen_minutes() {
        let s = Schedule::parse("0 */15 * * * *").unwrap();
        assert_eq!(
            s.next_after(datetime!(2026-11-25 10:07:30 UTC)),
            Some(datetime!(2026-11-25 10:15:00 UTC))
        );
        assert_eq!(
            s.next_after(datetime!(2026-11-25 10:15:00 UTC)),
            Some(datetime!(2026-11-25 10:30:00 UTC))
        );
        assert_eq!(
            s.next_after(datetime!(2026-11-25 23:59:59 UTC)),
            Some(datetime!(2026-11-26 00:00:00 UTC))
        );
    }

    #[test]
    fn lists_ranges_and_weekdays() {
        // 09:30 on weekdays (Monday to Friday); 2026-11-28 is a Saturday.
        let s = Schedule::parse("0 30 9 * * 1-5").unwrap();
        assert_eq!(
            s.next_after(datetime!(2026-11-27 10:00:00 UTC)),
            Some(datetime!(2026-11-30 09:30:00 UTC))
        );
        let s = Schedule::parse("*/20 0,30 * * * *").unwrap();
        assert_eq!(
            s.next_after(datetime!(2026-11-25 10:00:20 UTC)),
            Some(datetime!(2026-11-25 10:00:40 UTC))
        );
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in [
            "* * * * *",
            "0 61 * * * *",
            "0 */0 * * * *",
            "x * * * * *",
            "0 5-1 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
