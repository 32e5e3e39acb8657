//! Shadow steps for operators: the totals per agent and the worst recordings in
//! `fleetctl rollout status`, and `fleetctl rollout shadow-report [ID] -o table|json|yaml|csv`,
//! every comparison of a rollout.

use h264_proto::v1::{ShadowRecord, ShadowReportRequest, ShadowStatus};
use serde::Serialize;

use super::client::{self, Failure};
use super::output::{emit, time, visible, Format, Table};

/// One comparison, as printed.
#[derive(Debug, Serialize)]
pub struct RecordView {
    agent: String,
    step: u32,
    at: String,
    file: String,
    candidate_ok: bool,
    candidate_error: String,
    production_secs: f64,
    candidate_secs: f64,
    production_layout: String,
    candidate_layout: String,
    production_cues: u32,
    candidate_cues: u32,
    cues_identical: bool,
    caption_difference: String,
    production_sidecar_cues: u32,
    candidate_sidecar_cues: u32,
    sidecar_formats: String,
    sidecar_difference: String,
    production_bytes: u64,
    candidate_bytes: u64,
    size_ratio: f64,
    production_encode_secs: f64,
    candidate_encode_secs: f64,
    speed_ratio: f64,
    production_ssim: f64,
    candidate_ssim: f64,
    production_psnr: f64,
    candidate_psnr: f64,
    production_cpu_secs: f64,
    candidate_cpu_secs: f64,
    cpu_ratio: f64,
}

fn record(r: &ShadowRecord) -> RecordView {
    let c = r.comparison.clone().unwrap_or_default();
    RecordView {
        agent: r.agent_id.clone(),
        step: r.step,
        at: time(c.at_ms),
        size_ratio: c.size_ratio(),
        speed_ratio: c.speed_ratio(),
        cpu_ratio: c.cpu_ratio(),
        file: c.file,
        candidate_ok: c.candidate_ok,
        candidate_error: c.candidate_error,
        production_secs: c.production_secs,
        candidate_secs: c.candidate_secs,
        production_layout: c.production_layout,
        candidate_layout: c.candidate_layout,
        production_cues: c.production_cues,
        candidate_cues: c.candidate_cues,
        cues_identical: c.cues_identical,
        caption_difference: c.caption_difference,
        production_sidecar_cues: c.production_sidecar_cues,
        candidate_sidecar_cues: c.candidate_sidecar_cues,
        sidecar_formats: c.sidecar_formats,
        sidecar_difference: c.sidecar_difference,
        production_bytes: c.production_bytes,
        candidate_bytes: c.candidate_bytes,
        production_encode_secs: c.production_encode_secs,
        candidate_encode_secs: c.candidate_encode_secs,
        production_ssim: c.production_ssim,
        candidate_ssim: c.candidate_ssim,
        production_psnr: c.production_psnr,
        candidate_psnr: c.candidate_psnr,
        production_cpu_secs: c.production_cpu_secs,
        candidate_cpu_secs: c.candidate_cpu_secs,
    }
}

/// An agent's totals, as printed.
#[derive(Debug, Serialize)]
pub struct TotalsView {
    agent: String,
    files: u32,
    failures: u32,
    min_ssim: f64,
    max_size_ratio: f64,
    speed_ratio: f64,
    cpu_ratio: f64,
    caption_mismatches: u32,
}

/// The shadow part of `rollout status`.
#[derive(Debug, Serialize)]
pub struct StatusView {
    cohort: Vec<String>,
    agents: Vec<TotalsView>,
    worst: Vec<RecordView>,
}

/// The view of `s`.
pub fn status_view(s: &ShadowStatus) -> StatusView {
    let totals = |t: &h264_proto::v1::ShadowAgentTotals| TotalsView {
        agent: t.agent_id.clone(),
        files: t.files,
        failures: t.failures,
        min_ssim: t.min_ssim,
        max_size_ratio: t.max_size_ratio,
        speed_ratio: t.speed_ratio,
        cpu_ratio: t.cpu_ratio,
        caption_mismatches: t.caption_mismatches,
    };
    StatusView {
        cohort: s.cohort.clone(),
        agents: s.agents.iter().map(totals).collect(),
        worst: s.worst.iter().map(record).collect(),
    }
}

