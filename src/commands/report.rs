//! `report`: run the metrics aggregation once, as the timer does.

use crate::config::ReportArgs;
use crate::metrics::{self, log_summary};

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let config = args.report.report_config(&args.store);
    let report =
        metrics::run_report(store.as_ref(), &config, time::OffsetDateTime::now_utc()).await?;
    log_summary(&report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
        println!(
            "read {} prediction and {} feedback records",
            report.run.prediction_records, report.run.feedback_records
        );
        for (name, w) in [
            ("last hour", &report.overall.last_hour),
            ("last 24 h", &report.overall.last_24h),
            ("since start", &report.overall.since_start),
        ] {
            println!(
                "{name:<12} predictions {:>7}  labelled {:>6}  macro-F1 {}  negative share {}  bad buzz {}",
                w.predictions,
                w.labelled,
                fmt(w.macro_f1),
                fmt(w.negative_share),
                w.bad_buzz
            );
        }
        if let Some(v) = &report.challenger {
            println!(
                "challenger {} vs champion {}: verdict {} ({}); {} paired labelled tweets, macro-F1 {} vs {}, difference 95% interval {}, McNemar p {}",
                v.challenger,
                v.champion,
                v.verdict.as_str(),
                v.reason,
                v.labelled,
                fmt(v.challenger_macro_f1),
                fmt(v.champion_macro_f1),
                v.difference_ci95
                    .map_or("n/a".to_owned(), |[l, h]| format!("[{l:+.3}, {h:+.3}]")),
                v.mcnemar_p.map_or("n/a".to_owned(), |p| format!("{p:.2e}"))
            );
        }
        let reports = &args.store.reports_container;
        println!(
            "wrote {} and {}",
            store.locate(reports, metrics::run::LATEST_JSON),
            store.locate(reports, metrics::run::LATEST_HTML)
        );
    }
    Ok(())
}
