//! The bcrypt workers: who may run a verification, and when.
//!
//! There are as many workers as cores (two at least), shared by every configuration the
//! process loads, so that a reload does not add workers. A verification holds one from start to
//! end (the blocking thread's, not the request's: a client that hangs up does not free a
//! worker still hashing). Two rules keep a few guessing clients from holding them all:
//!
//! - at most one verification is in flight per client address; a second request from that
//!   address waits for the first to finish;
//! - an address whose last verification failed (a suspect) takes a worker only when at least
//!   two are free: it never takes the last free one, which stays for an address that has not
//!   failed, such as a Prometheus server whose password has not been remembered yet.
//!
//! So suspects hold at most all workers but one, and a client that has not failed waits behind
//! at most one verification per worker. Each verification is logged at DEBUG when it starts
//! (with how many verifications ran while it waited, its cost and whether its address was a
//! suspect) and when it ends: the client's address, never a name, password or hash.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;

/// How many addresses are remembered (as suspects) before the memory starts again.
const ADDRESSES: usize = 4096;

/// The workers and what they know of the addresses they served.
#[derive(Debug)]
pub(crate) struct Workers {
    count: usize,
    state: Mutex<State>,
    released: Notify,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    /// Verifications started since the process began.
    started: u64,
    addresses: HashMap<IpAddr, Address>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Address {
    busy: bool,
    failed_last: bool,
}

/// The right to run one verification; dropping it without [`Ticket::finish`] counts as a
/// failure.
#[derive(Debug)]
pub(crate) struct Ticket {
    workers: Arc<Workers>,
    address: IpAddr,
    seq: u64,
    /// Verifications that held a worker while this one waited (those running when it came,
    /// and those that started before it); logged, and read by the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) waited_behind: u64,
    allowed: Option<bool>,
}

impl Workers {
    /// The process's workers: one per core, two at least.
    pub(crate) fn shared() -> Arc<Workers> {
        static SHARED: OnceLock<Arc<Workers>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                Workers::new(cores.max(2))
            })
            .clone()
    }

    pub(crate) fn new(count: usize) -> Arc<Workers> {
        Arc::new(Workers {
            count,
            state: Mutex::new(State {
                free: count,
                ..State::default()
            }),
            released: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a worker `address` may take, for a verification of `cost`.
    pub(crate) async fn acquire(self: &Arc<Self>, address: IpAddr, cost: u32) -> Ticket {
        let (started_then, running_then) = {
            let state = self.lock();
            (state.started, (self.count - state.free) as u64)
        };
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut state = self.lock();
                let free = state.free;
                let entry = state.addresses.entry(address).or_default();
                let need = if entry.failed_last { 2 } else { 1 };
                if !entry.busy && free >= need {
                    entry.busy = true;
                    let suspect = entry.failed_last;
                    state.free -= 1;
                    let waited_behind = running_then + (state.started - started_then);
                    state.started += 1;
                    let seq = state.started;
                    tracing::debug!(
                        seq,
                        client = %address,
                        cost,
                        suspect,
                        waited_behind,
                        busy = self.count - state.free,
                        "basic auth verification started"
                    );
                    return Ticket {
                        workers: self.clone(),
                        address,
                        seq,
                        waited_behind,
                        allowed: None,
                    };
                }
            }
            released.await;
        }
    }

    fn release(&self, address: IpAddr, seq: u64, allowed: bool) {
        {
            let mut state = self.lock();
            state.free += 1;
            if let Some(entry) = state.addresses.get_mut(&address) {
                entry.busy = false;
                entry.failed_last = !allowed;
                if allowed {
                    state.addresses.remove(&address);
                }
            }
            if state.addresses.len() > ADDRESSES {
                state.addresses.retain(|_, a| a.busy);
            }
            tracing::debug!(seq, client = %address, allowed, "basic auth verification finished");
        }
        self.released.notify_waiters();
    }
}

impl Ticket {
    /// Frees the worker, remembering whether the address's verification failed.
    pub(crate) fn finish(mut self, allowed: bool) {
        self.allowed = Some(allowed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.workers
            .release(self.address, self.seq, self.allowed.unwrap_or(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// Whether `acquire` gets a worker without waiting.
    async fn immediately(workers: &Arc<Workers>, address: IpAddr) -> Option<Ticket> {
        tokio::time::timeout(Duration::from_millis(50), workers.acquire(address, 4))
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_suspect_never_takes_the_last_free_worker() {
        let workers = Workers::new(2);
        // 127.0.0.2 fails once: a suspect from then on.
        workers.acquire(ip(2), 4).await.finish(false);
        let first = immediately(&workers, ip(3))
            .await
            .expect("a worker is free");
        assert!(
            immediately(&workers, ip(2)).await.is_none(),
            "one worker is free: not for the suspect"
        );
        let fresh = immediately(&workers, ip(1))
            .await
            .expect("but for a fresh address");
        assert_eq!(fresh.waited_behind, 1, "the one running when it came");
        drop((first, fresh));
        let suspect = immediately(&workers, ip(2))
            .await
            .expect("two free: it may");
        suspect.finish(true);
        // A success clears the suspicion.
        let _a = immediately(&workers, ip(3)).await.expect("free");
        immediately(&workers, ip(2))
            .await
            .expect("no longer a suspect");
    }

    #[tokio::test]
    async fn one_verification_at_a_time_per_address() {
        let workers = Workers::new(4);
        let first = workers.acquire(ip(5), 4).await;
        let second = tokio::spawn({
            let workers = workers.clone();
            async move { workers.acquire(ip(5), 4).await.waited_behind }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the same address waits");
        immediately(&workers, ip(6))
            .await
            .expect("another does not");
        first.finish(false);
        let waited = second.await.expect("joined");
        assert_eq!(waited, 2, "its own address's first, and 127.0.0.6's");
    }
}
