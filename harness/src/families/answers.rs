//! Answers on their way from a client's own thread or task (librdkafka's polling thread, an
//! MQTT connection's event loop) to the generator, by token ([`Sent::Tagged`]): the client
//! side pushes each answer as it comes, and [`Producer::poll_answers`] hands over every one
//! that is in. A message costs no channel, future or box of its own, and however many answers
//! come between two looks wake the generator once.
//!
//! [`Sent::Tagged`]: super::Sent::Tagged
//! [`Producer::poll_answers`]: super::Producer::poll_answers

use std::sync::Mutex;
use std::task::Context;

use futures::task::AtomicWaker;

use super::Completion;

#[derive(Default)]
pub struct Answers {
    queue: Mutex<Vec<(u64, Completion)>>,
    waker: AtomicWaker,
}

impl Answers {
    /// The answer for `token`; wakes the generator if it is waiting.
    pub fn push(&self, token: u64, completion: Completion) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((token, completion));
        self.waker.wake();
    }

    /// Hands every answer that is in to `answer`, and registers `cx` for the next. `spare` is
    /// the caller's buffer, kept for its capacity.
    pub fn take(
        &self,
        cx: &mut Context<'_>,
        spare: &mut Vec<(u64, Completion)>,
        answer: &mut dyn FnMut(u64, Completion),
    ) {
        // Registered first: an answer pushed after the queue is taken wakes `cx`.
        self.waker.register(cx.waker());
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.is_empty() {
                return;
            }
            std::mem::swap(&mut *queue, spare);
        }
        for (token, completion) in spare.drain(..) {
            answer(token, completion);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn answers_are_handed_over_in_order_and_a_batch_wakes_once() {
        let answers = Answers::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut spare = Vec::new();
        let mut seen = Vec::new();
        answers.take(&mut cx, &mut spare, &mut |t, _| seen.push(t));
        assert!(seen.is_empty());
        for t in [3, 1, 2] {
            answers.push(t, Completion::Fail(String::new()));
        }
        // The registered waker is taken by the first push: three answers, one wake-up.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        answers.take(&mut cx, &mut spare, &mut |t, _| seen.push(t));
        assert_eq!(seen, [3, 1, 2]);
        answers.push(4, Completion::Fail(String::new()));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}
