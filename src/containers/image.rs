//! Images come from this machine only: vpcsim never pulls. The images under
//! `images/` are built here, offline, from a scratch Dockerfile whose context
//! is the running vpcsim binary plus the shared libraries it loads.

use super::ContainerError;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Images vpcsim knows how to build: tag -> Dockerfile (images/<name>/).
const SHIPPED: &[(&str, &str)] = &[(
    "vpcsim/model-v2",
    include_str!("../../images/model-v2/Dockerfile"),
)];

/// Label on images vpcsim built: which binary they hold, so a rebuilt vpcsim
/// rebuilds them instead of serving a stale model server.
const BINARY_LABEL: &str = "vpcsim.binary";

fn shipped(image: &str) -> Option<&'static str> {
    let tag = image.strip_suffix(":latest").unwrap_or(image);
    SHIPPED.iter().find(|(t, _)| *t == tag).map(|(_, d)| *d)
}

/// Size and modification time of the running binary.
fn binary_identity(exe: &Path) -> Result<String, ContainerError> {
    let meta = std::fs::metadata(exe).map_err(|e| ContainerError::io(exe, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!(
        "{}-{}-{mtime}",
        env!("CARGO_PKG_VERSION"),
        meta.len()
    ))
}

/// Makes sure `image` exists locally: builds shipped images when missing or
/// built from another binary; any other image must already be there.
pub async fn ensure(docker: &Docker, image: &str) -> Result<(), ContainerError> {
    let Some(dockerfile) = shipped(image) else {
        return match docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if super::not_found(&e) => Err(ContainerError::ImageMissing {
                image: image.to_string(),
                shipped: SHIPPED
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            Err(e) => Err(ContainerError::docker(format!("inspect image {image}"), e)),
        };
    };
    let exe =
        std::env::current_exe().map_err(|e| ContainerError::io(Path::new("/proc/self/exe"), e))?;
    let identity = binary_identity(&exe)?;
    // Ok(None): up to date; Ok(Some(old)): to build, replacing image `old` if any.
    let stale = || async {
        match docker.inspect_image(image).await {
            Ok(img) => {
                let label = img
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(BINARY_LABEL).cloned());
                // An image the user built under this tag (no label) is theirs: keep it.
                Ok(label.filter(|id| *id != identity).map(|_| img.id))
            }
            Err(e) if super::not_found(&e) => Ok(Some(None)),
            Err(e) => Err(ContainerError::docker(format!("inspect image {image}"), e)),
        }
    };
    if stale().await?.is_none() {
        return Ok(());
    }
    // Parallel `up`s would build the same image: one builds, the others wait.
    let _lock = build_lock()?;
    let Some(old) = stale().await? else {
        return Ok(());
    };
    let context = build_context(&exe, dockerfile)?;
    let options = BuildImageOptionsBuilder::default()
        .t(image)
        .rm(true)
        .forcerm(true)
        .labels(&HashMap::from([(BINARY_LABEL.to_string(), identity)]))
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut last = String::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ContainerError::docker(format!("build {image}"), e))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message).or(info.error) {
            return Err(ContainerError::Build {
                image: image.into(),
                message: err,
            });
        }
        if let Some(s) = info.stream {
            if !s.trim().is_empty() {
                last = s.trim().to_string();
            }
        }
    }
    tracing::info!("built {image}: {last}");
    // The image of the previous binary, untagged now: gone unless a
    // container still uses it (then Docker refuses, and it stays).
    if let Some(old) = old {
        let _ = docker
            .remove_image(
                &old,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
    Ok(())
}

/// Exclusive flock held while building, released on drop (or death).
fn build_lock() -> Result<std::fs::File, ContainerError> {
    use std::os::fd::AsRawFd;
    let path = Path::new("/run/lock/vpcsim-image-build.lock");
    let _ = std::fs::create_dir_all("/run/lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| ContainerError::io(path, e))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(ContainerError::io(path, std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// The build context: the Dockerfile, and under rootfs/ the binary as
/// /vpcsim plus every library `ldd` lists, at the path the loader expects.
fn build_context(exe: &Path, dockerfile: &str) -> Result<Vec<u8>, ContainerError> {
    let mut tar = tar::Builder::new(Vec::new());
    // dockerd's tar reader rejects GNU sparse entries.
    tar.sparse(false);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| ContainerError::io(&p, e)
    };
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(io(Path::new("Dockerfile")))?;
    tar.append_path_with_name(exe, "rootfs/vpcsim")
        .map_err(io(exe))?;
    for lib in shared_libraries(exe)? {
        // Symlinks (the loader's /lib64 entry) are followed: the image gets files.
        let name = Path::new("rootfs").join(lib.strip_prefix("/").unwrap_or(&lib));
        tar.append_path_with_name(&lib, name).map_err(io(&lib))?;
    }
    tar.into_inner().map_err(io(Path::new("build context")))
}

/// Absolute paths of the shared objects `exe` loads (none if static).
fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>, ContainerError> {
    let out = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| ContainerError::io(Path::new("ldd"), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable": a static binary needs no library.
        return Ok(vec![]);
    }
    Ok(parse_ldd(&text))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and the loader's
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.trim(),
                None => l,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn only_shipped_images_are_built() {
        assert!(shipped("vpcsim/model-v2").is_some());
        assert!(shipped("vpcsim/model-v2:latest").is_some());
        assert!(shipped("python:3.10-slim").is_none());
    }
}
