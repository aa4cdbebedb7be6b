//! The acknowledgements a producer waits for, awaited in the producer's own task.
//!
//! A task and a timer per message (what the generator had before) cost more than the client's
//! own work for a publish: a spawn, a wake of that task on whichever worker, a timer inserted
//! and cancelled. Here a producer's acknowledgements sit in buckets by send time, each a
//! `FuturesUnordered` the producer polls between sends: an acknowledgement's wake only marks it
//! ready. A bucket's messages all reach their deadline (sent + the acknowledgement timeout)
//! by the bucket's end + that timeout; then the bucket is dropped with what it still holds, so
//! an acknowledgement that never comes (a frozen leader) costs nothing after its timeout. An
//! answer that arrives after its own deadline, before its bucket ends, counts as timed out
//! too: each message keeps its exact deadline.
//!
//! A client that delivers its answers on one stream under a token per message
//! ([`Sent::Tagged`](crate::families::Sent::Tagged)) needs no future at all: those messages
//! wait in a queue in send order (so in token and in deadline order), an answer finds its
//! message by token, and the queue's front expires at its own deadline.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::families::Completion;
use crate::history::Publish;

/// How a wait for an acknowledgement ended.
pub enum Outcome {
    /// The client's answer, within the deadline.
    Answered(Completion),
    /// No answer by the deadline (`sent + ack_timeout`).
    TimedOut,
    /// Polling the acknowledgement panicked; the message.
    Panicked(String),
}

/// One message's acknowledgement with the record it completes.
struct Awaited {
    record: Publish,
    deadline: Instant,
    ack: BoxFuture<'static, Completion>,
}

impl Future for Awaited {
    type Output = (Publish, Instant, Result<Completion, String>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| this.ack.poll_unpin(cx)));
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(c)) => Ok(c),
            Err(panic) => Err(super::panic_message(panic)),
        };
        Poll::Ready((std::mem::take(&mut this.record), this.deadline, result))
    }
}

struct Bucket {
    /// Every message of the bucket was sent before this.
    ends: Instant,
    pending: FuturesUnordered<Awaited>,
}

/// A message whose answer comes under a token; `record` is taken when it is handed on.
struct Tagged {
    token: u64,
    deadline: Instant,
    record: Option<Publish>,
}

/// The acknowledgements one producer waits for.
pub struct Awaiting {
    timeout: Duration,
    width: Duration,
    buckets: VecDeque<Bucket>,
    /// In send order; answered ones stay until they reach the front.
    tagged: VecDeque<Tagged>,
    len: usize,
}

impl Awaiting {
    /// Buckets of `width` of send time; each dropped `timeout` after it ends.
    pub fn new(timeout: Duration, width: Duration) -> Self {
        Awaiting {
            timeout,
            width: width.max(Duration::from_millis(1)),
            buckets: VecDeque::new(),
            tagged: VecDeque::new(),
            len: 0,
        }
    }

    /// Messages waited for.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waits for `ack` of `record`, sent at `sent`, until `sent + timeout`.
    pub fn push(&mut self, record: Publish, sent: Instant, ack: BoxFuture<'static, Completion>) {
        let fits = self.buckets.back().is_some_and(|b| sent < b.ends);
        if !fits {
            self.buckets.push_back(Bucket {
                ends: sent + self.width,
                pending: FuturesUnordered::new(),
            });
        }
        let bucket = self.buckets.back_mut().expect("a bucket was just made");
        bucket.pending.push(Awaited {
            record,
            deadline: sent + self.timeout,
            ack,
        });
        self.len += 1;
    }

    /// Waits for the answer under `token` of `record`, sent at `sent`, until `sent + timeout`.
    /// Tokens increase from call to call.
    pub fn push_tagged(&mut self, record: Publish, sent: Instant, token: u64) {
        debug_assert!(self.tagged.back().is_none_or(|t| t.token < token));
        self.tagged.push_back(Tagged {
            token,
            deadline: sent + self.timeout,
            record: Some(record),
        });
        self.len += 1;
    }

