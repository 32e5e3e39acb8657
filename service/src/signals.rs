//! Two-phase shutdown on SIGTERM and SIGINT, the same for the agent and the controller: the
//! first signal cancels the shutdown token (a graceful stop, with the programs' own deadlines);
//! a second one means "now", and [`watch`] returns so that `main` can exit at once.
//!
//! Theory of operation: one task owns both signal streams and counts signals from either. The
//! library never calls `process::exit`: the forced exit stays in `main`, where it can be seen.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Installs the SIGTERM and SIGINT handlers now (so a signal sent once this returns is never
/// missed; call it inside the runtime), and gives the future that cancels `shutdown` at the
/// first signal and completes at the second. When the handlers cannot be installed it logs so
/// and the future never completes (the programs still stop through their other paths).
pub fn watch(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> + Send {
    let streams = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = streams else {
            tracing::error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        for n in 0.. {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if n == 0 {
                tracing::info!(
                    "signal received: shutting down gracefully (send it again to force)"
                );
                shutdown.cancel();
            } else {
                tracing::warn!("second signal: exiting now");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn first_signal_cancels_second_completes() {
        let shutdown = CancellationToken::new();
        let watcher = tokio::spawn(watch(shutdown.clone()));
        kill("-TERM");
        tokio::time::timeout(Duration::from_secs(10), shutdown.cancelled())
            .await
            .expect("the first signal cancels");
        assert!(!watcher.is_finished());
        kill("-INT");
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("the second signal completes it")
            .unwrap();
    }

    /// Sends a signal to this test process (its handlers are installed: the default action is
    /// never taken).
    fn kill(signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
