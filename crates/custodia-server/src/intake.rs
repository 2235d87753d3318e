//! Admission to capture intake: how much the vault works on at once, and what the rest are told.
//!
//! Every upload that is admitted holds one slot and a share of a byte budget from its first body
//! byte until its answer: reading the body, the checks, the blob write and the wait for its batch
//! to be durable. At most [`IntakeLimits::in_flight`] uploads hold a slot, and together they
//! reserve at most [`IntakeLimits::in_flight_bytes`]: each reserves its declared `Content-Length`,
//! or the whole capture limit when it declares none (its body is cut off there). Up to
//! [`IntakeLimits::waiting`] more wait, before their bodies are read, for at most
//! [`IntakeLimits::wait`]. Anything beyond that, and any wait that runs out, is answered
//! `503 intake-busy` with `Retry-After`: lane agents retry it like any other 5xx, waiting at least
//! what it asks (within their 30 s backoff limit). Waiting is first come, first served: a large
//! capture at the head of the queue is not overtaken by small ones behind it.
//!
//! Why: without a bound, every connection's upload is read, checked and held in memory at once,
//! so a flood of uploads (a fleet of lanes sending its backlog together after a vault outage, or a
//! hostile client) could take `connections` × the 32 MiB capture limit of memory. The byte budget
//! bounds the bodies held to `in_flight_bytes` whatever the mix of sizes (a body is briefly held
//! twice while its frames are joined), and the rest wait in their connections, whose bodies stay
//! unread in the kernel's buffers and the lanes' outboxes. The slot count bounds the number of
//! tasks and buffers; its value is set for throughput (see [`IntakeLimits::in_flight`]).
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
use custodia_vault::ingest::MAX_CAPTURE_BYTES;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Problem;

/// How much intake works on at once and how long the rest may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Uploads read, checked and committed at once. 128: in the closed-loop ingest bench, with as
    /// many connections as slots, 128 reached 85–89 % of the rate the CPU would allow, against
    /// 80–83 % at 64 and 74–79 % at 32; 256 reached no more than 128 and cost more CPU per
    /// capture (docs/performance.md). More uploads at once make bigger batches per sync.
    pub in_flight: usize,
    /// Bytes of upload bodies held at once (at least one capture of the largest size is always
    /// admitted). 64 MiB: 128 typical captures of ~250 KB take half of it, two of the largest
    /// (32 MiB) all of it.
    pub in_flight_bytes: usize,
    /// Uploads that may wait for admission; one more is answered 503 at once.
    pub waiting: usize,
    /// How long an upload may wait for admission before it is answered 503.
    pub wait: Duration,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self { in_flight: 128, in_flight_bytes: 64 << 20, waiting: 1024, wait: Duration::from_secs(10) }
    }
}

/// The byte budget is kept in permits of this many bytes, so that the largest capture's share
/// fits the `u32` a semaphore takes at once.
const BUDGET_UNIT: usize = 1024;

/// The slots and byte budget of [`IntakeLimits`], shared by every connection of one server.
#[derive(Clone, Debug)]
pub struct IntakeGate {
    slots: Arc<Semaphore>,
    /// In [`BUDGET_UNIT`]s.
    budget: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    limits: IntakeLimits,
}

/// What an admitted upload holds until its answer: a slot and its share of the byte budget.
#[derive(Debug)]
pub struct Admission {
    _slot: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// What `Retry-After` says on a busy answer, in seconds: at intake's usual pace a full queue
/// of waiting uploads is worked off well within it.
const RETRY_AFTER_SECS: u32 = 1;

impl IntakeGate {
    /// A gate with `limits`. An `in_flight` of 0 is taken as 1 and a byte budget below the
    /// capture limit as the capture limit: intake must be able to admit any capture it accepts.
    pub fn new(limits: IntakeLimits) -> Self {
        let limits = IntakeLimits {
            in_flight: limits.in_flight.max(1),
            in_flight_bytes: limits.in_flight_bytes.max(MAX_CAPTURE_BYTES),
            ..limits
        };
        Self {
            slots: Arc::new(Semaphore::new(limits.in_flight)),
            budget: Arc::new(Semaphore::new(limits.in_flight_bytes / BUDGET_UNIT)),
            waiting: Arc::new(AtomicUsize::new(0)),
            limits,
        }
    }

