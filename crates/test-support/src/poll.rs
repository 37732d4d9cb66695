//! Waiting for a condition, not for a timer: a test that sleeps "long enough" is slow when the
//! machine is idle and flaky when it is loaded. [`eventually`] polls the condition until it
//! holds or a deadline passes, and then fails naming what it waited for and what it saw last.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The answer of one poll: done with a value, or not yet (with what was seen, if anything).
pub trait Check<T> {
    /// `Ok(value)` when the condition holds; `Err(last observation)` while it does not.
    fn check(self) -> Result<T, Option<String>>;
}

impl Check<()> for bool {
    fn check(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Check<T> for Option<T> {
    fn check(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Check<T> for Result<T, E> {
    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// The time left for a condition, and the pause before its next poll: short at first (most
/// conditions hold quickly), then longer so a slow one does not take the CPU the system under
/// test needs.
struct Deadline {
    end: Instant,
    within: Duration,
    attempt: u32,
}

impl Deadline {
    fn new(within: Duration) -> Deadline {
        Deadline {
            end: Instant::now() + within,
            within,
            attempt: 0,
        }
    }

    /// After a poll that did not hold: the pause before the next one, or a panic naming `what`
    /// and the `last` observation once the time is up.
    fn missed(&mut self, what: &str, last: Option<String>) -> Duration {
        if Instant::now() >= self.end {
            let within = self.within;
            match last {
                Some(seen) => {
                    panic!("timed out after {within:?} waiting for {what}; last seen: {seen}")
                }
                None => panic!("timed out after {within:?} waiting for {what}"),
            }
        }
        let pause = Duration::from_millis((5u64 << self.attempt.min(5)).min(100));
        self.attempt += 1;
        pause
    }
}

/// Polls `condition` (a `bool`, an `Option<T>`, or a `Result<T, E>` whose error describes
/// what was seen) until it holds, returning its value; panics naming `what` after `within`.
/// Blocks the calling thread: in async code use [`eventually_async`].
pub fn eventually<T, C: Check<T>>(
    what: &str,
    within: Duration,
    mut condition: impl FnMut() -> C,
) -> T {
    let mut deadline = Deadline::new(within);
    loop {
        match condition().check() {
            Ok(v) => return v,
            Err(last) => std::thread::sleep(deadline.missed(what, last)),
        }
    }
}

/// [`eventually`] for async tests: waits on the tokio timer between polls, so the runtime
/// keeps running the tasks that make the condition true.
pub async fn eventually_async<T, C: Check<T>>(
    what: &str,
    within: Duration,
    mut condition: impl FnMut() -> C,
) -> T {
    let mut deadline = Deadline::new(within);
    loop {
        match condition().check() {
            Ok(v) => return v,
            Err(last) => tokio::time::sleep(deadline.missed(what, last)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut n = 0;
        let got = eventually("the third poll", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, 3);
    }

    #[test]
    fn fails_naming_what_it_waited_for_and_what_it_saw() {
        let err = std::panic::catch_unwind(|| {
            eventually("the queue to drain", Duration::from_millis(50), || {
                Err::<(), _>("3 items queued")
            })
        })
        .unwrap_err();
        let text = err.downcast_ref::<String>().unwrap();
        assert!(text.contains("waiting for the queue to drain"), "{text}");
        assert!(text.contains("last seen: 3 items queued"), "{text}");
    }

    #[tokio::test]
    async fn async_polling_lets_other_tasks_run() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = flag.clone();
        tokio::spawn(async move { f.store(true, std::sync::atomic::Ordering::SeqCst) });
        eventually_async("the task to set the flag", Duration::from_secs(5), || {
            flag.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    }
}
