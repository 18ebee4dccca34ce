//! What tells that the configuration changed without reading it: the `*.toml` files it is
//! made of, each with the inode, size and modification time its path resolves to. Kubernetes
//! updates a mounted ConfigMap by swapping a `..data` symlink, so every path then resolves to
//! a new inode; an editor that writes in place changes the size or the time. The daemon
//! compares a fingerprint every few seconds and reloads, all or nothing, when it changed. The
//! web configuration's files (`--web.config.file` and the certificates and keys it names) are
//! part of it.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a file's metadata says of it: inode, size and modification time.
type Stamp = (u64, u64, Option<SystemTime>);

/// The configuration's files and their stamps (`None`: unreadable), in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint(Vec<(PathBuf, Option<Stamp>)>);

impl Fingerprint {
    /// The fingerprint of the configuration at `path` (a file, or a directory of `*.toml`
    /// files) as it is now; a file that cannot be read is part of it as unreadable.
    pub(crate) fn of(path: &Path) -> Fingerprint {
        let files = super::config_files(path).unwrap_or_else(|_| vec![path.to_owned()]);
        Fingerprint(
            files
                .into_iter()
                .map(|file| {
                    let stamp = std::fs::metadata(&file)
                        .ok()
                        .map(|m| (m.ino(), m.len(), m.modified().ok()));
                    (file, stamp)
                })
                .collect(),
        )
    }

    /// The fingerprint with `files` too (the web configuration and the certificates it
    /// reads), so that a change to any of them reloads as well.
    pub(crate) fn with_files(mut self, files: &[PathBuf]) -> Fingerprint {
        for file in files {
            let stamp = std::fs::metadata(file)
                .ok()
                .map(|m| (m.ino(), m.len(), m.modified().ok()));
            self.0.push((file.clone(), stamp));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configmap_swap_an_edit_and_a_new_file_change_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // The layout of a mounted ConfigMap: file -> ..data/file, ..data -> a timestamped dir.
        std::fs::create_dir(root.join("..v1")).expect("mkdir");
        std::fs::write(root.join("..v1/credwatch.toml"), "a").expect("write");
        std::os::unix::fs::symlink("..v1", root.join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/credwatch.toml", root.join("credwatch.toml"))
            .expect("link");
        let before = Fingerprint::of(root);
        assert_eq!(
            before,
            Fingerprint::of(root),
            "stable while nothing changes"
        );

        // The kubelet writes the new version beside it and swaps the link atomically.
        std::fs::create_dir(root.join("..v2")).expect("mkdir");
        std::fs::write(root.join("..v2/credwatch.toml"), "a").expect("write");
        std::os::unix::fs::symlink("..v2", root.join("..data.tmp")).expect("link");
        std::fs::rename(root.join("..data.tmp"), root.join("..data")).expect("swap");
        let swapped = Fingerprint::of(root);
        assert_ne!(before, swapped, "same content, new inode");

        std::fs::write(root.join("other.toml"), "b").expect("write");
        assert_ne!(swapped, Fingerprint::of(root), "a new file");
    }
}
