//! Zip archives in a batch ingest (decision 33): each file in an archive is stored as a
//! document of its own, keyed by the archive's key and its path inside
//! (`handbook.zip/policies/refunds.docx`), so that it is versioned, listed, cited, deleted
//! and time-limited like any other file. Before the batch, an archive's files are unpacked
//! (under the extractors' zip-bomb guards, in a blocking thread whose panic becomes the
//! archive's error) into a scratch folder, each under its own name so that its format is
//! detected as for any file; after the batch, documents of files the archive no longer
//! holds are removed. Files of an archive that cannot be read fail alone.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use super::{
    IngestOutcome, KnowledgeError,
    extract::{ExtractError, Format, Limits, MAX_ARCHIVE_FILES},
};

/// A batch with its archives unpacked.
#[derive(Debug, Default)]
pub(super) struct Expansion {
    /// What to ingest: the batch's other files, and the archives' files.
    pub files: Vec<(String, PathBuf)>,
    /// Archives, and files in them, that could not be read.
    pub failed: Vec<IngestOutcome>,
    /// Archives read whole, with the keys of every file they hold (read or not): their
    /// other documents are of files since removed from them.
    pub archives: Vec<(String, BTreeSet<String>)>,
    /// Where the archives' files were unpacked, removed when dropped: keep it until the
    /// files are ingested.
    pub scratch: Option<Scratch>,
}

