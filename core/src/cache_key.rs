//! Cache keys: the same on a laptop and in the cloud, stable across
//! re-registration under a new version label, different whenever anything that
//! changes a task's behaviour changes. The byte encoding is specified in
//! `docs/caching.md` (golden vectors below) so that other implementations can
//! reproduce it exactly.

use crate::proto::core::{Blob, Literal, LiteralType, TaskTemplate, Variable, literal::Value as LV};
use crate::types::{Kind, kind};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Domain separators: a new encoding gets a new tag, never a silent change.
const TASK_DIGEST_TAG: &str = "updraft-task/v1";
const CACHE_KEY_TAG: &str = "updraft-cache-key/v1";

/// Accumulates the canonical encoding: big-endian integers, length-prefixed strings.
#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn tag(&mut self, tag: u8) {
        self.0.push(tag);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn digest(self) -> [u8; 32] {
        Sha256::digest(&self.0).into()
    }

    fn literal_type(&mut self, t: &LiteralType) {
        match kind(t) {
            Kind::Simple(s) => {
                self.tag(b'S');
                self.tag(s as u8);
            }
            Kind::List(e) => {
                self.tag(b'L');
                self.literal_type(e);
            }
            Kind::Map(v) => {
                self.tag(b'M');
                self.literal_type(v);
            }
            Kind::Optional(i) => {
                self.tag(b'O');
                self.literal_type(i);
            }
            Kind::Struct(s) => {
                self.tag(b'R');
                let fields: BTreeMap<&str, Option<&LiteralType>> =
                    s.fields.iter().map(|f| (f.name.as_str(), f.r#type.as_ref())).collect();
                self.u64(fields.len() as u64);
                for (name, t) in fields {
                    self.str(name);
                    self.literal_type(t.unwrap_or(&LiteralType::default()));
                }
            }
            Kind::File(f) => {
                self.tag(b'F');
                self.str(&f.format);
            }
            Kind::Directory => self.tag(b'D'),
            Kind::DataFrame(d) => {
                self.tag(b'T');
                self.str(&d.format);
                let columns: BTreeMap<&str, i32> = d.columns.iter().map(|c| (c.name.as_str(), c.r#type)).collect();
                self.u64(columns.len() as u64);
                for (name, t) in columns {
                    self.str(name);
                    self.tag(t as u8);
                }
            }
            Kind::Unknown => self.tag(b'?'),
        }
    }

    fn variables(&mut self, vars: &[Variable]) {
        let sorted: BTreeMap<&str, Option<&LiteralType>> =
            vars.iter().map(|v| (v.name.as_str(), v.r#type.as_ref())).collect();
        self.u64(sorted.len() as u64);
        for (name, t) in sorted {
            self.str(name);
            self.literal_type(t.unwrap_or(&LiteralType::default()));
        }
    }

    fn blob(&mut self, tag: u8, blob: &Blob) {
        self.tag(tag);
        self.str(&blob.format);
        // Content, not location, identifies data; a blob not yet digested falls back to its URI.
        if blob.digest.is_empty() {
            self.tag(b'u');
            self.str(&blob.uri);
        } else {
            self.tag(b'c');
            self.str(&blob.digest);
        }
    }

    fn literal(&mut self, literal: &Literal) {
        match &literal.value {
            None | Some(LV::None(_)) => self.tag(b'n'),
            Some(LV::Integer(i)) => {
                self.tag(b'i');
                self.i64(*i);
            }
            Some(LV::Float(f)) => {
                self.tag(b'f');
                let bits = if f.is_nan() {
                    0x7ff8_0000_0000_0000
                } else if *f == 0.0 {
                    0 // -0.0 and 0.0 are the same input
                } else {
                    f.to_bits()
                };
                self.u64(bits);
            }
            Some(LV::String(s)) => {
                self.tag(b's');
                self.str(s);
            }
            Some(LV::Boolean(b)) => {
                self.tag(b'b');
                self.tag(*b as u8);
            }
            Some(LV::Datetime(t)) => {
                self.tag(b't');
                self.i64(t.seconds);
                self.u32(t.nanos as u32);
            }
            Some(LV::Duration(d)) => {
                self.tag(b'd');
                self.i64(d.seconds);
                self.u32(d.nanos as u32);
            }
            Some(LV::List(l)) => {
                self.tag(b'l');
                self.u64(l.values.len() as u64);
                for v in &l.values {
                    self.literal(v);
                }
            }
            Some(LV::Map(m)) | Some(LV::Struct(m)) => {
                self.tag(if matches!(literal.value, Some(LV::Map(_))) { b'm' } else { b'r' });
                self.u64(m.values.len() as u64);
                for (k, v) in &m.values {
                    self.str(k);
                    self.literal(v);
                }
            }
            Some(LV::File(b)) => self.blob(b'F', b),
            Some(LV::Directory(b)) => self.blob(b'D', b),
            Some(LV::Dataframe(b)) => self.blob(b'T', b),
        }
    }
}

/// A directory's content digest (hex): sha256 over its sorted manifest lines
/// `relative/path\0<file sha256 hex>\n`. The local blob store and S3 use the same.
pub fn directory_digest(mut manifest: Vec<(String, String)>) -> String {
    manifest.sort();
    let mut hasher = Sha256::new();
    for (relative, file_hex) in manifest {
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update(file_hex.as_bytes());
        hasher.update([b'\n']);
    }
    hex::encode(hasher.finalize())
}

/// sha256 of a value's canonical encoding.
pub fn literal_digest(literal: &Literal) -> [u8; 32] {
    let mut e = Encoder::default();
    e.literal(literal);
    e.digest()
}

/// [`literal_digest`] as written in documents: `sha256:` and 64 hex digits (an
/// output's digest in `outputs.json`).
pub fn literal_digest_string(literal: &Literal) -> String {
    crate::execution::contract::digest_string(&hex::encode(literal_digest(literal)))
}

/// sha256 over what defines a task's behaviour: image, argv, env and typed
/// interface. Not its version label, resources, retries, timeout or secrets.
pub fn task_digest(task: &TaskTemplate) -> [u8; 32] {
    let container = task.container.clone().unwrap_or_default();
    let interface = task.interface.clone().unwrap_or_default();
    let mut e = Encoder::default();
    e.str(TASK_DIGEST_TAG);
    e.str(&container.image);
    e.u64(container.args.len() as u64);
    for arg in &container.args {
        e.str(arg);
    }
    e.u64(container.env.len() as u64);
    for (k, v) in &container.env {
        e.str(k);
        e.str(v);
    }
    e.variables(&interface.inputs);
    e.variables(&interface.outputs);
    e.digest()
}

/// The cache key of one task invocation, as 64 hex digits.
pub fn cache_key(
    project: &str,
    domain: &str,
    task_name: &str,
    task_digest: &[u8; 32],
    cache_version: &str,
    inputs: &BTreeMap<String, Literal>,
) -> String {
    let mut e = Encoder::default();
    e.str(CACHE_KEY_TAG);
    e.str(project);
    e.str(domain);
    e.str(task_name);
    e.0.extend_from_slice(task_digest);
    e.str(cache_version);
    e.u64(inputs.len() as u64);
    for (name, value) in inputs {
        e.str(name);
        e.0.extend_from_slice(&literal_digest(value));
    }
    hex::encode(e.digest())
}

/// The cache key for running `task` on `inputs`; `None` when caching is off.
pub fn for_task(task: &TaskTemplate, inputs: &BTreeMap<String, Literal>) -> Option<String> {
    let cache = task.cache.as_ref().filter(|c| c.enabled)?;
    let id = task.id.clone().unwrap_or_default();
    Some(cache_key(&id.project, &id.domain, &id.name, &task_digest(task), &cache.version, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::literal;
    use crate::proto::core::{CacheConfig, Container, Identifier, ResourceQuantities, Resources, TypedInterface};
    use crate::types;
    use serde_json::json;

    fn task() -> TaskTemplate {
        let var = |name: &str, t: &str| Variable {
            name: name.into(),
            r#type: Some(types::parse(&json!(t)).unwrap()),
            description: String::new(),
        };
        TaskTemplate {
            id: Some(Identifier {
                project: "demo".into(),
                domain: "development".into(),
                name: "fit".into(),
                version: "v1".into(),
                ..Default::default()
            }),
            interface: Some(TypedInterface {
                inputs: vec![var("seed", "int"), var("rate", "float")],
                outputs: vec![var("model", "file")],
            }),
            container: Some(Container {
                image: "python:3.11-slim".into(),
                args: vec!["python".into(), "fit.py".into(), "{{inputs.seed}}".into()],
                env: [("MODE".to_string(), "fast".to_string())].into(),
            }),
            cache: Some(CacheConfig { enabled: true, version: "1".into() }),
            ..Default::default()
        }
    }

    fn inputs() -> BTreeMap<String, Literal> {
        [("seed".to_string(), literal::integer(7)), ("rate".to_string(), literal::float(0.5))].into()
    }

    /// Golden vectors of docs/caching.md, computed by docs/cache_key_reference.py
    /// (written from the document, not from this code): any change here breaks every stored cache
    /// entry and every other implementation, so it needs a new encoding tag.
    #[test]
    fn directory_digests_ignore_listing_order() {
        let a = vec![("a/x".to_string(), "11".to_string()), ("b".to_string(), "22".to_string())];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(directory_digest(a.clone()), directory_digest(b));
        assert_ne!(directory_digest(a), directory_digest(vec![("a/x".to_string(), "11".to_string())]));
    }

    #[test]
    fn golden_vectors() {
        assert_eq!(hex::encode(literal_digest(&literal::integer(7))), GOLDEN_INT_7);
        assert_eq!(hex::encode(literal_digest(&literal::string("hello"))), GOLDEN_STRING_HELLO);
        assert_eq!(
            hex::encode(literal_digest(&literal::list(vec![literal::float(0.5), literal::boolean(true)]))),
            GOLDEN_LIST
        );
        assert_eq!(hex::encode(task_digest(&task())), GOLDEN_TASK);
        assert_eq!(for_task(&task(), &inputs()).unwrap(), GOLDEN_KEY);
    }

    const GOLDEN_INT_7: &str = "c6fdf99115f899812d0a79aab2c54fb7c9ffd8d9133276f9adcd411a78e74699";
    const GOLDEN_STRING_HELLO: &str = "f82c1a812ec9ee2a33109d61da93aeac31f5a09f5a57937bd24366226b721b03";
    const GOLDEN_LIST: &str = "b7e2f7a5a830056f11bebd7f4ac1c7e212b4e1eec54eac4a4bcd6e0ce505592a";
    const GOLDEN_TASK: &str = "7e8aab5b38e618302b71452ec24fc2946abd2058c8dbe8ee62103be395f9e57a";
    const GOLDEN_KEY: &str = "95d327f928e0237a5208682f2682a5c52b1dad8d6e72dc5d042980cc6c38126b";

    #[test]
    fn version_label_resources_and_retries_do_not_change_the_key() {
        let base = for_task(&task(), &inputs());
        let mut t = task();
        t.id.as_mut().unwrap().version = "v2".into();
        t.retries = 5;
        t.resources = Some(Resources {
            requests: Some(ResourceQuantities { cpu_millis: 4000, memory_mib: 8192, gpu: 1 }),
            limits: None,
        });
        assert_eq!(for_task(&t, &inputs()), base);
    }

    #[test]
    fn behaviour_changes_change_the_key() {
        let base = for_task(&task(), &inputs()).unwrap();
        let changes: Vec<fn(&mut TaskTemplate)> = vec![
            |t| t.container.as_mut().unwrap().image = "python:3.12-slim".into(),
            |t| t.container.as_mut().unwrap().args.push("--fast".into()),
            |t| {
                t.container.as_mut().unwrap().env.insert("MODE".into(), "slow".into());
            },
            |t| t.cache.as_mut().unwrap().version = "2".into(),
            |t| t.interface.as_mut().unwrap().outputs[0].r#type = Some(types::file("csv")),
            |t| t.id.as_mut().unwrap().domain = "production".into(),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut t = task();
            change(&mut t);
            assert_ne!(for_task(&t, &inputs()).unwrap(), base, "change {i} kept the key");
        }
        let mut other = inputs();
        other.insert("seed".into(), literal::integer(8));
        assert_ne!(for_task(&task(), &other).unwrap(), base);
    }

    #[test]
    fn blobs_hash_by_content_when_digested() {
        let at = |uri: &str, digest: &str| Literal {
            value: Some(LV::File(Blob { uri: uri.into(), format: "csv".into(), digest: digest.into() })),
        };
        assert_eq!(literal_digest(&at("s3://a/x.csv", "sha256:aa")), literal_digest(&at("/tmp/y.csv", "sha256:aa")));
        assert_ne!(literal_digest(&at("s3://a/x.csv", "")), literal_digest(&at("/tmp/y.csv", "")));
        assert_eq!(literal_digest(&literal::float(-0.0)), literal_digest(&literal::float(0.0)));
    }

    #[test]
    fn disabled_cache_has_no_key() {
        let mut t = task();
        t.cache = Some(CacheConfig { enabled: false, version: String::new() });
        assert_eq!(for_task(&t, &inputs()), None);
    }
}