    /// Admission for an upload that declares `content_length` bytes (`None`: not declared), or
    /// the busy answer. A declared length over the capture limit reserves only the limit: such an
    /// upload is refused before its body is read.
    pub async fn admit(&self, content_length: Option<u64>) -> Result<Admission, Problem> {
        let reserved = content_length
            .map_or(MAX_CAPTURE_BYTES, |len| usize::try_from(len).unwrap_or(usize::MAX).min(MAX_CAPTURE_BYTES));
        // At least one unit, so that every admitted upload counts against the budget.
        let units = u32::try_from(reserved.div_ceil(BUDGET_UNIT).max(1)).expect("the capture limit fits in u32 units");
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned()
            && let Ok(bytes) = Arc::clone(&self.budget).try_acquire_many_owned(units)
        {
            return Ok(Admission { _slot: slot, _bytes: bytes });
        }
        // Counted out on drop: an upload whose client goes away while it waits leaves the queue.
        let place = Waiting::join(&self.waiting);
        if place.ahead >= self.limits.waiting {
            return Err(busy(format!(
                "{} uploads or {} MiB are in progress and {} waiting; retry later",
                self.limits.in_flight,
                self.limits.in_flight_bytes >> 20,
                self.limits.waiting
            )));
        }
        let (slots, budget) = (Arc::clone(&self.slots), Arc::clone(&self.budget));
        let both = async move {
            let slot = slots.acquire_owned().await?;
            let bytes = budget.acquire_many_owned(units).await?;
            Ok::<_, tokio::sync::AcquireError>(Admission { _slot: slot, _bytes: bytes })
        };
        let waited = tokio::time::timeout(self.limits.wait, both).await;
        drop(place);
        match waited {
            Ok(Ok(admission)) => Ok(admission),
            // The semaphores are never closed; treat it as busy rather than panic if they were.
            Ok(Err(_)) => Err(busy("intake is not admitting uploads; retry later".to_string())),
            Err(_) => Err(busy(format!(
                "no upload slot or room for {reserved} bytes freed within {} s; retry later",
                self.limits.wait.as_secs_f64()
            ))),
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

/// Middleware for the capture route: runs the request only once admitted, and holds the
/// admission until its answer.
pub(crate) async fn admit(State(gate): State<IntakeGate>, request: Request, next: Next) -> Response {
    match gate.admit(crate::declared_length(request.headers())).await {
        Ok(admission) => {
            let response = next.run(request).await;
            drop(admission);
            response
        }
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typical capture's declared length.
    const CAPTURE: Option<u64> = Some(251_000);

    fn limits(in_flight: usize, waiting: usize, wait_ms: u64) -> IntakeLimits {
        IntakeLimits { in_flight, waiting, wait: Duration::from_millis(wait_ms), ..IntakeLimits::default() }
    }

    /// An upload of `length` that asks for admission on a task of its own; returns once it waits
    /// in the queue.
    async fn queue_up(gate: &IntakeGate, length: Option<u64>) -> tokio::task::JoinHandle<Result<(), u16>> {
        let before = gate.waiting.load(Ordering::Acquire);
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit(length).await.map(drop).map_err(|p| p.status) }
        });
        while gate.waiting.load(Ordering::Acquire) == before {
            tokio::task::yield_now().await;
        }
        waiter
    }

    #[tokio::test]
    async fn admits_up_to_the_limit_then_queues_then_refuses() {
        let gate = IntakeGate::new(limits(2, 1, 10_000));
        let first = gate.admit(CAPTURE).await.expect("first permit");
        let _second = gate.admit(CAPTURE).await.expect("second permit");

        // The third waits for a permit; the fourth finds the queue full and is refused at once.
        let waiter = queue_up(&gate, CAPTURE).await;
        let refused = gate.admit(CAPTURE).await.expect_err("queue is full");
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
        let _held = gate.admit(CAPTURE).await.expect("the only permit");
        let started = std::time::Instant::now();
        let refused = gate.admit(CAPTURE).await.expect_err("no permit frees");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(refused.status, 503);
        assert!(refused.detail.as_deref().unwrap_or("").contains("freed within 0.05 s"), "{refused:?}");
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn an_upload_abandoned_while_waiting_leaves_the_queue() {
        let gate = IntakeGate::new(limits(1, 1, 10_000));
        let held = gate.admit(CAPTURE).await.expect("the only permit");
        let waiter = queue_up(&gate, CAPTURE).await;
        // The client goes away: hyper drops the request's future mid-wait.
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0, "its place is given back");

        // So the one place in the queue is free for the next upload, which gets the permit.
        let next = queue_up(&gate, CAPTURE).await;
        drop(held);
        assert_eq!(next.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn the_byte_budget_holds_back_an_upload_while_slots_are_free() {
        // Room for the largest capture and a little more: two of them do not fit at once.
        let gate =
            IntakeGate::new(IntakeLimits { in_flight_bytes: MAX_CAPTURE_BYTES + (1 << 20), ..limits(8, 8, 10_000) });
        let largest = Some(MAX_CAPTURE_BYTES as u64);
        let first = gate.admit(largest).await.expect("the first large capture");
        // Small ones still fit beside it...
        let small = gate.admit(Some(100_000)).await.expect("a small capture fits in the rest");
        // ...but a second large one waits, with seven slots free, until the first is answered.
        let second = queue_up(&gate, largest).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "two of the largest exceed the budget");
        drop(small);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "freeing a small share is not enough");
        drop(first);
        assert_eq!(second.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn an_upload_that_declares_no_length_reserves_the_capture_limit() {
        let gate = IntakeGate::new(IntakeLimits { in_flight_bytes: MAX_CAPTURE_BYTES + (1 << 20), ..limits(8, 8, 50) });
        let _undeclared = gate.admit(None).await.expect("admitted on the whole limit");
        let _small = gate.admit(Some(512 << 10)).await.expect("what is left of the budget is still usable");
        let refused = gate.admit(Some(2 << 20)).await.expect_err("the budget is taken");
        assert_eq!(refused.status, 503);
        assert!(
            refused.detail.as_deref().unwrap_or("").contains(&format!("room for {} bytes", 2 << 20)),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_budget_below_the_capture_limit_still_admits_the_largest_capture() {
        let gate = IntakeGate::new(IntakeLimits { in_flight_bytes: 1 << 20, ..limits(2, 0, 50) });
        let largest = gate.admit(Some(MAX_CAPTURE_BYTES as u64)).await.expect("one capture of the largest size");
        assert!(gate.admit(CAPTURE).await.is_err(), "the budget is one capture's worth");
        drop(largest);
        // A declared length over the limit reserves only the limit (the handler refuses it
        // unread), so it is admitted rather than left waiting for more than the budget holds.
        let _over = gate.admit(Some(u64::MAX)).await.expect("admitted on the capture limit");
    }

    #[tokio::test]
    async fn a_freed_share_goes_to_the_upload_that_waited_longest() {
        let gate = IntakeGate::new(IntakeLimits { in_flight_bytes: MAX_CAPTURE_BYTES, ..limits(8, 8, 10_000) });
        let held = gate.admit(Some(MAX_CAPTURE_BYTES as u64 / 2)).await.expect("half the budget");
        // A large upload queues first; a small one that would fit now queues behind it, not past.
        let large = queue_up(&gate, Some(MAX_CAPTURE_BYTES as u64)).await;
        let small = queue_up(&gate, CAPTURE).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!large.is_finished() && !small.is_finished(), "first come, first served");
        drop(held);
        assert_eq!(large.await.unwrap(), Ok(()));
        assert_eq!(small.await.unwrap(), Ok(()));
    }
}
