//! The reconcile queue: deduplicated keys, delayed requeues, and never two reconciles of one key
//! at once.
//!
//! # Theory of operation
//! Modelled on the work queues of Kubernetes controllers. A key is either absent, queued,
//! delayed (due at an instant), or being processed. Adding a queued key does nothing; adding a key
//! that is being processed marks it dirty, and [`WorkQueue::done`] queues it again, so a burst of
//! events for one file costs one extra reconcile at most. Delayed keys move to the queue when
//! due; an earlier requeue replaces a later one. All state sits behind one `std::sync::Mutex`
//! that is never held across an `.await`; waiters are woken through a `Notify`.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A deduplicating work queue with delays.
#[derive(Debug)]
pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
}

#[derive(Debug)]
struct Inner<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    processing: HashSet<K>,
    dirty: HashSet<K>,
    delayed: BTreeSet<(Instant, u64)>,
    delayed_keys: HashMap<u64, K>,
    due: HashMap<K, (Instant, u64)>,
    seq: u64,
    closed: bool,
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                dirty: HashSet::new(),
                delayed: BTreeSet::new(),
                delayed_keys: HashMap::new(),
                due: HashMap::new(),
                seq: 0,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys queued now (not those delayed or being processed), in queue order.
    pub fn queued(&self) -> Vec<K> {
        self.lock().queue.iter().cloned().collect()
    }

    /// Queues `key` now.
    pub fn add(&self, key: K) {
        let mut inner = self.lock();
        inner.add_now(key);
        drop(inner);
        self.notify.notify_waiters();
    }

    /// Queues `key` after `delay` (sooner if it is added again meanwhile).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut inner = self.lock();
        if inner.queued.contains(&key) {
            return;
        }
        if let Some(&(existing, id)) = inner.due.get(&key) {
            if existing <= at {
                return;
            }
            inner.delayed.remove(&(existing, id));
            inner.delayed_keys.remove(&id);
        }
        inner.seq += 1;
        let id = inner.seq;
        inner.delayed.insert((at, id));
        inner.delayed_keys.insert(id, key.clone());
        inner.due.insert(key, (at, id));
        drop(inner);
        self.notify.notify_waiters();
    }

    /// Waits for the next key and marks it as being processed; `None` once the queue is closed.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                inner.promote_due(Instant::now());
                if let Some(key) = inner.queue.pop_front() {
                    inner.queued.remove(&key);
                    inner.processing.insert(key.clone());
                    return Some(key);
                }
                inner.delayed.first().map(|&(at, _)| at)
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` as processed; queues it again if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.remove(key) {
            inner.add_now(key.clone());
            drop(inner);
            self.notify.notify_waiters();
        }
    }

    /// Wakes every waiter with `None`; later calls to `next` return `None` at once.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Keys queued now (not counting delayed ones or those being processed).
    pub fn depth(&self) -> usize {
        self.lock().queue.len()
    }

    /// Keys being reconciled now.
    pub fn processing(&self) -> usize {
        self.lock().processing.len()
    }

    /// Whether nothing is queued, delayed or being processed.
    pub fn is_idle(&self) -> bool {
        let inner = self.lock();
        inner.queue.is_empty() && inner.processing.is_empty() && inner.delayed.is_empty()
    }
}

impl<K: Clone + Eq + Hash> Inner<K> {
    fn add_now(&mut self, key: K) {
        if self.processing.contains(&key) {
            self.dirty.insert(key);
            return;
        }
        if let Some((at, id)) = self.due.remove(&key) {
            self.delayed.remove(&(at, id));
            self.delayed_keys.remove(&id);
        }
        if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.delayed.first() {
            if at > now {
                break;
            }
            self.delayed.remove(&(at, id));
            if let Some(key) = self.delayed_keys.remove(&id) {
                self.due.remove(&key);
                self.add_now(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_and_requeues_dirty_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.depth(), 2);
        let a = q.next().await.unwrap();
        assert_eq!(a, "a");
        q.add("a"); // an event while "a" is being reconciled
        assert_eq!(q.next().await.unwrap(), "b");
        assert_eq!(q.depth(), 0, "a is not handed out twice at once");
        q.done(&"a");
        q.done(&"b");
        assert_eq!(q.next().await.unwrap(), "a");
        q.done(&"a");
        assert!(q.is_idle());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_back_when_due_and_sooner_wins() {
        let q = WorkQueue::new();
        q.add_after("x", Duration::from_secs(60));
        q.add_after("x", Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(q.next().await.unwrap(), "x");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        q.done(&"x");
        assert!(q.is_idle(), "the later requeue was replaced, not kept");
    }

    #[tokio::test]
    async fn close_wakes_waiters() {
        let q = std::sync::Arc::new(WorkQueue::<u32>::new());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(waiter.await.unwrap(), None);
    }
}