/// A folder removed when dropped.
#[derive(Debug)]
pub(super) struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unpacks the zip archives of `files` (by name: a `.zip` that holds an Office package or
/// anything else is left to its own reader).
pub(super) async fn expand(files: Vec<(String, PathBuf)>, limits: &Limits) -> Expansion {
    let mut expansion = Expansion::default();
    for (key, path) in files {
        let named_zip = |name: &str| Format::from_extension(name) == Some(Format::Zip);
        if !named_zip(&key) && !path.file_name().is_some_and(|n| named_zip(&n.to_string_lossy())) {
            expansion.files.push((key, path));
            continue;
        }
        match unpack_file(&key, &path, limits, &mut expansion).await {
            Ok(true) => {}
            Ok(false) => expansion.files.push((key, path)),
            Err(error) => expansion.failed.push(IngestOutcome::failed(key, &error)),
        }
    }
    expansion
}

/// Unpacks one archive into the expansion; `false` when the file is to be ingested as one
/// document: no plain archive, too large to read here (its ingest gives the error), or
/// damaged.
async fn unpack_file(
    key: &str,
    path: &Path,
    limits: &Limits,
    expansion: &mut Expansion,
) -> Result<bool, KnowledgeError> {
    let io = |e: std::io::Error| KnowledgeError::Io { path: path.display().to_string(), error: e.to_string() };
    let size = tokio::fs::metadata(path).await.map_err(io)?.len();
    if size > limits.max_file_bytes {
        return Ok(false);
    }
    let bytes = tokio::fs::read(path).await.map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if Format::detect(&name, &bytes) != Some(Format::Zip) {
        return Ok(false);
    }
    let scratch = expansion
        .scratch
        .get_or_insert_with(|| {
            Scratch(std::env::temp_dir().join(format!("aegis-unpack-{}", uuid::Uuid::new_v4().simple())))
        })
        .0
        .join(uuid::Uuid::new_v4().simple().to_string());
    // The files are tenant data: the folder (and the scratch folder above it, when new)
    // is its owner's alone.
    let mut folder = tokio::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    folder.mode(0o700);
    folder
        .create(&scratch)
        .await
        .map_err(|e| KnowledgeError::Io { path: scratch.display().to_string(), error: e.to_string() })?;
    let extract_error = |error| KnowledgeError::Extract { source_key: key.to_owned(), error };
    let (limits, archive_key, folder) = (limits.clone(), key.to_owned(), scratch);
    let unpacked = tokio::task::spawn_blocking(move || {
        super::extract::caught(|| unpack_to(&bytes, &limits, &archive_key, &folder))
    })
    .await
    .map_err(|e| extract_error(ExtractError::Crashed(format!("the unpacking thread: {e}"))))?;
    let (files, failed, complete) = match unpacked {
        Ok(unpacked) => unpacked,
        // A damaged archive (one cut short) goes to the reader, which salvages what it can
        // into one document.
        Err(ExtractError::Malformed(_)) => return Ok(false),
        Err(error) => return Err(extract_error(error)),
    };
    let keys = files.iter().map(|(k, _)| k.clone()).chain(failed.iter().map(|o| o.source_key().to_owned())).collect();
    expansion.files.extend(files);
    expansion.failed.extend(failed);
    if complete {
        expansion.archives.push((key.to_owned(), keys));
    } else {
        let error = format!(
            "only its first {MAX_ARCHIVE_FILES} entries were unpacked; the documents of its other files are kept"
        );
        expansion.failed.push(IngestOutcome::Failed { source_key: key.to_owned(), error, transient: false });
    }
    Ok(true)
}

type UnpackedFiles = (Vec<(String, PathBuf)>, Vec<IngestOutcome>, bool);

/// Writes every file of the archive `bytes` to a folder of its own under `scratch`. A
/// file that cannot be written, or whose path another entry of the archive has already,
/// fails alone.
fn unpack_to(bytes: &[u8], limits: &Limits, key: &str, scratch: &Path) -> Result<UnpackedFiles, ExtractError> {
    let (mut files, mut failed) = (Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    let capped = super::extract::unpack(bytes, limits, &mut |file| {
        let (path, data) = match file {
            super::extract::Unpacked::File(path, data) => (path, data),
            super::extract::Unpacked::Unreadable(path, error) => {
                let source_key = format!("{key}/{path}");
                let error = KnowledgeError::Extract { source_key: source_key.clone(), error };
                failed.push(IngestOutcome::failed(source_key, &error));
                return;
            }
        };
        let member_key = format!("{key}/{path}");
        if !seen.insert(member_key.clone()) {
            let error = "another entry of the archive has the same path; the first is ingested".to_owned();
            failed.push(IngestOutcome::Failed { source_key: member_key, error, transient: false });
            return;
        }
        let dir = scratch.join(seen.len().to_string());
        let target = dir.join(file_name(&path));
        match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&target, data)) {
            Ok(()) => files.push((member_key, target)),
            Err(e) => {
                let error = KnowledgeError::Io { path: target.display().to_string(), error: e.to_string() };
                failed.push(IngestOutcome::failed(member_key, &error));
            }
        }
    })?;
    Ok((files, failed, !capped))
}

/// A file name for a path inside an archive: its last part, with nothing a file system
/// would read as a separator or a control character, at most 100 characters before its
/// extension (a name can run past what a file system takes).
fn file_name(path: &str) -> String {
    let last = path.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last.chars().filter(|c| !c.is_control() && *c != ':').collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        return "file".to_owned();
    }
    let (stem, extension) = match clean.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() && extension.chars().count() <= 16 => (stem, Some(extension)),
        _ => (clean.as_str(), None),
    };
    let stem: String = stem.chars().take(100).collect();
    match extension {
        Some(extension) => format!("{stem}.{extension}"),
        None => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn a_path_inside_an_archive_becomes_a_plain_file_name() {
        assert_eq!(file_name("policies/refunds.docx"), "refunds.docx");
        assert_eq!(file_name("..\\..\\windows\\evil.txt"), "evil.txt");
        assert_eq!(file_name("a/.."), "file");
        assert_eq!(file_name("c:report\u{7}.pdf"), "creport.pdf");
        let long = format!("{}.docx", "x".repeat(300));
        assert_eq!(file_name(&long), format!("{}.docx", "x".repeat(100)), "the extension kept");
    }
}
