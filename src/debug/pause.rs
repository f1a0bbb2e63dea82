//! Pausing a test with everything still in place until a person answers: Enter (go on), `r`
//! (run the failed step again), `k` (keep the test's resources), `q` (stop the run), or
//! Ctrl-C. The prompt is printed by the terminal reporter from the `Paused` event; this module
//! decides whether to pause, stands the test's clock still, and reads the answer.
//!
//! Only a terminal can answer: with stdin a pipe (even one that stays open), a file, or
//! closed, or with `$CI` set, gwtest says once why it does not pause and goes on. stdin is read
//! by one thread for the whole process, line by line, so an abandoned pause (Ctrl-C) never
//! leaves a read behind that would swallow the next answer.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, mpsc};
use tokio::time::Instant;

use crate::cluster::Tracked;
use crate::engine::RunContext;
use crate::engine::events::{Answer, Event, Failure, StepReport, TestId};

/// One pause at a time: parallel tests queue up behind the person at the keyboard. Holds the
/// lines typed on stdin (`None` once stdin is closed).
static STDIN: OnceLock<Mutex<mpsc::UnboundedReceiver<String>>> = OnceLock::new();

fn stdin_lines() -> &'static Mutex<mpsc::UnboundedReceiver<String>> {
    STDIN.get_or_init(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            // Ends at end of input (or when nobody listens any more).
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        Mutex::new(rx)
    })
}

/// What the pauses of one run share.
#[derive(Debug, Default)]
pub struct Prompt {
    /// The notice that gwtest does not pause was given (it is given once per run).
    said_no_pause: AtomicBool,
    /// `q` was answered: the run stops, and exits 1.
    quit: AtomicBool,
}

impl Prompt {
    /// Whether a person stopped the run with `q`.
    pub fn quit(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }
}

/// Why nobody can answer a prompt, if so.
fn cannot_answer() -> Option<String> {
    if crate::config::in_ci() {
        return Some("$CI is set: nobody is at the keyboard".into());
    }
    if std::io::stdin().is_terminal() {
        return None;
    }
    Some(format!("stdin is {}, not a terminal", stdin_kind()))
}

/// What stdin is, for the notice.
fn stdin_kind() -> &'static str {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return "closed";
    };
    match std::fs::File::from(fd).metadata().map(|m| m.file_type()) {
        Ok(t) if t.is_fifo() => "a pipe",
        Ok(t) if t.is_file() => "a file",
        Ok(t) if t.is_socket() => "a socket",
        // A closed stdin is reopened on /dev/null when a Rust program starts.
        Ok(t) if t.is_char_device() => "closed (/dev/null or another device)",
        Ok(_) => "something else",
        Err(_) => "closed",
    }
}

/// A test's deadline, which stands still while the test is paused: the time a person spends
/// at the prompt (or waiting behind another test's pause) never counts against the test.
#[derive(Debug)]
pub struct Clock {
    state: std::sync::Mutex<ClockState>,
    changed: Notify,
}

#[derive(Debug)]
struct ClockState {
    deadline: Instant,
    /// When the clock stopped, while it is stopped.
    stopped_at: Option<Instant>,
}

impl Default for Clock {
    /// A deadline that never comes (steps run outside a test: unit tests, benchmarks).
    fn default() -> Self {
        Clock::new(Instant::now() + Duration::from_secs(100 * 365 * 86_400))
    }
}

impl Clock {
    pub fn new(deadline: Instant) -> Self {
        Clock {
            state: std::sync::Mutex::new(ClockState {
                deadline,
                stopped_at: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The deadline as it stands now (while stopped: as if the clock started again now).
    pub fn deadline(&self) -> Instant {
        let s = self.lock();
        match s.stopped_at {
            Some(at) => s.deadline + at.elapsed(),
            None => s.deadline,
        }
    }

    /// Stop the clock until the guard is dropped; the deadline then moves by the time stopped.
    fn stop(&self) -> Stopped<'_> {
        let mut s = self.lock();
        if s.stopped_at.is_none() {
            s.stopped_at = Some(Instant::now());
        }
        drop(s);
        self.changed.notify_waiters();
        Stopped(self)
    }

    fn start(&self) {
        let mut s = self.lock();
        if let Some(at) = s.stopped_at.take() {
            s.deadline += at.elapsed();
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// Move the deadline to `at_least` if it is earlier.
    pub fn extend_to(&self, at_least: Instant) {
        let mut s = self.lock();
        s.deadline = s.deadline.max(at_least);
        drop(s);
        self.changed.notify_waiters();
    }

    /// Resolves once `after` has passed beyond the deadline, counting only the time the clock
    /// ran.
    pub async fn passed(&self, after: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (deadline, stopped) = {
                let s = self.lock();
                (s.deadline + after, s.stopped_at.is_some())
            };
            if stopped {
                changed.await;
                continue;
            }
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = changed => {}
            }
        }
    }
}

/// The clock is stopped while this lives.
struct Stopped<'a>(&'a Clock);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.start();
    }
}

/// A line typed at the prompt, as an answer; an error says what the prompt takes.
fn answer(line: Option<&str>, retry: bool) -> Result<Answer, String> {
    let Some(line) = line else {
        // End of input (Ctrl-D): nobody will answer again.
        return Ok(Answer::Continue);
    };
    let retry_help = if retry {
        ", r runs the failed step again"
    } else {
        ""
    };
    match line.trim().to_ascii_lowercase().as_str() {
        "" | "c" | "continue" => Ok(Answer::Continue),
        "r" | "retry" if retry => Ok(Answer::Retry),
        "r" | "retry" => Err(
            "nothing to run again: this pause is a `pause:` step, not a failure (Enter goes on)"
                .into(),
        ),
        "k" | "keep" => Ok(Answer::Keep),
        "q" | "quit" => Ok(Answer::Quit),
        other => Err(format!(
            "unknown answer {}: Enter goes on{retry_help}, k keeps this test's resources, q \
             stops the run",
            crate::util::quoted(other)
        )),
    }
}

