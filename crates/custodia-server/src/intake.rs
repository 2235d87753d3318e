//! Admission to capture intake: how many uploads the vault works on at once, and what the rest
//! are told.
//!
//! Every upload that is admitted holds one permit from its first body byte until its answer:
//! reading the body, the checks, the blob write and the wait for its batch to be durable. At most
//! [`IntakeLimits::in_flight`] hold one; up to [`IntakeLimits::waiting`] more wait for one, before
//! their bodies are read, for at most [`IntakeLimits::wait`]. Anything beyond that, and any wait
//! that runs out, is answered `503 intake-busy` with `Retry-After`: lane agents retry it like any
//! other 5xx, waiting at least what it asks (within their 30 s backoff limit).
//!
//! Why: without a bound, every connection's upload is read, checked and held in memory at once,
//! so a flood of uploads (a fleet of lanes sending its backlog together after a vault outage, or a
//! hostile client) could take `connections` × the 32 MiB capture limit of memory. With it, uploads
//! take at most `in_flight` × that limit, and the rest wait in their connections, whose bodies
//! stay unread in the kernel's buffers and the lanes' outboxes.
//!
//! What it does not do (measured, docs/performance.md): keep up with a client that opens a new
//! connection for every capture once it falls behind. On this VM such a load collapsed to about
//! half of intake's steady rate with or without the gate; the profile shows the cost in new
//! connections' fresh buffer pages, which this host makes expensive. Lanes keep their connections
//! and upload a few captures at a time: with 64 of them offering 2,000 captures/s, intake
//! acknowledged 1,888–2,009/s in four runs, every capture taken at its first try.
//!
//! What it is not: a rate limit per device or per address (a lane that floods is still one of
//! the fleet), or a priority between lanes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Problem;

/// How much intake works on at once and how long the rest may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Uploads read, checked and committed at once. 64: in the closed-loop ingest bench, 64
    /// connections reached 82–85 % of the rate the CPU would allow against 74–79 % at 32, with
    /// ~20 captures per sync instead of ~14 (docs/performance.md).
    pub in_flight: usize,
    /// Uploads that may wait for a permit; one more is answered 503 at once.
    pub waiting: usize,
    /// How long an upload may wait for a permit before it is answered 503.
    pub wait: Duration,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self { in_flight: 64, waiting: 1024, wait: Duration::from_secs(10) }
    }
}

/// The permits of [`IntakeLimits`], shared by every connection of one server.
#[derive(Clone, Debug)]
pub struct IntakeGate {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    limits: IntakeLimits,
}

/// What `Retry-After` says on a busy answer, in seconds: at intake's usual pace a full queue
/// of waiting uploads is worked off well within it.
const RETRY_AFTER_SECS: u32 = 1;

impl IntakeGate {
    /// A gate with `limits` (`in_flight` of 0 is taken as 1: intake must admit something).
    pub fn new(limits: IntakeLimits) -> Self {
        let limits = IntakeLimits { in_flight: limits.in_flight.max(1), ..limits };
        Self { permits: Arc::new(Semaphore::new(limits.in_flight)), waiting: Arc::new(AtomicUsize::new(0)), limits }
    }

    /// A permit to work on one upload, or the busy answer.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Problem> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        // Counted out on drop: an upload whose client goes away while it waits leaves the queue.
        let place = Waiting::join(&self.waiting);
        if place.ahead >= self.limits.waiting {
            return Err(busy(format!(
                "{} uploads are in progress and {} waiting; retry later",
                self.limits.in_flight, self.limits.waiting
            )));
        }
        let waited = tokio::time::timeout(self.limits.wait, Arc::clone(&self.permits).acquire_owned()).await;
        drop(place);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it as busy rather than panic if it were.
            Ok(Err(_)) => Err(busy("intake is not admitting uploads; retry later".to_string())),
            Err(_) => {
                Err(busy(format!("no upload slot freed within {} s; retry later", self.limits.wait.as_secs_f64())))
            }
        }
    }
}

/// One place in the queue of waiting uploads, held while it waits.
struct Waiting<'a> {
    count: &'a AtomicUsize,
    /// How many were waiting when this one joined.
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn join(count: &'a AtomicUsize) -> Self {
        Self { count, ahead: count.fetch_add(1, Ordering::AcqRel) }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

fn busy(detail: String) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "intake-busy", "Intake is busy; retry later", detail)
        .retry_after(RETRY_AFTER_SECS)
}

/// Middleware for the capture route: runs the request only with a permit, held until its answer.
pub(crate) async fn admit(State(gate): State<IntakeGate>, request: Request, next: Next) -> Response {
    match gate.admit().await {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(in_flight: usize, waiting: usize, wait_ms: u64) -> IntakeLimits {
        IntakeLimits { in_flight, waiting, wait: Duration::from_millis(wait_ms) }
    }

    /// An upload that asks for a permit on a task of its own; returns once it waits in the queue.
    async fn queue_up(gate: &IntakeGate) -> tokio::task::JoinHandle<Result<(), u16>> {
        let before = gate.waiting.load(Ordering::Acquire);
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit().await.map(drop).map_err(|p| p.status) }
        });
        while gate.waiting.load(Ordering::Acquire) == before {
            tokio::task::yield_now().await;
        }
        waiter
    }

    #[tokio::test]
    async fn admits_up_to_the_limit_then_queues_then_refuses() {
        let gate = IntakeGate::new(limits(2, 1, 10_000));
        let first = gate.admit().await.expect("first permit");
        let _second = gate.admit().await.expect("second permit");

        // The third waits for a permit; the fourth finds the queue full and is refused at once.
        let waiter = queue_up(&gate).await;
        let refused = gate.admit().await.expect_err("queue is full");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.kind, "urn:custodia:problem:intake-busy");

        // A permit freed goes to the waiter.
        assert!(!waiter.is_finished());
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_wait_that_runs_out_is_answered_busy_and_leaves_the_queue() {
        let gate = IntakeGate::new(limits(1, 8, 50));
        let _held = gate.admit().await.expect("the only permit");
        let started = std::time::Instant::now();
        let refused = gate.admit().await.expect_err("no permit frees");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(refused.status, 503);
        assert!(refused.detail.as_deref().unwrap_or("").contains("within 0.05 s"), "{refused:?}");
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn an_upload_abandoned_while_waiting_leaves_the_queue() {
        let gate = IntakeGate::new(limits(1, 1, 10_000));
        let held = gate.admit().await.expect("the only permit");
        let waiter = queue_up(&gate).await;
        // The client goes away: hyper drops the request's future mid-wait.
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0, "its place is given back");

        // So the one place in the queue is free for the next upload, which gets the permit.
        let next = queue_up(&gate).await;
        drop(held);
        assert_eq!(next.await.unwrap(), Ok(()));
    }
}
