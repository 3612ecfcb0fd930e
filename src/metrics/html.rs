//! `latest.html`: the report as a page a person can read, with an inline SVG chart of macro-F1 and
//! the negative share over time. No scripts, no external fonts or styles.

use std::fmt::Write;

use super::aggregate::HistoryPoint;
use super::report::{Report, WindowReport};
use super::verdict::{ChallengerVerdict, Decision};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2} ms"))
}

fn window_rows(out: &mut String, label: &str, w: &WindowReport) {
    let buzz = if w.bad_buzz {
        "<strong class=\"alert\">BAD BUZZ</strong>"
    } else {
        "no"
    };
    let _ = write!(
        out,
        "<tr><th scope=\"row\">{label}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
        w.predictions,
        w.labelled,
        num(w.macro_f1),
        num(w.accuracy),
        num(w.negative.f1),
        num(w.positive.f1),
        pct(w.negative_share),
        pct(w.baseline_negative_share),
        ms(w.latency_ms.p50),
        ms(w.latency_ms.p95),
        num(w.psi),
        buzz,
    );
}

fn table(out: &mut String, caption: &str, windows: &super::report::Windows) {
    let _ = write!(
        out,
        "<table><caption>{}</caption><thead><tr><th scope=\"col\">window</th><th scope=\"col\">predictions</th>\
         <th scope=\"col\">labelled</th><th scope=\"col\">macro-F1</th><th scope=\"col\">accuracy</th>\
         <th scope=\"col\">F1 negative</th><th scope=\"col\">F1 positive</th><th scope=\"col\">negative share</th>\
         <th scope=\"col\">baseline</th><th scope=\"col\">latency p50 / p95</th><th scope=\"col\">PSI</th>\
         <th scope=\"col\">bad buzz</th></tr></thead><tbody>",
        escape(caption)
    );
    window_rows(out, "last hour", &windows.last_hour);
    window_rows(out, "last 24 h", &windows.last_24h);
    window_rows(out, "since start", &windows.since_start);
    out.push_str("</tbody></table>");
}

/// `MM-DD HH:MM` in UTC, for the time axis.
fn axis_time(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!(
            "{:02}-{:02} {:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => "?".into(),
    }
}

