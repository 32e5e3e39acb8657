//! Job history against the real controller binary over loopback gRPC: records stored once per
//! id (a batch delivered twice, after a reconnect), ACKed; invalid records dropped; `ListJobs`
//! filters and the `Report` aggregates, grouped; a viewer may read them, retention keeps them
//! past a restart.

use crate::support;

use std::time::Duration;

use h264_proto::v1::{JobAttempt, ListJobsRequest, ReportRequest};
use support::*;

const SOON: Duration = Duration::from_secs(10);

fn attempt(id: &str, file: &str, outcome: &str, generation: u64, speed: f64) -> JobAttempt {
    let converted = outcome == "converted";
    JobAttempt {
        id: id.into(),
        agent_id: "forged".into(),
        ended_at_ms: now_ms() - 1_000,
        file: file.into(),
        generation,
        outcome: outcome.into(),
        failed_stage: if converted { "" } else { "transcode" }.into(),
        message: if converted { "" } else { "ffmpeg exited 1" }.into(),
        attempt: 1,
        mode: "encode".into(),
        bytes_in: 1_000,
        bytes_out: if converted { 400 } else { 0 },
        media_secs: 3600.0,
        wall_secs: 3600.0 / speed,
        captions: if converted { "srt (ffmpeg)" } else { "" }.into(),
        ..JobAttempt::default()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn records_are_stored_once_listed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let c = controller(&state);
    let mut admin = admin(&c).await;
    let mut a = FakeAgent::connect(&c.url(), hello("studio-a", &[], 0, "local"))
        .await
        .unwrap();
    let batch = vec![
        attempt("e1-1", "/rec/news.ts", "converted", 3, 4.0),
        attempt("e1-2", "/rec/film.ts", "retrying", 3, 1.0),
        attempt("e1-3", "/rec/film.ts", "converted", 4, 2.0),
        JobAttempt {
            id: "bad id\u{1b}[2J".into(),
            outcome: "converted".into(),
            ..JobAttempt::default()
        },
    ];
    a.history(batch.clone()).await;
    let mut acked = a.history_ack(SOON).await;
    acked.sort();
    assert_eq!(acked, ["bad id\u{1b}[2J", "e1-1", "e1-2", "e1-3"]);

    // The agent lost the ACK and sends the batch again after a reconnect: stored once.
    drop(a);
    let mut a = FakeAgent::connect(&c.url(), hello("studio-a", &[], 0, "local"))
        .await
        .unwrap();
    a.history(batch[..3].to_vec()).await;
    assert_eq!(a.history_ack(SOON).await.len(), 3);
    let mut b = FakeAgent::connect(&c.url(), hello("studio-b", &[], 0, "local"))
        .await
        .unwrap();
    b.history(vec![attempt("e9-1", "/rec/news.ts", "failed", 4, 1.0)])
        .await;
    b.history_ack(SOON).await;

    let jobs = admin
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobs.jobs.len(), 4, "{jobs:?}");
    assert!(jobs.jobs.iter().all(|j| j.agent_id != "forged"));
    let news = admin
        .list_jobs(ListJobsRequest {
            file_glob: "*/news.ts".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut agents: Vec<_> = news.jobs.iter().map(|j| j.agent_id.as_str()).collect();
    agents.sort();
    assert_eq!(agents, ["studio-a", "studio-b"]);
    let failed = admin
        .list_jobs(ListJobsRequest {
            agent_id: "studio-a".into(),
            failed_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.jobs.len(), 1);
    assert_eq!(failed.jobs[0].outcome, "retrying");
    assert_eq!(failed.jobs[0].message, "ffmpeg exited 1");
    let one = admin
        .list_jobs(ListJobsRequest {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(one.truncated && one.jobs.len() == 1);

    let report = admin
        .report(ReportRequest {
            since_ms: now_ms() - 86_400_000,
            by: "revision".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let total = report.total.unwrap();
    assert_eq!(
        (
            total.attempts,
            total.converted,
            total.failed,
            total.unsuccessful
        ),
        (4, 2, 1, 2)
    );
    assert!((total.media_hours - 2.0).abs() < 1e-9);
    assert_eq!((total.bytes_in, total.bytes_out), (2_000, 800));
    assert_eq!(total.caption_coverage, 1.0);
    assert_eq!(total.failure_rate, 0.5);
    let keys: Vec<_> = report.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["3", "4"]);
    assert_eq!(report.rows[0].failure_rate, 0.5);
    assert!(
        (report.rows[0].speed_p50 - 4.025).abs() < 1e-9,
        "{:?}",
        report.rows[0]
    );
    assert!((report.rows[1].speed_p50 - 2.025).abs() < 1e-9);
    let bad = admin
        .report(ReportRequest {
            since_ms: 0,
            by: "week".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // The history survives a restart.
    drop((a, b, admin));
    drop(c);
    let c = controller(&state);
    let mut admin = admin_fn(&c).await;
    let jobs = admin
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobs.jobs.len(), 4);
}

async fn admin_fn(c: &ControllerProcess) -> Admin {
    admin(c).await
}
