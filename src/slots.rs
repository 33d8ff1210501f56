//! [`OrderedSlots`]: a semaphore whose waiters are served by the number they bring, lowest first,
//! rather than in the order they started waiting.
//!
//! A node numbers its gets as it begins to handle them (see `node::routes`), and each get then
//! looks its chunk up on a blocking thread, waits for a read slot of its directory and for its
//! connection's send turn. With first-come-first-served waits, a burst of gets was read and sent
//! well out of the order it was asked in (the lookups finish in any order), and the client held
//! the chunks that came early until the ones asked first arrived (docs/benchmarks.md, session
//! 17).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// `slots` holders at once; a freed slot goes to the waiter with the lowest rank (ties: the
/// one that started waiting first).
#[derive(Debug)]
pub struct OrderedSlots {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// By (rank, arrival): the sender that hands the waiter its slot.
    waiting: BTreeMap<(u64, u64), oneshot::Sender<()>>,
    arrivals: u64,
}

/// A slot, given back (to the lowest-ranked waiter) when dropped.
#[derive(Debug)]
pub struct SlotPermit {
    slots: Arc<OrderedSlots>,
}

impl OrderedSlots {
    pub fn new(slots: usize) -> Arc<OrderedSlots> {
        Arc::new(OrderedSlots {
            state: Mutex::new(State {
                free: slots.max(1),
                waiting: BTreeMap::new(),
                arrivals: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot, once one is free and no waiter ranked lower (or equal and earlier) wants it.
    /// Dropping the future while it waits leaves the line; a slot handed to it meanwhile goes on
    /// to the next waiter.
    pub async fn acquire(self: Arc<Self>, rank: u64) -> SlotPermit {
        let (key, handed) = {
            let mut state = self.lock();
            if state.free > 0 {
                state.free -= 1;
                drop(state);
                return SlotPermit { slots: self };
            }
            let key = (rank, state.arrivals);
            state.arrivals += 1;
            let (hand, handed) = oneshot::channel();
            state.waiting.insert(key, hand);
            (key, handed)
        };
        let mut waiting = Waiting {
            slots: Arc::clone(&self),
            key,
            done: false,
        };
        // The sender is only ever consumed by handing the slot over: it is not dropped unsent
        // while the waiter is in the line (only `Waiting::drop` takes it out unsent).
        let _ = handed.await;
        waiting.done = true;
        SlotPermit { slots: self }
    }

    /// Gives a slot to the lowest-ranked waiter, or back to the free ones.
    fn release(&self) {
        let mut state = self.lock();
        while let Some((_, hand)) = state.waiting.pop_first() {
            if hand.send(()).is_ok() {
                return;
            }
        }
        state.free += 1;
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        self.slots.release();
    }
}

/// A waiter in the line; when dropped before it got its slot, it leaves the line, or passes on
/// the slot that was handed to it meanwhile.
struct Waiting {
    slots: Arc<OrderedSlots>,
    key: (u64, u64),
    done: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let still_waiting = self.slots.lock().waiting.remove(&self.key).is_some();
        if !still_waiting {
            // Handed a slot (under the lock) that it will never use.
            self.slots.release();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    type Acquiring = Pin<Box<dyn Future<Output = SlotPermit> + Send>>;

    fn acquiring(slots: &Arc<OrderedSlots>, rank: u64) -> Acquiring {
        Box::pin(Arc::clone(slots).acquire(rank))
    }

    fn poll(future: &mut Acquiring) -> Option<SlotPermit> {
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(permit) => Some(permit),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_freed_slot_goes_to_the_lowest_rank_not_the_first_to_wait() {
        let slots = OrderedSlots::new(1);
        let held = poll(&mut acquiring(&slots, 5)).unwrap();
        let (mut seven, mut six, mut also_six) =
            (acquiring(&slots, 7), acquiring(&slots, 6), acquiring(&slots, 6));
        assert!(poll(&mut seven).is_none() && poll(&mut six).is_none() && poll(&mut also_six).is_none());
        drop(held);
        assert!(poll(&mut seven).is_none(), "7 waited first but 6 is lower");
        let six_held = poll(&mut six).unwrap();
        drop(six_held);
        assert!(poll(&mut seven).is_none());
        let also_six_held = poll(&mut also_six).expect("the other 6, which came after the first");
        drop(also_six_held);
        assert!(poll(&mut seven).is_some());
    }

    #[test]
    fn a_waiter_that_leaves_gives_up_its_place_and_any_slot_it_was_handed() {
        let slots = OrderedSlots::new(2);
        let (first, second) = (
            poll(&mut acquiring(&slots, 1)).unwrap(),
            poll(&mut acquiring(&slots, 2)).unwrap(),
        );
        let (mut gone, mut next, mut last) =
            (acquiring(&slots, 3), acquiring(&slots, 4), acquiring(&slots, 9));
        assert!(poll(&mut gone).is_none() && poll(&mut next).is_none() && poll(&mut last).is_none());
        drop(first); // handed to 3, which leaves before it takes it: 4 gets it
        drop(gone);
        let next_held = poll(&mut next).expect("the slot 3 was handed went on");
        assert!(poll(&mut last).is_none(), "two slots, two holders");
        drop(second);
        drop(next_held);
        let last_held = poll(&mut last).unwrap();
        // Nobody waits: the slots come back as free ones.
        assert!(poll(&mut acquiring(&slots, 0)).is_some());
        drop(last_held);
        assert_eq!(slots.lock().free, 2);
    }
}
