//! A small, bounded reader of the pickle that `torch.save` writes into a `.pth` zip archive
//! (`<archive>/data.pkl`): just enough of the pickle machine to rebuild a `state_dict` (an
//! `OrderedDict` of tensors, or a dict holding one), without executing anything.
//!
//! Why not `candle_core::pickle`: on hostile input it can panic (`Vec::remove` on a short tuple) and
//! its memo copies objects deeply, so a few hundred bytes of `BINGET`s can build an exponentially
//! large object. Here objects are shared ([`Rc`]), so memory stays proportional to the pickle's
//! size, nested values are freed without recursion (no stack overflow on a deep chain), every read
//! is bounds-checked, every call nests at most [`MAX_CALL_DEPTH`] deep, and the
//! only callables understood are the handful a state dict uses (anything else becomes an opaque
//! value that is an error only where a tensor is needed).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use candle_core::DType;

/// How deep `_rebuild_from_type_v2` may wrap another rebuild call.
const MAX_CALL_DEPTH: usize = 4;

/// The element type of a storage: a floating-point candle dtype or the name of another one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageType {
    Float(DType),
    /// `LongStorage`, `BoolStorage`, … (the name torch pickles).
    Other(String),
}

impl StorageType {
    fn from_class(name: &str) -> Self {
        match name {
            "FloatStorage" => StorageType::Float(DType::F32),
            "DoubleStorage" => StorageType::Float(DType::F64),
            "HalfStorage" => StorageType::Float(DType::F16),
            "BFloat16Storage" => StorageType::Float(DType::BF16),
            other => StorageType::Other(other.to_string()),
        }
    }

    /// The name of a non-float type as torch spells the dtype (`LongStorage` → `torch.int64`).
    pub fn describe(&self) -> String {
        match self {
            StorageType::Float(d) => format!("{d:?}"),
            StorageType::Other(name) => {
                let dtype = match name.as_str() {
                    "LongStorage" => "torch.int64",
                    "IntStorage" => "torch.int32",
                    "ShortStorage" => "torch.int16",
                    "CharStorage" => "torch.int8",
                    "ByteStorage" => "torch.uint8",
                    "BoolStorage" => "torch.bool",
                    _ => return name.clone(),
                };
                format!("{dtype} ({name})")
            }
        }
    }
}

/// A storage a tensor views: the archive entry `data/<key>`, `numel` elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    pub key: String,
    pub dtype: StorageType,
    pub numel: usize,
}

/// A tensor of the pickle: a strided view of a storage (offset and strides in elements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    pub storage: Rc<Storage>,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

/// A pickle value. Containers are shared, as in Python: the memo and the stack hold the same dict.
#[derive(Clone)]
pub enum Obj {
    Mark,
    None,
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<Vec<Obj>>),
    List(Rc<RefCell<Vec<Obj>>>),
    Dict(Rc<RefCell<Vec<(Obj, Obj)>>>),
    Global(Rc<(String, String)>),
    Storage(Rc<Storage>),
    Tensor(Rc<TensorRef>),
    /// What an unknown callable would have built (its `module.name`).
    Opaque(Rc<str>),
}

/// Dropping a value frees its containers iteratively: a pickle of nested one-tuples (one byte per
/// level) would otherwise overflow the stack in the recursive drop of a deep chain.
impl Drop for Obj {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        take_children(self, &mut pending);
        while let Some(mut o) = pending.pop() {
            take_children(&mut o, &mut pending);
        }
    }
}