/// The shadow part of `rollout status` as text.
pub fn status_text(v: &StatusView) -> String {
    let mut out = format!("shadow:  {}\n", visible(&v.cohort.join(", ")));
    if v.agents.is_empty() {
        out.push_str("         no recording compared yet\n");
        return out;
    }
    let mut t = Table::new(&[
        "AGENT",
        "FILES",
        "FAILED",
        "MIN SSIM",
        "MAX SIZE",
        "CPU (WALL)",
        "CAPTIONS DIFFER",
    ]);
    for a in &v.agents {
        t.row(vec![
            a.agent.clone(),
            a.files.to_string(),
            a.failures.to_string(),
            format!("{:.4}", a.min_ssim),
            format!("{:.2}x", a.max_size_ratio),
            cost(a.cpu_ratio, a.speed_ratio),
            a.caption_mismatches.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("worst recordings:\n");
    out.push_str(&records_table(&v.worst).render());
    out
}

/// The candidate's encode CPU time ratio, then its wall time ratio (`-`: not measured; shadow
/// work runs at the lowest priority, so the wall time says how busy the host was).
fn cost(cpu: f64, wall: f64) -> String {
    let cpu = if cpu > 0.0 {
        format!("{cpu:.2}x")
    } else {
        "-".into()
    };
    format!("{cpu} ({wall:.2}x)")
}

fn records_table(records: &[RecordView]) -> Table {
    let mut t = Table::new(&[
        "AGENT",
        "FILE",
        "CANDIDATE",
        "SSIM (PROD)",
        "PSNR (PROD)",
        "SIZE",
        "CPU (WALL)",
        "CUES (PROD)",
        "NOTE",
    ]);
    for r in records {
        t.row(vec![
            r.agent.clone(),
            r.file.clone(),
            if r.candidate_ok { "ok" } else { "FAILED" }.into(),
            format!("{:.4} ({:.4})", r.candidate_ssim, r.production_ssim),
            format!("{:.1} ({:.1})", r.candidate_psnr, r.production_psnr),
            format!("{:.2}x", r.size_ratio),
            cost(r.cpu_ratio, r.speed_ratio),
            format!(
                "{} ({}){}",
                r.candidate_cues,
                r.production_cues,
                if r.cues_identical && r.sidecar_difference.is_empty() {
                    ""
                } else {
                    " differ"
                }
            ),
            if !r.candidate_ok {
                r.candidate_error.clone()
            } else if r.caption_difference.is_empty() {
                r.sidecar_difference.clone()
            } else {
                r.candidate_error.clone()
            },
        ]);
    }
    t
}

/// Every comparison of the report, as printed.
#[derive(Debug, Serialize)]
struct ReportView {
    rollout: u64,
    generation: u64,
    records: Vec<RecordView>,
}

/// A CSV field: quoted when it holds a comma, a quote or a line break; a leading `= + - @`
/// is neutralised so that a spreadsheet never runs a file name as a formula.
fn csv_field(text: &str) -> String {
    let mut text = visible(text);
    if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        text.insert(0, '\'');
    }
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv(v: &ReportView) -> String {
    let header = "rollout,generation,agent,step,at,file,candidate_ok,candidate_error,production_secs,candidate_secs,production_layout,candidate_layout,production_cues,candidate_cues,cues_identical,caption_difference,production_sidecar_cues,candidate_sidecar_cues,sidecar_formats,sidecar_difference,production_bytes,candidate_bytes,size_ratio,production_encode_secs,candidate_encode_secs,speed_ratio,production_ssim,candidate_ssim,production_psnr,candidate_psnr,production_cpu_secs,candidate_cpu_secs,cpu_ratio\n";
    let mut out = header.to_owned();
    for r in &v.records {
        let cells = [
            v.rollout.to_string(),
            v.generation.to_string(),
            csv_field(&r.agent),
            r.step.to_string(),
            r.at.clone(),
            csv_field(&r.file),
            r.candidate_ok.to_string(),
            csv_field(&r.candidate_error),
            format!("{:.3}", r.production_secs),
            format!("{:.3}", r.candidate_secs),
            csv_field(&r.production_layout),
            csv_field(&r.candidate_layout),
            r.production_cues.to_string(),
            r.candidate_cues.to_string(),
            r.cues_identical.to_string(),
            csv_field(&r.caption_difference),
            r.production_sidecar_cues.to_string(),
            r.candidate_sidecar_cues.to_string(),
            csv_field(&r.sidecar_formats),
            csv_field(&r.sidecar_difference),
            r.production_bytes.to_string(),
            r.candidate_bytes.to_string(),
            format!("{:.4}", r.size_ratio),
            format!("{:.3}", r.production_encode_secs),
            format!("{:.3}", r.candidate_encode_secs),
            format!("{:.4}", r.speed_ratio),
            format!("{:.6}", r.production_ssim),
            format!("{:.6}", r.candidate_ssim),
            format!("{:.3}", r.production_psnr),
            format!("{:.3}", r.candidate_psnr),
            format!("{:.3}", r.production_cpu_secs),
            format!("{:.3}", r.candidate_cpu_secs),
            format!("{:.4}", r.cpu_ratio),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// `rollout shadow-report [ID]`.
pub async fn report(
    controller: &client::Connect,
    rollout: Option<u64>,
    format: Format,
) -> Result<(), Failure> {
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let request = ShadowReportRequest {
        rollout: rollout.unwrap_or_default(),
    };
    let r = client::call(&what, admin.shadow_report(request)).await?;
    let v = ReportView {
        rollout: r.rollout,
        generation: r.generation,
        records: r.records.iter().map(record).collect(),
    };
    if format == Format::Csv {
        print!("{}", csv(&v));
        return Ok(());
    }
    emit(format, &v, |v| {
        format!(
            "rollout {}: generation {}, {} comparison(s)\n{}",
            v.rollout,
            v.generation,
            v.records.len(),
            records_table(&v.records).render()
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_what_agents_report() {
        assert_eq!(csv_field("plain.ts"), "plain.ts");
        assert_eq!(csv_field("a, b.ts"), "\"a, b.ts\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-1.5"), "-1.5");
    }
}
