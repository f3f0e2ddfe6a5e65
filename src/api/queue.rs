//! The bounded queue between the HTTP handlers (tokio) and the worker threads (std).
//! Handlers reserve a place before writing the run to the store, then push; workers block in
//! [`JobQueue::pop`]. Closing wakes every worker; jobs still queued stay queued in the store.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

#[derive(Debug)]
struct Inner<T> {
    items: VecDeque<T>,
    reserved: usize,
    closed: bool,
}

/// A bounded multi-producer multi-consumer queue.
#[derive(Debug)]
pub struct JobQueue<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
    capacity: usize,
}

/// A place in the queue, held while the run is written to the store.
#[must_use]
#[derive(Debug)]
pub struct Reservation<'a, T> {
    queue: &'a JobQueue<T>,
    used: bool,
}

impl<T> Reservation<'_, T> {
    /// Fills the reserved place.
    pub fn push(mut self, item: T) {
        self.used = true;
        let mut inner = self.queue.lock();
        inner.reserved -= 1;
        inner.items.push_back(item);
        drop(inner);
        self.queue.ready.notify_one();
    }
}

impl<T> Drop for Reservation<'_, T> {
    fn drop(&mut self) {
        if !self.used {
            self.queue.lock().reserved -= 1;
        }
    }
}

impl<T> JobQueue<T> {
    pub fn new(capacity: usize) -> Self {
        JobQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                reserved: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place, or None when the queue is full or closed.
    pub fn reserve(&self) -> Option<Reservation<'_, T>> {
        let mut inner = self.lock();
        if inner.closed || inner.items.len() + inner.reserved >= self.capacity {
            return None;
        }
        inner.reserved += 1;
        Some(Reservation {
            queue: self,
            used: false,
        })
    }

    /// Pushes past the bound (restart recovery: those runs were accepted already).
    pub fn push_unbounded(&self, item: T) {
        self.lock().items.push_back(item);
        self.ready.notify_one();
    }

    /// The next job; None once the queue is closed.
    pub fn pop(&self) -> Option<T> {
        let mut inner = self.lock();
        loop {
            if inner.closed {
                return None;
            }
            if let Some(item) = inner.items.pop_front() {
                return Some(item);
            }
            inner = self.ready.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops handing out jobs and returns the ones still waiting.
    pub fn close(&self) -> Vec<T> {
        let mut inner = self.lock();
        inner.closed = true;
        let left = inner.items.drain(..).collect();
        drop(inner);
        self.ready.notify_all();
        left
    }

    /// Jobs waiting for a worker.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_against_the_bound() {
        let q = JobQueue::new(2);
        let a = q.reserve().unwrap();
        let b = q.reserve().unwrap();
        assert!(q.reserve().is_none());
        drop(b);
        a.push(1);
        let c = q.reserve().unwrap();
        c.push(2);
        assert!(q.reserve().is_none());
        assert_eq!(q.pop(), Some(1));
        q.push_unbounded(3);
        assert_eq!(q.len(), 2);
        assert_eq!(q.close(), vec![2, 3]);
        assert_eq!(q.pop(), None);
        assert!(q.reserve().is_none());
    }
}