/// Moves the children of a container held only here into `out` (shared ones are left to their
/// last holder).
fn take_children(o: &mut Obj, out: &mut Vec<Obj>) {
    match o {
        Obj::Tuple(rc) => {
            if let Some(v) = Rc::get_mut(rc) {
                out.append(v);
            }
        }
        Obj::List(rc) => {
            if let Some(v) = Rc::get_mut(rc) {
                out.append(v.get_mut());
            }
        }
        Obj::Dict(rc) => {
            if let Some(v) = Rc::get_mut(rc) {
                for (k, v) in v.get_mut().drain(..) {
                    out.push(k);
                    out.push(v);
                }
            }
        }
        _ => {}
    }
}

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::Mark => "mark",
            Obj::None => "None",
            Obj::Bool => "bool",
            Obj::Int(_) => "int",
            Obj::Float => "float",
            Obj::Str(_) => "str",
            Obj::Bytes => "bytes",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "global",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
            Obj::Opaque(_) => "object",
        }
    }

    /// A short description for messages (`tensor`, `dict`, `collections.Counter(...)`).
    pub fn describe(&self) -> String {
        match self {
            Obj::Opaque(what) => format!("{what}(...)"),
            Obj::Global(g) => format!("{}.{}", g.0, g.1),
            other => other.kind().to_string(),
        }
    }

    fn usize(&self) -> Option<usize> {
        match self {
            Obj::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        }
    }

    fn usizes(&self) -> Option<Vec<usize>> {
        match self {
            Obj::Tuple(t) => t.iter().map(Obj::usize).collect(),
            Obj::List(l) => l.borrow().iter().map(Obj::usize).collect(),
            _ => None,
        }
    }

    fn tuple(&self) -> Option<Rc<Vec<Obj>>> {
        match self {
            Obj::Tuple(t) => Some(t.clone()),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, String>;

/// A bounds-checked cursor over the pickle bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(format!("truncated pickle: {n} bytes wanted at byte {} of {}", self.pos, self.data.len())),
        }
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A length read from the stream, refused when it exceeds what is left (before allocating).
    fn len(&mut self, n: u64) -> Result<usize> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(format!("truncated pickle: a length of {n} bytes at byte {} with {left} left", self.pos));
        }
        Ok(n as usize)
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("truncated pickle: a GLOBAL without its newline")?;
        let line = std::str::from_utf8(&rest[..end]).map_err(|_| "a GLOBAL name is not UTF-8".to_string())?;
        self.pos += end + 1;
        Ok(line)
    }

    fn string(&mut self, n: u64) -> Result<Rc<str>> {
        let n = self.len(n)?;
        let bytes = self.take(n)?;
        Ok(Rc::from(std::str::from_utf8(bytes).map_err(|_| "a pickled string is not UTF-8".to_string())?))
    }
}

/// The pickle machine's stack and memo.
struct Machine {
    stack: Vec<Obj>,
    memo: HashMap<u64, Obj>,
}

impl Machine {
    fn pop(&mut self) -> Result<Obj> {
        match self.stack.pop() {
            Some(Obj::Mark) | None => Err("malformed pickle: stack underflow".into()),
            Some(o) => Ok(o),
        }
    }