    /// Hands the message waiting under `token` to `done`: answered with `completion`, or timed
    /// out if `now` is past its deadline. Returns whether one was waiting.
    pub fn answer(
        &mut self,
        token: u64,
        completion: Completion,
        now: Instant,
        done: impl FnOnce(Publish, Instant, Outcome),
    ) -> bool {
        // Tokens mostly go up by one from send to send: the message is then as far from the
        // front as its token from the front's (answers of several partitions interleave, so
        // it is often not the front). Otherwise, the queue is in token order.
        let guess = self
            .tagged
            .front()
            .and_then(|f| token.checked_sub(f.token))
            .and_then(|d| usize::try_from(d).ok())
            .filter(|&i| self.tagged.get(i).is_some_and(|t| t.token == token));
        let at = guess.or_else(|| self.tagged.binary_search_by_key(&token, |t| t.token).ok());
        let Some(waiting) = at.and_then(|i| self.tagged.get_mut(i)) else {
            return false;
        };
        let Some(record) = waiting.record.take() else {
            return false;
        };
        let deadline = waiting.deadline;
        self.len -= 1;
        while self.tagged.front().is_some_and(|t| t.record.is_none()) {
            self.tagged.pop_front();
        }
        let outcome = if now > deadline {
            Outcome::TimedOut
        } else {
            Outcome::Answered(completion)
        };
        done(record, deadline, outcome);
        true
    }

    /// When the next wait ends unanswered (a bucket is dropped or a tagged message reaches
    /// its deadline), if one is waited for.
    pub fn next_expiry(&self) -> Option<Instant> {
        let bucket = self.buckets.front().map(|b| b.ends + self.timeout);
        let tagged = self.tagged.front().map(|t| t.deadline);
        match (bucket, tagged) {
            (Some(b), Some(t)) => Some(b.min(t)),
            (b, t) => b.or(t),
        }
    }