/// What a pause shows of its test, and the test's clock it stops.
pub struct TestView<'a> {
    pub namespace: Option<&'a str>,
    pub tracked: &'a [Tracked],
    pub clock: &'a Clock,
}

/// Pause and wait for the answer, with the test's clock stopped.
async fn pause(
    ctx: &Arc<RunContext>,
    id: &TestId,
    state: TestView<'_>,
    reason: String,
    failure: Option<Failure>,
) -> Answer {
    if let Some(why) = cannot_answer() {
        if !ctx.prompt.said_no_pause.swap(true, Ordering::SeqCst) {
            ctx.events.emit(Event::Notice {
                id: None,
                message: format!(
                    "not pausing: {why} (gwtest pauses only where a person can answer); the \
                     run goes on"
                ),
            });
        }
        return Answer::Continue;
    }
    // Waiting behind another test's pause is waiting for the person too.
    let _stopped = state.clock.stop();
    let mut lines = tokio::select! {
        l = stdin_lines().lock() => l,
        _ = ctx.cancel.cancelled() => return Answer::Interrupted,
    };
    if ctx.cancel.is_cancelled() {
        return Answer::Interrupted;
    }
    // Lines typed before the prompt was shown answer nothing.
    while lines.try_recv().is_ok() {}
    let commands = state
        .namespace
        .map(|ns| crate::cluster::inspect_commands(ns, &ctx.kubectl_flags(), state.tracked))
        .unwrap_or_default();
    let retry = failure.is_some();
    ctx.events.emit(Event::Paused {
        id: id.clone(),
        reason,
        namespace: state.namespace.map(str::to_owned),
        commands,
        failure,
    });
    let answer = loop {
        let line = tokio::select! {
            l = lines.recv() => l,
            _ = ctx.cancel.cancelled() => break Answer::Interrupted,
        };
        match answer(line.as_deref(), retry) {
            Ok(a) => break a,
            Err(message) => ctx.events.emit(Event::Notice {
                id: Some(id.clone()),
                message,
            }),
        }
    };
    ctx.events.emit(Event::Resumed {
        id: id.clone(),
        answer,
    });
    if answer == Answer::Quit {
        ctx.prompt.quit.store(true, Ordering::SeqCst);
        // Said before cancelling: what the cancellation sets off comes after it.
        ctx.events.emit(Event::Notice {
            id: None,
            message: "q at the prompt: stopping the run (running tests stop, cleanup runs, \
                      reports are written; exit 1)"
                .into(),
        });
        ctx.cancel.cancel();
    }
    answer
}

/// `--pause-on-failure`: stop after a failed step, before anything else happens to the test.
pub async fn on_failure(
    ctx: &Arc<RunContext>,
    id: &TestId,
    state: TestView<'_>,
    step: &StepReport,
) -> Answer {
    pause(
        ctx,
        id,
        state,
        format!("{} ({}) failed", step.label(), step.name),
        step.failure.clone(),
    )
    .await
}

/// A `pause:` step under `--pause`.
pub async fn wait(
    ctx: &Arc<RunContext>,
    id: &TestId,
    state: TestView<'_>,
    message: &str,
) -> Answer {
    pause(ctx, id, state, format!("pause: {message}"), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_at_the_prompt() {
        assert_eq!(answer(Some("\n"), true), Ok(Answer::Continue));
        assert_eq!(answer(None, true), Ok(Answer::Continue));
        assert_eq!(answer(Some(" R\n"), true), Ok(Answer::Retry));
        assert_eq!(answer(Some("k\n"), false), Ok(Answer::Keep));
        assert_eq!(answer(Some("quit\n"), false), Ok(Answer::Quit));
        let e = answer(Some("r\n"), false).unwrap_err();
        assert!(e.starts_with("nothing to run again"), "{e}");
        let e = answer(Some("x\n"), true).unwrap_err();
        assert!(e.contains("r runs the failed step again"), "{e}");
        assert!(!answer(Some("x\n"), false).unwrap_err().contains("r runs"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_clock_moves_its_deadline() {
        let start = Instant::now();
        let clock = Clock::new(start + Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(4)).await;
        {
            let _s = clock.stop();
            tokio::time::advance(Duration::from_secs(30)).await;
            assert_eq!(clock.deadline(), start + Duration::from_secs(40));
        }
        assert_eq!(clock.deadline(), start + Duration::from_secs(40));
        clock.extend_to(start + Duration::from_secs(20));
        assert_eq!(clock.deadline(), start + Duration::from_secs(40));
        clock.extend_to(start + Duration::from_secs(50));
        assert_eq!(clock.deadline(), start + Duration::from_secs(50));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_does_not_pass_while_stopped() {
        let start = Instant::now();
        let clock = Arc::new(Clock::new(start + Duration::from_secs(1)));
        let stopped = clock.stop();
        let c2 = clock.clone();
        let watcher = tokio::spawn(async move {
            c2.passed(Duration::from_secs(5)).await;
            Instant::now()
        });
        // Far beyond the deadline and its grace, while stopped: not passed.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watcher.is_finished());
        drop(stopped);
        let passed_at = watcher.await.unwrap();
        assert_eq!(passed_at, start + Duration::from_secs(66));
    }
}
