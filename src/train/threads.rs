//! The training loop's threads. With several, the loop runs on one thread of a pool of its own
//! and, on a backend whose kernels split work between CPU threads, the other threads spin,
//! taking the kernels' pieces the moment they are split off. A LeNet step splits work a few
//! times per millisecond; waking a sleeping thread for each split (a futex call and a context
//! switch, tens of µs on a virtual machine) cost more than the second core gained: measured,
//! two threads trained LeNet-300-100 slower than one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Idle time after which a helper stops spinning and polls: long serial stretches of the loop
/// (evaluation, saving) then leave the core to others.
const SPIN_FOR: Duration = Duration::from_millis(2);
/// The pause between polls of a helper that stopped spinning.
const POLL_EVERY: Duration = Duration::from_micros(100);

/// `f()` on a pool of `threads` threads, `f` on one of them; with `spin`, the others spin
/// while `f` runs, running the pieces `f`'s kernels split off. Without a pool (one thread, or
/// already on a pool's thread, or no pool could be built), `f()` where it is.
pub fn run_with<R: Send>(threads: usize, spin: bool, f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() || threads < 2 {
        return f();
    }
    // A pool of its own: on the global one, a thread waiting for a piece could take up another
    // thread's whole training loop and, under burn's autodiff lock, deadlock.
    let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(threads).build() else {
        return f();
    };
    pool.install(|| if spin { with_helpers(f) } else { f() })
}

/// `f()` on this pool thread while the pool's other threads spin, helping.
fn with_helpers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let done = AtomicBool::new(false);
    let trainer = rayon::current_thread_index();
    rayon::in_place_scope(|scope| {
        // The broadcast reaches this thread too (when it next looks for work): it must return.
        scope.spawn_broadcast(|_, thread| {
            if Some(thread.index()) != trainer {
                help(&done);
            }
        });
        // Set on the way out even if `f` panics: the scope waits for the helpers.
        let _release = SetOnDrop(&done);
        f()
    })
}

/// Runs the pool's pending pieces until `done`; spins while pieces keep coming, and polls
/// every [`POLL_EVERY`] once none came for [`SPIN_FOR`].
fn help(done: &AtomicBool) {
    let mut idle_since: Option<Instant> = None;
    let mut idle_rounds = 0u32;
    let mut resting = false;
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            (idle_since, idle_rounds, resting) = (None, 0, false);
            continue;
        }
        if resting {
            std::thread::sleep(POLL_EVERY);
            continue;
        }
        idle_rounds = idle_rounds.wrapping_add(1);
        // The clock now and then: reading it every round took a fifth of the spinning.
        if idle_rounds % 64 == 1 {
            resting = idle_since.get_or_insert_with(Instant::now).elapsed() >= SPIN_FOR;
        }
        // Spinning politely: a thread of another program waiting for this core gets it
        // (measured: as fast as a pause instruction here).
        std::thread::yield_now();
    }
}

struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn helpers_take_pieces_and_stop_with_the_loop() {
        let (threads, ran_on) = run_with(3, true, || {
            // Pieces long enough that the loop's thread cannot run them all alone.
            let ran_on: std::collections::HashSet<_> = (0..24)
                .into_par_iter()
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(2));
                    rayon::current_thread_index()
                })
                .collect();
            (rayon::current_num_threads(), ran_on)
        });
        assert_eq!(threads, 3);
        assert!(ran_on.len() > 1, "no piece ran on a helper: {ran_on:?}");
    }

    #[test]
    fn a_panicking_loop_releases_its_helpers() {
        // On a thread of its own, so that helpers left spinning fail the test, not hang it.
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = std::panic::catch_unwind(|| run_with(2, true, || panic!("in the loop")));
            let _ = sent.send(caught.is_err());
        });
        let ended = received.recv_timeout(Duration::from_secs(60));
        assert_eq!(
            ended,
            Ok(true),
            "the panic was not passed on, or the helpers kept spinning"
        );
    }
}
