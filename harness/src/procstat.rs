//! A process's or a thread's CPU time, from Linux's /proc/<pid>/stat and
//! /proc/<pid>/task/<tid>/stat. One parser for the run's own CPU figure (`run`) and the bench's
//! per-thread figures (`capacity::threads`).

/// Clock ticks per second: 100 on every Linux platform faultline targets.
const TICKS_PER_SECOND: f64 = 100.0;

/// The name and the CPU seconds (user and system) in the text of a stat file.
pub fn parse(stat: &str) -> Option<(String, f64)> {
    // "pid (name) state ...": the name may hold spaces and parentheses, so it ends at the
    // last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SECOND))
}

/// CPU seconds this process has used, all its threads together.
pub fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse(&stat).map(|(_, cpu)| cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_name_and_cpu_even_with_odd_names() {
        let line = "4242 (rdk:broker111) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 1 0";
        assert_eq!(parse(line), Some(("rdk:broker111".into(), 2.81)));
        let odd = "7 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 100 0 0 0";
        assert_eq!(parse(odd), Some(("a) b (c)".into(), 1.0)));
        assert_eq!(parse("7 (short) R 1 2"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let mut spin = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(30);
        while std::time::Instant::now() < until {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(own_cpu_seconds().is_some());
    }
}
