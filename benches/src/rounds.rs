//! Alternating rounds, the harness's default way to compare contestants.
//!
//! This VM's speed changes by up to 3x from one minute to the next. If
//! each contestant made all its runs in one block, a row could compare
//! two speed modes instead of two systems. So a scenario measures in
//! rounds ([`alternate`]): each round runs every contestant once, and
//! the order rotates from one round to the next (round `r` starts with
//! contestant `r mod n`). That way each contestant is measured in every
//! period of the run and takes every position in a round. With two
//! contestants the rounds go A B, B A, A B, ...
//!
//! The report then shows each contestant's median over the rounds and,
//! in a `, best round` row, its best round ([`median_and_best_rows`]).
//! A contestant whose measurement fails (an error, a panic, a hang) is
//! not measured again, and its cell shows that error.

use crate::report::{Cell, Report, Unit};

/// The contestant indexes of round `round` (0-based) among `n`: all of
/// them once, starting at `round mod n`.
///
/// ```text
/// order(3, 0) = 0 1 2,  order(3, 1) = 1 2 0,  order(3, 2) = 2 0 1
/// ```
pub fn order(n: usize, round: usize) -> impl Iterator<Item = usize> {
    let start = if n == 0 { 0 } else { round % n };
    (0..n).map(move |i| (start + i) % n)
}

/// Measures every contestant once per round, for `rounds` rounds, in the
/// order of [`order`]: `measure(contestant, round)` gives one sample.
/// Returns, per contestant (in `contestants` order), its samples in round
/// order, or the error of its first failed measurement (the contestant
/// then leaves the remaining rounds).
pub fn alternate<C: Copy, T>(
    contestants: &[C],
    rounds: usize,
    mut measure: impl FnMut(C, usize) -> Result<T, String>,
) -> Vec<Result<Vec<T>, String>> {
    let mut results: Vec<Result<Vec<T>, String>> = contestants
        .iter()
        .map(|_| Ok(Vec::with_capacity(rounds)))
        .collect();
    for round in 0..rounds {
        for i in order(contestants.len(), round) {
            let Ok(samples) = &mut results[i] else {
                continue;
            };
            match measure(contestants[i], round) {
                Ok(sample) => samples.push(sample),
                Err(e) => results[i] = Err(e),
            }
        }
    }
    results
}

/// [`alternate`] for a measurement that gives several samples at once
/// (a child process that made several timed runs): the samples of all
/// rounds, in order.
pub fn flatten<T>(results: Vec<Result<Vec<Vec<T>>, String>>) -> Vec<Result<Vec<T>, String>> {
    results
        .into_iter()
        .map(|r| r.map(|rounds| rounds.into_iter().flatten().collect()))
        .collect()
}

/// The best sample of each cell (the highest for a unit where higher is
/// better, the lowest otherwise); a failed cell keeps its error.
pub fn best_of(unit: &Unit, cells: &[Cell]) -> Vec<Cell> {
    cells
        .iter()
        .map(|c| {
            let best = c.samples.iter().copied().reduce(|a, b| {
                if unit.higher_is_better() {
                    a.max(b)
                } else {
                    a.min(b)
                }
            });
            match (best, &c.error) {
                (Some(v), _) => Cell::from_samples(vec![v]),
                (None, Some(e)) => Cell::failed(e.clone()),
                (None, None) => Cell::default(),
            }
        })
        .collect()
}

/// Adds the row `name` (each cell: the median of its rounds) and, when a
/// contestant has more than one round, the row `name, best round` (each
/// cell: its best round, see [`best_of`]).
pub fn median_and_best_rows(report: &mut Report, name: &str, unit: Unit, cells: Vec<Cell>) {
    let best = best_of(&unit, &cells);
    let several = cells.iter().any(|c| c.samples.len() > 1);
    report.row(name, unit.clone(), cells);
    if several {
        report.row(&format!("{name}, best round"), unit, best);
    }
}

/// The report parameter that says how the contestants were measured.
pub fn describe(report: &mut Report, rounds: usize) {
    report.param(
        "order",
        format!(
            "{rounds} alternating round(s): every contestant once per round, the order \
             rotating; median of the rounds, and the best round in `, best round` rows"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_runs_every_contestant_once_and_the_order_rotates() {
        let mut seen = Vec::new();
        let results = alternate(&['a', 'b', 'c'], 4, |c, round| {
            seen.push((round, c));
            Ok(round)
        });
        let order: String = seen.iter().map(|&(_, c)| c).collect();
        assert_eq!(order, ["abc", "bca", "cab", "abc"].concat());
        for r in results {
            assert_eq!(r.unwrap(), [0, 1, 2, 3], "one sample per round, in order");
        }
    }

    #[test]
    fn two_contestants_alternate_which_goes_first() {
        let firsts: Vec<usize> = (0..4).map(|r| order(2, r).next().unwrap()).collect();
        assert_eq!(firsts, [0, 1, 0, 1]);
        assert_eq!(order(0, 3).count(), 0);
    }

    #[test]
    fn a_failed_contestant_gets_its_error_and_leaves_the_rounds() {
        let mut runs_of_b = 0;
        let results = alternate(&["a", "b"], 3, |c, round| {
            if c == "b" {
                runs_of_b += 1;
                if round == 1 {
                    return Err(format!("b crashed in round {round}"));
                }
            }
            Ok(round as f64)
        });
        assert_eq!(results[0].as_ref().unwrap(), &[0.0, 1.0, 2.0]);
        assert_eq!(results[1].as_ref().unwrap_err(), "b crashed in round 1");
        assert_eq!(runs_of_b, 2, "not measured after its failure");
    }

    #[test]
    fn flatten_keeps_the_samples_of_every_round_in_order() {
        let results = vec![Ok(vec![vec![1, 2], vec![3]]), Err("no".to_owned())];
        let flat = flatten(results);
        assert_eq!(flat[0].as_ref().unwrap(), &[1, 2, 3]);
        assert_eq!(flat[1].as_ref().unwrap_err(), "no");
    }

    #[test]
    fn median_row_and_best_round_row() {
        let mut report = Report::new("t", &["insane", "tokio", "other"]);
        let rate = Unit::Rate { what: "ops" };
        let cells = vec![
            Cell::from_samples(vec![3.0, 9.0, 5.0, 4.0]),
            Cell::from_samples(vec![2.0, 1.0, 6.0]),
            Cell::failed("hung"),
        ];
        median_and_best_rows(&mut report, "x", rate, cells.clone());
        median_and_best_rows(&mut report, "t", Unit::Nanos, cells);
        let names: Vec<&str> = report.rows.iter().map(|r| r.benchmark.as_str()).collect();
        assert_eq!(names, ["x", "x, best round", "t", "t, best round"]);
        let values = |row: usize| -> Vec<Option<f64>> {
            report.rows[row].cells.iter().map(|c| c.value).collect()
        };
        assert_eq!(values(0), [Some(4.5), Some(2.0), None], "medians");
        assert_eq!(values(1), [Some(9.0), Some(6.0), None], "highest rate");
        assert_eq!(values(3), [Some(3.0), Some(1.0), None], "lowest duration");
        assert_eq!(report.rows[1].cells[2].error.as_deref(), Some("hung"));
    }

    #[test]
    fn one_round_gives_no_best_row() {
        let mut report = Report::new("t", &["a", "b"]);
        let cells = vec![Cell::from_samples(vec![1.0]), Cell::failed("no")];
        median_and_best_rows(&mut report, "x", Unit::Nanos, cells);
        assert_eq!(report.rows.len(), 1);
    }
}
