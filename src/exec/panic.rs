//! A panic inside a step (a bug in lthc) is caught at the step boundary and becomes that step's
//! diagnostic, with where it happened. While steps run, the default hook's message and its
//! backtrace hint are not printed: the diagnostic says it once.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Steps running now, on any thread (their kernels' helper threads panic into them too).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

thread_local! {
    /// Where the last quiet panic on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Where the last quiet panic on any thread happened: a training loop runs on one of rayon's
/// threads, and its panic reaches the step's thread by unwinding, without the location.
static ANY_THREAD: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn install_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if RUNNING.load(Ordering::SeqCst) == 0 {
                return default(info);
            }
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            if let Ok(mut any) = ANY_THREAD.lock() {
                any.clone_from(&at);
            }
            LOCATION.with(|l| *l.borrow_mut() = at);
        }));
    });
}

/// Runs `step`; a panic becomes `Err` with its message and, where known, its location.
pub fn catch<T>(step: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    RUNNING.fetch_add(1, Ordering::SeqCst);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(step));
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    outcome.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        let here = LOCATION.with(|l| l.borrow_mut().take());
        let elsewhere = || ANY_THREAD.lock().ok().and_then(|mut a| a.take());
        match here.or_else(elsewhere) {
            Some(at) => format!("{message} (at {at})"),
            None => message,
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error_with_its_location() {
        assert_eq!(super::catch(|| 5), Ok(5));
        let err = super::catch(|| -> u8 { panic!("index out of range") }).unwrap_err();
        assert!(err.starts_with("index out of range (at "), "{err}");
        assert!(err.contains("src/exec/panic.rs:"), "{err}");
        let err = super::catch(|| -> u8 { panic!("{} of {}", 3, 2) }).unwrap_err();
        assert!(err.starts_with("3 of 2"), "{err}");
        // On a thread of rayon's, as a training loop runs.
        let err = super::catch(|| -> u8 { rayon::scope(|_| panic!("on a worker")) }).unwrap_err();
        assert!(err.starts_with("on a worker (at "), "{err}");
    }
}
