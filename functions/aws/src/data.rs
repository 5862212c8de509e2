//! Task inputs held in S3, made local: the half of the data plane that
//! `updraft exec` (in a container) and `updraft run --blob-store s3://…` (on
//! this machine) share. A task only ever sees local paths.

use crate::s3::{self, DataError, S3Uri};
use aws_sdk_s3::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use updraft_core::proto::core::{Blob, Literal, literal::Value as LV};

/// Downloads every blob of `inputs` that lives in S3 (files, dataframes and
/// directories, also inside lists and maps) under `dir`, checks it against
/// its recorded digest, and points the literal at the local copy. Blobs that
/// are already local paths are left as they are.
pub async fn download_inputs(s3: &Client, inputs: &mut BTreeMap<String, Literal>, dir: &Path) -> Result<(), DataError> {
    for (blob, is_dir, local) in input_blobs(inputs, dir) {
        if !blob.uri.starts_with("s3://") {
            continue;
        }
        let from = S3Uri::parse(&blob.uri).map_err(DataError::BadUri)?;
        if is_dir {
            s3::download_dir(s3, &from, &local, Some(&blob.digest)).await?;
        } else {
            s3::download_file(s3, &from, &local, Some(&blob.digest)).await?;
        }
        blob.uri = local.display().to_string();
    }
    Ok(())
}

/// Every blob of `inputs`, whether it is a directory, and the place a task's
/// copy of it goes: `dir/<input>`, or `dir/<input>/<i>` when the input holds several.
pub fn input_blobs<'a>(inputs: &'a mut BTreeMap<String, Literal>, dir: &Path) -> Vec<(&'a mut Blob, bool, PathBuf)> {
    let mut out = Vec::new();
    for (name, value) in inputs.iter_mut() {
        let mut blobs = Vec::new();
        collect_blobs(value, &mut blobs);
        let many = blobs.len() > 1;
        for (i, (blob, is_dir)) in blobs.into_iter().enumerate() {
            let place = if many { dir.join(name).join(i.to_string()) } else { dir.join(name) };
            out.push((blob, is_dir, place));
        }
    }
    out
}

/// Every blob in a value (lists and maps of files included), and whether it is a directory.
pub fn collect_blobs<'a>(value: &'a mut Literal, out: &mut Vec<(&'a mut Blob, bool)>) {
    match &mut value.value {
        Some(LV::File(b)) | Some(LV::Dataframe(b)) => out.push((b, false)),
        Some(LV::Directory(b)) => out.push((b, true)),
        Some(LV::List(list)) => list.values.iter_mut().for_each(|v| collect_blobs(v, out)),
        Some(LV::Map(map)) | Some(LV::Struct(map)) => map.values.values_mut().for_each(|v| collect_blobs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::literal;

    #[test]
    fn blobs_are_found_inside_collections() {
        let file = |uri: &str| Literal { value: Some(LV::File(Blob { uri: uri.into(), ..Default::default() })) };
        let dir = Literal { value: Some(LV::Directory(Blob { uri: "s3://b/d".into(), ..Default::default() })) };
        let mut value = literal::list(vec![file("s3://b/1"), file("s3://b/2"), dir]);
        let mut blobs = Vec::new();
        collect_blobs(&mut value, &mut blobs);
        let found: Vec<(&str, bool)> = blobs.iter().map(|(b, d)| (b.uri.as_str(), *d)).collect();
        assert_eq!(found, [("s3://b/1", false), ("s3://b/2", false), ("s3://b/d", true)]);
    }
}