    fn top(&mut self) -> Result<&mut Obj> {
        match self.stack.last_mut() {
            Some(Obj::Mark) | None => Err("malformed pickle: stack underflow".into()),
            Some(o) => Ok(o),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Obj>> {
        let at = self.stack.iter().rposition(|o| matches!(o, Obj::Mark)).ok_or("malformed pickle: no MARK")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| format!("malformed pickle: memo {key} unset"))?;
        self.stack.push(v);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Obj>) -> Result<()> {
        if items.len() % 2 != 0 {
            return Err("malformed pickle: SETITEMS with an odd number of items".into());
        }
        match self.top()? {
            Obj::Dict(d) => {
                let mut d = d.borrow_mut();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
                Ok(())
            }
            // Items of an object built by an unknown callable: dropped.
            Obj::Opaque(_) => Ok(()),
            other => Err(format!("malformed pickle: SETITEM(S) on a {}", other.kind())),
        }
    }

    fn append(&mut self, items: Vec<Obj>) -> Result<()> {
        match self.top()? {
            Obj::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            Obj::Opaque(_) => Ok(()),
            other => Err(format!("malformed pickle: APPEND(S) on a {}", other.kind())),
        }
    }
}

/// `persistent_load` of torch's zip format: `('storage', torch.<T>Storage, key, location, numel)`.
fn persistent_load(pid: Obj) -> Result<Obj> {
    let t = pid.tuple().ok_or("a persistent id that is not a tuple")?;
    match t.as_slice() {
        [Obj::Str(tag), Obj::Global(class), Obj::Str(key), _location, numel] if &**tag == "storage" => {
            let numel = numel.usize().ok_or("a storage with a negative or non-integer size")?;
            Ok(Obj::Storage(Rc::new(Storage { key: key.to_string(), dtype: StorageType::from_class(&class.1), numel })))
        }
        _ => Err("a persistent id that is not a torch storage ('storage', type, key, location, numel)".into()),
    }
}

/// `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
fn rebuild_tensor(args: &Obj) -> Result<Obj> {
    let a = args.tuple().ok_or("_rebuild_tensor_v2 without an argument tuple")?;
    let (storage, offset, size, stride) = match a.as_slice() {
        [Obj::Storage(s), offset, size, stride, ..] => (s.clone(), offset, size, stride),
        _ => return Err("_rebuild_tensor_v2 with arguments other than (storage, offset, size, stride, ...)".into()),
    };
    let offset = offset.usize().ok_or("_rebuild_tensor_v2: a bad storage offset")?;
    let size = size.usizes().ok_or("_rebuild_tensor_v2: a bad size")?;
    let stride = stride.usizes().ok_or("_rebuild_tensor_v2: a bad stride")?;
    if size.len() != stride.len() {
        return Err(format!("_rebuild_tensor_v2: size {size:?} and stride {stride:?} differ in rank"));
    }
    Ok(Obj::Tensor(Rc::new(TensorRef { storage, offset, size, stride })))
}

/// REDUCE: calls the few callables a state dict uses; any other gives an opaque value.
fn call(callable: &Obj, args: &Obj, depth: usize) -> Result<Obj> {
    let Obj::Global(g) = callable else {
        return Ok(Obj::Opaque(Rc::from(callable.describe())));
    };
    let first = || args.tuple().and_then(|t| t.first().cloned());
    match (g.0.as_str(), g.1.as_str()) {
        ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict") => {
            Ok(Obj::Dict(Rc::new(RefCell::new(Vec::new()))))
        }
        ("torch._utils", "_rebuild_tensor_v2") => rebuild_tensor(args),
        ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => match first() {
            Some(t @ Obj::Tensor(_)) => Ok(t),
            _ => Err("_rebuild_parameter of something that is not a tensor".into()),
        },
        ("torch._tensor", "_rebuild_from_type_v2") if depth < MAX_CALL_DEPTH => {
            let a = args.tuple().ok_or("_rebuild_from_type_v2 without an argument tuple")?;
            match a.as_slice() {
                [func, _type, inner, ..] => call(func, inner, depth + 1),
                _ => Err("_rebuild_from_type_v2 with fewer than 3 arguments".into()),
            }
        }
        (module, name) => Ok(Obj::Opaque(Rc::from(format!("{module}.{name}")))),
    }
}

