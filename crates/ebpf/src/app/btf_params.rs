//! How many arguments a kernel function takes, from the kernel's BTF: the `tcp_recvmsg`
//! program is chosen by it (its argument list changed in Linux 5.19). aya reads BTF but does
//! not expose a function's parameters, so this walks the raw type section itself.

/// `/sys/kernel/btf/vmlinux`.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;

/// The number of parameters of the function `name` described in the BTF blob `btf` (native
/// byte order, as the kernel exposes it); `Ok(None)` when it describes no such function.
pub fn func_param_count(btf: &[u8], name: &str) -> Result<Option<u32>, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        btf.get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("BTF truncated at byte {at}"))
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        btf.get(at..at + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("BTF truncated at byte {at}"))
    };
    if u16_at(0)? != BTF_MAGIC {
        return Err("not BTF in this machine's byte order (bad magic)".into());
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let name_is = |off: u32| -> bool {
        let start = strings + off as usize;
        let end = strings + str_len;
        btf.get(start..end.min(btf.len()))
            .and_then(|s| s.split(|&b| b == 0).next())
            .is_some_and(|s| s == name.as_bytes())
    };
    // type ids start at 1; offsets[id - 1] is where type `id` starts
    let mut offsets = Vec::new();
    let mut func_proto = None;
    let mut at = types;
    while at < types + type_len {
        offsets.push(at);
        let (name_off, info, size_or_type) = (u32_at(at)?, u32_at(at + 4)?, u32_at(at + 8)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        if kind == KIND_FUNC && func_proto.is_none() && name_is(name_off) {
            func_proto = Some(size_or_type);
        }
        // the bytes that follow the common 12-byte header, per kind (include/uapi/linux/btf.h)
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
            other => return Err(format!("BTF kind {other} not known (at byte {at})")),
        };
        at += 12 + extra;
    }
    let Some(proto) = func_proto else {
        return Ok(None);
    };
    let at = *offsets
        .get((proto as usize).wrapping_sub(1))
        .ok_or_else(|| format!("{name}: BTF type {proto} does not exist"))?;
    let info = u32_at(at + 4)?;
    if (info >> 24) & 0x1f != KIND_FUNC_PROTO {
        return Err(format!(
            "{name}: BTF type {proto} is not a function prototype"
        ));
    }
    Ok(Some(info & 0xffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: `int`, a prototype of `n` int parameters, and the function `name` of it.
    fn blob(name: &str, n: u32) -> Vec<u8> {
        let strings = [b"\0int\0".as_slice(), name.as_bytes(), b"\0"].concat();
        let mut types: Vec<u8> = Vec::new();
        let mut word = |w: u32| types.extend(w.to_ne_bytes());
        // [1] int: header, then its encoding word (32 bits)
        [1, 1 << 24, 4, 32].into_iter().for_each(&mut word);
        // [2] int (int, ...): header, then one (name, type) pair per parameter
        [0, KIND_FUNC_PROTO << 24 | n, 1]
            .into_iter()
            .for_each(&mut word);
        (0..n).for_each(|_| [0, 1].into_iter().for_each(&mut word));
        // [3] the function `name` (string offset 5), of prototype 2
        [5, KIND_FUNC << 24, 2].into_iter().for_each(&mut word);
        let mut out = Vec::new();
        out.extend(BTF_MAGIC.to_ne_bytes());
        out.extend([1u8, 0]);
        for w in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(w.to_ne_bytes());
        }
        out.extend(types);
        out.extend(strings);
        out
    }

    #[test]
    fn counts_the_parameters_of_the_named_function() {
        assert_eq!(
            func_param_count(&blob("tcp_recvmsg", 6), "tcp_recvmsg"),
            Ok(Some(6))
        );
        assert_eq!(
            func_param_count(&blob("tcp_recvmsg", 5), "tcp_recvmsg"),
            Ok(Some(5))
        );
        assert_eq!(
            func_param_count(&blob("tcp_recvmsg", 5), "tcp_sendmsg"),
            Ok(None)
        );
        assert_eq!(
            func_param_count(&blob("tcp_recvmsg", 5), "tcp_recv"),
            Ok(None)
        );
        assert!(func_param_count(b"not btf at all, long enough", "x").is_err());
    }

    /// The running kernel's own BTF, where there is one: tcp_sendmsg(sk, msg, size), and
    /// tcp_recvmsg with 6 (before 5.19), 5, or 4 arguments (newer kernels: no `addr_len`).
    #[test]
    fn reads_the_kernels_btf() {
        let Ok(btf) = std::fs::read(KERNEL_BTF) else {
            return;
        };
        assert_eq!(func_param_count(&btf, "tcp_sendmsg"), Ok(Some(3)));
        let recv = func_param_count(&btf, "tcp_recvmsg").unwrap();
        assert!(matches!(recv, Some(4..=6)), "{recv:?}");
        assert_eq!(func_param_count(&btf, "no_such_function_here"), Ok(None));
    }
}
