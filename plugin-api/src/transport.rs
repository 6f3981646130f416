//! Which [`Transport`] the plugin code running on this thread works through.
//!
//! The host builds a plugin for another host with the transport to reach it (`ssh …`). The
//! export adapter makes that transport this thread's [`current`] one while the instance is built
//! and while any of its methods runs; the helpers of `ao-plugin-kit` (programs, files, session
//! folders) read it, so a plugin written with them works on the other machine unchanged. It
//! lives here, beside the adapter, because a library has one copy of this crate: the kit and the
//! adapter then see the same thread-local.

use std::cell::RefCell;

use crate::types::Transport;

thread_local! {
    static CURRENT: RefCell<Option<Transport>> = const { RefCell::new(None) };
}

/// The transport of the plugin instance running on this thread; `None` on the host's machine.
pub fn current() -> Option<Transport> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Runs `body` with `transport` as this thread's current one (the export adapter wraps every
/// constructor and method of an instance in it), restoring what was there before.
pub(crate) fn scoped<R>(transport: Option<&Transport>, body: impl FnOnce() -> R) -> R {
    let Some(transport) = transport else {
        return body();
    };
    let previous = CURRENT.with(|current| current.replace(Some(transport.clone())));
    struct Restore(Option<Transport>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    body()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_transport_is_scoped_and_restored() {
        let transport = Transport {
            host: "box1".into(),
            command: vec!["ssh".into(), "box1".into()].into(),
        };
        assert_eq!(current(), None);
        let inside = scoped(Some(&transport), || {
            let nested = scoped(None, current);
            (current(), nested)
        });
        assert_eq!(inside, (Some(transport.clone()), Some(transport)));
        assert_eq!(current(), None);
    }
}