/// Runs the pickle in `data` and returns the object it stops with.
pub fn load(data: &[u8]) -> Result<Obj> {
    let mut r = Reader { data, pos: 0 };
    let mut m = Machine { stack: Vec::new(), memo: HashMap::new() };
    loop {
        let at = r.pos;
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.u64()?; // FRAME
            }
            b'.' => break, // STOP
            b'(' => m.stack.push(Obj::Mark),
            b'N' => m.stack.push(Obj::None),
            0x88 | 0x89 => m.stack.push(Obj::Bool),
            b'K' => m.stack.push(Obj::Int(i64::from(r.u8()?))),
            b'M' => m.stack.push(Obj::Int(i64::from(r.u16()?))),
            b'J' => m.stack.push(Obj::Int(i64::from(r.u32()? as i32))),
            0x8a | 0x8b => {
                // LONG1 / LONG4: little-endian two's complement.
                let n = if op == 0x8a { u64::from(r.u8()?) } else { u64::from(r.u32()?) };
                if n > 8 {
                    return Err(format!("an integer of {n} bytes at byte {at}"));
                }
                let bytes = r.take(n as usize)?;
                let mut v: i64 = 0;
                for (i, b) in bytes.iter().enumerate() {
                    v |= i64::from(*b) << (8 * i);
                }
                if n > 0 && n < 8 && bytes[n as usize - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                m.stack.push(Obj::Int(v));
            }
            b'G' => {
                r.take(8)?;
                m.stack.push(Obj::Float);
            }
            b'X' => {
                let n = r.u32()?;
                let s = r.string(u64::from(n))?;
                m.stack.push(Obj::Str(s));
            }
            0x8c => {
                let n = r.u8()?;
                let s = r.string(u64::from(n))?;
                m.stack.push(Obj::Str(s));
            }
            0x8d => {
                let n = r.u64()?;
                let s = r.string(n)?;
                m.stack.push(Obj::Str(s));
            }
            b'T' | b'U' | b'B' | b'C' | 0x8e => {
                // BINSTRING, SHORT_BINSTRING, BINBYTES, SHORT_BINBYTES, BINBYTES8: not needed.
                let n = match op {
                    b'U' | b'C' => u64::from(r.u8()?),
                    0x8e => r.u64()?,
                    _ => u64::from(r.u32()?),
                };
                let n = r.len(n)?;
                r.take(n)?;
                m.stack.push(Obj::Bytes);
            }
            b'}' => m.stack.push(Obj::Dict(Rc::new(RefCell::new(Vec::new())))),
            b']' => m.stack.push(Obj::List(Rc::new(RefCell::new(Vec::new())))),
            b')' => m.stack.push(Obj::Tuple(Rc::new(Vec::new()))),
            b't' => {
                let items = m.pop_mark()?;
                m.stack.push(Obj::Tuple(Rc::new(items)));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(m.pop()?);
                }
                items.reverse();
                m.stack.push(Obj::Tuple(Rc::new(items)));
            }
            b'l' => {
                let items = m.pop_mark()?;
                m.stack.push(Obj::List(Rc::new(RefCell::new(items))));
            }
            b'd' => {
                let items = m.pop_mark()?;
                m.stack.push(Obj::Dict(Rc::new(RefCell::new(Vec::new()))));
                m.set_items(items)?;
            }
            b'a' => {
                let v = m.pop()?;
                m.append(vec![v])?;
            }
            b'e' => {
                let items = m.pop_mark()?;
                m.append(items)?;
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.set_items(vec![k, v])?;
            }
            b'u' => {
                let items = m.pop_mark()?;
                m.set_items(items)?;
            }
            b'q' => {
                let k = r.u8()?;
                m.memo_put(u64::from(k))?;
            }
            b'r' => {
                let k = r.u32()?;
                m.memo_put(u64::from(k))?;
            }
            0x94 => {
                let k = m.memo.len() as u64;
                m.memo_put(k)?;
            }
            b'h' => {
                let k = r.u8()?;
                m.memo_get(u64::from(k))?;
            }
            b'j' => {
                let k = r.u32()?;
                m.memo_get(u64::from(k))?;
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                m.stack.push(Obj::Global(Rc::new((module, name))));
            }
            0x93 => {
                let name = m.pop()?;
                let module = m.pop()?;
                match (&module, &name) {
                    (Obj::Str(module), Obj::Str(name)) => {
                        m.stack.push(Obj::Global(Rc::new((module.to_string(), name.to_string()))))
                    }
                    _ => return Err(format!("malformed pickle: STACK_GLOBAL of non-strings at byte {at}")),
                }
            }
            b'Q' => {
                let pid = m.pop()?;
                let storage = persistent_load(pid)?;
                m.stack.push(storage);
            }
            b'R' => {
                let args = m.pop()?;
                let callable = m.pop()?;
                let v = call(&callable, &args, 0)?;
                m.stack.push(v);
            }
            0x81 => {
                // NEWOBJ cls args
                m.pop()?;
                let cls = m.pop()?;
                m.stack.push(Obj::Opaque(Rc::from(cls.describe())));
            }
            0x92 => {
                // NEWOBJ_EX cls args kwargs
                m.pop()?;
                m.pop()?;
                let cls = m.pop()?;
                m.stack.push(Obj::Opaque(Rc::from(cls.describe())));
            }
            b'b' => {
                // BUILD: the state of an OrderedDict (its `_metadata`) or of an opaque object.
                m.pop()?;
                m.top()?;
            }
            b'0' => {
                m.pop()?;
            }
            b'1' => {
                m.pop_mark()?;
            }
            b'2' => {
                let v = m.top()?.clone();
                m.stack.push(v);
            }
            _ => return Err(format!("unsupported pickle opcode 0x{op:02x} at byte {at}")),
        }
    }
    match m.stack.pop() {
        Some(Obj::Mark) | None => Err("malformed pickle: nothing on the stack at STOP".into()),
        Some(o) => Ok(o),
    }
}

