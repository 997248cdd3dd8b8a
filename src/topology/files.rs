//! Reading the files a topology or template names without trusting them: a
//! FIFO, a device, a symlink loop, a directory or a huge file must be refused
//! at validation, promptly, rather than hang `up` or exhaust memory.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A topology file (`vpcsim up FILE`) or a CloudFormation template.
pub const MAX_TOPOLOGY_BYTES: u64 = 1024 * 1024;
/// AWS: user data is limited to 16 KB in raw form, before base64.
pub const MAX_USER_DATA_BYTES: u64 = 16 * 1024;
/// AWS: a bucket policy is limited to 20 KB.
pub const MAX_POLICY_BYTES: u64 = 20 * 1024;
/// Entries (files and directories) in one bucket's `seed_dir`.
pub const MAX_SEED_ENTRIES: usize = 1000;
/// Total bytes of the files in one bucket's `seed_dir`.
pub const MAX_SEED_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {0}: {1}")]
    Open(String, std::io::Error),
    #[error("{0} is {1}, not a regular file")]
    NotRegular(String, &'static str),
    #[error("{0} is larger than the limit of {1} bytes")]
    TooLarge(String, u64),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("seed directory {0}: {1}")]
    Seed(String, String),
}

fn kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Reads a regular file of at most `limit` bytes as UTF-8 text. Opens with
/// O_NONBLOCK so a FIFO cannot block the open, checks the type with fstat on
/// the descriptor (no race with the path), and reads at most `limit + 1`
/// bytes so a file that grows meanwhile cannot exhaust memory.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    let name = path.display().to_string();
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| FileError::Open(name.clone(), e))?;
    let meta = f.metadata().map_err(|e| FileError::Read(name.clone(), e))?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(name, kind(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge(name, limit));
    }
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Read(name.clone(), e))?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge(name, limit));
    }
    String::from_utf8(bytes).map_err(|e| {
        FileError::Read(
            name,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

/// Walks a seed directory without following symbolic links: only regular
/// files and directories, at most [`MAX_SEED_ENTRIES`] entries and
/// [`MAX_SEED_BYTES`] in all.
pub fn check_seed_dir(dir: &Path) -> Result<(), FileError> {
    let name = dir.display().to_string();
    let seed = |m: String| FileError::Seed(name.clone(), m);
    // The directory itself may be reached through a link; nothing under it is.
    let top = std::fs::metadata(dir).map_err(|e| FileError::Open(name.clone(), e))?;
    if !top.is_dir() {
        return Err(seed(format!(
            "is {}, not a directory",
            kind(top.file_type())
        )));
    }
    let (mut entries, mut bytes) = (0usize, 0u64);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let list = std::fs::read_dir(&d).map_err(|e| seed(format!("{}: {e}", d.display())))?;
        for e in list {
            let e = e.map_err(|e| seed(format!("{}: {e}", d.display())))?;
            entries += 1;
            if entries > MAX_SEED_ENTRIES {
                return Err(seed(format!("more than {MAX_SEED_ENTRIES} entries")));
            }
            let m = e
                .metadata()
                .map_err(|x| seed(format!("{}: {x}", e.path().display())))?;
            if m.is_dir() {
                todo.push(e.path());
            } else if m.is_file() {
                bytes += m.len();
                if bytes > MAX_SEED_BYTES {
                    return Err(seed(format!("more than {MAX_SEED_BYTES} bytes in all")));
                }
            } else {
                return Err(seed(format!(
                    "{} is {}; only regular files and directories are uploaded",
                    e.path().display(),
                    kind(m.file_type())
                )));
            }
        }
    }
    Ok(())
}
