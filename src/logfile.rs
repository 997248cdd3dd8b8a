//! The request logs of a lab (ALB access log, WAF log, flow logs, DNS query
//! log, S3 access log) live under /run/vpcsim, a tmpfs on Debian: memory.
//! AWS keeps every record; one machine cannot, so each log is capped the way
//! Docker's json-file driver caps a container's (`max-size`, `max-file=2`):
//! past the cap the file becomes `<file>.1`, replacing the older one, and a
//! new file begins. A lab holds at most two files of each log, however long
//! a load test runs, and `vpcsim logs` / `waf-logs` read both in order.
//!
//! Owns: writing a capped log and reading one across its rotations.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes a log file reaches before it is rotated: 64 MiB, or
/// `VPCSIM_LOG_MAX_BYTES` (at least 4 KiB) in the environment of `vpcsim up`
/// or `apply`, which the lab's daemons inherit.
pub fn max_bytes() -> u64 {
    std::env::var("VPCSIM_LOG_MAX_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(64 << 20, |n| n.max(4096))
}

/// The older generation of `path`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// A log file appended to in whole records and rotated at its cap.
pub struct CappedLog {
    path: PathBuf,
    file: File,
    len: u64,
    cap: u64,
}

impl CappedLog {
    /// Opens `path` for appending (a restarted daemon keeps earlier lines).
    pub fn open(path: &Path) -> io::Result<CappedLog> {
        Self::with_cap(path, max_bytes())
    }

    fn with_cap(path: &Path, cap: u64) -> io::Result<CappedLog> {
        let file = append(path)?;
        Ok(CappedLog {
            path: path.to_path_buf(),
            len: file.metadata()?.len(),
            file,
            cap,
        })
    }

    /// Appends `records` (whole lines), rotating where the next line would
    /// take the file past its cap: no line is split between two files.
    pub fn write_all(&mut self, mut records: &[u8]) -> io::Result<()> {
        while self.len + records.len() as u64 > self.cap {
            let room = (self.cap.saturating_sub(self.len) as usize).min(records.len());
            let mut fit = records[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if fit == 0 && self.len == 0 {
                // One line longer than the cap: a file of its own.
                fit = records
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(records.len(), |i| i + 1);
            }
            self.append_now(&records[..fit])?;
            records = &records[fit..];
            if records.is_empty() {
                return Ok(());
            }
            std::fs::rename(&self.path, rotated(&self.path))?;
            self.file = append(&self.path)?;
            self.len = 0;
        }
        self.append_now(records)
    }

    fn append_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    File::options().create(true).append(true).open(path)
}

/// Reads a log as it grows, across rotations (like `tail -F`): the older
/// generation first, then the file; a rotation is noticed by the path's
/// inode changing, and the old file is read to its end before the new one.
pub struct Tail {
    path: PathBuf,
    file: Option<File>,
    started: bool,
}

impl Tail {
    pub fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: None,
            started: false,
        }
    }

    /// Appends to `out` what was written since the last call.
    pub fn read_new(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if !self.started {
            self.started = true;
            if let Ok(mut older) = File::open(rotated(&self.path)) {
                older.read_to_end(out)?;
            }
        }
        loop {
            if self.file.is_none() {
                self.file = File::open(&self.path).ok();
            }
            let Some(f) = self.file.as_mut() else {
                return Ok(());
            };
            // Truncated in place (a new `up` of the same lab): start over.
            let pos = f.stream_position()?;
            if f.metadata()?.len() < pos {
                f.seek(SeekFrom::Start(0))?;
            }
            f.read_to_end(out)?;
            let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            if current.is_some_and(|ino| ino == f.metadata().map_or(0, |m| m.ino())) {
                return Ok(());
            }
            // Rotated (or removed). Once renamed the old file takes no more
            // records: read what reached it after the read above, then go on
            // with the new one from its start.
            f.read_to_end(out)?;
            self.file = None;
            if current.is_none() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vpcsim-logfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("x.log")
    }

    fn line(i: usize) -> Vec<u8> {
        format!("record {i:04} {}\n", "x".repeat(40)).into_bytes()
    }

    #[test]
    fn a_log_is_rotated_at_its_cap_and_keeps_two_files() {
        let path = scratch("cap");
        let mut log = CappedLog::with_cap(&path, 1000).unwrap();
        for i in 0..100 {
            log.write_all(&line(i)).unwrap();
        }
        let cur = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(rotated(&path)).unwrap();
        assert!(
            cur.len() <= 1000 && old.len() <= 1000,
            "{} {}",
            cur.len(),
            old.len()
        );
        // The newest records, whole and in order, across both files.
        let all: Vec<&str> = old.lines().chain(cur.lines()).collect();
        let first: usize = all[0][7..11].parse().unwrap();
        for (k, l) in all.iter().enumerate() {
            assert_eq!(l.as_bytes(), &line(first + k)[..line(0).len() - 1]);
        }
        assert_eq!(first + all.len(), 100);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            2
        );
    }

    #[test]
    fn a_batch_past_the_cap_is_split_between_lines() {
        let path = scratch("batch");
        let mut log = CappedLog::with_cap(&path, 1000).unwrap();
        let batch: Vec<u8> = (0..100).flat_map(line).collect();
        log.write_all(&batch).unwrap();
        let cur = std::fs::read(&path).unwrap();
        let old = std::fs::read(rotated(&path)).unwrap();
        assert!(
            cur.len() <= 1000 && old.len() <= 1000,
            "{} {}",
            cur.len(),
            old.len()
        );
        assert!(batch.ends_with(&[old, cur].concat()));
        // A line longer than the cap is written whole, in a file of its own.
        let long = [vec![b'y'; 3000], b"\n".to_vec()].concat();
        log.write_all(&long).unwrap();
        log.write_all(&line(0)).unwrap();
        assert_eq!(std::fs::read(rotated(&path)).unwrap(), long);
        assert_eq!(std::fs::read(&path).unwrap(), line(0));
    }

    #[test]
    fn a_reopened_log_counts_what_it_holds() {
        let path = scratch("reopen");
        CappedLog::with_cap(&path, 1000)
            .unwrap()
            .write_all(&[b'a'; 900])
            .unwrap();
        let mut log = CappedLog::with_cap(&path, 1000).unwrap();
        log.write_all(&[b'b'; 200]).unwrap();
        assert_eq!(std::fs::metadata(rotated(&path)).unwrap().len(), 900);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 200);
    }

    #[test]
    fn a_tail_reads_every_record_once_across_rotations() {
        let path = scratch("tail");
        let mut log = CappedLog::with_cap(&path, 500).unwrap();
        let mut tail = Tail::new(&path);
        let (mut read, mut written) = (Vec::new(), Vec::new());
        for i in 0..60 {
            log.write_all(&line(i)).unwrap();
            written.extend(line(i));
            // Read every few records: some rotations happen between reads.
            if i % 3 == 0 {
                tail.read_new(&mut read).unwrap();
            }
        }
        tail.read_new(&mut read).unwrap();
        assert_eq!(
            String::from_utf8(read).unwrap(),
            String::from_utf8(written).unwrap()
        );
        // A tail that starts late reads what is kept: the older file, then the newer.
        let mut late = Vec::new();
        Tail::new(&path).read_new(&mut late).unwrap();
        let kept = [
            std::fs::read(rotated(&path)).unwrap(),
            std::fs::read(&path).unwrap(),
        ]
        .concat();
        assert_eq!(late, kept);
    }
}