/// The string-keyed entries of a state dict: `top` itself, or its `state_dict` (else `model`)
/// entry when that is a dict (a training checkpoint). Keys that are not strings are skipped.
pub fn state_dict_entries(top: &Obj) -> Result<Vec<(String, Obj)>> {
    let Obj::Dict(d) = top else {
        return Err(format!("the pickled object is a {}, not a state_dict (a dict of tensors)", top.describe()));
    };
    let lookup = |key: &str| -> Option<Obj> {
        d.borrow().iter().rev().find_map(|(k, v)| match (k, v) {
            (Obj::Str(s), Obj::Dict(_)) if &**s == key => Some(v.clone()),
            _ => None,
        })
    };
    let dict = match &lookup("state_dict").or_else(|| lookup("model")) {
        Some(Obj::Dict(inner)) => inner.clone(),
        _ => d.clone(),
    };
    let entries = dict
        .borrow()
        .iter()
        .filter_map(|(k, v)| match k {
            Obj::Str(s) => Some((s.to_string(), v.clone())),
            _ => None,
        })
        .collect();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_pickles_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x80\x02",
            b"t.",
            b"(t",
            b"R.",
            b"X\xff\xff\xff\xff",
            b"\x8a\x09",
            b"h\x05.",
            b"Q.",
            b"]K\x01s.",
            b"\xff",
            b"c torch\n",
            b"(K\x01K\x02K\x03K\x04K\x05tQ.",
        ];
        for c in cases {
            assert!(load(c).is_err(), "{c:?}");
        }
        // A chain of 1 M nested one-tuples (one byte each) is built and dropped without recursion.
        let mut p = b"\x80\x02K\x01".to_vec();
        p.resize(p.len() + 1_000_000, 0x85);
        p.push(b'.');
        assert!(matches!(load(&p), Ok(Obj::Tuple(_))));
        // Nested lists and dicts too: memoize the previous level, pop it, push a new list (dict),
        // push the previous level back and append (set) it into the new one.
        let mut p = b"\x80\x02N".to_vec();
        for i in 0..300_000 {
            p.extend_from_slice(if i % 2 == 0 { b"q\x000]h\x00a" } else { b"q\x000}K\x01h\x00s" });
        }
        p.push(b'.');
        assert!(matches!(load(&p), Ok(Obj::Dict(_))));
        // A memo bomb of shared tuples stays small (the objects are shared, not copied).
        let mut p = b"\x80\x02K\x01q\x00".to_vec();
        for _ in 0..200 {
            p.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        p.push(b'.');
        assert!(matches!(load(&p), Ok(Obj::Tuple(_))));
    }

    /// The pickle of a real `torch.save` file (the test fixture), then thousands of seeded
    /// corruptions of it (flipped bytes, truncations): an error or a value, never a panic.
    #[test]
    fn a_real_state_dict_pickle_and_its_corruptions() {
        use std::io::Read;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resnet18_w2.pth");
        let bytes = std::fs::read(path).unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut pickle = Vec::new();
        zip.by_name("resnet18_w2/data.pkl").unwrap().read_to_end(&mut pickle).unwrap();
        let top = load(&pickle).unwrap();
        let entries = state_dict_entries(&top).unwrap();
        assert_eq!(entries.len(), 122, "torchvision ResNet-18 keys, fc and num_batches_tracked included");
        let Obj::Tensor(t) = &entries.iter().find(|(k, _)| k == "layer2.0.downsample.0.weight").unwrap().1 else {
            panic!("not a tensor")
        };
        assert_eq!((t.size.as_slice(), t.stride.as_slice(), t.offset), (&[4, 2, 1, 1][..], &[2, 1, 1, 1][..], 0));
        assert_eq!((t.storage.dtype.clone(), t.storage.numel), (StorageType::Float(DType::F32), 8));
        let mut rng = dgl_core::rng::Rng::new(7);
        for i in 0..3000 {
            let mut p = pickle.clone();
            if i % 10 == 0 {
                p.truncate(rng.next_u64() as usize % p.len());
            }
            for _ in 0..1 + i % 4 {
                let at = rng.next_u64() as usize % p.len().max(1);
                if let Some(b) = p.get_mut(at) {
                    *b = rng.next_u64() as u8;
                }
            }
            if let Ok(top) = load(&p) {
                let _ = state_dict_entries(&top);
            }
        }
    }

    #[test]
    fn negative_long1_and_dicts() {
        // {'a': -2, 'b': 300}
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00a\x8a\x01\xfeX\x01\x00\x00\x00bM\x2c\x01u.";
        let top = load(p).unwrap();
        let e = state_dict_entries(&top).unwrap();
        assert_eq!(e.len(), 2);
        assert!(matches!(e[0].1, Obj::Int(-2)));
        assert!(matches!(e[1].1, Obj::Int(300)));
    }
}
