//! Polling with a deadline, so tests wait for a condition instead of sleeping a guessed time:
//! [`wait_for`] from plain threads, [`wait_for_async`] from async tests (it sleeps on tokio's
//! timer, never blocking a runtime thread).

use std::future::Future;
use std::thread;
use std::time::{Duration, Instant};

/// Calls `check` every `poll_interval` until it returns `Some`, and returns that value; gives
/// up after `timeout` with a message saying how long and how often it polled.
///
/// `check` runs at least once, and once more at the deadline, so a condition that became true
/// during the last sleep is not missed.
///
/// ```
/// use std::time::Duration;
/// use h264_testkit::wait::wait_until;
///
/// let start = std::time::Instant::now();
/// let waited = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
///     (start.elapsed() >= Duration::from_millis(20)).then(|| start.elapsed())
/// })
/// .unwrap();
/// assert!(waited >= Duration::from_millis(20));
/// ```
pub fn wait_until<T>(
    timeout: Duration,
    poll_interval: Duration,
    check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    wait_for("condition", timeout, poll_interval, check)
}

/// Like [`wait_until`], with a description of what is awaited for the timeout message, e.g.
/// `wait_for("out/news.mp4 to appear", ...)` fails with "timed out after 10s waiting for
/// out/news.mp4 to appear (checked 201 times, every 50ms)".
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll_interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut checks = 0u64;
    loop {
        checks += 1;
        if let Some(value) = check() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "timed out after {:?} waiting for {what} (checked {checks} times, every {:?})",
                now - start,
                poll_interval
            ));
        }
        thread::sleep(poll_interval.min(deadline - now));
    }
}

/// The async twin of [`wait_for`]: `check` gives a future (a gRPC call, a scrape) resolving to
/// `Some` once the condition holds; it is awaited every `poll_interval` until then, and the
/// timeout message says what was awaited, for how long and how often. Clone what the future
/// needs into it (`let c = client.clone(); move || { let mut c = c.clone(); async move { … } }`).
pub async fn wait_for_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll_interval: Duration,
    mut check: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut checks = 0u64;
    loop {
        checks += 1;
        if let Some(value) = check().await {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "timed out after {:?} waiting for {what} (checked {checks} times, every {:?})",
                now - start,
                poll_interval
            ));
        }
        tokio::time::sleep(poll_interval.min(deadline - now)).await;
    }
}

/// Calls `check` every `poll_interval` for the whole of `period` and fails as soon as it
/// returns `Some`, with a message built from that value: for "this must not happen" checks,
/// e.g. that no output appears while a recording is still open.
pub fn never_during<T>(
    period: Duration,
    poll_interval: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl FnOnce(T) -> String,
) -> Result<(), String> {
    let deadline = Instant::now() + period;
    loop {
        if let Some(value) = check() {
            return Err(describe(value));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        thread::sleep(poll_interval.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_out_with_a_clear_message() {
        let err = wait_for(
            "the impossible",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || None::<()>,
        )
        .unwrap_err();
        assert!(err.contains("waiting for the impossible"), "{err}");
        assert!(err.contains("timed out after"), "{err}");
    }

    #[test]
    fn returns_the_value_once_ready() {
        let mut calls = 0;
        let value = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            (calls == 3).then_some("ready")
        });
        assert_eq!(value, Ok("ready"));
    }

    #[tokio::test]
    async fn the_async_twin_waits_and_times_out() {
        let mut calls = 0;
        let value = wait_for_async(
            "three calls",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                std::future::ready((calls == 3).then_some(calls))
            },
        )
        .await;
        assert_eq!(value, Ok(3));
        let err = wait_for_async(
            "nothing",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || std::future::ready(None::<()>),
        )
        .await
        .unwrap_err();
        assert!(
            err.contains("timed out after") && err.contains("waiting for nothing"),
            "{err}"
        );
    }

    #[test]
    fn never_during_reports_the_first_hit() {
        let mut calls = 0;
        let result = never_during(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                (calls == 2).then_some(calls)
            },
            |n| format!("happened on call {n}"),
        );
        assert_eq!(result, Err("happened on call 2".to_owned()));
        assert!(never_during(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || None::<()>,
            |_| String::new()
        )
        .is_ok());
    }
}
