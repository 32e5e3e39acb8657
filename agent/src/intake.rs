//! Intake: whether the agent may start jobs. Held by a manual pause (control API), by the disk
//! guard, or both; each holder releases only its own hold, so the disk guard never undoes a manual
//! pause. Jobs wait in [`Intake::wait_open`] before they start; running jobs are not affected.

use tokio::sync::watch;

/// Who holds intake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    /// An operator paused the agent.
    pub manual: bool,
    /// The disk guard found a volume below its critical threshold.
    pub disk: bool,
}

impl Hold {
    /// Whether jobs may start.
    pub fn is_open(self) -> bool {
        !self.manual && !self.disk
    }

    /// `manual`, `disk`, `manual,disk`, or empty.
    pub fn describe(self) -> String {
        let mut by = Vec::new();
        if self.manual {
            by.push("manual");
        }
        if self.disk {
            by.push("disk");
        }
        by.join(",")
    }
}

/// The intake gate.
#[derive(Debug)]
pub struct Intake {
    tx: watch::Sender<Hold>,
}

impl Default for Intake {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(Hold::default()),
        }
    }
}

impl Intake {
    /// Sets or releases the manual hold; returns the hold now in force.
    pub fn set_manual(&self, on: bool) -> Hold {
        self.tx.send_modify(|h| h.manual = on);
        self.hold()
    }

    /// Sets or releases the disk guard's hold; returns whether it changed.
    pub fn set_disk(&self, on: bool) -> bool {
        self.tx
            .send_if_modified(|h| std::mem::replace(&mut h.disk, on) != on)
    }

    /// The hold now in force.
    pub fn hold(&self) -> Hold {
        *self.tx.borrow()
    }

    /// Waits until jobs may start.
    pub async fn wait_open(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|h| h.is_open()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_disk_guard_never_releases_a_manual_pause() {
        let intake = Intake::default();
        intake.set_manual(true);
        assert!(intake.set_disk(true));
        assert!(!intake.set_disk(true), "no change");
        intake.set_disk(false);
        assert!(!intake.hold().is_open());
        assert_eq!(intake.hold().describe(), "manual");
        intake.set_manual(false);
        tokio::time::timeout(std::time::Duration::from_secs(1), intake.wait_open())
            .await
            .unwrap();
    }
}
