//! A value the server reads for every new connection and an operator may replace while it
//! runs (a renewed TLS certificate, a rotated token key), without touching the connections
//! already open: they keep the value they started with.

use std::sync::{Arc, PoisonError, RwLock};

/// The current value, replaceable.
#[derive(Debug)]
pub(crate) struct Reloadable<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Reloadable<T> {
    /// Starts with `value`.
    pub(crate) fn new(value: T) -> Self {
        Reloadable {
            current: RwLock::new(Arc::new(value)),
        }
    }

    /// The value for the next connection.
    pub(crate) fn current(&self) -> Arc<T> {
        // A panic cannot leave an `Arc` half-written: a poisoned lock still holds a whole value.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Serves `value` from the next connection on.
    pub(crate) fn replace(&self, value: T) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_keep_their_value_and_newcomers_get_the_new_one() {
        let reloadable = Reloadable::new("old");
        let held = reloadable.current();
        reloadable.replace("new");
        assert_eq!(*held, "old");
        assert_eq!(*reloadable.current(), "new");
    }
}