    /// Hands every acknowledgement that is in to `done` (with the time it was seen) and every
    /// message whose bucket expired by `now` as timed out. Registers `cx` to be woken when
    /// another answer comes. Returns how many it handed on.
    pub fn collect(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        mut done: impl FnMut(Publish, Instant, Outcome),
    ) -> usize {
        let mut handed = 0;
        while let Some(front) = self.tagged.front() {
            if front.deadline > now {
                break;
            }
            let t = self.tagged.pop_front().expect("front exists");
            if let Some(record) = t.record {
                done(record, t.deadline, Outcome::TimedOut);
                handed += 1;
            }
        }
        while let Some(front) = self.buckets.front() {
            if front.ends + self.timeout > now {
                break;
            }
            let bucket = self.buckets.pop_front().expect("front exists");
            for a in bucket.pending {
                done(a.record, a.deadline, Outcome::TimedOut);
                handed += 1;
            }
        }
        for bucket in self.buckets.iter_mut() {
            while let Poll::Ready(Some((record, deadline, result))) =
                bucket.pending.poll_next_unpin(cx)
            {
                let outcome = match result {
                    Err(panic) => Outcome::Panicked(panic),
                    // Seen at `now` at the latest; later than its deadline is too late.
                    Ok(_) if now > deadline => Outcome::TimedOut,
                    Ok(c) => Outcome::Answered(c),
                };
                done(record, deadline, outcome);
                handed += 1;
            }
        }
        // Drained buckets other than the newest (still being filled) go at once.
        let newest = self.buckets.len().saturating_sub(1);
        let mut i = 0;
        self.buckets.retain(|b| {
            let keep = i == newest || !b.pending.is_empty();
            i += 1;
            keep
        });
        self.len -= handed;
        handed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Completion {
        Completion::Ok {
            position: None,
            partition: None,
        }
    }

    fn record(seq: u64) -> Publish {
        Publish {
            seq,
            ..Default::default()
        }
    }

    async fn collect_all(a: &mut Awaiting) -> Vec<(u64, &'static str)> {
        let mut seen = Vec::new();
        std::future::poll_fn(|cx| {
            a.collect(cx, Instant::now(), |r, _, o| {
                seen.push((
                    r.seq,
                    match o {
                        Outcome::Answered(_) => "answered",
                        Outcome::TimedOut => "timed out",
                        Outcome::Panicked(_) => "panicked",
                    },
                ))
            });
            Poll::Ready(())
        })
        .await;
        seen
    }

    #[tokio::test]
    async fn answers_are_handed_on_and_unanswered_ones_time_out_with_their_bucket() {
        let mut a = Awaiting::new(Duration::from_millis(100), Duration::from_millis(10));
        let t0 = Instant::now();
        a.push(record(0), t0, async { ok() }.boxed());
        a.push(record(1), t0, futures::future::pending().boxed());
        a.push(record(2), t0, async { panic!("broken") }.boxed());
        assert_eq!(a.len(), 3);
        let mut seen = collect_all(&mut a).await;
        seen.sort();
        assert_eq!(seen, vec![(0, "answered"), (2, "panicked")]);
        assert_eq!(a.len(), 1);
        assert_eq!(a.next_expiry(), Some(t0 + Duration::from_millis(110)));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(collect_all(&mut a).await, vec![(1, "timed out")]);
        assert!(a.is_empty());
        assert_eq!(a.next_expiry(), None, "an expired bucket is dropped");
    }

    #[tokio::test]
    async fn an_answer_after_its_own_deadline_is_too_late() {
        let mut a = Awaiting::new(Duration::from_millis(20), Duration::from_millis(200));
        let t0 = Instant::now();
        a.push(
            record(7),
            t0,
            tokio::time::sleep(Duration::from_millis(40))
                .map(|_| ok())
                .boxed(),
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Its bucket lasts until t0 + 220 ms, but its own deadline was t0 + 20 ms.
        assert_eq!(collect_all(&mut a).await, vec![(7, "timed out")]);
    }

    #[tokio::test]
    async fn tagged_answers_find_their_message_and_the_unanswered_expire_at_their_deadline() {
        let mut a = Awaiting::new(Duration::from_millis(50), Duration::from_millis(10));
        let t0 = Instant::now();
        for (seq, token) in [(0, 10), (1, 11), (2, 13), (3, 20)] {
            a.push_tagged(record(seq), t0 + Duration::from_millis(seq), token);
        }
        let mut seen = Vec::new();
        let mut note = |r: Publish, _: Instant, o: Outcome| {
            seen.push((r.seq, matches!(o, Outcome::Answered(_))))
        };
        // Out of order, and one for a token nobody waits for (12) or that was answered (13).
        assert!(a.answer(13, ok(), t0, &mut note));
        assert!(!a.answer(12, ok(), t0, &mut note));
        assert!(!a.answer(13, ok(), t0, &mut note));
        assert!(a.answer(10, ok(), t0, &mut note));
        assert_eq!(a.len(), 2);
        // The front is now token 11, due at t0 + 1 ms + 50 ms.
        assert_eq!(a.next_expiry(), Some(t0 + Duration::from_millis(51)));
        // An answer after its deadline is too late.
        assert!(a.answer(11, ok(), t0 + Duration::from_millis(60), &mut note));
        assert_eq!(seen, vec![(2, true), (0, true), (1, false)]);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(collect_all(&mut a).await, vec![(3, "timed out")]);
        assert!(a.is_empty());
        assert_eq!(a.next_expiry(), None);
    }

    #[test]
    fn interleaved_answers_of_consecutive_tokens_find_their_message() {
        let mut a = Awaiting::new(Duration::from_secs(10), Duration::from_millis(10));
        let t0 = Instant::now();
        for seq in 0..9 {
            a.push_tagged(record(seq), t0, 100 + seq);
        }
        let mut seen = Vec::new();
        // Three partitions' answers, each in order, interleaved: the answered ones stay in
        // the queue until the front is answered, so the distance from the front still holds.
        for token in [101, 104, 107, 102, 105, 108, 100, 103, 106] {
            assert!(a.answer(token, ok(), t0, |r: Publish, _, _| seen.push(r.seq)));
        }
        assert_eq!(seen, vec![1, 4, 7, 2, 5, 8, 0, 3, 6]);
        assert!(a.is_empty());
        assert!(!a.answer(104, ok(), t0, |_: Publish, _, _| ()));
    }

    #[tokio::test]
    async fn the_next_expiry_is_the_earlier_of_a_bucket_and_a_tagged_message() {
        let mut a = Awaiting::new(Duration::from_millis(100), Duration::from_millis(10));
        let t0 = Instant::now();
        a.push_tagged(record(0), t0 + Duration::from_millis(5), 0);
        a.push(record(1), t0, futures::future::pending().boxed());
        assert_eq!(a.next_expiry(), Some(t0 + Duration::from_millis(105)));
        assert!(a.answer(0, ok(), t0, |_, _, _| {}));
        assert_eq!(a.next_expiry(), Some(t0 + Duration::from_millis(110)));
    }

    #[tokio::test]
    async fn later_sends_go_to_later_buckets() {
        let mut a = Awaiting::new(Duration::from_secs(1), Duration::from_millis(10));
        let t0 = Instant::now();
        for i in 0..5u64 {
            a.push(
                record(i),
                t0 + Duration::from_millis(4 * i),
                futures::future::pending().boxed(),
            );
        }
        // 0, 4, 8 ms in the first bucket; 12 and 16 ms in the second.
        assert_eq!(a.buckets.len(), 2);
        assert_eq!(a.buckets[0].pending.len(), 3);
        assert_eq!(a.next_expiry(), Some(t0 + Duration::from_millis(1010)));
    }
}