/// An SVG line chart of both series on a 0–1 scale, over a labelled UTC time axis.
fn chart(history: &[HistoryPoint]) -> String {
    let (width, height) = (720.0, 260.0);
    // Room on the left for the value labels and below for the time labels and axis title.
    let (left, right, top, bottom) = (40.0, 16.0, 12.0, 48.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"macro-F1 and negative share over time\" viewBox=\"0 0 {width} {height}\" width=\"100%\">"
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = top + (1.0 - tick) * plot_h;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\" text-anchor=\"end\">{tick:.2}</text>",
            width - right,
            left - 6.0,
            y + 4.0
        );
    }
    let axis_y = top + plot_h;
    let _ = write!(
        svg,
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{axis_y:.1}\" y2=\"{axis_y:.1}\" stroke=\"#555\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\" text-anchor=\"middle\">time (UTC)</text>",
        width - right,
        left + plot_w / 2.0,
        height - 6.0
    );
    if history.len() >= 2 {
        let (t0, t1) = (history[0].ts, history[history.len() - 1].ts);
        let span = ((t1 - t0) as f64).max(1.0);
        let x_of = |ts: i64| left + (ts - t0) as f64 / span * plot_w;
        for (k, anchor) in [(0, "start"), (1, "middle"), (2, "end")] {
            let ts = t0 + (t1 - t0) * k / 2;
            let x = x_of(ts);
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{axis_y:.1}\" y2=\"{:.1}\" stroke=\"#555\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\" text-anchor=\"{anchor}\">{}</text>",
                axis_y + 4.0,
                axis_y + 17.0,
                axis_time(ts)
            );
        }
        let point = |p: &HistoryPoint, v: f64| {
            let y = top + (1.0 - v.clamp(0.0, 1.0)) * plot_h;
            format!("{:.1},{y:.1}", x_of(p.ts))
        };
        for (values, colour, name) in [
            (
                history
                    .iter()
                    .filter_map(|p| p.macro_f1.map(|v| point(p, v)))
                    .collect::<Vec<_>>(),
                "#1f5fbf",
                "macro-F1 (24 h)",
            ),
            (
                history
                    .iter()
                    .filter_map(|p| p.negative_share.map(|v| point(p, v)))
                    .collect::<Vec<_>>(),
                "#b3261e",
                "negative share (1 h)",
            ),
        ] {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>",
                values.join(" ")
            );
        }
    } else {
        // Centred in the plot, between grid lines, clear of every axis label.
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#333\" text-anchor=\"middle\">The chart starts after the second report run.</text>",
            left + plot_w / 2.0,
            top + plot_h * 0.375 + 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The challenger section: the two models side by side on the same tweets, and the verdict.
fn challenger_section(out: &mut String, v: &ChallengerVerdict) {
    let verdict = match v.verdict {
        Decision::Promote => "<strong>promote</strong>".to_owned(),
        Decision::Keep => "keep the champion".to_owned(),
        Decision::NotEnoughLabels => format!("not enough labels ({} more needed)", v.labels_needed),
    };
    let interval = v.difference_ci95.map_or("–".into(), |[low, high]| {
        format!("[{low:+.3}, {high:+.3}]")
    });
    let _ = write!(
        out,
        "<h2>Challenger</h2><p id=\"verdict\">Verdict: {verdict}. {}</p>\
         <table><caption>{} (champion) against {} (challenger), on the same {} labelled tweets</caption>\
         <tr><th scope=\"col\"></th><th scope=\"col\">champion</th><th scope=\"col\">challenger</th></tr>\
         <tr><th scope=\"row\">macro-F1</th><td>{}</td><td>{}</td></tr>\
         <tr><th scope=\"row\">right where the other is wrong</th><td>{}</td><td>{}</td></tr>\
         </table><p>Difference (challenger − champion) {} with a bootstrap 95 % interval of {}; \
         McNemar's exact p-value {}. The rule: at least {} paired labelled tweets, the interval \
         above {:+.3} and p below {}.</p>",
        escape(&v.reason),
        escape(&v.champion),
        escape(&v.challenger),
        v.labelled,
        num(v.champion_macro_f1),
        num(v.challenger_macro_f1),
        v.disagreements.champion_right,
        v.disagreements.challenger_right,
        v.difference.map_or("–".into(), |d| format!("{d:+.3}")),
        interval,
        v.mcnemar_p.map_or("–".into(), |p| format!("{p:.2e}")),
        v.rule.min_labels,
        v.rule.min_gain,
        v.rule.alpha,
    );
}

pub fn render(report: &Report) -> String {
    let generated = report
        .generated_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>tweet-sentiment report {generated}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem;color:#111;background:#fff;max-width:75rem}}\
         table{{border-collapse:collapse;margin:1rem 0;font-size:.9rem}}\
         th,td{{border:1px solid #bbb;padding:.3rem .5rem;text-align:right}}\
         th[scope=row],caption{{text-align:left}} caption{{font-weight:600;padding:.3rem 0}}\
         .alert{{color:#fff;background:#b3261e;padding:0 .3rem}} .legend span{{margin-right:1.5rem}}\
         </style></head><body><h1>Sentiment report</h1><p>Generated {generated}. \
         This run read {} prediction and {} feedback records.</p>",
        report.run.prediction_records, report.run.feedback_records
    );
    out.push_str("<h2>Over time</h2><p class=\"legend\"><span style=\"color:#1f5fbf\">■ macro-F1, last 24 h</span><span style=\"color:#b3261e\">■ negative share, last hour</span></p>");
    out.push_str(&chart(&report.history));
    if let Some(verdict) = &report.challenger {
        challenger_section(&mut out, verdict);
    }
    out.push_str("<h2>All champion predictions</h2>");
    table(&mut out, "overall", &report.overall);
    if !report.models.is_empty() {
        out.push_str("<h2>By model version</h2>");
        for model in &report.models {
            let caption = format!("{}/{} ({})", model.name, model.version, model.role);
            table(&mut out, &caption, &model.windows);
        }
    }
    let f = &report.feedback;
    let _ = write!(
        out,
        "<h2>Feedback</h2><p>{} joined to their prediction ({} late), {} duplicates ignored, \
         {} for unknown predictions, {} waiting for their prediction. {} unreadable log lines skipped.</p>\
         <h2>How to read this page</h2><ul>\
         <li><em>Positive</em> is label 1. Precision, recall and F1 are given for both classes; the negative class is what a bad buzz is made of.</li>\
         <li>Macro-F1 is the mean of both classes' F1, over predictions that received a true label.</li>\
         <li>Negative share is the share of predictions scored negative, labelled or not; its baseline is the same share over the 24 hours before the window. <strong>Bad buzz</strong> is raised when the share jumps over its baseline, or is very high, on enough predictions.</li>\
         <li>PSI compares the distribution of scores with the one seen on validation data when the model was trained: below 0.1 is stable, above 0.25 is a shift worth a look.</li>\
         </ul></body></html>",
        f.joined, f.late, f.duplicate, f.unknown, report.feedback_waiting, report.invalid_lines
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(ts: i64, f1: f64) -> HistoryPoint {
        HistoryPoint {
            ts,
            macro_f1: Some(f1),
            negative_share: Some(0.3),
            predictions: 10,
        }
    }

    #[test]
    fn the_chart_has_a_labelled_time_axis() {
        // 2026-11-25 10:00 UTC to 12:00 UTC.
        let svg = chart(&[point(1_795_600_800, 0.7), point(1_795_608_000, 0.8)]);
        assert!(svg.contains("time (UTC)"));
        for label in ["11-25 10:00", "11-25 11:00", "11-25 12:00"] {
            assert!(svg.contains(label), "{label} missing from {svg}");
        }
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn a_chart_without_history_says_so_and_still_names_its_axis() {
        let svg = chart(&[point(1_795_600_800, 0.7)]);
        assert!(svg.contains("starts after the second report run"));
        assert!(svg.contains("time (UTC)"));
        assert!(!svg.contains("<polyline"));
    }
}
