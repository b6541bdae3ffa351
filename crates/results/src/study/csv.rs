//! The study's CSV files: `study.csv`, one row per interval (of an arm, a comparison or a
//! claim), and `cells.csv`, one row per class of every cell. Numbers in Rust's shortest
//! round-trip form; names with a comma have it replaced by `;`.

use super::{ClassMetric, ClassRow, GroupMetric, GroupRow, Interval, StudyReport};

const INTERVAL_HEADER: &str = "scope,arms,group,class,name,metric,mean,low,high,seeds,conclusion\n";

/// `study.csv`.
pub(super) fn intervals(report: &StudyReport) -> String {
    let mut csv = String::from(INTERVAL_HEADER);
    for arm in &report.arms {
        push_rows(&mut csv, "arm", &arm.arm, &arm.groups, &arm.classes);
    }
    for c in &report.comparisons {
        let arms = format!("{} - {}", c.b, c.a);
        push_rows(&mut csv, "difference", &arms, &c.groups, &c.classes);
    }
    for claim in &report.claims {
        for e in &claim.evidence {
            let scope = format!("claim_{}", claim.id);
            let arms = claim.arms.join(" ");
            let at = Row {
                scope: &scope,
                arms: &arms,
                group: "",
                class: "",
                name: "",
            };
            push(
                &mut csv,
                &at,
                &e.quantity,
                e.interval,
                claim.conclusion.as_str(),
            );
        }
    }
    csv
}

fn push_rows(csv: &mut String, scope: &str, arms: &str, groups: &[GroupRow], classes: &[ClassRow]) {
    for g in groups {
        let group = g.group.to_string();
        for metric in GroupMetric::ALL {
            let at = Row {
                scope,
                arms,
                group: &group,
                class: "",
                name: "",
            };
            push(csv, &at, metric.as_str(), g.metrics.get(metric), "");
        }
    }
    for c in classes {
        let group = c.group.map_or(String::new(), |g| g.to_string());
        let class = c.class.to_string();
        for metric in ClassMetric::ALL {
            let at = Row {
                scope,
                arms,
                group: &group,
                class: &class,
                name: &c.name,
            };
            push(csv, &at, metric.as_str(), c.metrics.get(metric), "");
        }
    }
}

/// Where a row of `study.csv` belongs.
struct Row<'a> {
    scope: &'a str,
    arms: &'a str,
    group: &'a str,
    class: &'a str,
    name: &'a str,
}

fn push(
    csv: &mut String,
    at: &Row<'_>,
    metric: &str,
    interval: Option<Interval>,
    conclusion: &str,
) {
    let numbers = interval.map_or(",,,0".to_string(), |i| {
        format!("{:e},{:e},{:e},{}", i.mean, i.low, i.high, i.n)
    });
    let plain = |text: &str| text.replace(',', ";");
    csv.push_str(&format!(
        "{},{},{},{},{},{},{numbers},{conclusion}\n",
        at.scope,
        plain(at.arms),
        at.group,
        at.class,
        plain(at.name),
        plain(metric),
    ));
}

/// `cells.csv`.
pub(super) fn cells(report: &StudyReport) -> String {
    let mut csv = String::from(
        "arm,seed,checkpoint_sha256,health,test_accuracy,class,name,group,train_count,lambda_min,lambda_max,ratio_min_max,trace,verdict,class_test_accuracy\n",
    );
    let optional = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:e}"));
    for cell in &report.cells {
        for c in &cell.classes {
            csv.push_str(&format!(
                "{},{},{},{},{:e},{},{},{},{},{:e},{:e},{},{:e},{},{}\n",
                cell.arm.replace(',', ";"),
                cell.seed,
                cell.checkpoint_sha256,
                cell.health.map_or("", |h| h.as_str()),
                cell.test_accuracy,
                c.class,
                c.name.replace(',', ";"),
                c.group.map_or(String::new(), |g| g.to_string()),
                c.train_count,
                c.lambda_min,
                c.lambda_max,
                optional(c.ratio_min_max),
                c.trace,
                c.verdict.as_str(),
                optional(c.test_accuracy),
            ));
        }
    }
    csv
}
