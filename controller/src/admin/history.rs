//! `ListJobs` and `Report`: the job history, read on the blocking pool (viewer role).

use h264_proto::v1::{ListJobsReply, ListJobsRequest, ReportReply, ReportRequest};
use tonic::Status;

use super::Admin;
use crate::store::{GroupBy, JobQuery};

/// The longest file glob accepted.
const MAX_GLOB: usize = 1024;
/// The default number of attempts listed.
const DEFAULT_LIMIT: u32 = 100;

/// The query of a `ListJobs` request, checked.
pub fn job_query(r: ListJobsRequest) -> Result<JobQuery, Status> {
    if r.file_glob.len() > MAX_GLOB {
        return Err(Status::invalid_argument(format!(
            "the file glob is longer than {MAX_GLOB} bytes"
        )));
    }
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(JobQuery {
        agent_id: some(r.agent_id),
        failed_only: r.failed_only,
        file_glob: some(r.file_glob),
        since_ms: r.since_ms.max(0),
        limit: if r.limit == 0 { DEFAULT_LIMIT } else { r.limit },
    })
}

pub(super) async fn list_jobs(admin: &Admin, r: ListJobsRequest) -> Result<ListJobsReply, Status> {
    let q = job_query(r)?;
    let (jobs, truncated) = admin.blocking(move |s| s.jobs(&q)).await?;
    Ok(ListJobsReply { jobs, truncated })
}

pub(super) async fn report(admin: &Admin, r: ReportRequest) -> Result<ReportReply, Status> {
    let by = GroupBy::parse(&r.by).map_err(Status::invalid_argument)?;
    let since = r.since_ms.max(0);
    admin.blocking(move |s| s.report(since, by)).await
}
