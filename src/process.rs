//! Running a program (argv, never a shell) with its output captured: in its own process
//! group, killed with everything it started when the future is dropped (a deadline), both
//! pipes always drained. Used by `exec` steps and `exec` diagnostics.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;

const MAX_OUTPUT: usize = 1 << 20;

#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn exit_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "no exit status".into(),
        }
    }

    pub fn dump(&self) -> String {
        format!(
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.exit_text(),
            truncate_block(&self.stdout),
            truncate_block(&self.stderr)
        )
    }
}

fn truncate_block(s: &str) -> String {
    if s.len() > 4096 {
        let cut: String = s.chars().take(4096).collect();
        format!("{cut}\n… (cut)")
    } else {
        s.to_owned()
    }
}

/// Kills the process group when dropped: on a deadline the attempt future is dropped, and the
/// program (and anything it started) must not outlive it.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the process group we created.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// Run `argv` in `dir` with `env` added; its exit status and output (each stream up to 1 MiB).
pub async fn run(argv: &[String], env: &[(String, String)], dir: &Path) -> Result<Output, String> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", argv[0]))?;
    let _guard = GroupGuard(child.id().map(|p| p as i32));
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let read = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let mut buf = Vec::new();
        let _ = (&mut r).take(MAX_OUTPUT as u64).read_to_end(&mut buf).await;
        // Drain the rest so the program never blocks on a full pipe.
        let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&buf).into_owned()
    };
    let (status, stdout, stderr) = tokio::join!(
        child.wait(),
        read(Box::new(&mut so)),
        read(Box::new(&mut se))
    );
    let status = status.map_err(|e| format!("waiting for {:?}: {e}", argv[0]))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(Output {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
    })
}
