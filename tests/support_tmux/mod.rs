//! A real terminal for the tests of the pause prompt: gwtest runs in a tmux pane (its stdin
//! and stdout a terminal, as for a person), keys are typed with `send-keys` and the screen is
//! read with `capture-pane`. Each terminal has its own tmux server (`-L`), killed on drop.
//!
//! tmux is installed by ci/install-deps.sh; without it these tests fail and say so, never
//! skip.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Terminal {
    socket: String,
}

fn tmux_missing() -> ! {
    panic!(
        "tmux is not installed: these tests drive the pause prompt in a real terminal with \
         tmux; install it with ci/install-deps.sh (Debian package tmux)"
    )
}

impl Terminal {
    /// Runs `BIN ARGS` in `dir` in a new 220x50 terminal, with the tests' environment (not CI,
    /// no colours) and `env`. When gwtest exits the pane shows
    /// `gwtest exited N` and stays open.
    pub fn start(dir: &Path, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Terminal {
        static N: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "gwtest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        // The tests' one environment hygiene (support::command), except `CI`: a person at a
        // terminal. `TERM` is the pane's.
        let mut cmd = format!(
            "env -i TERM=\"$TERM\" HOME={} NO_COLOR=1",
            quote(&dir.display().to_string())
        );
        for (k, v) in crate::support::passed_through() {
            cmd.push_str(&format!(" {k}={}", quote(&v)));
        }
        for (k, v) in env {
            cmd.push_str(&format!(" {k}={}", quote(v)));
        }
        cmd.push(' ');
        cmd.push_str(&quote(bin));
        for a in args {
            cmd.push(' ');
            cmd.push_str(&quote(a));
        }
        // The shell survives Ctrl-C (sent to the whole foreground group) to tell the exit code;
        // a trapped signal is reset to its default in gwtest.
        let script = dir.join(format!("{socket}.sh"));
        std::fs::write(
            &script,
            format!(
                "trap true INT\ncd {}\n{cmd}\necho \"gwtest exited $?\"\nexec sleep 86400\n",
                quote(&dir.display().to_string())
            ),
        )
        .unwrap();
        let t = Terminal { socket };
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-x",
            "220",
            "-y",
            "50",
            "sh",
            &script.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the whole transcript for capture-pane.
        t.tmux(&["set-option", "-g", "history-limit", "50000"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let mut all = vec!["-L", &self.socket, "-f", "/dev/null"];
        all.extend_from_slice(args);
        match Command::new("tmux").args(all).env_remove("TMUX").output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => tmux_missing(),
            Err(e) => panic!("tmux: {e}"),
        }
    }

    /// Everything the terminal showed, wrapped lines joined, trailing blanks removed.
    pub fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-E", "-"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        lines.join("\n").trim_end().to_owned()
    }

    /// Waits until the screen shows `want` (at most 60 s: a loaded machine) and returns it.
    pub fn wait_for(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if s.contains(want) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the terminal never showed {want:?}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `keys` then Enter.
    pub fn answer(&self, keys: &str) {
        if !keys.is_empty() {
            self.tmux(&["send-keys", "-t", "0", "-l", keys]);
        }
        self.tmux(&["send-keys", "-t", "0", "Enter"]);
    }

    /// Presses Ctrl-C.
    pub fn ctrl_c(&self) {
        self.tmux(&["send-keys", "-t", "0", "C-c"]);
    }

    /// Waits for gwtest to exit, failing unless its exit code is `code`; the whole screen.
    pub fn exit(&self, code: i32) -> String {
        let s = self.wait_for("gwtest exited ");
        let got: i32 = s
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("gwtest exited "))
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_else(|| panic!("no exit code in:\n{s}"));
        assert_eq!(got, code, "{s}");
        s
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
