//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) for
//! the few kinds kubectl's generators send that way (`kubectl create namespace | configmap |
//! secret | serviceaccount`). Other kinds answer 415: clients send them as JSON.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// How a field is encoded.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    /// metav1.Time {seconds, nanos}
    Time,
    Msg(&'static [Field]),
    MapStr,
    MapBytes,
    RepStr,
    RepMsg(&'static [Field]),
}

struct Field(u64, &'static str, Ty);

const OWNER_REF: &[Field] = &[
    Field(1, "kind", Ty::Str),
    Field(3, "name", Ty::Str),
    Field(4, "uid", Ty::Str),
    Field(5, "apiVersion", Ty::Str),
    Field(6, "controller", Ty::Bool),
    Field(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    Field(1, "name", Ty::Str),
    Field(2, "generateName", Ty::Str),
    Field(3, "namespace", Ty::Str),
    Field(5, "uid", Ty::Str),
    Field(6, "resourceVersion", Ty::Str),
    Field(7, "generation", Ty::Int),
    Field(8, "creationTimestamp", Ty::Time),
    Field(11, "labels", Ty::MapStr),
    Field(12, "annotations", Ty::MapStr),
    Field(13, "ownerReferences", Ty::RepMsg(OWNER_REF)),
    Field(14, "finalizers", Ty::RepStr),
];

const NAMESPACE: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META)),
    Field(2, "spec", Ty::Msg(&[Field(1, "finalizers", Ty::RepStr)])),
];

const CONFIG_MAP: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META)),
    Field(2, "data", Ty::MapStr),
    Field(3, "binaryData", Ty::MapBytes),
    Field(4, "immutable", Ty::Bool),
];

const SECRET: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META)),
    Field(2, "data", Ty::MapBytes),
    Field(3, "type", Ty::Str),
    Field(4, "stringData", Ty::MapStr),
    Field(5, "immutable", Ty::Bool),
];

const OBJECT_REF: &[Field] = &[
    Field(1, "kind", Ty::Str),
    Field(2, "namespace", Ty::Str),
    Field(3, "name", Ty::Str),
    Field(4, "uid", Ty::Str),
    Field(5, "apiVersion", Ty::Str),
];

const SERVICE_ACCOUNT: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META)),
    Field(2, "secrets", Ty::RepMsg(OBJECT_REF)),
    Field(
        3,
        "imagePullSecrets",
        Ty::RepMsg(&[Field(1, "name", Ty::Str)]),
    ),
    Field(4, "automountServiceAccountToken", Ty::Bool),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        _ => return None,
    })
}

struct Reader<'a> {
    d: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.i >= self.d.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.d.get(self.i).ok_or("truncated varint")?;
            self.i += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        let end = self
            .i
            .checked_add(n)
            .filter(|e| *e <= self.d.len())
            .ok_or("truncated field")?;
        let out = &self.d[self.i..end];
        self.i = end;
        Ok(out)
    }

    /// Skips a field of this wire type.
    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(format!("unsupported wire type {wire}")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.i + n > self.d.len() {
            return Err("truncated field".into());
        }
        self.i += n;
        Ok(())
    }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader { d: b, i: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while !r.done() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => k = text(r.bytes()?)?,
            (2, 2) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(r.bytes()?))
            }
            (2, 2) => v = json!(text(r.bytes()?)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { d: b, i: 0 };
    let mut secs = 0u64;
    while !r.done() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => secs = r.varint()?,
            (_, wire) => r.skip(wire)?,
        }
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    Ok(json!(humantime::format_rfc3339_seconds(t).to_string()))
}

fn message(b: &[u8], schema: &[Field]) -> Result<Value, String> {
    let mut r = Reader { d: b, i: 0 };
    let mut out = Map::new();
    while !r.done() {
        let key = r.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let Some(Field(_, name, ty)) = schema.iter().find(|f| f.0 == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = name.to_string();
        match (*ty, wire) {
            (Ty::Str, 2) => {
                out.insert(name, json!(text(r.bytes()?)?));
            }
            (Ty::Bool, 0) => {
                out.insert(name, json!(r.varint()? != 0));
            }
            (Ty::Int, 0) => {
                out.insert(name, json!(r.varint()? as i64));
            }
            (Ty::Time, 2) => {
                out.insert(name, time(r.bytes()?)?);
            }
            (Ty::Msg(s), 2) => {
                out.insert(name, message(r.bytes()?, s)?);
            }
            (Ty::MapStr | Ty::MapBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(ty, Ty::MapBytes))?;
                let m = out.entry(name).or_insert_with(|| json!({}));
                m[k] = v;
            }
            (Ty::RepStr, 2) => {
                let s = text(r.bytes()?)?;
                out.entry(name)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("array")
                    .push(json!(s));
            }
            (Ty::RepMsg(s), 2) => {
                let item = message(r.bytes()?, s)?;
                out.entry(name)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("array")
                    .push(item);
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `k8s\0`-prefixed protobuf body into the JSON object it stands for. `Err(None)`:
/// a kind this decoder does not know; `Err(Some(msg))`: a malformed body.
pub fn decode(body: &[u8]) -> Result<Value, Option<String>> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| Some("missing the k8s protobuf prefix".to_string()))?;
    let mut r = Reader { d: rest, i: 0 };
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) =
        (String::new(), String::new(), &[]);
    while !r.done() {
        let key = r.varint().map_err(Some)?;
        match (key >> 3, key & 7) {
            (1, 2) => {
                let tm = message(
                    r.bytes().map_err(Some)?,
                    &[Field(1, "apiVersion", Ty::Str), Field(2, "kind", Ty::Str)],
                )
                .map_err(Some)?;
                api_version = tm["apiVersion"].as_str().unwrap_or("").to_string();
                kind = tm["kind"].as_str().unwrap_or("").to_string();
            }
            (2, 2) => raw = r.bytes().map_err(Some)?,
            (_, wire) => r.skip(wire).map_err(Some)?,
        }
    }
    let schema = schema_for(&api_version, &kind).ok_or(None)?;
    let mut obj = message(raw, schema).map_err(Some)?;
    let m = obj.as_object_mut().expect("object");
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!(kind));
    out.append(m);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_configmap() {
        let mut meta = field(1, b"cm1");
        meta.extend(field(11, &[field(1, b"app"), field(2, b"a")].concat()));
        let mut cm = field(1, &meta);
        cm.extend(field(2, &[field(1, b"k"), field(2, b"v")].concat()));
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let mut body = b"k8s\0".to_vec();
        body.extend(field(1, &type_meta));
        body.extend(field(2, &cm));
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1", "labels": {"app": "a"}}, "data": {"k": "v"}})
        );
        let unknown = [
            b"k8s\0".to_vec(),
            field(1, &[field(1, b"v1"), field(2, b"Pod")].concat()),
        ]
        .concat();
        assert_eq!(decode(&unknown), Err(None));
        assert!(decode(b"nope").is_err());
    }
}
